// Data-parallel training (src/lib/train/parallel-gradients.ts): two workers give the gradient this
// thread gives on the whole batch (the weak model; triplets mined over the batch; locate's loss
// parts), the same run twice gives the same bytes, BN moving means are the batch's, and no tensors
// pile up in the workers or here.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { selectBackend } from '../../src/lib/backend/select.js';
import { takeScalar, takeValues } from '../../src/lib/backend/read.js';
import { buildWeakModel } from '../../src/lib/models/weak-model.js';
import { buildWordIndex } from '../../src/lib/train/word-sampler.js';
import { openWeakParallel, trainStep, trainStepParallel, validationScores, weakModels, type StepOptions } from '../../src/lib/train/weak-trainer.js';
import { batchPixels, type ImageStore } from '../../src/lib/image/batch.js';
import { l2Normalize, mineSemiHardTriplets, pairwiseSquaredDistances, tripletHingeLoss } from '../../src/lib/similarity/triplet.js';
import { openTripletParallel, tripletGradients } from '../../src/lib/train/triplet-parallel.js';
import { cropPatches, locateLoss, sampleTrainingPatches } from '../../src/lib/models/locate.js';
import { locateGradients, openLocateParallel } from '../../src/lib/train/locate-parallel.js';
import { createRandom } from '../../src/lib/random.js';
import { trainingWorkers, type ParallelGradients } from '../../src/lib/train/parallel-gradients.js';
import type { BackendChoice } from '../../src/lib/backend/select.js';
import { cpus } from 'node:os';

await selectBackend({ requested: 'wasm', quiet: true });

const INPUT = 16;
const STORED = 18;
const WORDS = 12;
const IMAGES = 40;

function images(): ImageStore {
  const random = createRandom(9);
  const pixels = Array.from({ length: IMAGES }, () => Uint8Array.from({ length: STORED * STORED * 3 }, () => random.int(256)));
  return { pixels, storedSize: STORED };
}

const bags = Array.from({ length: IMAGES }, (_, i) => Int32Array.from([i % WORDS, (i * 5 + 1) % WORDS]).sort());
const index = buildWordIndex(bags, WORDS);

function model(): tf.LayersModel {
  return buildWeakModel({ inputSize: INPUT, width: 4, blocksPerStage: 1, stages: 2, projection: 8, vocabularySize: WORDS, seed: 4 });
}

function options(headOnly: boolean): StepOptions {
  return { batchSize: 10, inputSize: INPUT, negatives: 4, loss: 'sampled', sampling: 'uniform', dropout: 0.2, headOnly, closeShare: 0, closeCount: 5 };
}

function weights(m: tf.LayersModel): Float32Array[] {
  return m.weights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array));
}

function worstDifference(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i][j]) / Math.max(1, Math.abs(b[i][j]))))));
  return worst;
}

const engines: ParallelGradients[] = [];
afterAll(() => Promise.all(engines.map((e) => e.close())));

async function parallelRun(steps: number, headOnly: boolean): Promise<{ model: tf.LayersModel; losses: number[]; engine: ParallelGradients }> {
  const m = model();
  const store = images();
  const engine = await openWeakParallel(m, store, 2);
  engines.push(engine);
  const optimizer = tf.train.momentum(0.1, 0.9);
  const random = createRandom(7);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push(await trainStepParallel(engine, weakModels(m), optimizer, store, index, random, options(headOnly)));
  return { model: m, losses, engine };
}

async function singleRun(steps: number, headOnly: boolean): Promise<{ model: tf.LayersModel; losses: number[] }> {
  const m = model();
  const store = images();
  const optimizer = tf.train.momentum(0.1, 0.9);
  const random = createRandom(7);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push(await takeScalar(await trainStep(weakModels(m), optimizer, store, index, random, options(headOnly))));
  return { model: m, losses };
}

test('head phase (no batch statistics): two workers follow this thread to rounding', async () => {
  const single = await singleRun(3, true);
  const parallel = await parallelRun(3, true);
  parallel.losses.forEach((l, i) => assert.ok(Math.abs(l - single.losses[i]) < 1e-5, `step ${i}: loss ${l} vs ${single.losses[i]}`));
  const worst = worstDifference(weights(parallel.model), weights(single.model));
  assert.ok(worst < 1e-5, `largest relative weight difference ${worst}`);
});

