import { defineCommand, UsageError, type CommandIO, type ErrorPlace } from '../lib/command.js';
import { describeJsonValue, openNdjsonWriter, readNdjson, requireObject, type NdjsonRecord } from '../lib/io/ndjson.js';
import {
  NPY_DTYPES,
  isNpyDtype,
  iterateNpyRows,
  openNpyWriter,
  readNpyHeader,
  shortestFloat32,
  summarizeNpy,
  valueProblemForDtype,
  type NpyDtype,
  type NpyTypedArray,
  type NpyWriter,
  type ValueStats,
} from '../lib/io/npy.js';
import { isStdio } from '../lib/io/paths.js';
import { checkFileOutput } from '../lib/io/atomic.js';

interface NpyArgs {
  verb: string;
  file?: string;
  stats: boolean;
  columns: boolean;
  rows: string;
  objects: boolean;
  output?: string;
  dtype: string;
  field?: string;
}

const VERBS = ['info', 'to-ndjson', 'from-ndjson'];

/** `START:END`, `START:`, `:END`, `:` or a single row `N`, as a Python slice of rows. */
function parseRowRange(text: string): { start: number; end: number } {
  const match = /^\s*(\d*)\s*(?:(:)\s*(\d*))?\s*$/.exec(text);
  if (!match || (match[2] === undefined && match[1] === '')) {
    throw new UsageError(`'${text}' is not a row range (use START:END, START:, :END or N; rows count from 0)`, { field: '--rows' });
  }
  const start = match[1] ? Number(match[1]) : 0;
  if (match[2] === undefined) return { start, end: start + 1 };
  return { start, end: match[3] ? Number(match[3]) : Number.MAX_SAFE_INTEGER };
}

