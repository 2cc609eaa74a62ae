// Exact k-nearest-neighbour search that streams: queries in blocks, the gallery in slabs read from
// disk (or kept resident when it fits), each slab cut into cache-sized tiles for the kernel, and a
// per-query top-k heap, so memory is bounded by a budget and not by the gallery size.
import { UsageError } from '../command.js';
import { GEMM_QUERIES_PER_CALL } from './gemm.js';
import { JS_QUERY_SUB_BLOCK, USEARCH_QUERIES_PER_CALL, chooseExactKernel, distanceKindOf, type ExactKernel, type KernelName } from './kernel.js';
import { assertSameDimension, normalizeRows, type Metric, type VectorSource } from './source.js';
import { TopKHeaps } from './topk.js';

export interface ExactSearchOptions {
  k: number;
  metric: Metric;
  /** The gallery is the query set: a query never returns itself (by row, not by value). */
  excludeSelf?: boolean;
  /** Bytes of vectors, heaps and results the search may hold at once (default 1 GiB). */
  memoryBytes?: number;
  /** Threads for the native kernel (default 1). */
  threads?: number;
  /** A kernel by name (opened here) or one already opened (chooseExactKernel). */
  kernel?: KernelName | ExactKernel;
  /** Gallery rows per kernel call (default DEFAULT_TILE_ROWS). */
  tileRows?: number;
}

/** Neighbours of queries [queryStart, queryEnd): row q's are at [q*k, q*k + counts[q]), best first. */
export interface NeighborBlock {
  queryStart: number;
  queryEnd: number;
  k: number;
  counts: Int32Array;
  /** Gallery row numbers. */
  indices: Float64Array;
  /** Higher is closer: cosine similarity, dot product, or minus the Euclidean distance. */
  scores: Float64Array;
}

export interface ExactSearchPlan {
  queryBlockRows: number;
  gallerySlabRows: number;
  /** The whole gallery is read once and kept; otherwise it is re-read for every query block. */
  galleryResident: boolean;
  tileRows: number;
}

/** What a plan must count besides the rows themselves. */
export interface ExactPlanCosts {
  /** Raw scratch bytes per value the gallery source holds while reading (0 for float32 .npy and arrays). */
  galleryScratchBytesPerValue?: number;
  queryScratchBytesPerValue?: number;
}

export const DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024;

/** Gallery rows per kernel call: 4096 x 256-d float32 (4 MiB) stays in L3 and keeps calls few. */
export const DEFAULT_TILE_ROWS = 4096;

/** Bytes one query row costs in a block: its vector, its heap, the kernel's candidate lists and the output. */
function queryRowBytes(dim: number, k: number, scratchBytesPerValue: number): number {
  // The vector, a dense copy when it is a view into the resident gallery, read scratch, heap, kernel candidates, output.
  return dim * (8 + scratchBytesPerValue) + TopKHeaps.bytesFor(1, k) + (k + 2) * 20 + k * 16 + 4;
}

/**
 * Bytes the kernels hold whatever the block sizes: a dense tile copy, and the larger of usearch's
 * distance matrix (counted twice: malloc keeps a freed one) and the GEMM kernel's score matrix (and
 * its TopK copy); one search uses one kernel.
 */
export function kernelScratchBytes(dim: number, tileRows: number): number {
  const native = Math.max(2 * USEARCH_QUERIES_PER_CALL * (tileRows * 16 + dim * 4), GEMM_QUERIES_PER_CALL * tileRows * 8);
  return tileRows * dim * 4 + native + JS_QUERY_SUB_BLOCK * tileRows * 4;
}

/** Splits the budget between a query block and gallery slabs; throws a UsageError when not even one row of each fits. */
export function planExactSearch(queryRows: number, galleryRows: number, dim: number, k: number, memoryBytes: number, tileRows = DEFAULT_TILE_ROWS, costs: ExactPlanCosts = {}): ExactSearchPlan {
  const galleryRowBytes = dim * (4 + (costs.galleryScratchBytesPerValue ?? 0));
  const perQuery = queryRowBytes(dim, k, costs.queryScratchBytesPerValue ?? 0);
  const fixed = kernelScratchBytes(dim, Math.min(tileRows, Math.max(1, galleryRows)));
  const galleryBytes = galleryRows * galleryRowBytes;
  const minimum = fixed + perQuery + Math.min(galleryRows, tileRows) * galleryRowBytes;
  if (memoryBytes < minimum) {
    throw new UsageError(`a memory budget of ${memoryBytes} bytes cannot hold one query and one gallery tile of ${dim}-d rows (needs ${minimum})`, { field: 'memory' });
  }
  const available = memoryBytes - fixed;
  if (galleryBytes <= available / 2) {
    const queryBlockRows = Math.max(1, Math.min(queryRows, Math.floor((available - galleryBytes) / perQuery)));
    return { queryBlockRows, gallerySlabRows: Math.max(1, galleryRows), galleryResident: true, tileRows };
  }
  const gallerySlabRows = Math.max(Math.min(tileRows, galleryRows), Math.floor(available / 2 / galleryRowBytes));
  const left = available - gallerySlabRows * galleryRowBytes;
  const queryBlockRows = Math.max(1, Math.min(queryRows, Math.floor(left / perQuery)));
  return { queryBlockRows, gallerySlabRows, galleryResident: false, tileRows };
}

