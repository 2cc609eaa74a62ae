// Tagging metrics of the report §3.1: precision@k and recall@k of the top-k scored words against
// the image's bag, averaged over images.

/** Indices of the k largest values of `scores`, best first; ties by lower index. */
export function topKIndices(scores: ArrayLike<number>, k: number): Int32Array {
  const n = scores.length;
  const kk = Math.min(k, n);
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (best.length < kk) {
      best.push(i);
      best.sort((a, b) => scores[b] - scores[a] || a - b);
    } else if (s > scores[best[kk - 1]]) {
      best[kk - 1] = i;
      for (let j = kk - 1; j > 0 && (scores[best[j]] > scores[best[j - 1]]); j--) [best[j], best[j - 1]] = [best[j - 1], best[j]];
    }
  }
  return Int32Array.from(best);
}

export interface PrecisionRecall {
  precision: Record<number, number>;
  recall: Record<number, number>;
  images: number;
}

/**
 * scores: row-major [images, K]; bags: the true word ids per image. Images with an empty bag are skipped.
 */
export function precisionRecallAtK(scores: Float32Array, vocabularySize: number, bags: Int32Array[], ks: number[]): PrecisionRecall {
  const maxK = Math.max(...ks);
  const precision: Record<number, number> = {};
  const recall: Record<number, number> = {};
  for (const k of ks) {
    precision[k] = 0;
    recall[k] = 0;
  }
  let counted = 0;
  bags.forEach((bag, image) => {
    if (bag.length === 0) return;
    counted++;
    const row = scores.subarray(image * vocabularySize, (image + 1) * vocabularySize);
    const top = topKIndices(row, maxK);
    const truth = new Set(bag);
    for (const k of ks) {
      let hits = 0;
      for (let i = 0; i < Math.min(k, top.length); i++) if (truth.has(top[i])) hits++;
      precision[k] += hits / k;
      recall[k] += hits / truth.size;
    }
  });
  for (const k of ks) {
    precision[k] = counted ? precision[k] / counted : 0;
    recall[k] = counted ? recall[k] / counted : 0;
  }
  return { precision, recall, images: counted };
}
