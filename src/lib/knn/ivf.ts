// IVF-flat (Jégou et al. 2011, faiss's IndexIVFFlat): k-means centroids split the gallery into lists;
// a query scores the centroids, then only the rows of its `nprobe` nearest lists. Every step is a
// matrix product: the assignment of rows to centroids, and each list's rows against all the queries
// of a block that probe it, so a query touches a few per cent of the gallery with GEMM's efficiency
// instead of thousands of random reads (HNSW's graph walk; bench/RESULTS.md).
import { UsageError } from '../command.js';
import { openGemmScoreTopK, type ScoreTopK } from './gemm.js';
import type { NeighborBlock } from './exact.js';
import { dotTile, type ExactKernel } from './kernel.js';
import type { Random } from '../random.js';
import { normalizeRows, type Metric, type VectorSource } from './source.js';
import { TopKHeaps } from './topk.js';

/** Lists for `rows` rows by default: about 4·√N (faiss's rule of thumb), at least 1, at most N. */
export function defaultListCount(rows: number): number {
  return Math.max(1, Math.min(rows, Math.round(4 * Math.sqrt(rows))));
}

/** k-means sample per list by default: 40 rows a centroid (faiss warns below 39). */
export const TRAIN_ROWS_PER_LIST = 40;
export const DEFAULT_ITERATIONS = 10;

/** The ScoreTopK of the typed-array kernel, for when onnxruntime does not load. */
export function typedArrayScoreTopK(): ScoreTopK {
  return {
    async top(a, aRows, b, bRows, dim, bias, count) {
      const values = new Float32Array(aRows * count);
      const indices = new Int32Array(aRows * count);
      const chunk = 64;
      const scores = new Float32Array(chunk * bRows);
      const heaps = new TopKHeaps(chunk, count);
      const outIndices = new Float64Array(count);
      const outDistances = new Float64Array(count);
      for (let r0 = 0; r0 < aRows; r0 += chunk) {
        const rows = Math.min(chunk, aRows - r0);
        dotTile(a.subarray(r0 * dim, (r0 + rows) * dim), rows, b, bRows, dim, scores);
        heaps.clear();
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < bRows; j++) heaps.push(r, -Math.fround(scores[r * bRows + j] + bias[j]), j);
          const n = heaps.sortedInto(r, outIndices, outDistances, 0);
          for (let t = 0; t < n; t++) {
            indices[(r0 + r) * count + t] = outIndices[t];
            values[(r0 + r) * count + t] = -outDistances[t];
          }
        }
      }
      return { values, indices };
    },
  };
}

/** onnxruntime's GEMM when it loads, else the typed-array kernel; with the reason, for the summary. */
export async function openScoreTopK(threads: number): Promise<{ scorer: ScoreTopK; reason: string }> {
  const gemm = await openGemmScoreTopK(threads);
  if (!(gemm instanceof Error)) return { scorer: gemm, reason: 'onnxruntime GEMM' };
  return { scorer: typedArrayScoreTopK(), reason: `typed-array kernel (onnxruntime: ${gemm.message.split('\n')[0]})` };
}

/**
 * What is added to a·c to rank centroids: nothing for cosine and dot; −|c|²/2 for Euclidean, since
 * argmin |x − c|² = argmax x·c − |c|²/2.
 */
export function centroidBias(metric: Metric, centroids: Float32Array, lists: number, dim: number): Float32Array {
  const bias = new Float32Array(lists);
  if (metric !== 'euclidean') return bias;
  for (let c = 0; c < lists; c++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += centroids[c * dim + d] * centroids[c * dim + d];
    bias[c] = -s / 2;
  }
  return bias;
}

/** Rows as the index stores and compares them: unit length for cosine, as they are otherwise. */
export function prepareRows(rows: Float32Array, dim: number, metric: Metric): Float32Array {
  if (metric === 'cosine') normalizeRows(rows, dim);
  return rows;
}

