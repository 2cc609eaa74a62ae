// The training loop of the weak model: batches of (image, sampled word, negatives), SGD with
// momentum, augmentation, and the validation precision/recall of the report §3.1.
import { tf } from '../backend/tf.js';
import { LAYER, featureModel, headVariables, towerVariables, wordKernel } from '../models/weak-model.js';
import { applyDropout, fullSoftmaxLoss, sampledSoftmaxLoss } from '../models/word-losses.js';
import { precisionRecallAtK, type PrecisionRecall } from '../metrics/ranking.js';
import { sampleBatch, type WordIndex, type WordSampling } from './word-sampler.js';
import type { Random } from '../random.js';

/** Decoded images kept as bytes at `storedSize` (a margin above the input size for random crops). */
export interface ImageStore {
  pixels: Uint8Array[];
  storedSize: number;
}

/**
 * Pixels of the given images as a [n, size, size, 3] float batch in [0, 1]. With a generator, each
 * image gets a random crop and a random horizontal flip (augmentation); without, the centre crop.
 */
export function batchPixels(store: ImageStore, images: ArrayLike<number>, inputSize: number, random?: Random): Float32Array {
  const { storedSize } = store;
  const out = new Float32Array(images.length * inputSize * inputSize * 3);
  const margin = storedSize - inputSize;
  for (let n = 0; n < images.length; n++) {
    const src = store.pixels[images[n]];
    const x0 = random ? random.int(margin + 1) : margin >> 1;
    const y0 = random ? random.int(margin + 1) : margin >> 1;
    const flip = random ? random.next() < 0.5 : false;
    let o = n * inputSize * inputSize * 3;
    for (let y = 0; y < inputSize; y++) {
      const row = (y + y0) * storedSize;
      for (let x = 0; x < inputSize; x++) {
        const sx = flip ? x0 + inputSize - 1 - x : x0 + x;
        const s = (row + sx) * 3;
        out[o++] = src[s] / 255;
        out[o++] = src[s + 1] / 255;
        out[o++] = src[s + 2] / 255;
      }
    }
  }
  return out;
}

export interface StepOptions {
  batchSize: number;
  inputSize: number;
  negatives: number;
  loss: 'sampled' | 'full';
  sampling: WordSampling;
  dropout: number;
  /** Train only the projection and word matrix (the tower frozen, run in inference mode). */
  headOnly: boolean;
  closeShare: number;
  closeCount: number;
}

/** Variables in a fixed order, head first, so the optimizer's slots line up across the head and full phases. */
export function trainableInOrder(model: tf.LayersModel, headOnly: boolean): tf.Variable[] {
  return headOnly ? headVariables(model) : [...headVariables(model), ...towerVariables(model)];
}

/** Nearest words of each requested word by cosine in the current word matrix (report §4.2). */
export function nearestWordsTable(model: tf.LayersModel, words: Int32Array, count: number): Map<number, Int32Array> {
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
  const x = tf.tensor4d(pixels, [options.batchSize, options.inputSize, options.inputSize, 3]);
  const candidates = tf.tensor2d(batch.candidates, [options.batchSize, 1 + options.negatives], 'int32');
  const positives = tf.tensor1d(batch.positives, 'int32');
  const { value, grads } = tf.variableGrads(() => {
    let z = embeddingModel.apply(x, { training: !options.headOnly }) as tf.Tensor2D;
    if (options.dropout > 0) z = applyDropout(z, mask, options.dropout);
    const kernel = wordKernel(model) as unknown as tf.Tensor2D;
    return options.loss === 'full' ? fullSoftmaxLoss(z, kernel, positives) : sampledSoftmaxLoss(z, kernel, candidates);
  }, variables);
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
export function scoreImages(model: tf.LayersModel, store: ImageStore, images: ArrayLike<number>, inputSize: number, batchSize = 64): Float32Array {
  const vocabularySize = model.getLayer(LAYER.words).outputShape[1] as number;
  const out = new Float32Array(images.length * vocabularySize);
  for (let start = 0; start < images.length; start += batchSize) {
    const ids = Array.from({ length: Math.min(batchSize, images.length - start) }, (_, i) => images[start + i]);
    const pixels = batchPixels(store, ids, inputSize);
    const scores = tf.tidy(() => model.predict(tf.tensor4d(pixels, [ids.length, inputSize, inputSize, 3])) as tf.Tensor);
    out.set(scores.dataSync() as Float32Array, start * vocabularySize);
    scores.dispose();
  }
  return out;
}

/** Validation precision@k and recall@k over the full vocabulary. */
export function evaluateTagging(model: tf.LayersModel, store: ImageStore, bags: Int32Array[], inputSize: number, ks: number[]): PrecisionRecall {
  const images = bags.map((_, i) => i);
  const scores = scoreImages(model, store, images, inputSize);
  const vocabularySize = model.getLayer(LAYER.words).outputShape[1] as number;
  return precisionRecallAtK(scores, vocabularySize, bags, ks);
}
