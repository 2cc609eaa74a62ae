// CSV/TSV input for catalogue imports, through csv-parse, streamed, with the same record shape and
// the same file:line errors as NDJSON; and one reader for "NDJSON or CSV", chosen by extension or sniffed.
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { UsageError } from '../command.js';
import { readNdjsonStream, requireObject, type LineReadOptions, type NdjsonRecord } from './ndjson.js';
import { extensionOf, inputDisplayName, isStdio, openInputStream } from './paths.js';

export interface CsvReadOptions {
  /** Field separator; ',' unless told (readRecords uses a tab for .tsv). */
  delimiter?: string;
  /** Longest record accepted, in characters; past it a UsageError names the record's line. */
  maxRecordChars?: number;
  /** The stream `-` reads; process.stdin unless a caller substitutes one. */
  stdin?: NodeJS.ReadableStream;
}

export const DEFAULT_MAX_RECORD_CHARS = 16 * 1024 * 1024;

/** Line breaks in `text`, a CRLF counting once (csv-parse's `raw` keeps the breaks a record spans). */
function countLineBreaks(text: string): number {
  let breaks = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0d) {
      breaks += 1;
      if (text.charCodeAt(i + 1) === 0x0a) i += 1;
    } else if (c === 0x0a) {
      breaks += 1;
    }
  }
  return breaks;
}

function isBlankRecord(fields: string[]): boolean {
  return fields.length === 1 && fields[0]!.trim() === '';
}

/** csv-parse's own messages carry its own line count; we say what is wrong and put our line in front. */
function csvErrorMessage(err: NodeJS.ErrnoException, maxRecordChars: number): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field starting in this record is never closed';
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'a quote inside a quoted field must be doubled ("")';
    case 'INVALID_OPENING_QUOTE':
    case 'CSV_INVALID_OPENING_QUOTE':
      return 'a quote inside an unquoted field: quote the whole field and double inner quotes ("")';
    case 'CSV_MAX_RECORD_SIZE':
      return `record is longer than ${maxRecordChars} characters (the limit)`;
    default:
      return `invalid CSV: ${err.message}`;
  }
}

/**
 * Parses CSV from an open stream: the first non-blank line is the header, each later line one record
 * `{column: text}` with the line it starts on. Blank lines are skipped; a record with a different
 * number of fields than the header is a UsageError at its line.
 */
export async function* readCsvStream(
  stream: NodeJS.ReadableStream,
  name: string,
  opts: CsvReadOptions = {},
): AsyncGenerator<NdjsonRecord<Record<string, string>>> {
  const maxRecordChars = opts.maxRecordChars ?? DEFAULT_MAX_RECORD_CHARS;
  const parser = parse({
    bom: true,
    raw: true,
    delimiter: opts.delimiter ?? ',',
    record_delimiter: ['\r\n', '\n'],
    // Field counts are checked here, so the error names the line the way the rest of atelier does.
    relax_column_count: true,
    skip_empty_lines: false,
    max_record_size: maxRecordChars,
  });
  // Records are queued from 'data' events so none parsed before an error is lost; pausing bounds the queue.
  const queue: Array<{ record: string[]; raw: string }> = [];
  let failure: unknown = null;
  let parseFailure = false;
  let ended = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    const resume = wake;
    wake = null;
    resume?.();
  };
  parser.on('data', (item: { record: string[]; raw: string }) => {
    queue.push(item);
    if (queue.length >= 512) parser.pause();
    notify();
  });
  parser.on('error', (err) => {
    if (failure === null) parseFailure = true;
    failure ??= err;
    notify();
  });
  parser.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('error', (err: Error) => {
    failure ??= err;
    notify();
  });
  stream.pipe(parser);

  let linesBefore = 0;
  let header: string[] | null = null;
  try {
    for (;;) {
      const item = queue.shift();
      if (item === undefined) {
        if (failure !== null) {
          const err = failure as NodeJS.ErrnoException;
          if (parseFailure) {
            throw new UsageError(csvErrorMessage(err, maxRecordChars), { file: name, line: linesBefore + 1 });
          }
          throw err;
        }
        if (ended) return;
        if (parser.isPaused()) parser.resume();
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      if (queue.length < 128 && parser.isPaused()) parser.resume();
      const line = linesBefore + 1;
      linesBefore += countLineBreaks(item.raw);
      if (isBlankRecord(item.record)) continue;
      if (header === null) {
        header = item.record.map((column) => column.trim());
        const seen = new Set<string>();
        header.forEach((column, i) => {
          if (column === '') throw new UsageError(`header column ${i + 1} has no name`, { file: name, line });
          if (seen.has(column)) throw new UsageError(`header names column '${column}' twice`, { file: name, line });
          seen.add(column);
        });
        continue;
      }
      if (item.record.length !== header.length) {
        throw new UsageError(`record has ${item.record.length} fields, the header has ${header.length}`, { file: name, line });
      }
      const value: Record<string, string> = {};
      for (let i = 0; i < header.length; i++) value[header[i]!] = item.record[i]!;
      yield { value, line, file: name };
    }
  } finally {
    if (!ended) {
      stream.unpipe(parser);
      parser.destroy();
      if (stream !== process.stdin) (stream as Readable).destroy?.();
    }
  }
}

