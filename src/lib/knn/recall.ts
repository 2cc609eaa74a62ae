// Recall@k of an approximate (HNSW) search: its lists on a sample of queries against exact search.
import { exactNeighbors, type NeighborBlock } from './exact.js';
import type { KernelName } from './kernel.js';
import { arrayVectorSource, gatherRows, type Metric, type VectorSource } from './source.js';

/** Every `every`-th query's approximate list, by query row, filled while the search's output is written. */
export interface RecallSample {
  every: number;
  lists: Map<number, Float64Array>;
}

/** A sample of up to `size` queries spread evenly over `queries` rows. */
export function recallSample(queries: number, size: number): RecallSample {
  return { every: Math.max(1, Math.ceil(queries / size)), lists: new Map() };
}

/** Keeps the lists of the sampled queries of `block`. */
export function keepSampledLists(block: NeighborBlock, sample: RecallSample): void {
  for (let row = Math.ceil(block.queryStart / sample.every) * sample.every; row < block.queryEnd; row += sample.every) {
    const q = row - block.queryStart;
    sample.lists.set(row, block.indices.slice(q * block.k, q * block.k + block.counts[q]));
  }
}

/** Mean overlap of the sampled approximate top-k and the exact top-k of the same queries. */
export async function recallAgainstExact(
  approximate: Map<number, Float64Array>,
  query: VectorSource,
  gallery: VectorSource,
  opts: { k: number; metric: Metric; excludeSelf: boolean; memoryBytes: number; threads: number; kernel: KernelName },
): Promise<number> {
  const rows = [...approximate.keys()];
  const sample = arrayVectorSource(await gatherRows(query, rows), query.dim, query.name);
  let hits = 0;
  let total = 0;
  // With self-exclusion the sampled rows are no longer row-aligned with the gallery, so drop self by id below.
  for await (const block of exactNeighbors(sample, gallery, { ...opts, k: opts.excludeSelf ? opts.k + 1 : opts.k, excludeSelf: false })) {
    for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
      const row = rows[block.queryStart + q];
      const exact: number[] = [];
      for (let j = 0; j < block.counts[q] && exact.length < opts.k; j++) {
        const g = block.indices[q * block.k + j];
        if (!(opts.excludeSelf && g === row)) exact.push(g);
      }
      const found = new Set(approximate.get(row));
      for (const g of exact) if (found.has(g)) hits++;
      total += exact.length;
    }
  }
  return total === 0 ? 1 : hits / total;
}
