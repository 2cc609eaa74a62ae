// t-SNE (van der Maaten & Hinton 2008) with the Barnes-Hut gradient (van der Maaten 2014): a
// Student-t kernel in 2-D, KL(P || Q) minimised by gradient descent with momentum and per-parameter
// gains (Jacobs 1988), early exaggeration of P, and the O(n log n) quadtree for the repulsion.
import type { Random } from '../random.js';
import { denseAffinities, nearestNeighbors, sparseAffinities, type SparseAffinities } from './affinities.js';
import { QuadTree } from './quadtree.js';

export interface TsneOptions {
  perplexity: number;
  iterations: number;
  /** Barnes-Hut accuracy: a cell is summarised when width / distance < theta (0.5 in the paper). */
  theta: number;
  /** Use the exact O(n^2) gradient and dense P instead of Barnes-Hut. */
  exact: boolean;
  /** Step size; by default max(n / exaggeration / 4, 50) (Belkina et al. 2019). */
  learningRate?: number;
  /** P is multiplied by this for the first `exaggerationIterations` (12 and 250 by default). */
  earlyExaggeration?: number;
  exaggerationIterations?: number;
  /** Called every `reportEvery` iterations with the current KL divergence. */
  onProgress?: (iteration: number, kl: number) => void;
  reportEvery?: number;
  random: Random;
}

export interface TsneResult {
  /** n x 2 row-major coordinates, centred at 0. */
  coordinates: Float64Array;
  /** KL(P || Q) at each report, with its iteration (exaggeration off in the value). */
  klHistory: Array<{ iteration: number; kl: number }>;
  finalKl: number;
  /** The perplexity actually used (lowered when n is too small for the one asked for). */
  perplexity: number;
}

const INITIAL_MOMENTUM = 0.5;
const FINAL_MOMENTUM = 0.8;
const MIN_GAIN = 0.01;

/** The largest perplexity n points support: each needs 3u neighbours (u < (n - 1) / 3). */
export function maxPerplexity(n: number): number {
  return Math.max(1, (n - 1) / 3);
}

/** A standard normal draw (Box-Muller) from a seeded uniform source. */
function gaussian(random: Random): number {
  let u = random.next();
  while (u <= Number.MIN_VALUE) u = random.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
}

interface GradientModel {
  /** Writes dC/dY into grad and returns Z = sum_{k != l} (1 + d_kl^2)^-1. */
  gradient(y: Float64Array, grad: Float64Array, exaggeration: number): number;
  /** KL(P || Q) at y, with Z from the last gradient call. */
  kl(y: Float64Array, z: number): number;
}

/**
 * The Barnes-Hut gradient dC/dY of KL(P || Q) for sparse P (times `exaggeration`) into `grad`;
 * returns Z = sum_{k != l} (1 + d_kl^2)^-1 as estimated by the tree.
 */
export function barnesHutGradient(p: SparseAffinities, y: Float64Array, grad: Float64Array, exaggeration: number, theta: number, tree: QuadTree = new QuadTree(), repulsive: Float64Array = new Float64Array(2 * p.n)): number {
  const { n, rowStart, cols, values } = p;
  tree.build(y, n);
  repulsive.fill(0);
  let z = 0;
  for (let i = 0; i < n; i++) z += tree.repulsion(i, theta, repulsive);
  for (let i = 0; i < n; i++) {
    const xi = y[2 * i], yi = y[2 * i + 1];
    let ax = 0, ay = 0;
    for (let e = rowStart[i]; e < rowStart[i + 1]; e++) {
      const j = cols[e];
      const dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
      const w = (exaggeration * values[e]) / (1 + dx * dx + dy * dy);
      ax += w * dx;
      ay += w * dy;
    }
    // dC/dy_i = 4 (sum_j p_ij q_ij Z (y_i - y_j) - sum_j q_ij^2 Z (y_i - y_j))  (2014, eq. 6)
    grad[2 * i] = 4 * (ax - repulsive[2 * i] / z);
    grad[2 * i + 1] = 4 * (ay - repulsive[2 * i + 1] / z);
  }
  return z;
}

/** KL(P || Q) for sparse P, given Z (pairs outside P's support add nothing: their p is 0). */
export function sparseKl(p: SparseAffinities, y: Float64Array, z: number): number {
  const { n, rowStart, cols, values } = p;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let e = rowStart[i]; e < rowStart[i + 1]; e++) {
      const j = cols[e];
      const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const q = 1 / ((1 + dx * dx + dy * dy) * z);
      const pv = values[e];
      if (pv > 0) sum += pv * Math.log(pv / Math.max(q, Number.MIN_VALUE));
    }
  }
  return sum;
}

/** The exact gradient dC/dY for dense P (times `exaggeration`) into `grad`; returns Z. `kernel` (n x n) receives (1 + d_ij^2)^-1. */
export function exactGradient(p: Float64Array, n: number, y: Float64Array, grad: Float64Array, exaggeration: number, kernel: Float64Array = new Float64Array(n * n)): number {
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const q = 1 / (1 + dx * dx + dy * dy);
      kernel[i * n + j] = q;
      kernel[j * n + i] = q;
      z += 2 * q;
    }
  }
  for (let i = 0; i < n; i++) {
    let gx = 0, gy = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const q = kernel[i * n + j];
      // dC/dy_i = 4 sum_j (p_ij - q_ij) (1 + d_ij^2)^-1 (y_i - y_j)  (2008, eq. 5)
      const w = (exaggeration * p[i * n + j] - q / z) * q;
      gx += w * (y[2 * i] - y[2 * j]);
      gy += w * (y[2 * i + 1] - y[2 * j + 1]);
    }
    grad[2 * i] = 4 * gx;
    grad[2 * i + 1] = 4 * gy;
  }
  return z;
}