/** `count` distinct row numbers of [0, rows), drawn by a partial Fisher–Yates shuffle, ascending. */
export function sampleRows(rows: number, count: number, random: Random): Int32Array {
  const swapped = new Map<number, number>();
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const j = i + random.int(rows - i);
    const picked = swapped.get(j) ?? j;
    swapped.set(j, swapped.get(i) ?? i);
    out[i] = picked;
  }
  return out.sort();
}

/** The nearest centroid of each of `count` prepared rows, into out[outOffset..]. */
export async function assignRows(scorer: ScoreTopK, rows: Float32Array, count: number, centroids: Float32Array, bias: Float32Array, lists: number, dim: number, out: Int32Array, outOffset = 0): Promise<void> {
  const { indices } = await scorer.top(rows, count, centroids, lists, dim, bias, 1);
  out.set(indices, outOffset);
}

/**
 * Lloyd's k-means on prepared sample rows: centroids start at `lists` distinct sample rows; each
 * iteration assigns every row by one GEMM per block and moves each centroid to its rows' mean (for
 * cosine, scaled back to unit length: spherical k-means). An empty list takes a random sample row.
 * Deterministic for a given `random`: sums run in row order.
 */
export async function trainCentroids(
  sample: Float32Array,
  count: number,
  dim: number,
  lists: number,
  opts: { metric: Metric; iterations: number; random: Random; scorer: ScoreTopK; onIteration?: (done: number) => void },
): Promise<Float32Array> {
  const { metric, random, scorer } = opts;
  const centroids = new Float32Array(lists * dim);
  const start = sampleRows(count, lists, random);
  for (let c = 0; c < lists; c++) centroids.set(sample.subarray(start[c] * dim, (start[c] + 1) * dim), c * dim);
  const assignment = new Int32Array(count);
  const sums = new Float64Array(lists * dim);
  const sizes = new Int32Array(lists);
  for (let it = 0; it < opts.iterations; it++) {
    await assignRows(scorer, sample, count, centroids, centroidBias(metric, centroids, lists, dim), lists, dim, assignment);
    sums.fill(0);
    sizes.fill(0);
    for (let r = 0; r < count; r++) {
      const c = assignment[r];
      sizes[c]++;
      const row = r * dim, base = c * dim;
      for (let d = 0; d < dim; d++) sums[base + d] += sample[row + d];
    }
    for (let c = 0; c < lists; c++) {
      if (sizes[c] === 0) {
        const r = random.int(count);
        centroids.set(sample.subarray(r * dim, (r + 1) * dim), c * dim);
        continue;
      }
      for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d] / sizes[c];
    }
    if (metric === 'cosine') normalizeRows(centroids, dim);
    opts.onIteration?.(it + 1);
  }
  return centroids;
}

/** An opened IVF index as the search needs it. */
export interface IvfLists {
  dim: number;
  metric: Metric;
  lists: number;
  count: number;
  centroids: Float32Array;
  /** List l holds stored rows [offsets[l], offsets[l + 1]). */
  offsets: Float64Array;
  /** The gallery row of each stored row. */
  galleryRows: Uint32Array;
  /** Stored rows [start, end) (prepared) into the front of `target`. */
  readRows(start: number, end: number, target: Float32Array): Float32Array;
}

/** Bytes the search holds per query of a block: the row and its gathered copy, its probes, heap and output. */
export function ivfQueryBytes(dim: number, k: number, nprobe: number): number {
  return dim * 8 + nprobe * 12 + TopKHeaps.bytesFor(1, k) + k * 16 + 4;
}

/** Bytes held whatever the block: the largest list and the kernels' score matrices. */
export function ivfFixedBytes(index: IvfLists, maxListRows: number): number {
  return maxListRows * index.dim * 4 + 256 * Math.max(maxListRows, index.lists) * 8 * 2;
}

/**
 * The top k of each query row among the rows of its `nprobe` nearest lists, block by block. Within a
 * block the (query, list) pairs are grouped by list, so each probed list is read once and scored
 * against all its queries in one kernel call (the exact kernel: candidates rescored exactly, ties to
 * the lower gallery row). With nprobe = lists the result is exact search's.
 */
