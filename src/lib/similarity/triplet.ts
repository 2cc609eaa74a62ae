// Similarity learning from triplets (Wang et al. 2014, DeepRank, as GILT's TiefVision uses it):
// hinge loss max(0, g + D(q, p+) - D(q, p-)) on L2-normalised embeddings, D the squared
// Euclidean distance, with semi-hard negatives mined inside each batch (Schroff et al. 2015).
import { tf } from '../backend/tf.js';
import type { Random } from '../random.js';

export const SIMILARITY_MODEL_KIND = 'atelier-similarity';

export interface Triplets {
  anchors: Int32Array;
  positives: Int32Array;
  negatives: Int32Array;
  /** How many negatives were semi-hard (farther than the positive, within the margin). */
  semiHard: number;
}

/** Rows scaled to unit L2 norm. */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

/** Squared Euclidean distances between all rows, [n, n] (for unit rows: 2 − 2 cos). */
export function pairwiseSquaredDistances(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const squared = tf.sum(tf.square(x), 1, true);
    const dot = tf.matMul(x, x, false, true);
    return tf.relu(tf.add(tf.sub(squared, tf.mul(2, dot)), tf.transpose(squared))) as tf.Tensor2D;
  });
}

/**
 * Every (anchor, positive) pair of a batch with one negative each: the closest negative that is
 * farther than the positive (semi-hard when within the margin); when every negative is closer than
 * the positive, the farthest of them. `distances` is the row-major [n, n] matrix, `groups` the
 * group of each row (same group = positive).
 */
export function mineSemiHardTriplets(distances: ArrayLike<number>, groups: ArrayLike<number>, margin: number): Triplets {
  const n = groups.length;
  const anchors: number[] = [];
  const positives: number[] = [];
  const negatives: number[] = [];
  let semiHard = 0;
  for (let a = 0; a < n; a++) {
    for (let p = 0; p < n; p++) {
      if (p === a || groups[p] !== groups[a]) continue;
      const dap = distances[a * n + p];
      let outside = -1;
      let inside = -1;
      for (let q = 0; q < n; q++) {
        if (groups[q] === groups[a]) continue;
        const d = distances[a * n + q];
        if (d > dap) {
          if (outside < 0 || d < distances[a * n + outside]) outside = q;
        } else if (inside < 0 || d > distances[a * n + inside]) inside = q;
      }
      const chosen = outside >= 0 ? outside : inside;
      if (chosen < 0) continue;
      if (outside >= 0 && distances[a * n + outside] < dap + margin) semiHard++;
      anchors.push(a);
      positives.push(p);
      negatives.push(chosen);
    }
  }
  return { anchors: Int32Array.from(anchors), positives: Int32Array.from(positives), negatives: Int32Array.from(negatives), semiHard };
}

/** Mean hinge loss over the triplets, from the distance matrix of the batch. */
export function tripletHingeLoss(distances: tf.Tensor2D, triplets: Triplets, margin: number): tf.Scalar {
  return tf.tidy(() => {
    const n = distances.shape[0];
    const flat = tf.reshape(distances, [-1]);
    const dap = tf.gather(flat, tf.tensor1d(Int32Array.from(triplets.anchors, (a, i) => a * n + triplets.positives[i]), 'int32'));
    const dan = tf.gather(flat, tf.tensor1d(Int32Array.from(triplets.anchors, (a, i) => a * n + triplets.negatives[i]), 'int32'));
    return tf.mean(tf.relu(tf.add(tf.sub(dap, dan), margin))) as tf.Scalar;
  });
}

/**
 * Batches for one epoch: groups (with ≥ 2 members) in a random order, `groupsPerBatch` at a time,
 * up to `perGroup` random members of each, so every batch holds positives and negatives.
 */
export function groupBatches(members: number[][], groupsPerBatch: number, perGroup: number, random: Random): number[][] {
  const eligible = members.filter((m) => m.length >= 2);
  for (let i = eligible.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [eligible[i], eligible[j]] = [eligible[j], eligible[i]];
  }
  const batches: number[][] = [];
  for (let start = 0; start + 2 <= eligible.length; start += groupsPerBatch) {
    const batch: number[] = [];
    for (const group of eligible.slice(start, start + groupsPerBatch)) {
      const pool = [...group];
      for (let k = 0; k < Math.min(perGroup, pool.length); k++) {
        const j = k + random.int(pool.length - k);
        [pool[k], pool[j]] = [pool[j], pool[k]];
        batch.push(pool[k]);
      }
    }
    batches.push(batch);
  }
  return batches;
}

/**
 * Leave-one-out top-1 retrieval: the share of rows (in groups of ≥ 2) whose most similar other row
 * (cosine) is of their group.
 */
export function leaveOneOutTop1(rows: Float32Array, dim: number, groups: ArrayLike<number>): number {
  const n = groups.length;
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += rows[i * dim + j] ** 2;
    norms[i] = Math.sqrt(s) || 1;
  }
  const size = new Map<number, number>();
  for (let i = 0; i < n; i++) size.set(groups[i], (size.get(groups[i]) ?? 0) + 1);
  let queries = 0;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    if ((size.get(groups[i]) ?? 0) < 2) continue;
    queries++;
    let best = -1;
    let bestScore = -Infinity;
    for (let k = 0; k < n; k++) {
      if (k === i) continue;
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += rows[i * dim + j] * rows[k * dim + j];
      const score = dot / (norms[i] * norms[k]);
      if (score > bestScore) {
        bestScore = score;
        best = k;
      }
    }
    if (best >= 0 && groups[best] === groups[i]) hits++;
  }
  return queries ? hits / queries : 0;
}