test('full phase: the same seed and worker count give the same bytes; BN moving means are the batch\'s', async () => {
  const a = await parallelRun(3, false);
  const b = await parallelRun(3, false);
  assert.deepEqual(a.losses, b.losses);
  const wa = weights(a.model);
  const wb = weights(b.model);
  wa.forEach((w, i) => assert.ok(Buffer.from(w.buffer).equals(Buffer.from(wb[i].buffer)), `weight ${a.model.weights[i].name} differs`));
  // Each shard's moving mean moves toward its own mean; their average moves toward the batch mean.
  // Only the first BN sees the same inputs either way: later ones see shard-normalised activations.
  const single = await singleRun(1, false);
  const one = await parallelRun(1, false);
  const means = (m: tf.LayersModel) => m.weights.flatMap((w, i) => (/moving_mean/.test(w.name) ? [weights(m)[i]] : []));
  const [p, s] = [means(one.model).slice(0, 1), means(single.model).slice(0, 1)];
  assert.ok(p.length > 0, 'the tower has BatchNorm');
  const initial = means(model()).slice(0, 1);
  assert.ok(worstDifference(p, initial) > 1e-4, 'moving means moved');
  assert.ok(worstDifference(p, s) < 1e-5, `moving means differ from one thread's by ${worstDifference(p, s)}`);
});

test('memory stays flat: no tensors pile up in the workers or in this thread', async () => {
  const m = model();
  const store = images();
  const engine = await openWeakParallel(m, store, 2);
  engines.push(engine);
  const optimizer = tf.train.momentum(0.1, 0.9);
  const random = createRandom(3);
  const step = () => trainStepParallel(engine, weakModels(m), optimizer, store, index, random, options(false));
  for (let s = 0; s < 3; s++) await step();
  const before = { here: tf.memory().numTensors, workers: await engine.memory() };
  for (let s = 0; s < 30; s++) await step();
  assert.deepEqual({ here: tf.memory().numTensors, workers: await engine.memory() }, before);
});

test('a batch smaller than the worker count trains on the workers it fills', async () => {
  const m = model();
  const store = images();
  const engine = await openWeakParallel(m, store, 3);
  engines.push(engine);
  const loss = await trainStepParallel(engine, weakModels(m), tf.train.sgd(0.1), store, index, createRandom(1), { ...options(false), batchSize: 2 });
  assert.ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
});

test('the worker count: --workers wins, then ATELIER_TRAIN_WORKERS, then one per core; native backends train in this thread', () => {
  const wasm = { name: 'wasm' } as BackendChoice;
  assert.equal(trainingWorkers(wasm, 3, { ATELIER_TRAIN_WORKERS: '1' }), 3);
  assert.equal(trainingWorkers(wasm, 0, { ATELIER_TRAIN_WORKERS: '1' }), 1);
  assert.equal(trainingWorkers(wasm, 0, { ATELIER_TRAIN_WORKERS: 'x' }), cpus().length);
  assert.equal(trainingWorkers(wasm, 0, {}), cpus().length);
  assert.equal(trainingWorkers({ name: 'tensorflow' } as BackendChoice, 4, {}), 1);
});

// A tower without BatchNorm computes each row alone, so the workers' batch gradient must be this
// thread's to rounding also where the loss couples the rows (triplets) or divides by batch counts (locate).
function plainTower(outputs: number): tf.LayersModel {
  const input = tf.input({ shape: [INPUT, INPUT, 3] });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: tf.layers.dense({ units: outputs, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(pooled) as tf.SymbolicTensor });
}

/** The largest difference between two gradients, relative to the largest entry of its variable's gradient. */
function gradientDifference(a: tf.NamedTensorMap, b: tf.NamedTensorMap): number {
  let worst = 0;
  for (const name of Object.keys(b)) {
    const x = a[name].dataSync() as Float32Array;
    const y = b[name].dataSync() as Float32Array;
    const scale = y.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
    x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - y[i]) / scale)));
  }
  return worst;
}

test('triplets mined over the whole batch: two workers give this thread\'s loss and gradient', async () => {
  const m = plainTower(6);
  const store = images();
  const slots = Array.from({ length: 12 }, (_, i) => i);
  const groups = Int32Array.from(slots, (i) => i % 4);
  const variables = m.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor4d(batchPixels(store, slots, INPUT, createRandom(5)), [slots.length, INPUT, INPUT, 3]);
  const distances = () => pairwiseSquaredDistances(l2Normalize(m.apply(x) as tf.Tensor2D));
  const mined = mineSemiHardTriplets(await takeValues(tf.tidy(distances)), groups, 0.1);
  const single = tf.variableGrads(() => tripletHingeLoss(distances(), mined, 0.1), variables);
  const engine = await openTripletParallel(m, store, 2);
  engines.push(engine);
  const parallel = await tripletGradients(engine, variables, store, { slots, groups }, { inputSize: INPUT, margin: 0.1 }, createRandom(5));
  assert.deepEqual(Array.from(parallel.mined.negatives), Array.from(mined.negatives));
  assert.ok(Math.abs((await takeScalar(parallel.value)) - (await takeScalar(single.value))) < 1e-5);
  // The triplets' gradients largely cancel (entries ~1e-4 from terms ~1e-2): float32 sums in another
  // order differ by ~4e-4 of the largest entry; a shard lost or counted twice would by ~0.5.
  const worst = gradientDifference(parallel.grads, single.grads);
  assert.ok(worst < 5e-3, `largest gradient difference ${worst} of the largest entry`);
  tf.dispose([x, ...Object.values(single.grads), ...Object.values(parallel.grads)]);
});

