// Row vectors read a range at a time, from a .npy on disk or an array in memory, so a search can
// stream over a gallery larger than memory. Every range read is checked for NaN/±Infinity.
import { open, type FileHandle } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { openNpyReader, type NpyDtype } from '../io/npy.js';

/** Similarity measures the search understands; scores are always "higher is closer". */
export const METRICS = ['cosine', 'euclidean', 'dot'] as const;
export type Metric = (typeof METRICS)[number];

export function isMetric(name: string): name is Metric {
  return (METRICS as readonly string[]).includes(name);
}

/** A matrix of row vectors that can be read in row ranges. */
export interface VectorSource {
  /** What error messages call it (the file path). */
  name: string;
  rows: number;
  dim: number;
  /** Rows [start, end) as a fresh float32 array the caller may modify; throws a UsageError on a non-finite value. */
  read(start: number, end: number): Promise<Float32Array>;
  /**
   * Rows [start, end) written to the front of `target` (which must hold them), returned as a view of
   * it: a streaming caller reuses one buffer instead of leaving a slab of garbage per read.
   */
  readInto(start: number, end: number, target: Float32Array): Promise<Float32Array>;
  /** Bytes per value a read holds besides its float32 output (a scratch buffer of another dtype's raw values); kept between reads. */
  readScratchBytesPerValue: number;
  close(): Promise<void>;
}

/** Throws a UsageError naming the first row of `data` (whose first row is `firstRow`) that holds NaN or ±Infinity. */
export function assertFiniteRows(data: ArrayLike<number>, dim: number, firstRow: number, name: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      const row = firstRow + Math.floor(i / dim);
      const what = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      throw new UsageError(`holds ${what} at column ${i % dim}`, { file: name, field: `row ${row}` });
    }
  }
}

/** Rows of an in-memory row-major matrix; reads return copies so callers can normalise them in place. */
export function arrayVectorSource(data: Float32Array, dim: number, name = 'array'): VectorSource {
  if (!Number.isInteger(dim) || dim <= 0 || data.length % dim !== 0) throw new RangeError(`${data.length} values are not whole rows of ${dim}`);
  const rows = data.length / dim;
  return {
    name,
    rows,
    dim,
    async read(start, end) {
      const first = Math.max(0, Math.min(start, rows));
      const last = Math.max(first, Math.min(end, rows));
      const out = data.slice(first * dim, last * dim);
      assertFiniteRows(out, dim, first, name);
      return out;
    },
    async readInto(start, end, target) {
      const first = Math.max(0, Math.min(start, rows));
      const last = Math.max(first, Math.min(end, rows));
      const out = viewFor(target, (last - first) * dim);
      out.set(data.subarray(first * dim, last * dim));
      assertFiniteRows(out, dim, first, name);
      return out;
    },
    readScratchBytesPerValue: 0,
    async close() {},
  };
}

/** The first `count` values of a read target, which must have room for them. */
function viewFor(target: Float32Array, count: number): Float32Array {
  if (target.length < count) throw new RangeError(`a read of ${count} values needs a bigger target than ${target.length}`);
  return target.subarray(0, count);
}

/** Typed-array views over raw little-endian .npy bytes, by dtype (bool is refused before this is used). */
const RAW_VIEWS: Record<Exclude<NpyDtype, 'bool'>, new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayLike<number | bigint>> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
};

async function readFully(handle: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, Math.min(target.length - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new UsageError(`file is truncated: expected ${target.length - done} more bytes at offset ${position + done}`, { file: path });
    done += bytesRead;
  }
}

/**
 * Opens a 2-D numeric .npy as a vector source. float32 rows are read straight into the caller's
 * buffer; other dtypes go through one raw scratch buffer, reused, and are converted to float32.
 */
export async function openNpyVectorSource(path: string): Promise<VectorSource> {
  const reader = await openNpyReader(path);
  const { shape, dtype, dataOffset, itemSize } = reader.header;
  await reader.close();
  if (shape.length !== 2) throw new UsageError(`expected a 2-D matrix of row vectors, got shape (${shape.join(', ')})`, { file: path });
  if (shape[1] === 0) throw new UsageError('rows have 0 columns', { file: path });
  if (dtype === 'bool') throw new UsageError('expected numeric row vectors, got a bool array', { file: path });
  const [rows, dim] = shape;
  const handle = await open(path, 'r');
  const View = RAW_VIEWS[dtype];
  let scratch = new ArrayBuffer(0);
  const readInto = async (start: number, end: number, target: Float32Array): Promise<Float32Array> => {
    const first = Math.max(0, Math.min(start, rows));
    const last = Math.max(first, Math.min(end, rows));
    const count = (last - first) * dim;
    const out = viewFor(target, count);
    const position = dataOffset + first * dim * itemSize;
    if (dtype === 'float32') {
      await readFully(handle, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), position, path);
    } else {
      if (scratch.byteLength < count * itemSize) scratch = new ArrayBuffer(count * itemSize);
      await readFully(handle, new Uint8Array(scratch, 0, count * itemSize), position, path);
      const raw = new View(scratch, 0, count);
      for (let i = 0; i < count; i++) out[i] = Number(raw[i]);
    }
    assertFiniteRows(out, dim, first, path);
    return out;
  };
  return {
    name: path,
    rows,
    dim,
    read: (start, end) => {
      const first = Math.max(0, Math.min(start, rows));
      return readInto(start, end, new Float32Array((Math.max(first, Math.min(end, rows)) - first) * dim));
    },
    readInto,
    readScratchBytesPerValue: dtype === 'float32' ? 0 : itemSize,
    close: () => handle.close(),
  };
}

/** Checks that two sources hold vectors of the same length. */
export function assertSameDimension(query: VectorSource, gallery: VectorSource): void {
  if (query.dim !== gallery.dim) {
    throw new UsageError(`rows have ${gallery.dim} columns but ${query.name} has ${query.dim}; both must come from the same embedding`, { file: gallery.name });
  }
}

/** Scales each row to unit length in place (zero rows stay zero), so a dot product is a cosine. */
export function normalizeRows(data: Float32Array, dim: number): void {
  for (let offset = 0; offset < data.length; offset += dim) {
    let sum = 0;
    for (let j = 0; j < dim; j++) sum += data[offset + j] * data[offset + j];
    if (sum === 0) continue;
    const scale = 1 / Math.sqrt(sum);
    for (let j = 0; j < dim; j++) data[offset + j] *= scale;
  }
}

/** Rows at `indices` (any order) gathered into one array, reading the source in ranges of about `chunkRows`. */
export async function gatherRows(source: VectorSource, indices: ArrayLike<number>, chunkRows = 4096): Promise<Float32Array> {
  const out = new Float32Array(indices.length * source.dim);
  const order = Array.from({ length: indices.length }, (_, i) => i).sort((a, b) => indices[a] - indices[b]);
  // One chunk buffer for every read: a sample spread over a big gallery would otherwise leave a chunk of garbage per read.
  const chunk = new Float32Array(Math.min(chunkRows, source.rows) * source.dim);
  let cursor = 0;
  while (cursor < order.length) {
    const start = indices[order[cursor]];
    const end = Math.min(source.rows, start + chunkRows);
    const block = await source.readInto(start, end, chunk);
    while (cursor < order.length && indices[order[cursor]] < end) {
      const row = indices[order[cursor]];
      out.set(block.subarray((row - start) * source.dim, (row - start + 1) * source.dim), order[cursor] * source.dim);
      cursor++;
    }
  }
  return out;
}
