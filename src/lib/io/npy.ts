// NumPy .npy files (format 1.0/2.0/3.0 headers, C order, little-endian), read and written without
// ever holding more than the rows asked for: header parse, row-range reads through a file handle,
// a streaming writer that fixes the shape on close, and chunked statistics.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { openAtomicFile, type OutputGroup } from './atomic.js';
import { inputOpenError } from './paths.js';

export type NpyDtype = 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool';

export type NpyTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

type TypedArrayConstructor = {
  new (length: number): NpyTypedArray;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): NpyTypedArray;
  BYTES_PER_ELEMENT: number;
};

interface DtypeInfo {
  /** The descr atelier writes, as NumPy writes it. */
  descr: string;
  /** Other descr spellings that mean the same bytes. */
  aliases: string[];
  itemSize: number;
  ArrayType: TypedArrayConstructor;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { descr: '<f4', aliases: [], itemSize: 4, ArrayType: Float32Array },
  float64: { descr: '<f8', aliases: [], itemSize: 8, ArrayType: Float64Array },
  int8: { descr: '|i1', aliases: ['<i1'], itemSize: 1, ArrayType: Int8Array },
  int16: { descr: '<i2', aliases: [], itemSize: 2, ArrayType: Int16Array },
  int32: { descr: '<i4', aliases: [], itemSize: 4, ArrayType: Int32Array },
  int64: { descr: '<i8', aliases: [], itemSize: 8, ArrayType: BigInt64Array },
  uint8: { descr: '|u1', aliases: ['<u1'], itemSize: 1, ArrayType: Uint8Array },
  uint16: { descr: '<u2', aliases: [], itemSize: 2, ArrayType: Uint16Array },
  uint32: { descr: '<u4', aliases: [], itemSize: 4, ArrayType: Uint32Array },
  uint64: { descr: '<u8', aliases: [], itemSize: 8, ArrayType: BigUint64Array },
  bool: { descr: '|b1', aliases: ['<b1'], itemSize: 1, ArrayType: Uint8Array },
};

export const NPY_DTYPES = Object.keys(DTYPES) as NpyDtype[];

export function isNpyDtype(name: string): name is NpyDtype {
  return Object.prototype.hasOwnProperty.call(DTYPES, name);
}

/** The dtype a typed array holds (a Uint8Array is uint8; bool must be asked for). */
export function dtypeOfTypedArray(data: ArrayLike<number | bigint>): NpyDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof BigUint64Array) return 'uint64';
  throw new TypeError('expected a typed array (or give a dtype)');
}

/** A typed array of `dtype` holding `values`, converted when needed (a copy only then). */
export function toNpyTypedArray(values: ArrayLike<number | bigint>, dtype: NpyDtype): NpyTypedArray {
  const { ArrayType } = DTYPES[dtype];
  if (values instanceof ArrayType && !(dtype === 'bool' && values.some((v) => v !== 0 && v !== 1))) return values as NpyTypedArray;
  const out = new ArrayType(values.length);
  if (dtype === 'int64' || dtype === 'uint64') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      (out as BigInt64Array)[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
    }
  } else if (dtype === 'bool') {
    for (let i = 0; i < values.length; i++) (out as Uint8Array)[i] = values[i] ? 1 : 0;
  } else {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      (out as Float64Array)[i] = typeof v === 'bigint' ? Number(v) : v;
    }
  }
  return out;
}

/** What a .npy header says. */
export interface NpyHeader {
  dtype: NpyDtype;
  /** The descr string as found in (or written to) the file, e.g. '<f4'. */
  descr: string;
  shape: number[];
  fortranOrder: boolean;
  /** Byte offset of the first element. */
  dataOffset: number;
  /** Format version [major, minor]. */
  version: [number, number];
  itemSize: number;
  /** Length of the first axis (1 for a 0-d array): the unit of readNpyRows. */
  rowCount: number;
  /** Elements per row: the product of shape[1:]. */
  rowLength: number;
}

