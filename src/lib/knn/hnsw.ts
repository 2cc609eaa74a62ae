// Approximate search for big galleries: an HNSW graph (Malkov & Yashunin 2016) through usearch,
// built from streamed gallery rows, saved to one file, and loaded or memory-mapped back (saved-index.ts).
import { UsageError } from '../command.js';
import type { NeighborBlock } from './exact.js';
import { loadUsearch } from './kernel.js';
import type { Metric, VectorSource } from './source.js';

type UsearchModule = typeof import('usearch');
type UsearchIndex = InstanceType<UsearchModule['Index']>;

/** How the graph stores each vector: float32, float16 (half the bytes) or int8 (a quarter; cosine only). */
export const QUANTIZATIONS = ['f32', 'f16', 'i8'] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];

export interface HnswParameters {
  metric: Metric;
  quantization: Quantization;
  /** Graph edges per node (M); more = better recall, more memory, slower build. */
  connectivity: number;
  /** Candidate list size while inserting (efConstruction). */
  expansionAdd: number;
  /** Candidate list size while searching (ef); raise it for recall. */
  expansionSearch: number;
}

export const DEFAULT_HNSW: Omit<HnswParameters, 'metric'> = { quantization: 'f32', connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

/**
 * Refuses i8 for a metric other than cosine: usearch scales each row to unit length before rounding
 * it to int8, which keeps cosine but changes dot products and Euclidean distances.
 */
export function checkQuantization(metric: Metric, quantization: Quantization): void {
  if (quantization === 'i8' && metric !== 'cosine') throw new UsageError(`i8 keeps only cosine (rows are scaled to unit length before rounding), not ${metric}; use f16 or f32`, { field: '--quantization' });
}

export interface HnswIndex {
  dim: number;
  params: HnswParameters;
  size(): number;
  /** Adds rows (row-major float32) under keys firstKey, firstKey + 1, ... */
  add(rows: Float32Array, firstKey: number, threads: number): void;
  /** Top-k of each query row; keys are the gallery rows they were added under. */
  search(queries: Float32Array, queryRows: number, k: number, threads: number): { counts: Int32Array; keys: Float64Array; scores: Float64Array; k: number };
  save(path: string): void;
}

const METRIC_KINDS: Record<Metric, string> = { cosine: 'cos', dot: 'ip', euclidean: 'l2sq' };

function requireUsearch(): UsearchModule {
  const { usearch, reason } = loadUsearch();
  if (!usearch) throw new Error(`HNSW search needs usearch, an optional dependency that did not load (${reason}); exact search works without it`);
  return usearch;
}

function wrap(index: UsearchIndex, dim: number, params: HnswParameters): HnswIndex {
  const toScore = params.metric === 'euclidean' ? (d: number) => -Math.sqrt(Math.max(0, d)) : (d: number) => 1 - d;
  return {
    dim,
    params,
    size: () => index.size(),
    add(rows, firstKey, threads) {
      const count = rows.length / dim;
      if (count === 0) return;
      const keys = new BigUint64Array(count);
      for (let i = 0; i < count; i++) keys[i] = BigInt(firstKey + i);
      index.add(keys, rows, threads);
    },
    search(queries, queryRows, k, threads) {
      const kk = Math.min(k, index.size());
      const counts = new Int32Array(queryRows);
      const keys = new Float64Array(queryRows * kk);
      const scores = new Float64Array(queryRows * kk);
      if (kk === 0 || queryRows === 0) return { counts, keys, scores, k: kk };
      const result = index.search(queries as never, kk, threads) as unknown as { keys: BigUint64Array; distances: Float32Array; counts?: BigUint64Array };
      for (let q = 0; q < queryRows; q++) {
        const found = result.counts ? Number(result.counts[q]) : result.keys.length;
        // Equal distances come back in no set order: put them in gallery order.
        const order = Array.from({ length: found }, (_, t) => q * kk + t);
        order.sort((a, b) => result.distances[a] - result.distances[b] || Number(result.keys[a] - result.keys[b]));
        for (let t = 0; t < found; t++) {
          keys[q * kk + t] = Number(result.keys[order[t]]);
          scores[q * kk + t] = toScore(result.distances[order[t]]);
        }
        counts[q] = found;
      }
      return { counts, keys, scores, k: kk };
    },
    save(path) {
      index.save(path);
    },
  };
}

function newUsearchIndex(usearch: UsearchModule, dim: number, params: HnswParameters): UsearchIndex {
  return new usearch.Index({
    dimensions: dim,
    metric: METRIC_KINDS[params.metric] as never,
    quantization: params.quantization as never,
    connectivity: params.connectivity,
    expansion_add: params.expansionAdd,
    expansion_search: params.expansionSearch,
    multi: false,
  });
}

/** An empty in-memory index for `dim`-d rows. */
export function createHnswIndex(dim: number, params: HnswParameters): HnswIndex {
  return wrap(newUsearchIndex(requireUsearch(), dim, params), dim, params);
}

/**
 * Builds an index of every gallery row (keys = row numbers), reading the gallery `chunkRows` at a time;
 * each chunk is added in one native call on `threads` threads, and handed to `onChunk` (to keep the rows).
 */
export async function buildHnswIndex(
  gallery: VectorSource,
  params: HnswParameters,
  opts: { threads?: number; chunkRows?: number; onRows?: (done: number) => void; onChunk?: (rows: Float32Array) => Promise<void> } = {},
): Promise<HnswIndex> {
  const index = createHnswIndex(gallery.dim, params);
  const chunkRows = opts.chunkRows ?? 16384;
  for (let start = 0; start < gallery.rows; start += chunkRows) {
    const end = Math.min(gallery.rows, start + chunkRows);
    const rows = await gallery.read(start, end);
    await opts.onChunk?.(rows);
    index.add(rows, start, opts.threads ?? 0);
    opts.onRows?.(end);
  }
  return index;
}

/** Exact rows by row number, for re-ranking the graph's candidates. */
export interface RowLookup {
  dim: number;
  /** Row `row` into `target` (dim floats). */
  readRow(row: number, target: Float32Array): void;
}

/** How many graph candidates a query re-ranks on exact rows by default: recall@10 0.909 -> 0.957 at ef=128 for 4 x k (bench/RESULTS.md). */
export const RESCORE_FACTOR = 4;

/** Exact score (higher is closer) of two rows under `metric`, as exact search gives it. */
function exactScore(metric: Metric, a: Float32Array, b: Float32Array): number {
  let dot = 0, aa = 0, bb = 0, l2 = 0;
  for (let d = 0; d < a.length; d++) {
    dot += a[d] * b[d];
    aa += a[d] * a[d];
    bb += b[d] * b[d];
    const diff = a[d] - b[d];
    l2 += diff * diff;
  }
  if (metric === 'dot') return dot;
  if (metric === 'euclidean') return -Math.sqrt(l2);
  return aa > 0 && bb > 0 ? dot / Math.sqrt(aa * bb) : 0;
}

/**
 * Top-k of every query row through the index, block by block. With excludeSelf the queries are the
 * indexed rows themselves and a query's own row is dropped.
 */
export async function* hnswNeighbors(
  index: HnswIndex,
  query: VectorSource,
  opts: { k: number; excludeSelf?: boolean; blockRows?: number; threads?: number; rescore?: { rows: RowLookup; candidates: number } },
): AsyncGenerator<NeighborBlock> {
  if (query.dim !== index.dim) throw new UsageError(`rows have ${query.dim} columns but the index holds ${index.dim}-d vectors`, { file: query.name });
  const extra = opts.excludeSelf ? 1 : 0;
  const k = Math.min(opts.k, Math.max(0, index.size() - extra));
  const fetch = Math.max(k + extra, opts.rescore ? opts.rescore.candidates + extra : 0);
  const blockRows = opts.blockRows ?? 4096;
  const row = new Float32Array(index.dim);
  for (let qStart = 0; qStart < query.rows; qStart += blockRows) {
    const qEnd = Math.min(query.rows, qStart + blockRows);
    const qRows = qEnd - qStart;
    const counts = new Int32Array(qRows);
    const indices = new Float64Array(qRows * k);
    const scores = new Float64Array(qRows * k);
    if (k > 0) {
      const queries = await query.read(qStart, qEnd);
      const found = index.search(queries, qRows, fetch, opts.threads ?? 0);
      for (let q = 0; q < qRows; q++) {
        const candidates: Array<{ key: number; score: number }> = [];
        for (let t = 0; t < found.counts[q]; t++) {
          const key = found.keys[q * found.k + t];
          if (opts.excludeSelf && key === qStart + q) continue;
          candidates.push({ key, score: found.scores[q * found.k + t] });
        }
        if (opts.rescore) {
          // The graph's scores come from rounded rows: rank its candidates again on the exact ones.
          const qRow = queries.subarray(q * index.dim, (q + 1) * index.dim);
          for (const c of candidates) {
            opts.rescore.rows.readRow(c.key, row);
            c.score = exactScore(index.params.metric, qRow, row);
          }
          candidates.sort((a, b) => b.score - a.score || a.key - b.key);
        }
        const n = Math.min(k, candidates.length);
        for (let t = 0; t < n; t++) {
          indices[q * k + t] = candidates[t].key;
          scores[q * k + t] = candidates[t].score;
        }
        counts[q] = n;
      }
    }
    yield { queryStart: qStart, queryEnd: qEnd, k, counts, indices, scores };
  }
}

/**
 * Opens a usearch file as an index: memory-mapped (`memoryMap`: usearch's view, nothing copied) or
 * loaded. The dimension is the file's own, whatever `dim` says; the caller compares the two.
 */
export function openUsearchFile(path: string, dim: number, params: HnswParameters, memoryMap: boolean): HnswIndex {
  const raw = newUsearchIndex(requireUsearch(), dim, params);
  try {
    if (memoryMap) raw.view(path);
    else raw.load(path);
  } catch (err) {
    throw new UsageError(`not a readable usearch index: ${(err as Error).message}`, { file: path });
  }
  return wrap(raw, raw.dimensions(), params);
}
