// How well a 2-D map keeps the structure of its input: trustworthiness (Venna & Kaski 2001), the
// share of k nearest neighbours kept, and the agreement of a point's map neighbours with its label.
// Brute force O(n^2): meant for a few thousand points.

/** Indices of the k rows nearest to row i (itself excluded) by squared Euclidean distance, nearest first. */
function nearestOf(rows: ArrayLike<number>, n: number, dim: number, i: number, k: number, distances: Float64Array, order: Int32Array): Int32Array {
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let d = 0; d < dim; d++) {
      const diff = rows[i * dim + d] - rows[j * dim + d];
      s += diff * diff;
    }
    distances[j] = j === i ? Infinity : s;
    order[j] = j;
  }
  const sorted = Array.from(order).sort((a, b) => distances[a] - distances[b] || a - b);
  return Int32Array.from(sorted.slice(0, k));
}

/** k nearest neighbours of every row, n x k row-major. */
export function neighborLists(rows: ArrayLike<number>, n: number, dim: number, k: number): Int32Array {
  const out = new Int32Array(n * k);
  const distances = new Float64Array(n);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) out.set(nearestOf(rows, n, dim, i, k, distances, order), i * k);
  return out;
}

/** Mean share of each point's k nearest map neighbours that carry its label. */
export function neighborLabelAgreement(coordinates: ArrayLike<number>, labels: ArrayLike<string | number>, k: number): number {
  const n = labels.length;
  const lists = neighborLists(coordinates, n, 2, k);
  let agree = 0;
  for (let i = 0; i < n; i++) for (let m = 0; m < k; m++) if (labels[lists[i * k + m]] === labels[i]) agree++;
  return agree / (n * k);
}

/** Mean share of each point's k input-space neighbours that are also among its k map neighbours. */
export function neighborPreservation(input: ArrayLike<number>, dim: number, coordinates: ArrayLike<number>, n: number, k: number): number {
  const high = neighborLists(input, n, dim, k);
  const low = neighborLists(coordinates, n, 2, k);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const inHigh = new Set(high.subarray(i * k, (i + 1) * k));
    for (let m = 0; m < k; m++) if (inHigh.has(low[i * k + m])) kept++;
  }
  return kept / (n * k);
}

/**
 * Trustworthiness T(k) = 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in U_i} (r(i, j) - k), where U_i are
 * the map's k neighbours of i that are not among its input k neighbours and r is the input rank.
 */
export function trustworthiness(input: ArrayLike<number>, dim: number, coordinates: ArrayLike<number>, n: number, k: number): number {
  const low = neighborLists(coordinates, n, 2, k);
  const distances = new Float64Array(n);
  const order = new Int32Array(n);
  const rank = new Int32Array(n);
  let penalty = 0;
  for (let i = 0; i < n; i++) {
    const sorted = nearestOf(input, n, dim, i, n - 1, distances, order);
    sorted.forEach((j, r) => (rank[j] = r + 1));
    for (let m = 0; m < k; m++) {
      const r = rank[low[i * k + m]];
      if (r > k) penalty += r - k;
    }
  }
  return 1 - (2 / (n * k * (2 * n - 3 * k - 1))) * penalty;
}
