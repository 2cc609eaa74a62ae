// A linear probe as it is usually measured (scikit-learn's LogisticRegression): multinomial logistic
// regression on standardised features, L2 penalty, fitted to convergence by full-batch L-BFGS, the
// penalty chosen on a validation split. Adam at one learning rate with early stopping (train-classifier's
// head) stops after an epoch or two on 1280-d features and under-fits; this does not depend on a rate.
import { tf } from '../backend/tf.js';
import { takeAll, takeValues } from '../backend/read.js';

/** Rows of a feature matrix with their class indices; `x` is row-major [n, dim]. */
export interface ProbeData {
  x: Float32Array;
  labels: ArrayLike<number>;
  dim: number;
}

export interface ProbeFit {
  /** [dim, classes] row-major, on the raw (unstandardised) features: logits = x·weights + bias. */
  weights: Float32Array;
  bias: Float32Array;
  classes: number;
  dim: number;
  l2: number;
  iterations: number;
  /** Penalised objective at the end and its gradient's largest entry (0 at the optimum). */
  loss: number;
  gradientMax: number;
}

export interface ProbeOptions {
  classes: number;
  /** Per-class loss weight (balanced: n / (K n_c)); all 1 when absent. */
  classWeights?: ArrayLike<number>;
  /** Per-row loss weight of the training rows, multiplied with the class weight; all 1 when absent. */
  sampleWeights?: ArrayLike<number>;
  /** λ of the penalty (λ/2)·‖W‖² added to the weighted mean cross-entropy; the bias is not penalised. */
  l2: number;
  maxIterations?: number;
  /** Stop when every gradient entry is below this. */
  tolerance?: number;
  /** Start from this fit (same classes and dim), e.g. the previous λ of a sweep. */
  start?: ProbeFit;
}

/** Per-column mean and standard deviation of `data` (columns that do not vary get 1). */
export function featureScaling(data: { x: ArrayLike<number>; dim: number }): { mean: Float64Array; std: Float64Array } {
  const { x, dim } = data;
  const n = x.length / dim;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= n || 1;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) sq[j] += (x[i * dim + j] - mean[j]) ** 2;
  const std = sq.map((s) => Math.sqrt(s / (n || 1))).map((s) => (s > 1e-12 ? s : 1));
  return { mean, std };
}

function standardised(data: ProbeData, scaling: { mean: Float64Array; std: Float64Array }): Float32Array {
  const out = new Float32Array(data.x.length);
  for (let i = 0; i < out.length; i++) {
    const j = i % data.dim;
    out[i] = (data.x[i] - scaling.mean[j]) / scaling.std[j];
  }
  return out;
}

/**
 * Fits the probe on `train` (standardised with its own mean and deviation; the returned weights are
 * folded back onto raw features). L-BFGS (10 pairs) with a backtracking Armijo line search: the
 * objective is convex, so it converges to the one optimum whatever the start.
 */
