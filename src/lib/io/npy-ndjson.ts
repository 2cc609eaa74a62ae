// A .npy seen as JSON: its header and value statistics, its rows as NDJSON lines and NDJSON lines
// back into rows (each checked against the first row's shape and the dtype's range).
import { UsageError, type CommandIO, type ErrorPlace } from '../command.js';
import { describeJsonValue, openNdjsonWriter, readNdjson, requireObject, type NdjsonRecord } from './ndjson.js';
import {
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
} from './npy.js';

/** `START:END`, `START:`, `:END`, `:` or a single row `N`, as a Python slice of rows. */
export function parseRowRange(text: string): { start: number; end: number } {
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

export function shapeText(shape: number[]): string {
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

/** The header of `file` as a JSON report and, with `stats`, its value statistics (per column with `columns`). */
export async function npyInfo(file: string, opts: { stats: boolean; columns: boolean }): Promise<Record<string, unknown>> {
  const header = opts.stats ? null : await readNpyHeader(file);
  const summary = opts.stats ? await summarizeNpy(file, { columns: opts.columns }) : null;
  const h = summary?.header ?? header!;
  return {
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
}

/** Rows [start, end) of `file` to `stdout`, one JSON line each: the nested row, or {row, values} with `objects`. */
export async function writeNpyRowsAsNdjson(file: string, opts: { start: number; end: number; objects: boolean }, stdout: NodeJS.WritableStream): Promise<void> {
  const { start, end } = opts;
  const header = await readNpyHeader(file);
  const rowShape = header.shape.slice(1);
  const writer = await openNdjsonWriter('-', { stdout });
  for await (const chunk of iterateNpyRows(file, { start, end, chunkBytes: 4 * 1024 * 1024 })) {
    for (let r = 0; r < chunk.end - chunk.start; r++) {
      const values = rowValue(chunk.data, r * header.rowLength, rowShape, header.dtype);
      await writer.write(opts.objects ? { row: chunk.start + r, values } : values);
    }
  }
  await writer.close();
}

/**
 * Rows from the NDJSON `file` (each line, or its `field`) into the .npy `output`, shaped like the
 * first row; no rows give an empty array of shape (0,), with a warning. Reports what it wrote on stderr.
 */
export async function writeNpyFromNdjson(file: string, opts: { output: string; dtype: NpyDtype; field?: string }, io: Pick<CommandIO, 'stdin' | 'stderr' | 'outputs'>): Promise<void> {
  const { output, dtype } = opts;
  let writer: NpyWriter | null = null;
  let rowShape: number[] = [];
  let firstLine = 0;
  let row = new Float64Array(0);
  try {
    for await (const record of readNdjson(file, { stdin: io.stdin })) {
      let value = record.value;
      if (opts.field !== undefined) {
        value = requireObject(record.value, record)[opts.field];
        if (value === undefined) throw new UsageError('missing', { file: record.file, line: record.line, field: opts.field });
      }
      if (writer === null) {
        rowShape = leadingShape(value);
        firstLine = record.line;
        row = new Float64Array(rowShape.reduce((a, b) => a * b, 1));
        writer = await openNpyWriter(output, { dtype, rowShape, outputs: io.outputs });
      }
      flattenRow(value, rowShape, dtype, row, { record, path: opts.field ?? '', firstLine });
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
