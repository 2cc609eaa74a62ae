// Retrieval metrics of the report §3.3 (DeepFashion In-Shop protocol): a query scores 1 at k when an
// image of the same item is among the k gallery images most similar to it; plus mean average
// precision over the ranks of every image of the item.

/** 1-based rank of the first neighbour showing the query's item, or null when none does. */
export function rankOfFirstCorrect(neighborItems: ArrayLike<string | null>, queryItem: string): number | null {
  for (let i = 0; i < neighborItems.length; i++) if (neighborItems[i] === queryItem) return i + 1;
  return null;
}

/** 1-based ranks of the neighbours showing the query's item, ascending. */
export function correctRanks(neighborItems: ArrayLike<string | null>, queryItem: string): number[] {
  const ranks: number[] = [];
  for (let i = 0; i < neighborItems.length; i++) if (neighborItems[i] === queryItem) ranks.push(i + 1);
  return ranks;
}

/**
 * 1-based ranks, ascending, of the `relevant` gallery rows in one query's full score row (higher is
 * closer; equal scores ranked by gallery order). Row `exclude` (the query itself) is not ranked.
 */
export function relevantRanks(scores: ArrayLike<number>, relevant: ArrayLike<number>, exclude = -1): number[] {
  const ranks: number[] = [];
  for (let r = 0; r < relevant.length; r++) {
    const row = relevant[r];
    if (row === exclude) continue;
    const s = scores[row];
    let better = 0;
    for (let g = 0; g < row; g++) if (scores[g] >= s) better++;
    for (let g = row + 1; g < scores.length; g++) if (scores[g] > s) better++;
    if (exclude >= 0 && exclude < scores.length && (scores[exclude] > s || (scores[exclude] === s && exclude < row))) better--;
    ranks.push(better + 1);
  }
  return ranks.sort((a, b) => a - b);
}

/**
 * Average precision of one query: (1/R) Σ_i i / rank_i over its relevant images sorted by rank,
 * R = relevantCount. With a cutoff (a ranking known only to that depth) ranks beyond it count as
 * misses and R becomes min(R, cutoff). 0 when there is nothing relevant.
 */
export function averagePrecision(ranks: ArrayLike<number>, relevantCount: number, cutoff?: number): number {
  const denominator = cutoff === undefined ? relevantCount : Math.min(relevantCount, cutoff);
  if (denominator <= 0) return 0;
  const sorted = Array.from(ranks).sort((a, b) => a - b);
  let sum = 0;
  let hits = 0;
  for (const rank of sorted) {
    if (cutoff !== undefined && rank > cutoff) break;
    hits++;
    sum += hits / rank;
  }
  return sum / denominator;
}

/**
 * Top-k retrieval accuracy for each k: the fraction of queries whose first correct match has rank
 * <= k (null rank = none found). When the ranking is only known to `depth`, k beyond it is null.
 */
export function topKRetrievalAccuracy(firstRanks: ArrayLike<number | null>, ks: number[], depth?: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const k of ks) {
    if (depth !== undefined && k > depth) {
      out[k] = null;
      continue;
    }
    let hits = 0;
    for (let i = 0; i < firstRanks.length; i++) {
      const rank = firstRanks[i];
      if (rank !== null && rank <= k) hits++;
    }
    out[k] = firstRanks.length === 0 ? 0 : hits / firstRanks.length;
  }
  return out;
}

export interface RetrievalSummary {
  queries: number;
  /** Top-k accuracy keyed by k. */
  topk: Record<string, number | null>;
  /** Mean of the per-query average precisions. */
  map: number;
  /** Median rank of the first correct match; null when more than half the queries have none known. */
  medianFirstRank: number | null;
}

/** Per-query first-correct ranks and average precisions summarised the way the seeds report them. */
export function summarizeRetrieval(firstRanks: ArrayLike<number | null>, averagePrecisions: ArrayLike<number>, ks: number[], depth?: number): RetrievalSummary {
  const n = firstRanks.length;
  let apSum = 0;
  for (let i = 0; i < averagePrecisions.length; i++) apSum += averagePrecisions[i];
  const known = Array.from(firstRanks).map((r) => (r === null ? Infinity : r)).sort((a, b) => a - b);
  // Lower median, so the value is a rank that occurred.
  const median = n === 0 ? null : known[Math.floor((n - 1) / 2)];
  return {
    queries: n,
    topk: topKRetrievalAccuracy(firstRanks, ks, depth),
    map: averagePrecisions.length === 0 ? 0 : apSum / averagePrecisions.length,
    medianFirstRank: median === null || !Number.isFinite(median) ? null : median,
  };
}

/** Chance of at least one of R relevant images in the top k of a random ordering of N: 1 - C(N-R, k) / C(N, k). */
export function expectedRandomTopK(galleryCount: number, relevantCount: number, k: number): number {
  if (relevantCount <= 0) return 0;
  if (k >= galleryCount - relevantCount + 1) return 1;
  let missAll = 1;
  for (let i = 0; i < k; i++) missAll *= (galleryCount - relevantCount - i) / (galleryCount - i);
  return 1 - missAll;
}

/**
 * The ranks the R relevant images take in a uniformly random ordering of N (R distinct positions in
 * 1..N, ascending), drawn with Floyd's algorithm in O(R).
 */
export function sampleRandomRanks(galleryCount: number, relevantCount: number, uniform: () => number): number[] {
  const chosen = new Set<number>();
  const r = Math.min(relevantCount, galleryCount);
  for (let j = galleryCount - r + 1; j <= galleryCount; j++) {
    const t = 1 + Math.floor(uniform() * j);
    chosen.add(chosen.has(t) ? j : t);
  }
  return [...chosen].sort((a, b) => a - b);
}