test('locate: the workers\' loss parts add up to this thread\'s loss and gradient', async () => {
  const m = plainTower(5);
  const side = STORED;
  const pixels = images().pixels;
  const random = createRandom(8);
  const slots = [3, 7, 1, 12, 30];
  const box = { x: 0.2, y: 0.25, w: 0.5, h: 0.6 };
  // Soft classifier targets on some patches, box regression on the foreground ones, as train-locate draws them.
  const patches = slots.flatMap((_, i) => sampleTrainingPatches(box, 3 + (i % 2), random).map((p, k) => ({
    window: p.window, edges: p.edges, target: p.label === 1 ? 0.7 : 0.1, classified: (i + k) % 3 === 0 ? 0 : 1, regressed: p.label, image: i,
  })));
  const variables = m.trainableWeights.map((w) => w.read() as tf.Variable);
  const imageData = Float32Array.from(slots.flatMap((s) => Array.from(pixels[s], (v) => v / 255)));
  const batch = tf.tensor4d(imageData, [slots.length, side, side, 3]);
  const crops = cropPatches(batch, patches.map((p) => p.window), patches.map((p) => p.image), INPUT, INPUT);
  const column = (key: 'target' | 'classified' | 'regressed') => tf.tensor1d(patches.map((p) => p[key]));
  const single = tf.variableGrads(() => locateLoss(m.apply(crops) as tf.Tensor2D, column('target'), column('classified'), column('regressed'), tf.tensor2d(patches.flatMap((p) => p.edges), [patches.length, 4]), 2), variables);
  const engine = await openLocateParallel(m, pixels, side, 2);
  engines.push(engine);
  const parallel = await locateGradients(engine, variables, { slots, patches }, { patch: { height: INPUT, width: INPUT }, boxWeight: 2 });
  assert.ok(Math.abs(parallel.loss - (await takeScalar(single.value))) < 1e-5, `loss ${parallel.loss}`);
  const worst = gradientDifference(parallel.grads, single.grads);
  assert.ok(worst < 1e-4, `largest gradient difference ${worst} of the largest entry`);
  tf.dispose([batch, crops, ...Object.values(single.grads), ...Object.values(parallel.grads)]);
});

test('validation on the workers: after training steps, the workers score the held-out images as this thread does, rows in order', async () => {
  const m = model();
  const store = images();
  // 150 distinct held-out images: two chunks of 64 per worker and a last, smaller one.
  const other = createRandom(11);
  const held: ImageStore = { pixels: Array.from({ length: 150 }, () => Uint8Array.from({ length: STORED * STORED * 3 }, () => other.int(256))), storedSize: STORED };
  const engine = await openWeakParallel(m, store, 2, undefined, held);
  engines.push(engine);
  const optimizer = tf.train.momentum(0.1, 0.9);
  const random = createRandom(7);
  for (let s = 0; s < 3; s++) await trainStepParallel(engine, weakModels(m), optimizer, store, index, random, options(false));
  const ids = Array.from({ length: 150 }, (_, i) => (i * 7) % 150);
  const here = await validationScores(m, held, ids, INPUT);
  const there = await validationScores(m, held, ids, INPUT, engine);
  assert.equal(there.length, 150 * WORDS);
  let worst = 0;
  for (let i = 0; i < here.length; i++) worst = Math.max(worst, Math.abs(here[i] - there[i]));
  assert.ok(worst <= 1e-5, `worst difference ${worst}`);
  // A step after validation trains on the weights validation saw, and the next validation sees the step.
  await trainStepParallel(engine, weakModels(m), optimizer, store, index, random, options(false));
  const after = await validationScores(m, held, ids, INPUT, engine);
  const hereAfter = await validationScores(m, held, ids, INPUT);
  let moved = 0;
  worst = 0;
  for (let i = 0; i < here.length; i++) {
    moved = Math.max(moved, Math.abs(after[i] - there[i]));
    worst = Math.max(worst, Math.abs(after[i] - hereAfter[i]));
  }
  assert.ok(moved > 1e-4, 'the scores moved with the step');
  assert.ok(worst <= 1e-5, `worst difference after a step ${worst}`);
});
