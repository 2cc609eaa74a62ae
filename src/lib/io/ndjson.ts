// NDJSON in and out, one record per line, streamed: the input is never held whole, and every
// problem is reported as a UsageError at `file:line` (and `field` where one is known).
import type { Writable } from 'node:stream';
import { UsageError, type ErrorPlace } from '../command.js';
import { openAtomicWriteStream, type OutputGroup } from './atomic.js';
import { inputDisplayName, isStdio, openInputStream } from './paths.js';

/** A parsed line: its value, its 1-based line number and the input's display name. */
export interface NdjsonRecord<T = unknown> {
  value: T;
  line: number;
  file: string;
}

/** One raw line (without its line break) and its 1-based number. */
export interface TextLine {
  text: string;
  line: number;
}

/** Past this a line is an error, not a reason to run out of memory (a binary file, a missing newline). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface LineReadOptions {
  /** Longest line accepted, in bytes; longer ones raise a UsageError at their line. */
  maxLineBytes?: number;
}

export interface NdjsonReadOptions extends LineReadOptions {
  /** The stream `-` reads; process.stdin unless a caller substitutes one. */
  stdin?: NodeJS.ReadableStream;
}

const UTF8_BOM = [0xef, 0xbb, 0xbf];

function startsWithBom(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === UTF8_BOM[0] && bytes[1] === UTF8_BOM[1] && bytes[2] === UTF8_BOM[2];
}

/**
 * Splits a byte stream into UTF-8 lines: LF or CRLF endings, a BOM on line 1 dropped, a last line
 * without a newline kept. Holds at most one line (bounded by maxLineBytes) plus one chunk.
 */
export async function* readTextLines(stream: NodeJS.ReadableStream, name: string, opts: LineReadOptions = {}): AsyncGenerator<TextLine> {
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNumber = 0;
  const tooLong = (line: number) => new UsageError(`line is longer than ${maxLineBytes} bytes (the limit; is this a text file with line breaks?)`, { file: name, line });
  const decode = (bytes: Buffer, line: number): string => {
    let body = bytes;
    if (line === 1 && startsWithBom(body)) body = body.subarray(3);
    if (body.length > 0 && body[body.length - 1] === 0x0d) body = body.subarray(0, body.length - 1);
    try {
      return decoder.decode(body);
    } catch {
      throw new UsageError('not valid UTF-8 text', { file: name, line });
    }
  };
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    let start = 0;
    for (;;) {
      const newline = buffer.indexOf(0x0a, start);
      if (newline === -1) {
        if (start < buffer.length) {
          pendingBytes += buffer.length - start;
          if (pendingBytes > maxLineBytes) throw tooLong(lineNumber + 1);
          pending.push(buffer.subarray(start));
        }
        break;
      }
      lineNumber += 1;
      const piece = buffer.subarray(start, newline);
      if (pendingBytes + piece.length > maxLineBytes) throw tooLong(lineNumber);
      const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
      yield { text: decode(bytes, lineNumber), line: lineNumber };
    }
  }
  if (pendingBytes > 0) {
    lineNumber += 1;
    yield { text: decode(Buffer.concat(pending), lineNumber), line: lineNumber };
  }
}

/** Parses NDJSON from a stream already open; `name` is what errors call it. Blank lines are skipped. */
export async function* readNdjsonStream(stream: NodeJS.ReadableStream, name: string, opts: LineReadOptions = {}): AsyncGenerator<NdjsonRecord> {
  for await (const { text, line } of readTextLines(stream, name, opts)) {
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`invalid JSON: ${(err as Error).message}`, { file: name, line });
    }
    yield { value, line, file: name };
  }
}

/** Reads NDJSON records from `path` (or stdin for `-`), one at a time, with line numbers. */
export async function* readNdjson(path: string, opts: NdjsonReadOptions = {}): AsyncGenerator<NdjsonRecord> {
  const stream = await openInputStream(path, opts.stdin);
  yield* readNdjsonStream(stream, inputDisplayName(path), opts);
}

export interface NdjsonWriter {
  /** Where the records go ('-' for stdout). */
  path: string;
  /** Records written so far. */
  count: number;
  /** Queues one record; the promise resolves once the output can take more (await it: that is the backpressure). */
  write(value: unknown): Promise<void>;
  /** Flushes; a file output is then renamed into place. stdout is left open. */
  close(): Promise<void>;
  /** Drops a file output (its temp file is deleted); for stdout, only stops writing. */
  abort(): Promise<void>;
}

