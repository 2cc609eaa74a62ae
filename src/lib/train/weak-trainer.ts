// The training loop of the weak model: batches of (image, sampled word, negatives), SGD with
// momentum, augmentation, and the validation precision/recall of the report §3.1.
import { tf } from '../backend/tf.js';
import { LAYER, featureModel, headVariables, towerVariables, wordKernel } from '../models/weak-model.js';
import { applyDropout, fullSoftmaxLoss, sampledSoftmaxLoss } from '../models/word-losses.js';
import { attentionLoss, fiveCaseScores, typeLayer } from '../models/type-attention.js';
import { precisionRecallAtK, type PrecisionRecall } from '../metrics/ranking.js';
import { sampleBatch, type WordIndex, type WordSampling } from './word-sampler.js';
import type { Random } from '../random.js';
import { ParallelGradients, type ParallelTask, type Shard } from './parallel-gradients.js';
import { takeValues } from '../backend/read.js';
import { shardBounds } from '../backend/pool.js';
import { batchPixels, cropPixels, drawCrops, inputSides, shareImageStore, sharedImageStore, type ImageStore, type InputShape, type SharedImages } from '../image/batch.js';

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
  /** Nearest words from fixed vectors (word2vec: report §4.2) instead of the current word matrix. */
  closeWords?: (word: number) => Int32Array;
  /** Fashion-type attention (report §4.3): per-word type targets [K, T], entropy mask [K], loss weight. */
  types?: { targets: Float32Array; entropy: Float32Array; weight: number };
}

/** Variables in a fixed order, head first, so the optimizer's slots line up across the head and full phases. */
function trainableInOrder(model: tf.LayersModel, headOnly: boolean): tf.Variable[] {
  return headOnly ? headVariables(model) : [...headVariables(model), ...towerVariables(model)];
}

