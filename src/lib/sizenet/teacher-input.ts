// Reading and checking the teacher's input: per-article or per-sale rows, tallied per article and time bucket.
import { createGunzip } from 'node:zlib';
import { UsageError, type ErrorPlace } from '../command.js';
import { readCsvStream, readRecords, recordFormatFromPath, type RecordFormat } from '../io/csv.js';
import { describeJsonValue, readNdjsonStream, requireObject, type NdjsonRecord } from '../io/ndjson.js';
import { inputDisplayName, openInputStream } from '../io/paths.js';
import { bucketOfDay, parseDay, spreadOverBuckets, type BucketKind } from './dates.js';
import { ArticleTallies } from './teacher.js';

/** Per-article rows (n sales, k size returns over a period) or per-sale rows (one sale, returned or kept). */
export type TeacherInputShape = 'article' | 'event';
type InputRecord = NdjsonRecord<Record<string, unknown>>;

/** The columns each shape reads, by role, as the user named them. */
export interface TeacherColumns {
  id: string;
  category: string;
  n: string;
  k: string;
  start: string;
  end: string;
  date: string;
  returned: string;
}

/** Where the rows come from and how to read them. */
export interface TeacherInputSource {
  /** A path, or '-' for stdin. */
  input: string;
  format: 'auto' | RecordFormat;
  stdin: NodeJS.ReadableStream;
  shape: 'auto' | TeacherInputShape;
  /** Comma-separated values of the returned column that mean a size return, and a kept sale. */
  returnedValues: string;
  keptValues: string;
}

export interface TeacherInputTally {
  tallies: ArticleTallies;
  shape: TeacherInputShape;
  rows: number;
  /** Ids that came in as JSON numbers, so they can go out as numbers. */
  ids: Map<string, number>;
}

/** Distinct date texts remembered with their bucket; timestamps could make every row distinct, so it is bounded. */
const BUCKET_CACHE_LIMIT = 100_000;

/** NDJSON, CSV or TSV records from `path`; a `.gz` file is decompressed on the way (its format from the name inside). */
export async function* readTeacherRecords(path: string, format: RecordFormat | 'auto', stdin: NodeJS.ReadableStream): AsyncGenerator<InputRecord> {
  if (!path.toLowerCase().endsWith('.gz')) {
    yield* readRecords(path, { format, stdin });
    return;
  }
  const name = inputDisplayName(path);
  const chosen = format !== 'auto' ? format : recordFormatFromPath(path.slice(0, -3));
  if (chosen === null) throw new UsageError('cannot tell from its name whether this compressed file holds NDJSON or CSV; say which with --format', { file: name });
  const compressed = await openInputStream(path, stdin);
  const stream = compressed.pipe(createGunzip());
  compressed.on('error', (err: Error) => stream.destroy(err));
  try {
    if (chosen === 'ndjson') {
      for await (const record of readNdjsonStream(stream, name)) yield { value: requireObject(record.value, record), line: record.line, file: name };
    } else {
      yield* readCsvStream(stream, name, { delimiter: chosen === 'tsv' ? '\t' : ',' });
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) throw new UsageError(`not a valid gzip file (${(err as Error).message})`, { file: name });
    throw err;
  }
}

function place(record: InputRecord, field?: string): ErrorPlace {
  return { file: record.file, line: record.line, field };
}

function has(record: InputRecord, column: string): boolean {
  return Object.prototype.hasOwnProperty.call(record.value, column);
}

/** The columns the first record must have for `shape`, and a UsageError naming the first one missing. */
function requireColumns(record: InputRecord, shape: TeacherInputShape, columns: TeacherColumns): void {
  const roles: Array<[keyof TeacherColumns, string]> =
    shape === 'article'
      ? [['id', '--id-col'], ['category', '--category-col'], ['n', '--n-col'], ['k', '--k-col'], ['start', '--start-col'], ['end', '--end-col']]
      : [['id', '--id-col'], ['category', '--category-col'], ['date', '--date-col'], ['returned', '--returned-col']];
  for (const [role, flag] of roles) {
    const column = columns[role];
    if (!has(record, column)) {
      const found = Object.keys(record.value).join(', ') || 'none';
      throw new UsageError(`no column '${column}' for ${shape === 'article' ? 'per-article' : 'per-sale'} input (columns here: ${found}); name it with ${flag}`, place(record, column));
    }
  }
}

/** Per-article rows when the first record has the n and k columns, per-sale rows when it has date and returned. */
export function detectTeacherShape(record: InputRecord, columns: TeacherColumns): TeacherInputShape {
  if (has(record, columns.n) && has(record, columns.k)) return 'article';
  if (has(record, columns.date) && has(record, columns.returned)) return 'event';
  const found = Object.keys(record.value).join(', ') || 'none';
  throw new UsageError(
    `cannot tell the input's shape from its columns (${found}): per-article rows need '${columns.n}' and '${columns.k}' (plus '${columns.start}', '${columns.end}'), ` +
      `per-sale rows need '${columns.date}' and '${columns.returned}'; rename with --n-col/--k-col/--date-col/--returned-col or set --shape`,
    place(record),
  );
}