export async function fitLinearProbe(train: ProbeData, options: ProbeOptions): Promise<ProbeFit> {
  const scaling = featureScaling(train);
  const { dim } = train;
  const k = options.classes;
  const n = train.x.length / dim;
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-4;
  const lambda = options.l2;
  const cw = options.classWeights;
  const sampleWeight = new Float32Array(n);
  for (let i = 0; i < n; i++) sampleWeight[i] = (cw ? cw[train.labels[i]] : 1) * (options.sampleWeights ? options.sampleWeights[i] : 1);
  const totalWeight = sampleWeight.reduce((a, b) => a + b, 0) || 1;

  const x = tf.tensor2d(standardised(train, scaling), [n, dim]);
  const y = tf.oneHot(tf.tensor1d(Array.from(train.labels), 'int32'), k).toFloat();
  const w = tf.tensor2d(sampleWeight.map((v) => v / totalWeight), [n, 1]);
  const size = dim * k + k;

  // Objective and gradient at theta = [W (dim x k), b (k)] on the standardised features.
  const evaluate = async (theta: Float64Array): Promise<{ f: number; g: Float64Array }> => {
    const [f, gw, gb] = tf.tidy(() => {
      const weights = tf.tensor2d(Float32Array.from(theta.subarray(0, dim * k)), [dim, k]);
      const bias = tf.tensor1d(Float32Array.from(theta.subarray(dim * k)));
      const logits = tf.add(tf.matMul(x, weights), bias);
      const logProbs = tf.logSoftmax(logits);
      const ce = tf.sum(tf.mul(w, tf.neg(tf.sum(tf.mul(y, logProbs), 1, true))));
      const dLogits = tf.mul(w, tf.sub(tf.exp(logProbs), y));
      return [ce, tf.add(tf.matMul(x, dLogits, true, false), tf.mul(lambda, weights)), tf.sum(dLogits, 0)];
    });
    let penalty = 0;
    for (let i = 0; i < dim * k; i++) penalty += theta[i] * theta[i];
    const [fValue, gwValues, gbValues] = await takeAll([f, gw, gb]);
    const g = new Float64Array(size);
    g.set(gwValues, 0);
    g.set(gbValues, dim * k);
    return { f: fValue[0] + (lambda / 2) * penalty, g };
  };

  const theta = new Float64Array(size);
  if (options.start) {
    // The start's raw-feature weights back onto standardised features: W_std = W·std, b_std = b + mean·W.
    const s = options.start;
    for (let j = 0; j < dim; j++) for (let c = 0; c < k; c++) theta[j * k + c] = s.weights[j * k + c] * scaling.std[j];
    for (let c = 0; c < k; c++) {
      let b = s.bias[c];
      for (let j = 0; j < dim; j++) b += scaling.mean[j] * s.weights[j * k + c];
      theta[dim * k + c] = b;
    }
  }
  let { f, g } = await evaluate(theta);
  const pairs: Array<{ s: Float64Array; y: Float64Array; rho: number }> = [];
  let iterations = 0;
  const maxAbs = (v: Float64Array) => v.reduce((m, a) => Math.max(m, Math.abs(a)), 0);
  while (iterations < maxIterations && maxAbs(g) > tolerance) {
    iterations++;
    // Two-loop recursion: d = -H g.
    const d = Float64Array.from(g, (v) => -v);
    const alpha: number[] = [];
    for (let p = pairs.length - 1; p >= 0; p--) {
      const a = pairs[p].rho * dot(pairs[p].s, d);
      alpha[p] = a;
      axpy(-a, pairs[p].y, d);
    }
    const gamma = pairs.length ? dot(pairs[pairs.length - 1].s, pairs[pairs.length - 1].y) / dot(pairs[pairs.length - 1].y, pairs[pairs.length - 1].y) : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let i = 0; i < size; i++) d[i] *= gamma;
    for (let p = 0; p < pairs.length; p++) axpy(alpha[p] - pairs[p].rho * dot(pairs[p].y, d), pairs[p].s, d);
    let slope = dot(g, d);
    if (slope >= 0) {
      // Not a descent direction (float32 gradients): restart from steepest descent.
      pairs.length = 0;
      for (let i = 0; i < size; i++) d[i] = -g[i] / Math.max(1, Math.sqrt(dot(g, g)));
      slope = dot(g, d);
    }
    let step = 1;
    let next = theta.slice();
    let trial = { f, g };
    for (let tries = 0; tries < 30; tries++) {
      for (let i = 0; i < size; i++) next[i] = theta[i] + step * d[i];
      trial = await evaluate(next);
      if (trial.f <= f + 1e-4 * step * slope) break;
      step /= 2;
    }
    if (!(trial.f < f)) break;
    const s = new Float64Array(size);
    const yv = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      s[i] = next[i] - theta[i];
      yv[i] = trial.g[i] - g[i];
    }
    const sy = dot(s, yv);
    if (sy > 1e-12) {
      pairs.push({ s, y: yv, rho: 1 / sy });
      if (pairs.length > 10) pairs.shift();
    }
    const decrease = f - trial.f;
    theta.set(next);
    ({ f, g } = trial);
    if (decrease <= 1e-10 * Math.max(1, Math.abs(f))) break;
    next = theta.slice();
  }
  tf.dispose([x, y, w]);

  // Fold the standardisation into the weights: logits = ((x - mean) / std)·W + b.
  const weights = new Float32Array(dim * k);
  const bias = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let b = theta[dim * k + c];
    for (let j = 0; j < dim; j++) {
      const v = theta[j * k + c] / scaling.std[j];
      weights[j * k + c] = v;
      b -= scaling.mean[j] * v;
    }
    bias[c] = b;
  }
  return { weights, bias, classes: k, dim, l2: lambda, iterations, loss: f, gradientMax: maxAbs(g) };
}

/** Logits [n, classes] of raw feature rows under a fit. */
export async function probeLogits(fit: ProbeFit, x: Float32Array): Promise<Float32Array> {
  const n = x.length / fit.dim;
  return (await takeValues(tf.tidy(() => tf.add(tf.matMul(tf.tensor2d(x, [n, fit.dim]), tf.tensor2d(fit.weights, [fit.dim, fit.classes])), tf.tensor1d(fit.bias))))) as Float32Array;
}

/** Predicted class of each row. */
export async function probePredict(fit: ProbeFit, x: Float32Array): Promise<Int32Array> {
  const logits = await probeLogits(fit, x);
  const n = x.length / fit.dim;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < fit.classes; c++) if (logits[i * fit.classes + c] > logits[i * fit.classes + best]) best = c;
    out[i] = best;
  }
  return out;
}

/**
 * Fits one probe per λ in `l2s` (strongest penalty first, each starting from the last) and keeps the
 * one with the best validation accuracy (ties: the stronger penalty). Returns every λ's score too.
 */
export async function chooseLinearProbe(train: ProbeData, val: ProbeData, options: Omit<ProbeOptions, 'l2' | 'start'> & { l2s: number[] }): Promise<{ fit: ProbeFit; sweep: Array<{ l2: number; valAccuracy: number; iterations: number }> }> {
  const l2s = [...options.l2s].sort((a, b) => b - a);
  const sweep: Array<{ l2: number; valAccuracy: number; iterations: number }> = [];
  let best: { fit: ProbeFit; accuracy: number } | null = null;
  let previous: ProbeFit | undefined;
  for (const l2 of l2s) {
    const fit = await fitLinearProbe(train, { ...options, l2, start: previous });
    previous = fit;
    const predicted = await probePredict(fit, val.x);
    let correct = 0;
    for (let i = 0; i < predicted.length; i++) if (predicted[i] === val.labels[i]) correct++;
    const accuracy = predicted.length ? correct / predicted.length : 0;
    sweep.push({ l2, valAccuracy: accuracy, iterations: fit.iterations });
    if (!best || accuracy > best.accuracy) best = { fit, accuracy };
  }
  return { fit: best!.fit, sweep };
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] += a * x[i];
}