/** Nearest words of each requested word by cosine in the current word matrix (report §4.2). */
async function nearestWordsTable(model: tf.LayersModel, words: Int32Array, count: number): Promise<Map<number, Int32Array>> {
  const table = new Map<number, Int32Array>();
  const unique = Int32Array.from(new Set(words));
  const indices = tf.tidy(() => {
    const wt = tf.transpose(wordKernel(model)) as tf.Tensor2D; // [K, d]
    const unit = tf.div(wt, tf.add(tf.norm(wt, 'euclidean', 1, true), 1e-8)) as tf.Tensor2D;
    const queries = tf.gather(unit, tf.tensor1d(unique, 'int32'));
    const similarity = tf.matMul(queries, unit, false, true);
    return tf.topk(similarity, Math.min(count + 1, wt.shape[0])).indices;
  });
  const width = indices.shape[1] as number;
  const flat = (await takeValues(indices)) as Int32Array;
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

/** The random part of a step, drawn in one fixed order: examples, close negatives, crops, dropout. */
interface WeakDraw {
  images: Int32Array;
  positives: Int32Array;
  candidates: Int32Array;
  crops: Int32Array;
  mask: Float32Array;
}

async function drawWeakStep(models: WeakModels, store: ImageStore, index: WordIndex, random: Random, options: StepOptions): Promise<WeakDraw> {
  const batch = sampleBatch(index, random, { batchSize: options.batchSize, negatives: options.negatives, sampling: options.sampling });
  if (options.closeShare > 0 && options.loss === 'sampled') {
    const table = options.closeWords ? null : await nearestWordsTable(models.full, batch.positives, options.closeCount);
    batch.candidates = resampleWithClose(index, random, batch, options, options.closeWords ?? ((w) => table!.get(w) ?? new Int32Array(0)));
  }
  const crops = drawCrops(store, batch.images.length, options.inputSize, random);
  const dim = (models.embedding.outputs[0].shape[1] as number);
  const mask = options.dropout > 0 ? dropoutMask(random, options.batchSize * dim, options.dropout) : new Float32Array(0);
  return { ...batch, crops, mask };
}

/** What the loss needs besides the draw (plain data: it crosses to the training workers). */
type LossOptions = Pick<StepOptions, 'inputSize' | 'negatives' | 'loss' | 'dropout' | 'headOnly' | 'freezeBn'>;

/** The type-attention terms of the loss (report 4.3): the layer and its per-word type targets. */
interface TypeTerms {
  layer: NonNullable<ReturnType<typeof typeLayer>>;
  targets: tf.Tensor2D;
  entropy: tf.Tensor1D;
  weight: number;
}

/** Mean loss of the rows of a draw (the whole batch, or one worker's shard of it). */
function weakLoss(models: WeakModels, store: ImageStore, draw: WeakDraw, options: LossOptions, types: TypeTerms | null = null): tf.Scalar {
  const rows = draw.images.length;
  const { height, width } = inputSides(options.inputSize);
  const x = tf.tensor4d(cropPixels(store, draw.images, options.inputSize, draw.crops), [rows, height, width, 3]);
  let z = models.embedding.apply(x, { training: !options.headOnly && !options.freezeBn }) as tf.Tensor2D;
  if (options.dropout > 0) z = applyDropout(z, draw.mask, options.dropout);
  const positives = tf.tensor1d(draw.positives, 'int32');
  const candidates = () => tf.tensor2d(draw.candidates, [rows, 1 + options.negatives], 'int32');
  if (types) return attentionLoss(z, types.layer.weightsOf(), types.layer.types, positives, options.loss === 'sampled' ? candidates() : null, types.targets, types.entropy, types.weight);
  const kernel = wordKernel(models.full) as unknown as tf.Tensor2D;
  return options.loss === 'full' ? fullSoftmaxLoss(z, kernel, positives) : sampledSoftmaxLoss(z, kernel, candidates());
}

/** Scales the tower's gradients (--backbone-lr), applies them once and disposes them. */
function applyWeakGradients(model: tf.LayersModel, optimizer: tf.Optimizer, grads: tf.NamedTensorMap, options: StepOptions): void {
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
  tf.dispose(Object.values(grads));
}

/** One optimisation step in this thread; returns the batch loss, still on the device (the loop reads it). */
export async function trainStep(
  models: WeakModels,
  optimizer: tf.Optimizer,
  store: ImageStore,
  index: WordIndex,
  random: Random,
  options: StepOptions,
): Promise<tf.Scalar> {
  const draw = await drawWeakStep(models, store, index, random, options);
  const layer = options.types ? typeLayer(models.full) : null;
  const types = layer && options.types
    ? { layer, targets: tf.tensor2d(options.types.targets, [index.vocabularySize, layer.types]), entropy: tf.tensor1d(options.types.entropy), weight: options.types.weight }
    : null;
  const { value, grads } = tf.variableGrads(() => weakLoss(models, store, draw, options, types), trainableInOrder(models.full, options.headOnly));
  applyWeakGradients(models.full, optimizer, grads, options);
  if (types) tf.dispose([types.targets, types.entropy]);
  return value;
}

/** One step with the batch's gradient computed by the training workers (see parallel-gradients.ts). */
export async function trainStepParallel(
  parallel: ParallelGradients,
  models: WeakModels,
  optimizer: tf.Optimizer,
  store: ImageStore,
  index: WordIndex,
  random: Random,
  options: StepOptions,
): Promise<number> {
  const draw = await drawWeakStep(models, store, index, random, options);
  const width = 1 + options.negatives;
  const dim = draw.mask.length / options.batchSize;
  const shards: Shard[] = shardBounds(options.batchSize, parallel.size).map(([start, end]) => ({
    weight: end - start,
    data: {
      images: draw.images.slice(start, end), positives: draw.positives.slice(start, end), candidates: draw.candidates.slice(start * width, end * width),
      crops: draw.crops.slice(3 * start, 3 * end), mask: draw.mask.slice(start * dim, end * dim),
    } satisfies WeakDraw,
  }));
  const lossOptions: LossOptions = { inputSize: options.inputSize, negatives: options.negatives, loss: options.loss, dropout: options.dropout, headOnly: options.headOnly, freezeBn: options.freezeBn };
  const { loss, grads } = await parallel.gradients(trainableInOrder(models.full, options.headOnly), shards, lossOptions);
  applyWeakGradients(models.full, optimizer, grads, options);
  return loss;
}

type SharedWeak = SharedImages & { types?: StepOptions['types']; validation?: SharedImages };

/**
 * Starts the training workers of the weak model on `store`'s images (shared, see shareImageStore);
 * with type attention, each worker holds the per-word type targets too (its loss is a mean over rows);
 * with `validation`, they hold those images too and score them for evaluateTagging.
 */
export function openWeakParallel(model: tf.LayersModel, store: ImageStore, workers: number, types?: StepOptions['types'], validation?: ImageStore): Promise<ParallelGradients> {
  const shared: SharedWeak = { ...shareImageStore(store), ...(types ? { types } : {}), ...(validation?.pixels.length ? { validation: shareImageStore(validation) } : {}) };
  return ParallelGradients.open({ model, workers, task: 'weak', shared });
}

/** The weak model's loss in a training worker. */
export function weakParallelTask(model: tf.LayersModel, shared: unknown): ParallelTask {
  const s = shared as SharedWeak;
  const store = sharedImageStore(s);
  const models = weakModels(model);
  const layer = s.types ? typeLayer(model) : null;
  const types = layer && s.types
    ? { layer, targets: tf.keep(tf.tensor2d(s.types.targets, [s.types.targets.length / layer.types, layer.types])), entropy: tf.keep(tf.tensor1d(s.types.entropy)), weight: s.types.weight }
    : null;
  const validation = s.validation ? sharedImageStore(s.validation) : null;
  const scorer = tagScorer(model);
  return {
    loss: (shard, options) => weakLoss(models, store, shard as WeakDraw, options as LossOptions, types),
    // Validation scores of a share of the held-out images (inference mode: no statistics move).
    outputs(shard, options) {
      if (!validation) throw new Error('the workers were opened without validation images');
      const { images } = shard as { images: Int32Array };
      const { inputSize } = options as { inputSize: InputShape };
      const { height, width } = inputSides(inputSize);
      return scorer.score(tf.tensor4d(batchPixels(validation, images, inputSize), [images.length, height, width, 3]));
    },
  };
}

/**
 * Rewrites the negatives of a drawn batch so that `closeShare` of them are drawn at random from the
 * positive's `closeCount` nearest words outside the image's bag (the report §4.2: 3 of the top 10).
 */
export function resampleWithClose(index: WordIndex, random: Random, batch: { images: Int32Array; positives: Int32Array; candidates: Int32Array }, options: Pick<StepOptions, 'negatives' | 'closeShare' | 'closeCount'>, closeWords: (w: number) => Int32Array): Int32Array {
  const width = 1 + options.negatives;
  const out = Int32Array.from(batch.candidates);
  const closeCount = Math.round(options.negatives * options.closeShare);
  for (let row = 0; row < batch.positives.length; row++) {
    const bag = new Set(index.bags[batch.images[row]]);
    const chosen = new Set<number>();
    const pool = Array.from(closeWords(batch.positives[row]).subarray(0, options.closeCount)).filter((w) => !bag.has(w) && w !== batch.positives[row]);
    // A partial Fisher-Yates shuffle: closeCount of the pool, uniformly.
    for (let i = 0; i < pool.length && chosen.size < closeCount; i++) {
      const j = i + random.int(pool.length - i);
      [pool[i], pool[j]] = [pool[j], pool[i]];
      chosen.add(pool[i]);
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

/**
 * The held-out images an epoch scores: all of them, or `count` spread evenly through them (image
 * floor(i n / count) for i < count), so a capped validation still samples the whole input and is the
 * same set every epoch and on --resume.
 */
export function validationSubset<T>(held: { pixels: T[]; bags: Int32Array[] }, count: number): { pixels: T[]; bags: Int32Array[] } {
  const n = held.bags.length;
  if (count <= 0 || count >= n) return held;
  const picks = Array.from({ length: count }, (_, i) => Math.floor((i * n) / count));
  return { pixels: picks.map((i) => held.pixels[i]), bags: picks.map((i) => held.bags[i]) };
}

/**
 * Validation precision@k and recall@k over the full vocabulary. With `parallel` (train-weak's workers,
 * opened with this store as their validation images), the workers score shares of each chunk of
 * images and this thread only ranks; the scores are the ones this thread computes, on the same kernels.
 */
export async function evaluateTagging(model: tf.LayersModel, store: ImageStore, bags: Int32Array[], inputSize: InputShape, ks: number[], parallel: ParallelGradients | null = null): Promise<PrecisionRecall> {
  const scores = await validationScores(model, store, bags.map((_, i) => i), inputSize, parallel);
  const vocabularySize = model.getLayer(LAYER.words).outputShape[1] as number;
  return precisionRecallAtK(scores, vocabularySize, bags, ks);
}

/** Validation scores of `images` of the store (centre crops), [n, width] row-major: on this thread, or on the workers. */
export function validationScores(model: tf.LayersModel, store: ImageStore, images: ArrayLike<number>, inputSize: InputShape, parallel: ParallelGradients | null = null): Promise<Float32Array> {
  return parallel ? scoreImagesParallel(parallel, scoreWidth(model), images, inputSize) : scoreImages(model, store, images, inputSize);
}

/** Columns of a validation score row: one per word (with type attention too: each word's best case). */
function scoreWidth(model: tf.LayersModel): number {
  return typeLayer(model)?.units ?? (model.getLayer(LAYER.words).outputShape[1] as number);
}

/** How validation scores a batch of centre crops: word scores, or with type attention each word's best over the five type vectors (report §4.3). */
interface TagScorer {
  width: number;
  score(x: tf.Tensor4D): tf.Tensor2D;
}

function tagScorer(model: tf.LayersModel): TagScorer {
  const layer = typeLayer(model);
  const width = scoreWidth(model);
  if (!layer) return { width, score: (x) => model.predict(x) as tf.Tensor2D };
  const embedding = featureModel(model, 'embedding');
  return { width, score: (x) => fiveCaseScores(embedding.predict(x) as tf.Tensor2D, layer.weightsOf().kernel, layer.types) };
}

/** Validation scores of `images` of the store, [n, width] row-major, in batches on this thread. */
async function scoreImages(model: tf.LayersModel, store: ImageStore, images: ArrayLike<number>, inputSize: InputShape, batchSize = 64): Promise<Float32Array> {
  const { height, width } = inputSides(inputSize);
  const scorer = tagScorer(model);
  const out = new Float32Array(images.length * scorer.width);
  for (let start = 0; start < images.length; start += batchSize) {
    const ids = Array.from({ length: Math.min(batchSize, images.length - start) }, (_, i) => images[start + i]);
    const pixels = batchPixels(store, ids, inputSize);
    const scores = tf.tidy(() => scorer.score(tf.tensor4d(pixels, [ids.length, height, width, 3])));
    out.set(await takeValues(scores), start * scorer.width);
  }
  return out;
}

/** The same scores from the workers: each chunk of `batchSize` images per worker is split between them, rows back in order. */
async function scoreImagesParallel(parallel: ParallelGradients, width: number, images: ArrayLike<number>, inputSize: InputShape, batchSize = 64): Promise<Float32Array> {
  const out = new Float32Array(images.length * width);
  const chunk = batchSize * parallel.size;
  for (let start = 0; start < images.length; start += chunk) {
    const count = Math.min(chunk, images.length - start);
    const shards: Shard[] = shardBounds(count, parallel.size).map(([a, b]) => ({ weight: b - a, data: { images: Int32Array.from({ length: b - a }, (_, i) => images[start + a + i]) } }));
    const rows = await parallel.infer(shards, { inputSize });
    let offset = start * width;
    for (const r of rows) {
      out.set(r, offset);
      offset += r.length;
    }
  }
  return out;
}

/** The rows a feature net (featureModel, stageFeatureModel of the weak model) gives every image in the store, centre crops, [n, dim]. */
export async function embedStore(features: tf.LayersModel, store: ImageStore, inputSize: InputShape, batchSize = 64): Promise<{ rows: Float32Array; dim: number }> {
  const { height, width } = inputSides(inputSize);
  const dim = features.outputs[0].shape[1] as number;
  const count = store.pixels.length;
  const rows = new Float32Array(count * dim);
  for (let start = 0; start < count; start += batchSize) {
    const ids = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const pixels = batchPixels(store, ids, inputSize);
    const out = tf.tidy(() => features.predict(tf.tensor4d(pixels, [ids.length, height, width, 3])) as tf.Tensor);
    rows.set(await takeValues(out), start * dim);
  }
  return { rows, dim };
}