export async function* ivfNeighbors(
  index: IvfLists,
  query: VectorSource,
  opts: { k: number; nprobe: number; memoryBytes: number; kernel: ExactKernel; scorer: ScoreTopK },
): AsyncGenerator<NeighborBlock> {
  const { dim, lists } = index;
  if (query.dim !== dim) throw new UsageError(`rows have ${query.dim} columns but the index holds ${dim}-d vectors`, { file: query.name });
  const k = Math.min(opts.k, index.count);
  const nprobe = Math.min(opts.nprobe, lists);
  let maxListRows = 0;
  for (let l = 0; l < lists; l++) maxListRows = Math.max(maxListRows, index.offsets[l + 1] - index.offsets[l]);
  const available = opts.memoryBytes - ivfFixedBytes(index, maxListRows);
  const perQuery = ivfQueryBytes(dim, k, nprobe);
  if (available < perQuery) throw new UsageError(`a memory budget of ${opts.memoryBytes} bytes cannot hold the index's largest list (${maxListRows} rows) and one query`, { field: 'memory' });
  // Big blocks: the more queries probe a list at once, the better its GEMM; 65,536 keeps the block's arrays moderate.
  const blockRows = Math.max(1, Math.min(query.rows, 65536, Math.floor(available / perQuery)));
  const bias = centroidBias(index.metric, index.centroids, lists, dim);
  const queryBuffer = new Float32Array(blockRows * dim);
  const gathered = new Float32Array(blockRows * dim);
  const listBuffer = new Float32Array(Math.max(1, maxListRows) * dim);
  const heaps = new TopKHeaps(blockRows, Math.max(1, k));
  const perList = new Int32Array(lists + 1);
  const members = new Int32Array(blockRows * nprobe);
  let memberBase = 0;
  // The kernel sees the list's queries as rows 0.. and its rows at their stored position: map both back.
  const view = {
    k: heaps.k,
    worstDistance: (q: number) => heaps.worstDistance(members[memberBase + q]),
    push: (q: number, distance: number, stored: number) => heaps.push(members[memberBase + q], distance, index.galleryRows[stored]),
  };
  for (let qStart = 0; qStart < query.rows; qStart += blockRows) {
    const qEnd = Math.min(query.rows, qStart + blockRows);
    const qRows = qEnd - qStart;
    const queries = prepareRows(await query.readInto(qStart, qEnd, queryBuffer), dim, index.metric);
    heaps.clear();
    if (k > 0) {
      const probes = (await opts.scorer.top(queries, qRows, index.centroids, lists, dim, bias, nprobe)).indices;
      perList.fill(0);
      for (let i = 0; i < probes.length; i++) perList[probes[i] + 1]++;
      for (let l = 0; l < lists; l++) perList[l + 1] += perList[l];
      const fill = perList.slice(0, lists);
      for (let i = 0; i < probes.length; i++) members[fill[probes[i]]++] = Math.floor(i / nprobe);
      for (let l = 0; l < lists; l++) {
        const m = perList[l + 1] - perList[l];
        const listStart = index.offsets[l];
        const n = index.offsets[l + 1] - listStart;
        if (m === 0 || n === 0) continue;
        memberBase = perList[l];
        const tile = index.readRows(listStart, listStart + n, listBuffer);
        for (let i = 0; i < m; i++) gathered.set(queries.subarray(members[memberBase + i] * dim, (members[memberBase + i] + 1) * dim), i * dim);
        await opts.kernel.searchTile({ queries: gathered, queryRows: m, queryStart: 0, tile, tileRows: n, tileStart: listStart, dim, excludeSelf: false, heaps: view });
      }
    }
    const counts = new Int32Array(qRows);
    const indices = new Float64Array(qRows * k);
    const scores = new Float64Array(qRows * k);
    for (let q = 0; q < qRows && k > 0; q++) {
      counts[q] = heaps.sortedInto(q, indices, scores, q * k);
      for (let j = 0; j < counts[q]; j++) scores[q * k + j] = opts.kernel.toScore(scores[q * k + j]);
    }
    yield { queryStart: qStart, queryEnd: qEnd, k, counts, indices, scores };
  }
}
