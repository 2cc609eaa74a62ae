// The training loop of the weak model: batches of (image, sampled word, negatives), SGD with
// momentum, augmentation, and the validation precision/recall of the report §3.1.
import { tf } from '../backend/tf.js';
import { LAYER, featureModel, headVariables, towerVariables, wordKernel } from '../models/weak-model.js';
import { applyDropout, fullSoftmaxLoss, sampledSoftmaxLoss } from '../models/word-losses.js';
import { precisionRecallAtK, type PrecisionRecall } from '../metrics/ranking.js';
import { sampleBatch, type WordIndex, type WordSampling } from './word-sampler.js';
import type { Random } from '../random.js';
import { batchPixels, inputSides, type ImageStore, type InputShape } from '../image/batch.js';

export interface StepOptions {
  batchSize: number;
  inputSize: InputShape;
  negatives: number;
  loss: 'sampled' | 'full';
  sampling: WordSampling;
  dropout: number;
  /** Train only the projection and word matrix (the tower frozen, run in inference mode). */
  headOnly: boolean;
  /** Multiplier of the tower's gradients (SGD: of its learning rate) in the full phase; default 1. */
  towerLrScale?: number;
  /** Keep the tower's BatchNorm statistics frozen in the full phase (inference mode). */
  freezeBn?: boolean;
  closeShare: number;
  closeCount: number;
}

/** Variables in a fixed order, head first, so the optimizer's slots line up across the head and full phases. */
function trainableInOrder(model: tf.LayersModel, headOnly: boolean): tf.Variable[] {
  return headOnly ? headVariables(model) : [...headVariables(model), ...towerVariables(model)];
}

/** Nearest words of each requested word by cosine in the current word matrix (report §4.2). */
function nearestWordsTable(model: tf.LayersModel, words: Int32Array, count: number): Map<number, Int32Array> {
  const table = new Map<number, Int32Array>();
  const unique = Int32Array.from(new Set(words));
  const indices = tf.tidy(() => {
    const wt = tf.transpose(wordKernel(model)) as tf.Tensor2D; // [K, d]
    const unit = tf.div(wt, tf.add(tf.norm(wt, 'euclidean', 1, true), 1e-8)) as tf.Tensor2D;
    const queries = tf.gather(unit, tf.tensor1d(unique, 'int32'));
    const similarity = tf.matMul(queries, unit, false, true);
    return tf.topk(similarity, Math.min(count + 1, wt.shape[0])).indices;
  });
  const flat = indices.dataSync() as Int32Array;
  const width = indices.shape[1] as number;
  indices.dispose();
  unique.forEach((word, i) => table.set(word, flat.subarray(i * width, (i + 1) * width).filter((w) => w !== word)));
  return table;
}

/** The full model and its image -> embedding view (built once: they share weights). */
export interface WeakModels {
  full: tf.LayersModel;
  embedding: tf.LayersModel;
}

export function weakModels(full: tf.LayersModel): WeakModels {
  return { full, embedding: featureModel(full, 'embedding') };
}