/** The plan exactNeighbors uses for these sources and options. */
export function planExactSearchFor(query: VectorSource, gallery: VectorSource, opts: ExactSearchOptions): ExactSearchPlan {
  return planExactSearch(query.rows, gallery.rows, query.dim, opts.k, opts.memoryBytes ?? DEFAULT_MEMORY_BYTES, opts.tileRows ?? DEFAULT_TILE_ROWS, {
    galleryScratchBytesPerValue: gallery.readScratchBytesPerValue,
    queryScratchBytesPerValue: query.readScratchBytesPerValue,
  });
}

/** Reads rows [start, end) of a source into `target`, normalised for cosine. */
async function readPrepared(source: VectorSource, start: number, end: number, metric: Metric, target: Float32Array): Promise<Float32Array> {
  const rows = await source.readInto(start, end, target);
  if (metric === 'cosine') normalizeRows(rows, source.dim);
  return rows;
}

/**
 * Exact top-k of every query row against every gallery row, yielded block by block in query order.
 * Ties are broken by gallery order. Pass the same source as gallery with excludeSelf for a
 * leave-one-out search of a set against itself.
 */
export async function* exactNeighbors(query: VectorSource, gallery: VectorSource, opts: ExactSearchOptions): AsyncGenerator<NeighborBlock> {
  const { k, metric } = opts;
  if (!Number.isInteger(k) || k <= 0) throw new UsageError(`k must be a positive integer, got ${k}`, { field: 'k' });
  assertSameDimension(query, gallery);
  const excludeSelf = opts.excludeSelf === true;
  if (excludeSelf && query.rows !== gallery.rows) throw new RangeError('excludeSelf needs the gallery to be the query set');
  const plan = planExactSearchFor(query, gallery, opts);
  const kernel = typeof opts.kernel === 'object' ? opts.kernel : (await chooseExactKernel(opts.kernel ?? 'auto', distanceKindOf(metric), opts.threads ?? 1)).kernel;
  yield* searchWithKernel(query, gallery, { ...opts, excludeSelf }, plan, kernel);
}

/** The search loop with a chosen plan and kernel (exposed for benchmarks and tests of the streaming). */
export async function* searchWithKernel(
  query: VectorSource,
  gallery: VectorSource,
  opts: ExactSearchOptions,
  plan: ExactSearchPlan,
  kernel: ExactKernel,
): AsyncGenerator<NeighborBlock> {
  const { k, metric } = opts;
  const excludeSelf = opts.excludeSelf === true;
  const dim = query.dim;
  const kk = Math.min(k, Math.max(0, gallery.rows - (excludeSelf ? 1 : 0)));
  const heaps = new TopKHeaps(Math.max(1, Math.min(plan.queryBlockRows, query.rows)), Math.max(1, kk));
  // One buffer each for the gallery (whole or a slab) and the query block, reused for every read.
  const galleryBuffer = new Float32Array((plan.galleryResident ? gallery.rows : Math.min(plan.gallerySlabRows, gallery.rows)) * dim);
  let resident: Float32Array | null = null;
  if (plan.galleryResident && gallery.rows > 0) resident = await readPrepared(gallery, 0, gallery.rows, metric, galleryBuffer);
  const queryBuffer = resident && excludeSelf ? null : new Float32Array(Math.min(plan.queryBlockRows, query.rows) * dim);

  for (let qStart = 0; qStart < query.rows; qStart += plan.queryBlockRows) {
    const qEnd = Math.min(query.rows, qStart + plan.queryBlockRows);
    const qRows = qEnd - qStart;
    // A set searched against itself and held whole needs no second read.
    const queries = queryBuffer ? await readPrepared(query, qStart, qEnd, metric, queryBuffer) : resident!.subarray(qStart * dim, qEnd * dim);
    heaps.clear();
    if (kk > 0) {
      for (let sStart = 0; sStart < gallery.rows; sStart += plan.gallerySlabRows) {
        const sEnd = Math.min(gallery.rows, sStart + plan.gallerySlabRows);
        const slab = resident ? resident.subarray(sStart * dim, sEnd * dim) : await readPrepared(gallery, sStart, sEnd, metric, galleryBuffer);
        for (let tStart = sStart; tStart < sEnd; tStart += plan.tileRows) {
          const tEnd = Math.min(sEnd, tStart + plan.tileRows);
          await kernel.searchTile({
            queries,
            queryRows: qRows,
            queryStart: qStart,
            tile: slab.subarray((tStart - sStart) * dim, (tEnd - sStart) * dim),
            tileRows: tEnd - tStart,
            tileStart: tStart,
            dim,
            excludeSelf,
            heaps,
          });
        }
      }
    }
    const counts = new Int32Array(qRows);
    const indices = new Float64Array(qRows * kk);
    const scores = new Float64Array(qRows * kk);
    for (let q = 0; q < qRows; q++) {
      if (kk === 0) continue;
      counts[q] = heaps.sortedInto(q, indices, scores, q * kk);
      for (let j = 0; j < counts[q]; j++) scores[q * kk + j] = kernel.toScore(scores[q * kk + j]);
    }
    yield { queryStart: qStart, queryEnd: qEnd, k: kk, counts, indices, scores };
  }
}
