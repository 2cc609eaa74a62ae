// A knn run split by shard (see ../shard.ts): queries (each shard searches its queries against the
// whole gallery) or gallery (each shard searches every query against its gallery rows and writes
// partial top-k lists with global gallery rows, joined by merge). Rows are picked by id.
import { inShard, type Shard } from '../shard.js';
import type { NeighborBlock } from './exact.js';
import { arrayVectorSource, gatherRows, type VectorSource } from './source.js';

/** Rows whose id falls in `shard`, in row order. */
export function shardRows(ids: readonly string[], shard: Shard): number[] {
  const rows: number[] = [];
  for (const [row, id] of ids.entries()) if (inShard(id, shard)) rows.push(row);
  return rows;
}

/** The chosen rows of `source`, in memory (a shard's share of it). */
export async function subsetSource(source: VectorSource, rows: number[]): Promise<VectorSource> {
  return arrayVectorSource(await gatherRows(source, rows), source.dim, source.name);
}

/**
 * Blocks of a search over subsets, renumbered to the full sets: local gallery rows become global
 * ones (`galleryRows`), a query's own row (`selfRow`) is dropped, lists are cut to `k`. A search run
 * for k + 1 without self-exclusion, then this, equals the kernel's own self-exclusion: both take
 * the best k of the other rows, ties to the earlier gallery row.
 */
export async function* remapBlocks(
  blocks: AsyncIterable<NeighborBlock>,
  opts: { k: number; galleryRows?: readonly number[]; selfRow?: (query: number) => number },
): AsyncGenerator<NeighborBlock> {
  for await (const block of blocks) {
    const n = block.queryEnd - block.queryStart;
    const counts = new Int32Array(n);
    const indices = new Float64Array(n * opts.k);
    const scores = new Float64Array(n * opts.k);
    for (let q = 0; q < n; q++) {
      const self = opts.selfRow ? opts.selfRow(block.queryStart + q) : -1;
      let c = 0;
      for (let j = 0; j < block.counts[q] && c < opts.k; j++) {
        const local = block.indices[q * block.k + j];
        const row = opts.galleryRows ? opts.galleryRows[local] : local;
        if (row === self) continue;
        indices[q * opts.k + c] = row;
        scores[q * opts.k + c] = block.scores[q * block.k + j];
        c++;
      }
      counts[q] = c;
    }
    yield { queryStart: block.queryStart, queryEnd: block.queryEnd, k: opts.k, counts, indices, scores };
  }
}

/** Empty neighbour lists for every query: a gallery shard that holds no row. */
export async function* emptyBlocks(queries: number, k: number): AsyncGenerator<NeighborBlock> {
  const step = 4096;
  for (let start = 0; start < queries; start += step) {
    const n = Math.min(step, queries - start);
    yield { queryStart: start, queryEnd: start + n, k, counts: new Int32Array(n), indices: new Float64Array(n * k), scores: new Float64Array(n * k) };
  }
}