/** KL(P || Q) for dense P at coordinates y, computed from scratch. */
export function exactKl(p: Float64Array, n: number, y: Float64Array): number {
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      z += 1 / (1 + dx * dx + dy * dy);
    }
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const pv = p[i * n + j];
      if (i === j || pv <= 0) continue;
      const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      sum += pv * Math.log(pv / Math.max(1 / ((1 + dx * dx + dy * dy) * z), Number.MIN_VALUE));
    }
  }
  return sum;
}

function sparseModel(p: SparseAffinities, theta: number): GradientModel {
  const tree = new QuadTree();
  const repulsive = new Float64Array(2 * p.n);
  return {
    gradient: (y, grad, exaggeration) => barnesHutGradient(p, y, grad, exaggeration, theta, tree, repulsive),
    kl: (y, z) => sparseKl(p, y, z),
  };
}

function denseModel(p: Float64Array, n: number): GradientModel {
  const kernel = new Float64Array(n * n);
  return {
    gradient: (y, grad, exaggeration) => exactGradient(p, n, y, grad, exaggeration, kernel),
    kl: (y) => exactKl(p, n, y),
  };
}

/** The input affinities of n rows: dense for the exact method, sparse over 3u neighbours otherwise. */
export async function tsneAffinities(rows: Float32Array, n: number, dim: number, perplexity: number, exact: boolean): Promise<{ dense?: Float64Array; sparse?: SparseAffinities }> {
  if (exact) return { dense: denseAffinities(rows, n, dim, perplexity) };
  const k = Math.min(n - 1, Math.floor(3 * perplexity));
  const { indices, squaredDistances } = await nearestNeighbors(rows, n, dim, k);
  return { sparse: sparseAffinities(indices, squaredDistances, n, k, perplexity) };
}

/** Runs t-SNE on n row vectors of `dim` values and returns 2-D coordinates. */
export async function tsne(rows: Float32Array, n: number, dim: number, opts: TsneOptions): Promise<TsneResult> {
  if (n < 2) throw new RangeError(`t-SNE needs at least 2 points, got ${n}`);
  const perplexity = Math.min(opts.perplexity, maxPerplexity(n));
  const affinities = await tsneAffinities(rows, n, dim, perplexity, opts.exact);
  const model = affinities.dense ? denseModel(affinities.dense, n) : sparseModel(affinities.sparse!, opts.theta);
  return optimizeEmbedding(model, n, perplexity, opts);
}

function optimizeEmbedding(model: GradientModel, n: number, perplexity: number, opts: TsneOptions): TsneResult {
  const exaggeration = opts.earlyExaggeration ?? 12;
  const exaggerationIterations = Math.min(opts.exaggerationIterations ?? 250, opts.iterations);
  const learningRate = opts.learningRate ?? Math.max(n / exaggeration / 4, 50);
  const reportEvery = opts.reportEvery ?? 50;
  const y = new Float64Array(2 * n);
  // Small random start (2008, Algorithm 1: N(0, 1e-4 I)).
  for (let i = 0; i < 2 * n; i++) y[i] = 1e-4 * gaussian(opts.random);
  const grad = new Float64Array(2 * n);
  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const klHistory: Array<{ iteration: number; kl: number }> = [];
  let z = 0;
  for (let iteration = 1; iteration <= opts.iterations; iteration++) {
    const exaggerating = iteration <= exaggerationIterations;
    const momentum = exaggerating ? INITIAL_MOMENTUM : FINAL_MOMENTUM;
    z = model.gradient(y, grad, exaggerating ? exaggeration : 1);
    for (let d = 0; d < 2 * n; d++) {
      // Gains grow where the gradient changes sign against the last step and shrink where it keeps it.
      gains[d] = Math.sign(grad[d]) !== Math.sign(update[d]) ? gains[d] + 0.2 : Math.max(MIN_GAIN, gains[d] * 0.8);
      update[d] = momentum * update[d] - learningRate * gains[d] * grad[d];
      y[d] += update[d];
    }
    let meanX = 0, meanY = 0;
    for (let i = 0; i < n; i++) {
      meanX += y[2 * i];
      meanY += y[2 * i + 1];
    }
    meanX /= n;
    meanY /= n;
    for (let i = 0; i < n; i++) {
      y[2 * i] -= meanX;
      y[2 * i + 1] -= meanY;
    }
    if (iteration % reportEvery === 0 || iteration === opts.iterations) {
      // KL at the positions the gradient was taken at would need the old y; Z is refreshed instead.
      z = model.gradient(y, grad, 1);
      const kl = model.kl(y, z);
      klHistory.push({ iteration, kl });
      opts.onProgress?.(iteration, kl);
    }
  }
  return { coordinates: y, klHistory, finalKl: klHistory.length ? klHistory[klHistory.length - 1].kl : model.kl(y, z), perplexity };
}
