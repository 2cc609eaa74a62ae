// Exact distance kernels for blocked search: a query block against one gallery tile, offering
// candidates to per-query heaps. Two implementations, chosen by measurement (bench/knn.ts):
// usearch's native SIMD exact search (~10x the others on this CPU) and a register-blocked typed-array
// kernel (always available, also used for full score rows). tfjs matmul on WASM measured slower
// than the typed-array kernel for these shapes, so it is not used here.
import { createRequire } from 'node:module';
import type { Metric } from './source.js';
import type { TopKHeaps } from './topk.js';
import { openGemmKernel } from './gemm.js';

/** How a metric is computed once rows are prepared: cosine is a dot product of unit rows. */
export type DistanceKind = 'ip' | 'l2sq';

export function distanceKindOf(metric: Metric): DistanceKind {
  return metric === 'euclidean' ? 'l2sq' : 'ip';
}

export const KERNEL_NAMES = ['auto', 'gemm', 'usearch', 'js'] as const;
export type KernelName = (typeof KERNEL_NAMES)[number];

/** One query block against one gallery tile. */
export interface TileSearch {
  queries: Float32Array;
  queryRows: number;
  /** Global row of the block's first query (for self-exclusion). */
  queryStart: number;
  tile: Float32Array;
  tileRows: number;
  /** Global gallery row of the tile's first row. */
  tileStart: number;
  dim: number;
  /** Gallery and query are the same rows: skip gallery row == query row. */
  excludeSelf: boolean;
  /** Per-query top-k heaps (or a view that maps the block's queries and rows onto bigger ones). */
  heaps: Pick<TopKHeaps, 'k' | 'worstDistance' | 'push'>;
}

export interface ExactKernel {
  name: 'gemm' | 'usearch' | 'js';
  kind: DistanceKind;
  /** Offers every tile row that may belong to a query's top k to its heap. */
  searchTile(search: TileSearch): void | Promise<void>;
  /** The user-facing score (higher is closer) of a distance this kernel produced. */
  toScore(distance: number): number;
}

// ---- typed-array kernel ----------------------------------------------------------------------

/**
 * out[i*bRows + j] = a_i · b_j for rows of a (aRows x dim) and b (bRows x dim). A 4x4 register block
 * (16 accumulators, 8 loads per step) measured ~1.5x a 4x1 block in V8.
 */
export function dotTile(a: Float32Array, aRows: number, b: Float32Array, bRows: number, dim: number, out: Float32Array): void {
  const aFull = aRows - (aRows % 4);
  const bFull = bRows - (bRows % 4);
  for (let i = 0; i < aFull; i += 4) {
    const a0 = i * dim, a1 = a0 + dim, a2 = a1 + dim, a3 = a2 + dim;
    for (let j = 0; j < bFull; j += 4) {
      const b0 = j * dim, b1 = b0 + dim, b2 = b1 + dim, b3 = b2 + dim;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let d = 0; d < dim; d++) {
        const x0 = b[b0 + d], x1 = b[b1 + d], x2 = b[b2 + d], x3 = b[b3 + d];
        const y0 = a[a0 + d], y1 = a[a1 + d], y2 = a[a2 + d], y3 = a[a3 + d];
        s00 += y0 * x0; s01 += y0 * x1; s02 += y0 * x2; s03 += y0 * x3;
        s10 += y1 * x0; s11 += y1 * x1; s12 += y1 * x2; s13 += y1 * x3;
        s20 += y2 * x0; s21 += y2 * x1; s22 += y2 * x2; s23 += y2 * x3;
        s30 += y3 * x0; s31 += y3 * x1; s32 += y3 * x2; s33 += y3 * x3;
      }
      let o = i * bRows + j;
      out[o] = s00; out[o + 1] = s01; out[o + 2] = s02; out[o + 3] = s03; o += bRows;
      out[o] = s10; out[o + 1] = s11; out[o + 2] = s12; out[o + 3] = s13; o += bRows;
      out[o] = s20; out[o + 1] = s21; out[o + 2] = s22; out[o + 3] = s23; o += bRows;
      out[o] = s30; out[o + 1] = s31; out[o + 2] = s32; out[o + 3] = s33;
    }
    for (let j = bFull; j < bRows; j++) for (let r = 0; r < 4; r++) out[(i + r) * bRows + j] = dotRow(a, (i + r) * dim, b, j * dim, dim);
  }
  for (let i = aFull; i < aRows; i++) for (let j = 0; j < bRows; j++) out[i * bRows + j] = dotRow(a, i * dim, b, j * dim, dim);
}

