// The input similarities of t-SNE: Gaussian conditionals p_{j|i} whose bandwidth is set per point
// so that their perplexity 2^H matches the one asked for (van der Maaten & Hinton 2008, §2), then
// symmetrised p_ij = (p_{j|i} + p_{i|j}) / 2n. Barnes-Hut t-SNE keeps only the 3u nearest
// neighbours of each point (van der Maaten 2014, §4.1), giving a sparse matrix.
import { arrayVectorSource } from '../knn/source.js';
import { exactNeighbors } from '../knn/exact.js';

/** A symmetric sparse matrix in compressed rows: row i's columns are cols[rowStart[i] .. rowStart[i+1]). */
export interface SparseAffinities {
  n: number;
  rowStart: Int32Array;
  cols: Int32Array;
  values: Float64Array;
}

const PERPLEXITY_TOLERANCE = 1e-5;
const MAX_BISECTION_STEPS = 200;

/**
 * Fills `out` with p_{j|i} ∝ exp(-beta d_j) over the given squared distances, bisecting on beta
 * until the entropy (in nats) equals ln(perplexity). Returns the beta found.
 */
export function calibrateRow(squaredDistances: ArrayLike<number>, perplexity: number, out: Float64Array): number {
  const count = squaredDistances.length;
  const targetEntropy = Math.log(perplexity);
  // Distances are shifted by their minimum so exp() cannot underflow for far-away data.
  let minDistance = Infinity;
  for (let j = 0; j < count; j++) if (squaredDistances[j] < minDistance) minDistance = squaredDistances[j];
  let beta = 1;
  let lo = -Infinity;
  let hi = Infinity;
  for (let step = 0; step < MAX_BISECTION_STEPS; step++) {
    let sum = 0;
    let weighted = 0;
    for (let j = 0; j < count; j++) {
      const d = squaredDistances[j] - minDistance;
      const p = Math.exp(-beta * d);
      out[j] = p;
      sum += p;
      weighted += d * p;
    }
    // H = ln(sum) + beta * <d>  (the entropy of the normalised row, in nats).
    const entropy = Math.log(sum) + (beta * weighted) / sum;
    for (let j = 0; j < count; j++) out[j] /= sum;
    const gap = entropy - targetEntropy;
    if (Math.abs(gap) < PERPLEXITY_TOLERANCE) break;
    if (gap > 0) {
      lo = beta;
      beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
    } else {
      hi = beta;
      beta = lo === -Infinity ? beta / 2 : (beta + lo) / 2;
    }
  }
  return beta;
}

/** Squared Euclidean distances between all rows (n x n, float64), for the exact method on small n. */
export function pairwiseSquaredDistances(rows: ArrayLike<number>, n: number, dim: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) {
        const diff = rows[i * dim + d] - rows[j * dim + d];
        s += diff * diff;
      }
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** Dense symmetric P (n x n, sums to 1) from all pairwise distances: the exact t-SNE input. */
export function denseAffinities(rows: ArrayLike<number>, n: number, dim: number, perplexity: number): Float64Array {
  const distances = pairwiseSquaredDistances(rows, n, dim);
  const conditional = new Float64Array(n * n);
  const others = new Float64Array(n - 1);
  const row = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let k = 0;
    for (let j = 0; j < n; j++) if (j !== i) others[k++] = distances[i * n + j];
    calibrateRow(others, perplexity, row);
    k = 0;
    for (let j = 0; j < n; j++) if (j !== i) conditional[i * n + j] = row[k++];
  }
  const p = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) p[i * n + j] = (conditional[i * n + j] + conditional[j * n + i]) / (2 * n);
  }
  return p;
}

/** The k nearest neighbours of every row (itself excluded) and their squared distances, row-major n x k. */
export async function nearestNeighbors(rows: Float32Array, n: number, dim: number, k: number): Promise<{ indices: Int32Array; squaredDistances: Float64Array }> {
  const indices = new Int32Array(n * k);
  const squaredDistances = new Float64Array(n * k);
  const source = arrayVectorSource(rows, dim, 'embeddings');
  for await (const block of exactNeighbors(source, source, { k, metric: 'euclidean', excludeSelf: true })) {
    for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
      const i = block.queryStart + q;
      if (block.counts[q] !== k) throw new Error(`found ${block.counts[q]} neighbours of row ${i}, expected ${k}`);
      for (let j = 0; j < k; j++) {
        indices[i * k + j] = block.indices[q * block.k + j];
        // Scores are minus the Euclidean distance.
        squaredDistances[i * k + j] = block.scores[q * block.k + j] ** 2;
      }
    }
  }
  return { indices, squaredDistances };
}

/** Sparse symmetric P from each row's k neighbours: calibrated conditionals, then (P + Pᵀ) / 2n. */
export function sparseAffinities(indices: Int32Array, squaredDistances: Float64Array, n: number, k: number, perplexity: number): SparseAffinities {
  const conditional = new Float64Array(n * k);
  const row = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    calibrateRow(squaredDistances.subarray(i * k, (i + 1) * k), perplexity, row);
    conditional.set(row, i * k);
  }
  // Symmetrise: each stored pair (i, j) adds p_{j|i} to both (i, j) and (j, i).
  const entries = new Map<number, number>();
  const key = (a: number, b: number) => a * n + b;
  for (let i = 0; i < n; i++) {
    for (let m = 0; m < k; m++) {
      const j = indices[i * k + m];
      const v = conditional[i * k + m];
      entries.set(key(i, j), (entries.get(key(i, j)) ?? 0) + v);
      entries.set(key(j, i), (entries.get(key(j, i)) ?? 0) + v);
    }
  }
  const rowCounts = new Int32Array(n + 1);
  for (const k2 of entries.keys()) rowCounts[Math.floor(k2 / n) + 1]++;
  for (let i = 0; i < n; i++) rowCounts[i + 1] += rowCounts[i];
  const keys = [...entries.keys()].sort((a, b) => a - b);
  const cols = new Int32Array(keys.length);
  const values = new Float64Array(keys.length);
  keys.forEach((k2, e) => {
    cols[e] = k2 % n;
    values[e] = entries.get(k2)! / (2 * n);
  });
  return { n, rowStart: rowCounts, cols, values };
}