/** One optimisation step; returns the batch loss. */
export function trainStep(
  models: WeakModels,
  optimizer: tf.Optimizer,
  store: ImageStore,
  index: WordIndex,
  random: Random,
  options: StepOptions,
): number {
  const { full: model, embedding: embeddingModel } = models;
  const batch = sampleBatch(index, random, { batchSize: options.batchSize, negatives: options.negatives, sampling: options.sampling });
  if (options.closeShare > 0 && options.loss === 'sampled') {
    const table = nearestWordsTable(model, batch.positives, options.closeCount);
    batch.candidates = resampleWithClose(index, random, batch, options, (w) => table.get(w) ?? new Int32Array(0));
  }
  const pixels = batchPixels(store, batch.images, options.inputSize, random);
  const dim = (embeddingModel.outputs[0].shape[1] as number);
  const mask = options.dropout > 0 ? dropoutMask(random, options.batchSize * dim, options.dropout) : new Float32Array(0);
  const variables = trainableInOrder(model, options.headOnly);
  const { height, width } = inputSides(options.inputSize);
  const x = tf.tensor4d(pixels, [options.batchSize, height, width, 3]);
  const candidates = tf.tensor2d(batch.candidates, [options.batchSize, 1 + options.negatives], 'int32');
  const positives = tf.tensor1d(batch.positives, 'int32');
  const { value, grads } = tf.variableGrads(() => {
    let z = embeddingModel.apply(x, { training: !options.headOnly && !options.freezeBn }) as tf.Tensor2D;
    if (options.dropout > 0) z = applyDropout(z, mask, options.dropout);
    const kernel = wordKernel(model) as unknown as tf.Tensor2D;
    return options.loss === 'full' ? fullSoftmaxLoss(z, kernel, positives) : sampledSoftmaxLoss(z, kernel, candidates);
  }, variables);
  const scale = options.towerLrScale ?? 1;
  if (scale !== 1 && !options.headOnly) {
    // With SGD (momentum included) scaling a variable's gradient scales its learning rate.
    const head = new Set(headVariables(model).map((v) => v.name));
    for (const name of Object.keys(grads)) {
      if (head.has(name)) continue;
      const scaled = tf.mul(grads[name], scale);
      grads[name].dispose();
      grads[name] = scaled;
    }
  }
  optimizer.applyGradients(grads);
  const loss = value.dataSync()[0];
  tf.dispose([x, candidates, positives, value]);
  tf.dispose(Object.values(grads));
  return loss;
}

/** Rewrites the negatives of a drawn batch so that `closeShare` of them are near words of the positive. */
function resampleWithClose(index: WordIndex, random: Random, batch: { images: Int32Array; positives: Int32Array; candidates: Int32Array }, options: StepOptions, closeWords: (w: number) => Int32Array): Int32Array {
  const width = 1 + options.negatives;
  const out = Int32Array.from(batch.candidates);
  const closeCount = Math.round(options.negatives * options.closeShare);
  for (let row = 0; row < batch.positives.length; row++) {
    const bag = new Set(index.bags[batch.images[row]]);
    const chosen = new Set<number>();
    for (const near of closeWords(batch.positives[row])) {
      if (chosen.size >= closeCount) break;
      if (!bag.has(near)) chosen.add(near);
    }
    for (let col = 1; col < width && chosen.size < options.negatives; col++) chosen.add(batch.candidates[row * width + col]);
    let guard = 0;
    while (chosen.size < options.negatives && guard++ < options.negatives * 100) {
      const w = random.int(index.vocabularySize);
      if (!bag.has(w)) chosen.add(w);
    }
    let col = 1;
    for (const w of chosen) if (col < width) out[row * width + col++] = w;
  }
  return out;
}

function dropoutMask(random: Random, size: number, rate: number): Float32Array {
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) mask[i] = random.next() < rate ? 0 : 1;
  return mask;
}

/** Word scores for images (centre crop), [n, K] row-major, computed in batches. */
function scoreImages(model: tf.LayersModel, store: ImageStore, images: ArrayLike<number>, inputSize: InputShape, batchSize = 64): Float32Array {
  const { height, width } = inputSides(inputSize);
  const vocabularySize = model.getLayer(LAYER.words).outputShape[1] as number;
  const out = new Float32Array(images.length * vocabularySize);
  for (let start = 0; start < images.length; start += batchSize) {
    const ids = Array.from({ length: Math.min(batchSize, images.length - start) }, (_, i) => images[start + i]);
    const pixels = batchPixels(store, ids, inputSize);
    const scores = tf.tidy(() => model.predict(tf.tensor4d(pixels, [ids.length, height, width, 3])) as tf.Tensor);
    out.set(scores.dataSync() as Float32Array, start * vocabularySize);
    scores.dispose();
  }
  return out;
}

/** Validation precision@k and recall@k over the full vocabulary. */
export function evaluateTagging(model: tf.LayersModel, store: ImageStore, bags: Int32Array[], inputSize: InputShape, ks: number[]): PrecisionRecall {
  const images = bags.map((_, i) => i);
  const scores = scoreImages(model, store, images, inputSize);
  const vocabularySize = model.getLayer(LAYER.words).outputShape[1] as number;
  return precisionRecallAtK(scores, vocabularySize, bags, ks);
}