/** Reads CSV records from `path` (or stdin for `-`). */
export async function* readCsv(path: string, opts: CsvReadOptions = {}): AsyncGenerator<NdjsonRecord<Record<string, string>>> {
  const stream = await openInputStream(path, opts.stdin);
  yield* readCsvStream(stream, inputDisplayName(path), opts);
}

export type RecordFormat = 'ndjson' | 'csv' | 'tsv';

/** The format an extension names, or null when it names none (then the content is sniffed). */
export function recordFormatFromPath(path: string): RecordFormat | null {
  const extension = extensionOf(path);
  if (extension === 'ndjson' || extension === 'jsonl' || extension === 'json') return 'ndjson';
  if (extension === 'csv') return 'csv';
  if (extension === 'tsv' || extension === 'tab') return 'tsv';
  return null;
}

/** NDJSON when the first non-blank character opens an object; else TSV when the first line has tabs and no commas; else CSV. */
export function sniffRecordFormat(head: Uint8Array): RecordFormat {
  const text = Buffer.from(head).toString('utf8').replace(/^\uFEFF/, '');
  const first = text.trimStart();
  if (first.startsWith('{')) return 'ndjson';
  const firstLine = first.split('\n', 1)[0] ?? '';
  if (firstLine.includes('\t') && !firstLine.includes(',')) return 'tsv';
  return 'csv';
}

/** Reads from `stream` until a whole first line (or 64 KiB, or the end) is in hand, and returns it and a stream replaying everything. */
async function peekHead(stream: NodeJS.ReadableStream): Promise<{ head: Buffer; replay: NodeJS.ReadableStream }> {
  const iterator = (stream as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  let exhausted = false;
  while (size < 64 * 1024) {
    const next = await iterator.next();
    if (next.done) {
      exhausted = true;
      break;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
    chunks.push(chunk);
    size += chunk.length;
    const soFar = Buffer.concat(chunks);
    if (soFar.toString('utf8').trimStart().includes('\n')) break;
  }
  async function* everything(): AsyncGenerator<Buffer> {
    yield* chunks;
    if (exhausted) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
    }
  }
  return { head: Buffer.concat(chunks), replay: Readable.from(everything(), { objectMode: false }) };
}

export interface RecordReadOptions extends CsvReadOptions, LineReadOptions {
  /** 'auto' (default): by extension, else sniffed from the first line (always sniffed for stdin). */
  format?: RecordFormat | 'auto';
}

/**
 * Reads object records from NDJSON, CSV or TSV, whichever `path` holds: CSV fields arrive as
 * strings, NDJSON values as parsed (each line must be an object).
 */
export async function* readRecords(path: string, opts: RecordReadOptions = {}): AsyncGenerator<NdjsonRecord<Record<string, unknown>>> {
  const name = inputDisplayName(path);
  let stream = await openInputStream(path, opts.stdin);
  let format = opts.format && opts.format !== 'auto' ? opts.format : isStdio(path) ? null : recordFormatFromPath(path);
  if (format === null) {
    const peeked = await peekHead(stream);
    format = sniffRecordFormat(peeked.head);
    stream = peeked.replay;
  }
  if (format === 'ndjson') {
    for await (const record of readNdjsonStream(stream, name, opts)) {
      yield { value: requireObject(record.value, record), line: record.line, file: name };
    }
    return;
  }
  yield* readCsvStream(stream, name, { ...opts, delimiter: opts.delimiter ?? (format === 'tsv' ? '\t' : ',') });
}

/**
 * One CSV line (no line end) of `values`, RFC 4180: a field holding a comma, a double quote, CR or
 * LF is quoted, its quotes doubled; the others are written as they are. csv-parse reads it back.
 */
export function csvLine(values: readonly string[]): string {
  return values.map((v) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v)).join(',');
}
