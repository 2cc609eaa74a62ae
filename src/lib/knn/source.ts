// Row vectors read a range at a time, from a .npy on disk or an array in memory, so a search can
// stream over a gallery larger than memory. Every range read is checked for NaN/±Infinity.
import { UsageError } from '../command.js';
import { openNpyReader, type NpyTypedArray } from '../io/npy.js';

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
    async close() {},
  };
}

function toFloat32(data: NpyTypedArray): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data, Number);
  return Float32Array.from(data as ArrayLike<number>);
}

/** Opens a 2-D numeric .npy as a vector source (any numeric dtype, converted to float32 per read). */
export async function openNpyVectorSource(path: string): Promise<VectorSource> {
  const reader = await openNpyReader(path);
  const { shape, dtype } = reader.header;
  if (shape.length !== 2) {
    await reader.close();
    throw new UsageError(`expected a 2-D matrix of row vectors, got shape (${shape.join(', ')})`, { file: path });
  }
  if (shape[1] === 0) {
    await reader.close();
    throw new UsageError('rows have 0 columns', { file: path });
  }
  if (dtype === 'bool') {
    await reader.close();
    throw new UsageError('expected numeric row vectors, got a bool array', { file: path });
  }
  const [rows, dim] = shape;
  return {
    name: path,
    rows,
    dim,
    async read(start, end) {
      const { data, start: first } = await reader.readRows(start, end);
      const out = toFloat32(data);
      assertFiniteRows(out, dim, first, path);
      return out;
    },
    close: () => reader.close(),
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
  let cursor = 0;
  while (cursor < order.length) {
    const start = indices[order[cursor]];
    const end = Math.min(source.rows, start + chunkRows);
    const block = await source.read(start, end);
    while (cursor < order.length && indices[order[cursor]] < end) {
      const row = indices[order[cursor]];
      out.set(block.subarray((row - start) * source.dim, (row - start + 1) * source.dim), order[cursor] * source.dim);
      cursor++;
    }
  }
  return out;
}