/** a_i · b_j with float64 accumulation, in index order: the score every exact kernel agrees on. */
export function dotRow(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += a[aOffset + d] * b[bOffset + d];
  return s;
}

/** out[i*bRows + j] = ||a_i - b_j||², with the same 4x4 blocking as dotTile. */
export function squaredDistanceTile(a: Float32Array, aRows: number, b: Float32Array, bRows: number, dim: number, out: Float32Array): void {
  const aFull = aRows - (aRows % 4);
  const bFull = bRows - (bRows % 4);
  for (let i = 0; i < aFull; i += 4) {
    const a0 = i * dim, a1 = a0 + dim, a2 = a1 + dim, a3 = a2 + dim;
    for (let j = 0; j < bFull; j += 4) {
      const b0 = j * dim, b1 = b0 + dim, b2 = b1 + dim, b3 = b2 + dim;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let d = 0; d < dim; d++) {
        const x0 = b[b0 + d], x1 = b[b1 + d], x2 = b[b2 + d], x3 = b[b3 + d];
        const y0 = a[a0 + d], y1 = a[a1 + d], y2 = a[a2 + d], y3 = a[a3 + d];
        let t = y0 - x0; s00 += t * t; t = y0 - x1; s01 += t * t; t = y0 - x2; s02 += t * t; t = y0 - x3; s03 += t * t;
        t = y1 - x0; s10 += t * t; t = y1 - x1; s11 += t * t; t = y1 - x2; s12 += t * t; t = y1 - x3; s13 += t * t;
        t = y2 - x0; s20 += t * t; t = y2 - x1; s21 += t * t; t = y2 - x2; s22 += t * t; t = y2 - x3; s23 += t * t;
        t = y3 - x0; s30 += t * t; t = y3 - x1; s31 += t * t; t = y3 - x2; s32 += t * t; t = y3 - x3; s33 += t * t;
      }
      let o = i * bRows + j;
      out[o] = s00; out[o + 1] = s01; out[o + 2] = s02; out[o + 3] = s03; o += bRows;
      out[o] = s10; out[o + 1] = s11; out[o + 2] = s12; out[o + 3] = s13; o += bRows;
      out[o] = s20; out[o + 1] = s21; out[o + 2] = s22; out[o + 3] = s23; o += bRows;
      out[o] = s30; out[o + 1] = s31; out[o + 2] = s32; out[o + 3] = s33;
    }
    for (let j = bFull; j < bRows; j++) for (let r = 0; r < 4; r++) out[(i + r) * bRows + j] = squaredDistanceRow(a, (i + r) * dim, b, j * dim, dim);
  }
  for (let i = aFull; i < aRows; i++) for (let j = 0; j < bRows; j++) out[i * bRows + j] = squaredDistanceRow(a, i * dim, b, j * dim, dim);
}

function squaredDistanceRow(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) {
    const t = a[aOffset + d] - b[bOffset + d];
    s += t * t;
  }
  return s;
}

/**
 * Full scores of a query block against a tile, higher is closer: the dot product for 'ip', minus
 * the squared distance for 'l2sq'. out must hold aRows * bRows values.
 */
export function scoreTile(kind: DistanceKind, a: Float32Array, aRows: number, b: Float32Array, bRows: number, dim: number, out: Float32Array): void {
  if (kind === 'ip') {
    dotTile(a, aRows, b, bRows, dim, out);
    return;
  }
  squaredDistanceTile(a, aRows, b, bRows, dim, out);
  const n = aRows * bRows;
  for (let i = 0; i < n; i++) out[i] = -out[i];
}

/** Queries scored per call of the typed-array kernel: 64 x 4096 float32 scores (1 MiB) stay in L2. */
export const JS_QUERY_SUB_BLOCK = 64;