export interface NpyArray {
  header: NpyHeader;
  data: NpyTypedArray;
}

/** Rows [start, end) of an array: `data` holds (end - start) * rowLength elements. */
export interface NpyRows extends NpyArray {
  start: number;
  end: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** NumPy aligns the data to 64 bytes so it can be memory-mapped for any dtype. */
const DATA_ALIGNMENT = 64;
/** Digits reserved for the row count so a streaming writer can fix the header in place (NumPy reserves 21 too). */
const ROW_COUNT_DIGITS = 21;
/** A header beyond this is not a .npy we should trust. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

function product(values: number[]): number {
  return values.reduce((a, b) => a * b, 1);
}

// ---- the header: a Python dict literal -------------------------------------------------------

/** Parses the small Python literal subset a .npy header uses: dict, tuple, list, str, int, True/False/None. */
function parsePythonLiteral(text: string): unknown {
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${pos} of the header`);
  };
  const skipSpace = () => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  const parseSequence = (close: string): unknown[] => {
    const items: unknown[] = [];
    for (;;) {
      skipSpace();
      if (text[pos] === close) {
        pos++;
        return items;
      }
      items.push(parseValue());
      skipSpace();
      if (text[pos] === ',') pos++;
      else if (text[pos] !== close) fail(`expected ',' or '${close}'`);
    }
  };
  const parseValue = (): unknown => {
    skipSpace();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const dict: Record<string, unknown> = {};
      for (;;) {
        skipSpace();
        if (text[pos] === '}') {
          pos++;
          return dict;
        }
        const key = parseValue();
        if (typeof key !== 'string') fail('expected a string key');
        skipSpace();
        if (text[pos] !== ':') fail("expected ':'");
        pos++;
        dict[key as string] = parseValue();
        skipSpace();
        if (text[pos] === ',') pos++;
        else if (text[pos] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(') {
      pos++;
      return parseSequence(')');
    }
    if (c === '[') {
      pos++;
      return parseSequence(']');
    }
    if (c === "'" || c === '"') {
      pos++;
      let out = '';
      while (pos < text.length && text[pos] !== c) {
        if (text[pos] === '\\') pos++;
        out += text[pos++];
      }
      if (pos >= text.length) fail('unterminated string');
      pos++;
      return out;
    }
    const number = /^-?\d+L?/.exec(text.slice(pos, pos + 40));
    if (number) {
      pos += number[0].length;
      return Number(number[0].replace('L', ''));
    }
    for (const [word, value] of [['True', true], ['False', false], ['None', null]] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    return fail('unexpected input');
  };
  const value = parseValue();
  skipSpace();
  if (pos !== text.length) fail('trailing characters');
  return value;
}

function dtypeFromDescr(descr: unknown, file: string): NpyDtype {
  if (typeof descr !== 'string') throw new UsageError('structured (record) dtypes are not supported; save a plain numeric array', { file });
  for (const name of NPY_DTYPES) {
    const info = DTYPES[name];
    if (descr === info.descr || info.aliases.includes(descr)) return name;
  }
  if (descr.startsWith('>')) {
    throw new UsageError(`big-endian dtype '${descr}' is not supported; convert in NumPy with a.astype(a.dtype.newbyteorder('<'))`, { file });
  }
  throw new UsageError(`dtype '${descr}' is not supported (atelier reads ${NPY_DTYPES.join(', ')})`, { file });
}

/** Builds an NpyHeader from the parsed dict and where the data starts. */
function headerFromDict(dict: unknown, version: [number, number], dataOffset: number, file: string): NpyHeader {
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw new UsageError('header is not a dict', { file });
  const fields = dict as Record<string, unknown>;
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!(key in fields)) throw new UsageError(`header has no '${key}'`, { file });
  }
  const dtype = dtypeFromDescr(fields.descr, file);
  if (typeof fields.fortran_order !== 'boolean') throw new UsageError("header 'fortran_order' is not True or False", { file });
  const shape = fields.shape;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new UsageError("header 'shape' is not a tuple of non-negative integers", { file });
  }
  const itemSize = DTYPES[dtype].itemSize;
  return {
    dtype,
    descr: fields.descr as string,
    shape: shape as number[],
    fortranOrder: fields.fortran_order,
    dataOffset,
    version,
    itemSize,
    rowCount: shape.length === 0 ? 1 : (shape[0] as number),
    rowLength: product((shape as number[]).slice(1)),
  };
}

/** Bytes before the header text, and the header length, from the first 12 bytes of a file. */
function readPreamble(bytes: Uint8Array, file: string): { version: [number, number]; headerStart: number; headerLength: number } {
  if (bytes.length < 10 || !MAGIC.equals(bytes.subarray(0, 6))) throw new UsageError('not a .npy file (no \\x93NUMPY magic)', { file });
  const major = bytes[6]!;
  const minor = bytes[7]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major === 1) return { version: [major, minor], headerStart: 10, headerLength: view.getUint16(8, true) };
  if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new UsageError('file ends inside the .npy header', { file });
    return { version: [major, minor], headerStart: 12, headerLength: view.getUint32(8, true) };
  }
  throw new UsageError(`.npy format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are)`, { file });
}

function parseHeaderText(bytes: Uint8Array, major: number, file: string): unknown {
  // Versions 1 and 2 store the header in latin1, version 3 in UTF-8.
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(major === 3 ? 'utf8' : 'latin1');
  try {
    return parsePythonLiteral(text.trim());
  } catch (err) {
    throw new UsageError(`unreadable .npy header: ${(err as Error).message}`, { file });
  }
}

/** Parses the header at the start of an in-memory .npy file. */
export function parseNpyHeader(bytes: Uint8Array, file = 'buffer'): NpyHeader {
  const { version, headerStart, headerLength } = readPreamble(bytes, file);
  const dataOffset = headerStart + headerLength;
  if (bytes.length < dataOffset) throw new UsageError('file ends inside the .npy header', { file });
  return headerFromDict(parseHeaderText(bytes.subarray(headerStart, dataOffset), version[0], file), version, dataOffset, file);
}

async function readExactly(handle: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, 1 << 30);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) throw new UsageError(`file is truncated: expected ${target.length - done} more bytes at offset ${position + done}`, { file });
    done += bytesRead;
  }
}

async function readHeaderFromHandle(handle: FileHandle, file: string): Promise<NpyHeader> {
  const size = (await handle.stat()).size;
  const preamble = new Uint8Array(Math.min(12, size));
  await readExactly(handle, preamble, 0, file);
  const { version, headerStart, headerLength } = readPreamble(preamble, file);
  if (headerLength > MAX_HEADER_BYTES) throw new UsageError(`.npy header claims ${headerLength} bytes; refusing`, { file });
  const headerBytes = new Uint8Array(headerLength);
  await readExactly(handle, headerBytes, headerStart, file);
  const header = headerFromDict(parseHeaderText(headerBytes, version[0], file), version, headerStart + headerLength, file);
  const dataBytes = product(header.shape) * header.itemSize;
  if (size < header.dataOffset + dataBytes) {
    throw new UsageError(
      `file is truncated: shape (${header.shape.join(', ')}) of ${header.descr} needs ${dataBytes} data bytes, the file has ${Math.max(0, size - header.dataOffset)}`,
      { file },
    );
  }
  return header;
}

async function openForReading(path: string): Promise<FileHandle> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    if ((await handle.stat()).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return handle;
  } catch (err) {
    await handle?.close();
    throw inputOpenError(err, path);
  }
}

/** Reads and checks just the header of the .npy file at `path`. */
export async function readNpyHeader(path: string): Promise<NpyHeader> {
  const handle = await openForReading(path);
  try {
    return await readHeaderFromHandle(handle, path);
  } finally {
    await handle.close();
  }
}

/** Fortran order is only a problem when more than one axis is longer than 1 (else the bytes are the same). */
function assertCOrder(header: NpyHeader, file: string): void {
  if (header.fortranOrder && header.shape.filter((d) => d > 1).length > 1) {
    throw new UsageError('Fortran-order arrays are not supported; save np.ascontiguousarray(a) instead', { file });
  }
}

/** An open .npy file read a row range at a time. */
export interface NpyReader {
  path: string;
  header: NpyHeader;
  /** Rows [start, end), clamped to the array like a Python slice; reads only those bytes. */
  readRows(start: number, end: number): Promise<NpyRows>;
  close(): Promise<void>;
}

/** Opens a .npy file for row-range reads. */
export async function openNpyReader(path: string): Promise<NpyReader> {
  const handle = await openForReading(path);
  let header: NpyHeader;
  try {
    header = await readHeaderFromHandle(handle, path);
    assertCOrder(header, path);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return {
    path,
    header,
    async readRows(start, end) {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
        throw new UsageError(`row range ${start}:${end} must be non-negative integers`, { file: path });
      }
      const first = Math.min(start, header.rowCount);
      const last = Math.max(first, Math.min(end, header.rowCount));
      const count = (last - first) * header.rowLength;
      const data = new DTYPES[header.dtype].ArrayType(count);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      await readExactly(handle, bytes, header.dataOffset + first * header.rowLength * header.itemSize, path);
      return { header, data, start: first, end: last };
    },
    async close() {
      await handle.close();
    },
  };
}

/** SHA-256 (hex) of the array's data bytes, read in chunks: the same for the same rows whatever the header's padding or version. */
export async function npyDataSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of iterateNpyRows(path, { chunkBytes: 4 * 1024 * 1024 })) hash.update(bytesOf(chunk.data));
  return hash.digest('hex');
}

/** Rows [start, end) of the .npy file at `path` (a Python slice: clamped to the row count). */
export async function readNpyRows(path: string, start: number, end: number): Promise<NpyRows> {
  const reader = await openNpyReader(path);
  try {
    return await reader.readRows(start, end);
  } finally {
    await reader.close();
  }
}

/** Rows [start, end) in chunks of about `chunkBytes` (at least one row each), for bounded-memory passes. */
export async function* iterateNpyRows(
  path: string,
  opts: { start?: number; end?: number; chunkBytes?: number } = {},
): AsyncGenerator<NpyRows> {
  const reader = await openNpyReader(path);
  try {
    const { rowCount, rowLength, itemSize } = reader.header;
    const chunkRows = Math.max(1, Math.floor((opts.chunkBytes ?? 8 * 1024 * 1024) / Math.max(1, rowLength * itemSize)));
    const end = Math.min(opts.end ?? rowCount, rowCount);
    for (let first = Math.min(opts.start ?? 0, end); first < end; first += chunkRows) {
      yield await reader.readRows(first, Math.min(end, first + chunkRows));
    }
  } finally {
    await reader.close();
  }
}

/** Reads a whole .npy file (for small ones; use readNpyRows or iterateNpyRows for big ones). */
export async function readNpy(path: string): Promise<NpyArray> {
  const reader = await openNpyReader(path);
  try {
    const { header, data } = await reader.readRows(0, reader.header.rowCount);
    return { header, data };
  } finally {
    await reader.close();
  }
}

/** Decodes a whole in-memory .npy file; the data is copied out so it is aligned for its typed array. */
export function decodeNpy(bytes: Uint8Array, file = 'buffer'): NpyArray {
  const header = parseNpyHeader(bytes, file);
  assertCOrder(header, file);
  const dataBytes = product(header.shape) * header.itemSize;
  if (bytes.length < header.dataOffset + dataBytes) throw new UsageError(`file is truncated: needs ${dataBytes} data bytes`, { file });
  const data = new DTYPES[header.dtype].ArrayType(product(header.shape));
  new Uint8Array(data.buffer).set(bytes.subarray(header.dataOffset, header.dataOffset + dataBytes));
  return { header, data };
}

// ---- writing ---------------------------------------------------------------------------------

function shapeLiteral(shape: number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

function headerDictText(descr: string, shape: number[]): string {
  return `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeLiteral(shape)}, }`;
}

/**
 * The preamble and header for `shape`, padded with spaces and a newline so the data starts on a
 * 64-byte boundary; `reserveRowDigits` leaves room to rewrite the row count in place later, and
 * `totalBytes` pads to an exact size (a rewrite must keep the length it reserved).
 */
export function encodeNpyHeader(
  dtype: NpyDtype,
  shape: number[],
  opts: { version?: 1 | 2; reserveRowDigits?: boolean; totalBytes?: number } = {},
): Buffer {
  const dict = headerDictText(DTYPES[dtype].descr, shape);
  const reserve = opts.reserveRowDigits && shape.length > 0 ? Math.max(0, ROW_COUNT_DIGITS - String(shape[0]).length) : 0;
  const unpadded = (preambleBytes: number) => preambleBytes + dict.length + reserve + 1;
  let version = opts.version ?? 1;
  let preambleBytes = version === 1 ? 10 : 12;
  let total = opts.totalBytes ?? Math.ceil(unpadded(preambleBytes) / DATA_ALIGNMENT) * DATA_ALIGNMENT;
  if (version === 1 && total - 10 > 0xffff) {
    // The header no longer fits a 16-bit length: version 2.0 has a 32-bit one.
    version = 2;
    preambleBytes = 12;
    total = opts.totalBytes ?? Math.ceil(unpadded(preambleBytes) / DATA_ALIGNMENT) * DATA_ALIGNMENT;
  }
  if (unpadded(preambleBytes) - reserve > total) throw new Error(`npy header needs more than the ${total} bytes reserved`);
  const out = Buffer.alloc(total, 0x20);
  MAGIC.copy(out, 0);
  out[6] = version;
  out[7] = 0;
  if (version === 1) out.writeUInt16LE(total - preambleBytes, 8);
  else out.writeUInt32LE(total - preambleBytes, 8);
  out.write(dict, preambleBytes, 'latin1');
  out[total - 1] = 0x0a;
  return out;
}

function bytesOf(data: NpyTypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkShape(length: number, shape: number[]): void {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`shape (${shape.join(', ')}) must be non-negative integers`);
  if (product(shape) !== length) throw new RangeError(`shape (${shape.join(', ')}) holds ${product(shape)} elements, the data has ${length}`);
}

export interface NpyEncodeOptions {
  /** Defaults to the typed array's own dtype. */
  dtype?: NpyDtype;
  /** Force a 2.0 header (written automatically only when a header outgrows 1.0's 64 KiB). */
  version?: 1 | 2;
}

/** A whole .npy file in memory: `data` in C order with `shape` (default: 1-d). */
export function encodeNpy(data: ArrayLike<number | bigint>, shape: number[] = [data.length], opts: NpyEncodeOptions = {}): Buffer {
  const dtype = opts.dtype ?? dtypeOfTypedArray(data);
  checkShape(data.length, shape);
  const header = encodeNpyHeader(dtype, shape, { version: opts.version, reserveRowDigits: true });
  return Buffer.concat([header, bytesOf(toNpyTypedArray(data, dtype))]);
}

/** Writes a whole .npy file atomically. */
export async function writeNpy(path: string, data: ArrayLike<number | bigint>, shape: number[] = [data.length], opts: NpyEncodeOptions & { outputs?: OutputGroup } = {}): Promise<void> {
  const dtype = opts.dtype ?? dtypeOfTypedArray(data);
  checkShape(data.length, shape);
  const writer = await openNpyWriter(path, { dtype, rowShape: shape.slice(1), version: opts.version, outputs: opts.outputs });
  try {
    if (shape.length === 0) await writer.writeRows(data, 1);
    else await writer.writeRows(data, shape[0]);
    await writer.close({ scalar: shape.length === 0 });
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Appends rows to a .npy file that appears, with its final shape, only on close(). */
export interface NpyWriter {
  path: string;
  dtype: NpyDtype;
  rowShape: number[];
  rowLength: number;
  /** Rows written so far. */
  rowCount: number;
  /** Appends whole rows in C order: rowCount rows (default data.length / rowLength; give it when a row has no elements). Await it before reusing `data`. */
  writeRows(data: ArrayLike<number | bigint>, rowCount?: number): Promise<void>;
  /** SHA-256 (hex) of the data bytes written so far (not the header): what npyDataSha256 gives for the closed file. */
  dataSha256(): Promise<string>;
  /** Writes the final shape into the header and renames the file into place; returns that header. */
  close(opts?: { scalar?: boolean }): Promise<NpyHeader>;
  /** Deletes the temp file; nothing appears at `path`. */
  abort(): Promise<void>;
}

export interface NpyWriterOptions {
  dtype: NpyDtype;
  /** Shape of one row: [] for a 1-d output, [d] for (n, d), and so on. */
  rowShape?: number[];
  version?: 1 | 2;
  /** Bytes gathered before each write to disk. */
  bufferBytes?: number;
  /** Leave the file under its temp name for this group to commit with the run's other outputs. */
  outputs?: OutputGroup;
}

/** Opens a streaming .npy writer; the header's row count is reserved up front and fixed on close. */
export async function openNpyWriter(path: string, opts: NpyWriterOptions): Promise<NpyWriter> {
  const { dtype } = opts;
  const rowShape = opts.rowShape ?? [];
  if (!rowShape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`row shape (${rowShape.join(', ')}) must be non-negative integers`);
  const rowLength = product(rowShape);
  const itemSize = DTYPES[dtype].itemSize;
  const file = await openAtomicFile(path, { seekable: true, outputs: opts.outputs });
  const reserved = encodeNpyHeader(dtype, [0, ...rowShape], { version: opts.version, reserveRowDigits: true });
  const staging = Buffer.allocUnsafe(Math.max(opts.bufferBytes ?? 1024 * 1024, itemSize));
  let staged = 0;
  let position = reserved.length;
  let state: 'open' | 'closed' | 'aborted' = 'open';
  const dataHash = createHash('sha256');
  // Calls run one after another even if a caller forgets to await.
  let queue: Promise<void> = Promise.resolve();
  const enqueue = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task);
    queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const writeAt = async (bytes: Uint8Array) => {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await file.handle.write(bytes, done, bytes.length - done, position);
      done += bytesWritten;
      position += bytesWritten;
    }
  };
  const flushStaging = async () => {
    if (staged === 0) return;
    await writeAt(staging.subarray(0, staged));
    staged = 0;
  };

  try {
    await file.handle.write(reserved, 0, reserved.length, 0);
  } catch (err) {
    await file.abort();
    throw err;
  }

  const writer: NpyWriter = {
    path,
    dtype,
    rowShape,
    rowLength,
    rowCount: 0,
    writeRows(data, rowCount) {
      return enqueue(async () => {
        if (state !== 'open') throw new Error(`npy writer for ${path} is ${state}`);
        const rows = rowCount ?? (rowLength === 0 ? 0 : data.length / rowLength);
        if (!Number.isSafeInteger(rows) || rows * rowLength !== data.length) {
          throw new RangeError(`${data.length} values are not whole rows of ${rowLength}`);
        }
        const bytes = bytesOf(toNpyTypedArray(data, dtype));
        dataHash.update(bytes);
        if (staged + bytes.length <= staging.length) {
          staging.set(bytes, staged);
          staged += bytes.length;
        } else {
          await flushStaging();
          if (bytes.length <= staging.length) {
            staging.set(bytes, 0);
            staged = bytes.length;
          } else {
            await writeAt(bytes);
          }
        }
        writer.rowCount += rows;
      });
    },
    dataSha256() {
      return enqueue(async () => dataHash.copy().digest('hex'));
    },
    close(closeOpts = {}) {
      return enqueue(async () => {
        if (state !== 'open') throw new Error(`npy writer for ${path} is ${state}`);
        if (closeOpts.scalar && !(writer.rowCount === 1 && rowShape.length === 0)) throw new RangeError('a 0-d array is one value');
        state = 'closed';
        const shape = closeOpts.scalar ? [] : [writer.rowCount, ...rowShape];
        try {
          await flushStaging();
          const header = encodeNpyHeader(dtype, shape, { version: reserved[6] === 1 ? 1 : 2, totalBytes: reserved.length });
          await file.handle.write(header, 0, header.length, 0);
        } catch (err) {
          await file.abort();
          throw err;
        }
        await file.commit();
        return headerFromDict(
          { descr: DTYPES[dtype].descr, fortran_order: false, shape },
          [reserved[6]!, 0],
          reserved.length,
          path,
        );
      });
    },
    abort() {
      return enqueue(async () => {
        if (state !== 'open') return;
        state = 'aborted';
        await file.abort();
      });
    },
  };
  return writer;
}

// ---- values and statistics -------------------------------------------------------------------

const FLOAT32_MAX = 3.4028234663852886e38;
const INTEGER_RANGES: Partial<Record<NpyDtype, [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  bool: [0, 1],
};

/** Why `value` cannot be stored exactly-enough as `dtype` (out of range, not an integer), or null when it can. */
export function valueProblemForDtype(value: number, dtype: NpyDtype): string | null {
  if (dtype === 'float64') return null;
  if (dtype === 'float32') {
    return Number.isFinite(value) && Math.abs(value) > FLOAT32_MAX && !Number.isFinite(Math.fround(value)) ? `${value} is out of float32 range` : null;
  }
  const [low, high] = INTEGER_RANGES[dtype]!;
  if (!Number.isInteger(value)) return `${value} is not an integer (dtype ${dtype})`;
  if (value < low || value > high) return `${value} is out of ${dtype} range [${low}, ${high}]`;
  return null;
}

/**
 * `rounded` is `value` to `digits` significant digits as toPrecision gives it (ties away from zero);
 * NumPy's Dragon4 breaks ties to the even digit, so on an exact tie take the even neighbour.
 */
function tieToEven(value: number, digits: number, rounded: number): number {
  // A tie reads 5, 0, 0 at digits+1..+3; only then pay for the exact expansion (toExponential(99) is exact for a float32 that could tie).
  if (!Math.abs(value).toExponential(digits + 2).split('e')[0]!.endsWith('500')) return rounded;
  const [mantissa = '', exponent = '0'] = Math.abs(value).toExponential(99).split('e');
  const significant = mantissa.replace('.', '');
  if (!/^0*$/.test(significant.slice(digits + 1)) || Number(significant[digits - 1]) % 2 !== 0) return rounded;
  const truncated = Number(`${value < 0 ? '-' : ''}${significant.slice(0, digits)}e${Number(exponent) - digits + 1}`);
  return Math.fround(truncated) === value ? truncated : rounded;
}

/** The shortest decimal that reads back as the same float32 (as NumPy prints it), as a JS number. */
export function shortestFloat32(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  // Nine digits always read back; most values need eight, so start there and walk down.
  let digits = 8;
  let candidate = Number(value.toPrecision(8));
  if (Math.fround(candidate) !== value) {
    digits = 9;
    candidate = Number(value.toPrecision(9));
  } else {
    while (digits > 1) {
      const fewer = Number(value.toPrecision(digits - 1));
      if (Math.fround(fewer) !== value) break;
      digits -= 1;
      candidate = fewer;
    }
  }
  return tieToEven(value, digits, candidate);
}

/** Summary of the values of an array or of one column: NaN and ±Infinity are counted, the rest summarised. */
export interface ValueStats {
  /** Finite values, the ones min/max/mean/std describe. */
  count: number;
  nanCount: number;
  infCount: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  /** Population standard deviation (ddof = 0, NumPy's default). */
  std: number | null;
}

/** Running moments merged chunk by chunk (Chan et al. 1979 pairwise update), stable for long files. */
class RunningStats {
  count = 0;
  mean = 0;
  m2 = 0;
  min = Infinity;
  max = -Infinity;
  nanCount = 0;
  infCount = 0;

  /** Merges a chunk summarised as (count, mean, m2). */
  merge(count: number, mean: number, m2: number): void {
    if (count === 0) return;
    const total = this.count + count;
    const delta = mean - this.mean;
    this.mean += (delta * count) / total;
    this.m2 += m2 + (delta * delta * this.count * count) / total;
    this.count = total;
  }

  result(): ValueStats {
    const any = this.count > 0;
    return {
      count: this.count,
      nanCount: this.nanCount,
      infCount: this.infCount,
      min: any ? this.min : null,
      max: any ? this.max : null,
      mean: any ? this.mean : null,
      std: any ? Math.sqrt(this.m2 / this.count) : null,
    };
  }
}

function toFloat64(data: NpyTypedArray): Float64Array {
  if (data instanceof Float64Array) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float64Array.from(data, Number);
  return new Float64Array(data);
}

/** Folds elements offset, offset + stride, ... of `values` (n of them) into `stats`, two passes over the chunk. */
function accumulate(stats: RunningStats, values: Float64Array, offset: number, stride: number, n: number): void {
  let count = 0;
  let sum = 0;
  let min = stats.min;
  let max = stats.max;
  for (let i = 0, k = offset; i < n; i++, k += stride) {
    const v = values[k]!;
    if (Number.isFinite(v)) {
      count++;
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
    } else if (Number.isNaN(v)) stats.nanCount++;
    else stats.infCount++;
  }
  stats.min = min;
  stats.max = max;
  if (count === 0) return;
  const mean = sum / count;
  let m2 = 0;
  for (let i = 0, k = offset; i < n; i++, k += stride) {
    const v = values[k]!;
    if (Number.isFinite(v)) m2 += (v - mean) * (v - mean);
  }
  stats.merge(count, mean, m2);
}

export interface NpySummary {
  header: NpyHeader;
  fileBytes: number;
  stats: ValueStats;
  /** One entry per element of a row (per column of a 2-d array), when asked for. */
  columns?: ValueStats[];
}

/** Statistics of a .npy file read in chunks of about `chunkBytes`, so memory stays bounded for any file size. */
export async function summarizeNpy(path: string, opts: { columns?: boolean; chunkBytes?: number } = {}): Promise<NpySummary> {
  const header = await readNpyHeader(path);
  const fileBytes = (await stat(path)).size;
  const overall = new RunningStats();
  const columns = opts.columns ? Array.from({ length: header.shape.length === 0 ? 1 : header.rowLength }, () => new RunningStats()) : null;
  for await (const chunk of iterateNpyRows(path, { chunkBytes: opts.chunkBytes })) {
    const values = toFloat64(chunk.data);
    accumulate(overall, values, 0, 1, values.length);
    if (columns) {
      const rows = chunk.end - chunk.start;
      for (let c = 0; c < columns.length; c++) accumulate(columns[c]!, values, c, columns.length, rows);
    }
  }
  return { header, fileBytes, stats: overall.result(), ...(columns ? { columns: columns.map((c) => c.result()) } : {}) };
}