export interface NdjsonWriteOptions {
  /** The stream `-` writes to; process.stdout unless a caller substitutes one. */
  stdout?: NodeJS.WritableStream;
  /** Lines are gathered into writes of about this many characters (one syscall per line is slow on pipes). */
  batchChars?: number;
  /** Leave a file output under its temp name for this group to commit with the run's other outputs. */
  outputs?: OutputGroup;
}

/** Resolves when `stream` has drained, rejects if it fails or closes first. */
export function waitForDrain(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(Object.assign(new Error('output closed before all data was written'), { code: 'EPIPE' }));
    };
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** Opens an NDJSON output: a file written atomically (visible only after close()), or stdout for `-`. */
export async function openNdjsonWriter(path: string, opts: NdjsonWriteOptions = {}): Promise<NdjsonWriter> {
  const batchChars = opts.batchChars ?? 64 * 1024;
  const toStdout = isStdio(path);
  const atomic = toStdout ? null : await openAtomicWriteStream(path, opts.outputs);
  const target: NodeJS.WritableStream = atomic ? (atomic.stream as Writable) : (opts.stdout ?? process.stdout);
  let batch = '';
  let closed = false;
  const flush = async () => {
    if (batch === '') return;
    const text = batch;
    batch = '';
    if (!target.write(text)) await waitForDrain(target);
  };
  const writer: NdjsonWriter = {
    path,
    count: 0,
    async write(value) {
      if (closed) throw new Error(`NDJSON output ${path} is already closed`);
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError(`cannot write ${typeof value} as JSON`);
      batch += text + '\n';
      writer.count += 1;
      if (batch.length >= batchChars) await flush();
    },
    async close() {
      if (closed) return;
      await flush();
      closed = true;
      if (atomic) await atomic.commit();
    },
    async abort() {
      if (closed) return;
      closed = true;
      batch = '';
      if (atomic) await atomic.abort();
    },
  };
  return writer;
}

/** A record's place for errors: an NdjsonRecord itself will do. */
export type RecordPlace = Pick<ErrorPlace, 'file' | 'line'>;

/** How a JSON value reads in an error message: "missing", "null", "a string ("abc")", ... */
export function describeJsonValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string':
      return `a string (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)})`;
    case 'number':
      return `a number (${value})`;
    case 'boolean':
      return `a boolean (${value})`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/** The record as an object, or a UsageError at its place. */
export function requireObject(record: unknown, place: RecordPlace): Record<string, unknown> {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new UsageError(`expected a JSON object, got ${describeJsonValue(record)}`, { file: place.file, line: place.line });
  }
  return record as Record<string, unknown>;
}

function fieldError(field: string, expected: string, got: unknown, place: RecordPlace): UsageError {
  return new UsageError(`expected ${expected}, got ${describeJsonValue(got)}`, { file: place.file, line: place.line, field });
}

/** `record[field]` as a string, or a UsageError at file:line:field. */
export function requireString(record: unknown, field: string, place: RecordPlace): string {
  const value = requireObject(record, place)[field];
  if (typeof value !== 'string') throw fieldError(field, 'a string', value, place);
  return value;
}

/** `record[field]` as an id: a string, or a number read as its decimal text; else a UsageError at file:line:field. */
export function requireId(record: unknown, field: string, place: RecordPlace): string {
  const value = requireObject(record, place)[field];
  if (typeof value !== 'string' && typeof value !== 'number') throw fieldError(field, 'a string or number id', value, place);
  return String(value);
}

/** `record[field]` as a finite number, or a UsageError at file:line:field. */
export function requireNumber(record: unknown, field: string, place: RecordPlace): number {
  const value = requireObject(record, place)[field];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw fieldError(field, 'a number', value, place);
  return value;
}

/** `record[field]` as an array, or a UsageError at file:line:field. */
export function requireArray(record: unknown, field: string, place: RecordPlace): unknown[] {
  const value = requireObject(record, place)[field];
  if (!Array.isArray(value)) throw fieldError(field, 'an array', value, place);
  return value;
}