export function typedArrayKernel(kind: DistanceKind): ExactKernel {
  let scratch = new Float32Array(0);
  return {
    name: 'js',
    kind,
    searchTile(s) {
      const { dim, heaps, tileRows } = s;
      for (let q0 = 0; q0 < s.queryRows; q0 += JS_QUERY_SUB_BLOCK) {
        const rows = Math.min(JS_QUERY_SUB_BLOCK, s.queryRows - q0);
        if (scratch.length < rows * tileRows) scratch = new Float32Array(JS_QUERY_SUB_BLOCK * tileRows);
        const block = s.queries.subarray(q0 * dim, (q0 + rows) * dim);
        if (kind === 'ip') dotTile(block, rows, s.tile, tileRows, dim, scratch);
        else squaredDistanceTile(block, rows, s.tile, tileRows, dim, scratch);
        for (let r = 0; r < rows; r++) {
          const q = q0 + r;
          const self = s.excludeSelf ? s.queryStart + q - s.tileStart : -1;
          const offset = r * tileRows;
          let worst = heaps.worstDistance(q);
          for (let j = 0; j < tileRows; j++) {
            // Smaller is closer: a dot product is negated.
            const distance = kind === 'ip' ? -scratch[offset + j] : scratch[offset + j];
            if (distance > worst || j === self) continue;
            heaps.push(q, distance, s.tileStart + j);
            worst = heaps.worstDistance(q);
          }
        }
      }
    },
    toScore: kind === 'ip' ? (distance) => -distance : (distance) => -Math.sqrt(distance),
  };
}

// ---- usearch kernel --------------------------------------------------------------------------

/** Queries per usearch exactSearch call: its 64 x tile distance matrix stays small (4 MiB at 4096 rows). */
export const USEARCH_QUERIES_PER_CALL = 64;

type UsearchModule = typeof import('usearch');

/** The usearch addon, or null with the reason when its native build does not load on this machine. */
export function loadUsearch(): { usearch: UsearchModule | null; reason: string } {
  try {
    const require = createRequire(import.meta.url);
    return { usearch: require('usearch') as UsearchModule, reason: 'loaded' };
  } catch (err) {
    return { usearch: null, reason: (err as Error).message.split('\n')[0] };
  }
}

/** Raw keys/distances of an exactSearch call: row i's results start at i * stride, counts[i] of them. */
function exactSearchRaw(usearch: UsearchModule, tile: Float32Array, queries: Float32Array, queryRows: number, dim: number, count: number, kind: DistanceKind, threads: number) {
  const result = usearch.exactSearch(tile, queries, dim, count, kind as never, threads);
  if (queryRows === 1) {
    const single = result as InstanceType<UsearchModule['Matches']>;
    return { keys: single.keys, distances: single.distances, stride: count, count: () => single.keys.length };
  }
  const batch = result as InstanceType<UsearchModule['BatchMatches']>;
  return { keys: batch.keys, distances: batch.distances, stride: count, count: (i: number) => Number(batch.counts[i]) };
}

/**
 * usearch's exact search asked for k+1 (+1 for self) candidates per tile; when the last returned
 * candidate ties with the k-th, rows beyond it may tie too, so that query rescans the whole tile
 * (keeps ties broken by gallery order, exactly).
 */
