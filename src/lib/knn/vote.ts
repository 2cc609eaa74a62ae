// kNN label vote (the Stitch Fix deck): P(y=j|x) = 1/K Σ_{i in neighbours} I(y_i = j), optionally
// with each vote weighted by its neighbour's similarity.
import type { Metric } from './source.js';

export interface LabelVote {
  /** The most probable label; ties go to the label of the nearest neighbour among them. Null when no neighbour has a label. */
  label: string | null;
  /** Probability per label; sums to 1 (empty when no neighbour has a label). */
  probs: Record<string, number>;
}

/**
 * The weight of a neighbour's vote from its score: for cosine and dot the similarity itself,
 * floored at 0 (a dissimilar neighbour gets no say); for Euclidean (score = -distance) the inverse
 * distance, so an exact duplicate dominates.
 */
export function voteWeight(score: number, metric: Metric): number {
  if (metric === 'euclidean') return 1 / (Math.max(0, -score) + 1e-12);
  return Math.max(0, score);
}

/**
 * Votes over neighbours given best first. `labels[i]` is neighbour i's label (null: unlabelled, no
 * vote). With `weights`, votes count by weight; if every weight is 0 the vote falls back to counts.
 */
export function labelVote(labels: ArrayLike<string | null>, weights?: ArrayLike<number>): LabelVote {
  const totals = new Map<string, number>();
  let sum = 0;
  const useWeights = weights !== undefined && Array.from({ length: labels.length }, (_, i) => (labels[i] === null ? 0 : weights[i])).some((w) => w > 0);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label === null) continue;
    const w = useWeights ? weights![i] : 1;
    totals.set(label, (totals.get(label) ?? 0) + w);
    sum += w;
  }
  if (totals.size === 0) return { label: null, probs: {} };
  // Map order is first-seen order, i.e. nearest first, so a stable sort breaks ties by nearness.
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]);
  const probs: Record<string, number> = {};
  for (const [label, total] of ranked) probs[label] = total / sum;
  return { label: ranked[0][0], probs };
}
