// knn's output: one NDJSON record per query, {id, neighbors: [{id, score}]}, with the label vote when asked.
import type { NdjsonWriter } from '../io/ndjson.js';
import { shortestFloat32 } from '../io/npy.js';
import type { NeighborBlock } from './exact.js';
import { keepSampledLists, type RecallSample } from './recall.js';
import type { IdList } from './saved-index.js';
import type { Metric } from './source.js';
import { labelVote, voteWeight } from './vote.js';

/** Where neighbour records go and what names their rows. */
export interface NeighborOutput {
  writer: NdjsonWriter;
  queryIds: string[];
  galleryIds: IdList;
  metric: Metric;
  labels: Map<string, string> | null;
  weighted: boolean;
  /** Gallery shards: each neighbour carries its global gallery row, merge's tie-break. */
  withRows?: boolean;
}

/** Writes one record per query of `block`. */
export async function writeNeighborBlock(block: NeighborBlock, out: NeighborOutput): Promise<void> {
  for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
    const neighbors: Array<{ id: string; score: number; row?: number }> = [];
    const base = q * block.k;
    for (let j = 0; j < block.counts[q]; j++) {
      const row = block.indices[base + j];
      // Partial lists keep the kernel's own score, so merge ranks exactly as the kernel does.
      const score = block.scores[base + j];
      const id = out.galleryIds.at(row)!;
      neighbors.push(out.withRows ? { id, score, row } : { id, score: shortestFloat32(Math.fround(score)) });
    }
    const record: Record<string, unknown> = { id: out.queryIds[block.queryStart + q], neighbors };
    if (out.labels) {
      const labels = neighbors.map((n) => out.labels!.get(n.id) ?? null);
      const weights = out.weighted ? neighbors.map((_, j) => voteWeight(block.scores[base + j], out.metric)) : undefined;
      const vote = labelVote(labels, weights);
      record.label = vote.label;
      record.probs = Object.fromEntries(Object.entries(vote.probs).map(([label, p]) => [label, Number(p.toFixed(6))]));
    }
    await out.writer.write(record);
  }
}

/** Writes every block, reporting the queries done to `onQueries` and keeping the recall sample's lists when given. */
export async function writeNeighborLists(
  blocks: AsyncIterable<NeighborBlock>,
  out: NeighborOutput,
  opts: { recall: RecallSample | null; onQueries: (done: number) => void },
): Promise<void> {
  for await (const block of blocks) {
    await writeNeighborBlock(block, out);
    if (opts.recall) keepSampledLists(block, opts.recall);
    opts.onQueries(block.queryEnd);
  }
}