/** A non-empty text key from a string or number cell. */
function keyText(record: InputRecord, column: string): string {
  const value = record.value[column];
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new UsageError(`expected a non-empty name, got ${describeJsonValue(value)}`, place(record, column));
}

/** A whole number of sales or returns, from a JSON number or a CSV cell. */
function countValue(record: InputRecord, column: string): number {
  const value = record.value[column];
  let count: number | null = null;
  if (typeof value === 'number') count = value;
  else if (typeof value === 'string' && /^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$/.test(value)) count = Number(value);
  if (count === null || !Number.isFinite(count)) throw new UsageError(`expected a count (a whole number >= 0), got ${describeJsonValue(value)}`, place(record, column));
  if (count < 0) throw new UsageError(`negative count ${count}`, place(record, column));
  if (!Number.isSafeInteger(count)) throw new UsageError(`expected a whole number, got ${count}`, place(record, column));
  return count;
}

/** A UTC day number from a date cell. */
function dayValue(record: InputRecord, column: string): number {
  const value = record.value[column];
  const day = typeof value === 'string' ? parseDay(value) : null;
  if (day === null) throw new UsageError(`unparsable date ${describeJsonValue(value)} (expected YYYY-MM-DD or an ISO 8601 timestamp)`, place(record, column));
  return day;
}

function valueList(text: string): Set<string> {
  return new Set(
    text
      .split(',')
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== ''),
  );
}

/** Reads every record into per-article tallies, validating each; the caller writes nothing until this returns. */
export async function tallyTeacherInput(source: TeacherInputSource, columns: TeacherColumns, bucketKind: BucketKind): Promise<TeacherInputTally> {
  const tallies = new ArticleTallies();
  const numericIds = new Map<string, number>();
  const returnedValues = valueList(source.returnedValues);
  const keptValues = valueList(source.keptValues);
  for (const value of returnedValues) {
    if (keptValues.has(value)) throw new UsageError(`'${value}' is in both --returned-values and --kept-values`, { field: '--kept-values' });
  }
  const bucketCache = new Map<string, string>();
  const bucketOfDateText = (record: InputRecord, column: string): string => {
    const text = record.value[column];
    const cached = typeof text === 'string' ? bucketCache.get(text) : undefined;
    if (cached !== undefined) return cached;
    const bucket = bucketOfDay(dayValue(record, column), bucketKind);
    if (bucketCache.size >= BUCKET_CACHE_LIMIT) bucketCache.clear();
    bucketCache.set(text as string, bucket);
    return bucket;
  };
  let shape: TeacherInputShape | null = source.shape === 'auto' ? null : source.shape;
  let rows = 0;
  // Per-article rows: one per article; a second one would be summed into it silently.
  const articleLine = new Map<string, number>();
  for await (const record of readTeacherRecords(source.input, source.format, source.stdin)) {
    if (rows === 0) {
      shape ??= detectTeacherShape(record, columns);
      requireColumns(record, shape, columns);
    }
    rows += 1;
    const id = keyText(record, columns.id);
    const rawId = record.value[columns.id];
    if (typeof rawId === 'number' && !numericIds.has(id)) numericIds.set(id, rawId);
    const category = keyText(record, columns.category);
    if (shape === 'article') {
      const firstLine = articleLine.get(id);
      if (firstLine !== undefined) throw new UsageError(`article ${JSON.stringify(id)} already has a row on line ${firstLine}; give one row per article (or per-sale rows)`, place(record, columns.id));
      articleLine.set(id, record.line);
      const n = countValue(record, columns.n);
      const k = countValue(record, columns.k);
      if (k > n) throw new UsageError(`size returns (${k}) exceed sales (${n})`, place(record, columns.k));
      const first = dayValue(record, columns.start);
      const last = dayValue(record, columns.end);
      if (last < first) throw new UsageError(`sales period ends before it starts (${columns.start} ${String(record.value[columns.start])})`, place(record, columns.end));
      tallies.addArticle(id, category, n, k, spreadOverBuckets(first, last, bucketKind));
    } else {
      const bucket = bucketOfDateText(record, columns.date);
      tallies.addSales(id, category, bucket, 1, returnedFlag(record, columns.returned, returnedValues, keptValues));
    }
  }
  if (rows === 0) throw new UsageError('no rows to score', { file: inputDisplayName(source.input) });
  return { tallies, shape: shape!, rows, ids: numericIds };
}

/** 1 when the sale came back for a size reason, 0 when it was kept; anything else is an error. */
function returnedFlag(record: InputRecord, column: string, returnedValues: Set<string>, keptValues: Set<string>): number {
  const value = record.value[column];
  if (value === true) return 1;
  if (value === false) return 0;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : typeof value === 'number' ? String(value) : null;
  if (text !== null && returnedValues.has(text)) return 1;
  if (text !== null && keptValues.has(text)) return 0;
  throw new UsageError(
    `${describeJsonValue(value)} is neither a size return (${[...returnedValues].join(', ')}) nor a kept sale (${[...keptValues].join(', ')}); see --returned-values and --kept-values`,
    place(record, column),
  );
}
