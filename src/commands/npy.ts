import { defineCommand, UsageError } from '../lib/command.js';
import { NPY_DTYPES, isNpyDtype } from '../lib/io/npy.js';
import { npyInfo, parseRowRange, writeNpyFromNdjson, writeNpyRowsAsNdjson } from '../lib/io/npy-ndjson.js';
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
    if (args.verb === 'from-ndjson') {
      const output = args.output;
      if (output === undefined || output === '') throw new UsageError('from-ndjson needs -o OUT.npy', { field: '--output' });
      if (isStdio(output)) throw new UsageError('a .npy cannot be streamed to stdout (its header is completed last); give a file name', { field: '--output' });
      if (!isNpyDtype(args.dtype)) throw new UsageError(`unknown dtype '${args.dtype}' (choose from ${NPY_DTYPES.join(', ')})`, { field: '--dtype' });
      return writeNpyFromNdjson(args.file ?? '-', { output, dtype: args.dtype, field: args.field }, io);
    }
    if (args.file === undefined) throw new UsageError(`missing argument <file> (the .npy to ${args.verb === 'info' ? 'inspect' : 'convert'})`);
    if (isStdio(args.file)) throw new UsageError(`npy ${args.verb} reads a .npy file by offset and cannot read stdin; give a file name`, { file: 'stdin' });
    if (args.verb === 'info') {
      io.stdout.write(JSON.stringify(await npyInfo(args.file, { stats: args.stats, columns: args.columns }), null, 2) + '\n');
      return;
    }
    const { start, end } = parseRowRange(args.rows);
    return writeNpyRowsAsNdjson(args.file, { start, end, objects: args.objects }, io.stdout);
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: NpyArgs): Promise<void> {
  if (args.verb === 'from-ndjson') await checkFileOutput(args.output, '--output');
}