/** A stored value as JSON: non-finite floats become the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers). */
function jsonValue(value: number | bigint, dtype: NpyDtype): number | string | boolean {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (dtype === 'bool') return value !== 0;
  if (!Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  return dtype === 'float32' ? shortestFloat32(value) : value;
}

/** One row (elements offset.. of `data`) as nested arrays shaped like `rowShape`. */
function rowValue(data: NpyTypedArray, offset: number, rowShape: number[], dtype: NpyDtype): unknown {
  if (rowShape.length === 0) return jsonValue(data[offset]!, dtype);
  const [length, ...inner] = rowShape as [number, ...number[]];
  const step = inner.reduce((a, b) => a * b, 1);
  const out = new Array<unknown>(length);
  for (let i = 0; i < length; i++) out[i] = rowValue(data, offset + i * step, inner, dtype);
  return out;
}

/** A JSON value read as an element of `dtype`; null and "NaN"/"Infinity"/"-Infinity" are accepted for floats. */
function elementValue(value: unknown, dtype: NpyDtype, place: ErrorPlace): number {
  const isFloat = dtype === 'float32' || dtype === 'float64';
  let number: number | undefined;
  if (typeof value === 'number') number = value;
  else if (isFloat && (value === null || value === 'NaN')) number = NaN;
  else if (isFloat && value === 'Infinity') number = Infinity;
  else if (isFloat && value === '-Infinity') number = -Infinity;
  else if (dtype === 'bool' && typeof value === 'boolean') number = value ? 1 : 0;
  if (number === undefined) {
    const expected = dtype === 'bool' ? 'true, false, 0 or 1' : isFloat ? 'a number (or null/"NaN"/"Infinity")' : `an integer (dtype ${dtype})`;
    throw new UsageError(`expected ${expected}, got ${describeJsonValue(value)}`, place);
  }
  const problem = valueProblemForDtype(number, dtype);
  if (problem) throw new UsageError(problem, place);
  return number;
}

/** The shape of a row, read down its first elements: 3 -> [], [1,2] -> [2], [[1],[2]] -> [2, 1]. */
function leadingShape(row: unknown): number[] {
  const shape: number[] = [];
  for (let x = row; Array.isArray(x); x = x[0]) shape.push(x.length);
  return shape;
}

function shapeText(shape: number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** Copies `row` into `out` checking it is exactly `shape`; errors name the offending element. */
function flattenRow(
  row: unknown,
  shape: number[],
  dtype: NpyDtype,
  out: Float64Array,
  where: { record: NdjsonRecord; path: string; firstLine: number },
): void {
  let next = 0;
  const place = (path: string): ErrorPlace => ({ file: where.record.file, line: where.record.line, field: path || undefined });
  const visit = (value: unknown, depth: number, path: string) => {
    if (depth === shape.length) {
      if (Array.isArray(value)) throw new UsageError(`is an array, expected a number (rows have shape ${shapeText(shape)} like line ${where.firstLine})`, place(path));
      out[next++] = elementValue(value, dtype, place(path));
      return;
    }
    const expected = shape[depth]!;
    if (!Array.isArray(value)) {
      throw new UsageError(`expected an array of ${expected}, got ${describeJsonValue(value)} (rows have shape ${shapeText(shape)} like line ${where.firstLine})`, place(path));
    }
    if (value.length !== expected) {
      const what = depth === 0 ? 'row' : 'array';
      throw new UsageError(`${what} has ${value.length} values, expected ${expected} (rows have shape ${shapeText(shape)} like line ${where.firstLine})`, place(path));
    }
    for (let i = 0; i < value.length; i++) visit(value[i], depth + 1, `${path}[${i}]`);
  };
  visit(row, 0, where.path);
}

/** min and max are values of the array: a float32 one prints as NumPy shows it, not as its float64 widening. */
function readableStats(stats: ValueStats, dtype: NpyDtype): ValueStats {
  if (dtype !== 'float32') return stats;
  return { ...stats, min: stats.min === null ? null : shortestFloat32(stats.min), max: stats.max === null ? null : shortestFloat32(stats.max) };
}

async function info(file: string, args: NpyArgs, io: { stdout: NodeJS.WritableStream }): Promise<void> {
  const header = args.stats ? null : await readNpyHeader(file);
  const summary = args.stats ? await summarizeNpy(file, { columns: args.columns }) : null;
  const h = summary?.header ?? header!;
  const report = {
    file,
    version: `${h.version[0]}.${h.version[1]}`,
    dtype: h.dtype,
    descr: h.descr,
    shape: h.shape,
    fortranOrder: h.fortranOrder,
    dataOffset: h.dataOffset,
    rows: h.rowCount,
    rowLength: h.rowLength,
    ...(summary ? { fileBytes: summary.fileBytes, stats: readableStats(summary.stats, h.dtype) } : {}),
    ...(summary?.columns ? { columns: summary.columns.map((c) => readableStats(c, h.dtype)) } : {}),
  };
  io.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

async function toNdjson(file: string, args: NpyArgs, io: { stdout: NodeJS.WritableStream }): Promise<void> {
  const { start, end } = parseRowRange(args.rows);
  const header = await readNpyHeader(file);
  const rowShape = header.shape.slice(1);
  const writer = await openNdjsonWriter('-', { stdout: io.stdout });
  for await (const chunk of iterateNpyRows(file, { start, end, chunkBytes: 4 * 1024 * 1024 })) {
    for (let r = 0; r < chunk.end - chunk.start; r++) {
      const values = rowValue(chunk.data, r * header.rowLength, rowShape, header.dtype);
      await writer.write(args.objects ? { row: chunk.start + r, values } : values);
    }
  }
  await writer.close();
}

async function fromNdjson(file: string, args: NpyArgs, io: Pick<CommandIO, 'stdin' | 'stderr' | 'outputs'>): Promise<void> {
  const output = args.output;
  if (output === undefined || output === '') throw new UsageError('from-ndjson needs -o OUT.npy', { field: '--output' });
  if (isStdio(output)) throw new UsageError('a .npy cannot be streamed to stdout (its header is completed last); give a file name', { field: '--output' });
  if (!isNpyDtype(args.dtype)) throw new UsageError(`unknown dtype '${args.dtype}' (choose from ${NPY_DTYPES.join(', ')})`, { field: '--dtype' });
  const dtype = args.dtype;
  let writer: NpyWriter | null = null;
  let rowShape: number[] = [];
  let firstLine = 0;
  let row = new Float64Array(0);
  try {
    for await (const record of readNdjson(file, { stdin: io.stdin })) {
      let value = record.value;
      if (args.field !== undefined) {
        value = requireObject(record.value, record)[args.field];
        if (value === undefined) throw new UsageError('missing', { file: record.file, line: record.line, field: args.field });
      }
      if (writer === null) {
        rowShape = leadingShape(value);
        firstLine = record.line;
        row = new Float64Array(rowShape.reduce((a, b) => a * b, 1));
        writer = await openNpyWriter(output, { dtype, rowShape, outputs: io.outputs });
      }
      flattenRow(value, rowShape, dtype, row, { record, path: args.field ?? '', firstLine });
      await writer.writeRows(row, 1);
    }
    if (writer === null) {
      io.stderr.write(`atelier npy: warning: no rows in ${file === '-' ? 'stdin' : file}; writing an empty array of shape (0,)\n`);
      writer = await openNpyWriter(output, { dtype, rowShape: [], outputs: io.outputs });
    }
    const header = await writer.close();
    io.stderr.write(`atelier npy: wrote ${output}: ${header.dtype} ${shapeText(header.shape)}\n`);
  } catch (err) {
    await writer?.abort();
    throw err;
  }
}

export default defineCommand<NpyArgs>({
  name: 'npy',
  summary: 'inspect a .npy file (shape, dtype, stats) and convert .npy rows to and from NDJSON',
  description: [
    'info FILE: print one JSON object: format version, dtype, shape, data offset, and statistics of the values (count of finite values, NaN and infinity counts, min, max, mean, population std). --columns adds the same per column (per element of a row). The file is read in chunks, so any size works in bounded memory.',
    'to-ndjson FILE: print one row (the first axis) per line as a JSON array, nested like the row shape; a 1-d array prints one number per line. --rows picks a range, reading only those bytes. float32 values print as the shortest decimal that reads back to the same float32; NaN and infinities print as the strings "NaN", "Infinity", "-Infinity".',
    'from-ndjson [FILE]: read rows from NDJSON (FILE or stdin, "-" by default), each an array (nested for more axes) or a bare number, or the --field of an object, and write them to -o OUT.npy. Every row must have the shape of the first one; a ragged row, a non-number or a value out of the dtype\'s range stops with its file:line. null and "NaN"/"Infinity"/"-Infinity" are accepted for float dtypes. The output appears only when complete (it is written to a temp file and renamed).',
    'Supported dtypes: float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool; little-endian, C order; format versions 1.0, 2.0 and 3.0 are read, 1.0 is written (2.0 when the header needs it).',
  ].join('\n\n'),
  positionals: [
    { name: 'verb', describe: `what to do: ${VERBS.join(', ')}`, type: 'string', demandOption: true },
    { name: 'file', describe: 'the .npy file (info, to-ndjson) or the NDJSON input (from-ndjson; "-" = stdin, the default)', type: 'string' },
  ],
  options: {
    stats: { type: 'boolean', default: true, describe: 'info: compute value statistics (reads the whole file in chunks); --no-stats prints only the header' },
    columns: { type: 'boolean', default: false, describe: 'info: add statistics per column (per element of a row)' },
    rows: { type: 'string', default: ':', describe: 'to-ndjson: rows to print as START:END (END excluded, counting from 0), START:, :END, or one row N' },
    objects: { type: 'boolean', default: false, describe: 'to-ndjson: print {"row": i, "values": ...} objects instead of bare arrays' },
    output: { alias: 'o', type: 'string', describe: 'from-ndjson: the .npy file to write (required)' },
    dtype: { type: 'string', default: 'float32', describe: `from-ndjson: dtype of the output, one of ${NPY_DTYPES.join(', ')}` },
    field: { type: 'string', describe: 'from-ndjson: take each row from this field of an object line (e.g. "values" to read back to-ndjson --objects output); default: the line itself is the row' },
  },
  examples: [
    ['atelier npy info embeddings.npy', 'shape, dtype and value statistics as JSON'],
    ['atelier npy info --no-stats embeddings.npy | jq -c .shape', 'just the shape, without reading the data'],
    ['atelier npy info --columns embeddings.npy | jq -c "[.columns[].mean]"', 'the mean of each column'],
    ['atelier npy to-ndjson --rows 0:5 embeddings.npy', 'the first five rows, one JSON array per line'],
    ['atelier npy to-ndjson --objects embeddings.npy | jq -c "select(.values[0] > 0.5) | .row"', 'rows whose first value exceeds 0.5'],
    ['atelier npy from-ndjson -o scores.npy --dtype float64 rows.ndjson', 'NDJSON arrays to a (rows, d) float64 .npy'],
    ['jq -c .embedding items.ndjson | atelier npy from-ndjson -o emb.npy', 'a field of each record, through stdin'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    if (!VERBS.includes(args.verb)) throw new UsageError(`unknown verb '${args.verb}' (use ${VERBS.join(', ')})`);
    if (args.verb === 'from-ndjson') return fromNdjson(args.file ?? '-', args, io);
    if (args.file === undefined) throw new UsageError(`missing argument <file> (the .npy to ${args.verb === 'info' ? 'inspect' : 'convert'})`);
    if (isStdio(args.file)) throw new UsageError(`npy ${args.verb} reads a .npy file by offset and cannot read stdin; give a file name`, { file: 'stdin' });
    if (args.verb === 'info') return info(args.file, args, io);
    return toNdjson(args.file, args, io);
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: NpyArgs): Promise<void> {
  if (args.verb === 'from-ndjson') await checkFileOutput(args.output, '--output');
}