export function usearchKernel(usearch: UsearchModule, kind: DistanceKind, threads: number, queriesPerCall = USEARCH_QUERIES_PER_CALL): ExactKernel {
  // usearch 2.25's exactSearch reads from the start of a view's buffer, ignoring its byteOffset, so
  // views into a larger array are copied to the start of a scratch buffer first.
  let tileScratch = new Float32Array(0);
  let queryScratch = new Float32Array(0);
  const denseTile = (tile: Float32Array): Float32Array => {
    if (tile.byteOffset === 0) return tile;
    if (tileScratch.length < tile.length) tileScratch = new Float32Array(tile.length);
    tileScratch.set(tile);
    return tileScratch.subarray(0, tile.length);
  };
  return {
    name: 'usearch',
    kind,
    searchTile(s) {
      const { dim, heaps, tileRows, excludeSelf } = s;
      const k = heaps.k;
      const count = Math.min(tileRows, k + (excludeSelf ? 2 : 1));
      const tile = denseTile(s.tile);
      if (queryScratch.length < queriesPerCall * dim) queryScratch = new Float32Array(queriesPerCall * dim);
      // Queries go in batches: usearch allocates a batch x tile distance matrix (16 bytes a pair) per call.
      for (let q0 = 0; q0 < s.queryRows; q0 += queriesPerCall) {
        const batchRows = Math.min(queriesPerCall, s.queryRows - q0);
        let batch = s.queries.subarray(q0 * dim, (q0 + batchRows) * dim);
        if (batch.byteOffset !== 0) {
          batch = queryScratch.subarray(0, batchRows * dim);
          batch.set(s.queries.subarray(q0 * dim, (q0 + batchRows) * dim));
        }
        const raw = exactSearchRaw(usearch, tile, batch, batchRows, dim, count, kind, threads);
        for (let r = 0; r < batchRows; r++) {
          const q = q0 + r;
          const self = excludeSelf ? s.queryStart + q - s.tileStart : -1;
          const base = r * raw.stride;
          const found = raw.count(r);
          let tied = false;
          if (found < tileRows) {
            let kept = 0;
            let kth = NaN;
            for (let t = 0; t < found; t++) {
              if (Number(raw.keys[base + t]) === self) continue;
              if (++kept === k) kth = raw.distances[base + t];
            }
            tied = kept > k && raw.distances[base + found - 1] === kth;
          }
          if (tied) {
            const row = s.queries.slice(q * dim, (q + 1) * dim);
            const all = exactSearchRaw(usearch, tile, row, 1, dim, tileRows, kind, 1);
            for (let t = 0; t < all.count(0); t++) {
              const j = Number(all.keys[t]);
              if (j !== self) heaps.push(q, all.distances[t], s.tileStart + j);
            }
            continue;
          }
          let worst = heaps.worstDistance(q);
          for (let t = 0; t < found; t++) {
            const distance = raw.distances[base + t];
            // Candidates come sorted: once one cannot enter the heap, none after it can (ties go to the earlier row, already kept).
            if (distance > worst) break;
            const j = Number(raw.keys[base + t]);
            if (j === self) continue;
            heaps.push(q, distance, s.tileStart + j);
            worst = heaps.worstDistance(q);
          }
        }
      }
    },
    // usearch's inner-product distance is 1 - a·b; l2sq is the squared distance.
    toScore: kind === 'ip' ? (distance) => 1 - distance : (distance) => -Math.sqrt(distance),
  };
}

/** The kernel asked for; 'auto' takes usearch when it loads, else the typed-array kernel. */
export function createExactKernel(name: Exclude<KernelName, 'gemm'>, kind: DistanceKind, threads: number): { kernel: ExactKernel; reason: string } {
  if (name === 'js') return { kernel: typedArrayKernel(kind), reason: 'typed-array kernel (asked for)' };
  const { usearch, reason } = loadUsearch();
  if (usearch) return { kernel: usearchKernel(usearch, kind, threads), reason: `usearch SIMD kernel, ${threads} thread${threads === 1 ? '' : 's'}` };
  if (name === 'usearch') throw new Error(`the usearch kernel cannot be loaded: ${reason}`);
  return { kernel: typedArrayKernel(kind), reason: `typed-array kernel (usearch did not load: ${reason})` };
}

/**
 * The kernel asked for, opening onnxruntime when it may be needed. 'auto' takes the GEMM kernel for
 * inner products (cosine, dot) when onnxruntime loads (bench/knn.ts: it beats usearch's pairwise
 * kernel), usearch for Euclidean, else the typed-array kernel.
 */
export async function chooseExactKernel(name: KernelName, kind: DistanceKind, threads: number): Promise<{ kernel: ExactKernel; reason: string }> {
  if (name === 'gemm' || (name === 'auto' && kind === 'ip')) {
    if (name === 'gemm' && kind !== 'ip') throw new Error('the gemm kernel scores inner products only (metric cosine or dot)');
    const gemm = await openGemmKernel(threads);
    if (!(gemm instanceof Error)) return { kernel: gemm, reason: `GEMM kernel (onnxruntime Gemm + TopK), ${threads} thread${threads === 1 ? '' : 's'}` };
    if (name === 'gemm') throw new Error(`the gemm kernel needs onnxruntime-node: ${gemm.message.split('\n')[0]}`);
    return createExactKernel('auto', kind, threads);
  }
  return createExactKernel(name, kind, threads);
}
