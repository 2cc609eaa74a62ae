// The fashion-type attention model (report §4.3) against hand computations, and its save/load.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/lib/backend/tf.js';
import { buildWeakModel, featureModel, headVariables, wordKernel } from '../../src/lib/models/weak-model.js';
import { attentionLoss, fiveCaseScores, predictedWordTypes, topWordsByType, typeLayer, typeTargets } from '../../src/lib/models/type-attention.js';
import { loadModel, saveModel } from '../../src/lib/backend/model-io.js';
import { scratchDir } from '../helpers.js';

const T = 4;
const S = 3;
const K = 7;
const config = { inputSize: 16, width: 4, blocksPerStage: 1, stages: 3, projection: S, vocabularySize: K, seed: 5, attentionTypes: T };

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The layer's weights as plain arrays: W [S][K], A [S][T], b [T]. */
function weights(model: tf.LayersModel): { W: number[][]; A: number[][]; b: number[] } {
  const [k, a, b] = typeLayer(model)!.getWeights().map((t) => t.arraySync());
  return { W: k as number[][], A: a as number[][], b: b as number[] };
}

/** p = softmax(Aᵀ w/|w| + b) for word k. */
function typesOf(W: number[][], A: number[][], b: number[], k: number): number[] {
  const norm = Math.sqrt(W.reduce((s, row) => s + row[k] ** 2, 0));
  return softmax(b.map((bt, t) => bt + W.reduce((s, row, j) => s + (row[k] / norm) * A[j][t], 0)));
}

test('attention model: embedding is T x S, each word scored on its own type mix, saved and loaded as one', async () => {
  const model = buildWeakModel(config);
  assert.deepEqual(featureModel(model, 'embedding').outputs[0].shape, [null, T * S]);
  assert.deepEqual(wordKernel(model).shape, [S, K], 'W stays where every command looks for it');
  assert.deepEqual(headVariables(model).map((v) => v.name.split('/').pop()).sort(), ['kernel', 'kernel', 'type_bias', 'type_kernel'], 'W, A and b train with the head');
  // Non-zero type weights so the mix is not uniform.
  const layer = typeLayer(model)!;
  const [kernel, typeKernel] = layer.getWeights();
  layer.setWeights([tf.mul(kernel, 50), tf.mul(typeKernel, 3), tf.tensor1d([0.5, -0.2, 0.1, 0])]);
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 9);
  const z = (featureModel(model, 'embedding').predict(x) as tf.Tensor).arraySync() as number[][];
  const scores = (model.predict(x) as tf.Tensor).arraySync() as number[][];
  const { W, A, b } = weights(model);
  for (let n = 0; n < 2; n++) {
    for (let k = 0; k < K; k++) {
      const p = typesOf(W, A, b, k);
      let expected = 0;
      for (let t = 0; t < T; t++) for (let j = 0; j < S; j++) expected += p[t] * z[n][t * S + j] * W[j][k];
      assert.ok(Math.abs(scores[n][k] - expected) < 1e-4, `image ${n} word ${k}: ${scores[n][k]} vs ${expected}`);
    }
  }
  const dir = join(scratchDir(), 'm');
  await saveModel(model, dir, { metadata: { kind: 'weak' } });
  const loaded = await loadModel(dir);
  assert.ok(typeLayer(loaded.model), 'the custom layer comes back');
  const again = (loaded.model.predict(x) as tf.Tensor).arraySync() as number[][];
  for (let n = 0; n < 2; n++) for (let k = 0; k < K; k++) assert.ok(Math.abs(again[n][k] - scores[n][k]) < 1e-6);
  const predicted = await predictedWordTypes(typeLayer(loaded.model)!);
  for (let k = 0; k < K; k++) {
    const p = typesOf(W, A, b, k);
    assert.equal(predicted.type[k], p.indexOf(Math.max(...p)));
    assert.ok(Math.abs(predicted.probability[k] - Math.max(...p)) < 1e-5);
  }
});

test('attention loss: sampled softmax on the positive type mix plus type cross-entropy and entropy, by hand', () => {
  const model = buildWeakModel(config);
  const layer = typeLayer(model)!;
  const [kernel, typeKernel] = layer.getWeights();
  layer.setWeights([tf.mul(kernel, 30), tf.mul(typeKernel, 2), tf.tensor1d([0.3, 0, -0.3, 0.1])]);
  const { W, A, b } = weights(model);
  const zRows = [[0.1, 0.2, -0.3, 0.4, 0.5, -0.1, 0.2, 0.3, 0.1, -0.2, 0.1, 0.4], [0.3, -0.2, 0.1, 0.1, 0.0, 0.2, -0.4, 0.1, 0.3, 0.2, 0.2, -0.1]];
  const positives = [2, 5];
  const candidates = [[2, 0, 4], [5, 1, 3]];
  // Word 2 has type 1 (one-hot), word 5 is unknown with the entropy option, the others zero.
  const wordTypes = Int32Array.from([0, -1, 1, -1, 2, -1, 3]);
  const { targets, entropy } = typeTargets(wordTypes, T, 'entropy');
  const weight = 0.7;
  let expected = 0;
  for (let n = 0; n < 2; n++) {
    const k = positives[n];
    const q = typesOf(W, A, b, k);
    const v = Array.from({ length: S }, (_, j) => q.reduce((s, qt, t) => s + qt * zRows[n][t * S + j], 0));
    const s = candidates[n].map((c) => v.reduce((acc, vj, j) => acc + vj * W[j][c], 0));
    const m = Math.max(...s);
    const wordLoss = m + Math.log(s.reduce((acc, x) => acc + Math.exp(x - m), 0)) - s[0];
    const ce = -q.reduce((acc, qt, t) => acc + targets[k * T + t] * Math.log(qt), 0);
    const h = -q.reduce((acc, qt) => acc + qt * Math.log(qt), 0) * entropy[k];
    expected += (wordLoss + weight * (ce + h)) / 2;
  }
  const got = attentionLoss(tf.tensor2d(zRows), layer.weightsOf(), T, tf.tensor1d(positives, 'int32'), tf.tensor2d(candidates, [2, 3], 'int32'), tf.tensor2d(targets, [K, T]), tf.tensor1d(entropy), weight).dataSync()[0];
  assert.ok(Math.abs(got - expected) < 1e-4, `${got} vs ${expected}`);
  // Uniform targets for the unknown words: 1/T each; zero: nothing.
  assert.deepEqual(Array.from(typeTargets(Int32Array.from([-1, 2]), 4, 'uniform').targets), [0.25, 0.25, 0.25, 0.25, 0, 0, 1, 0]);
  assert.deepEqual(Array.from(typeTargets(Int32Array.from([-1]), 4, 'zero').targets), [0, 0, 0, 0]);
});

test('five-case validation scores and per-type tags', () => {
  // T = 2, S = 1, K = 3: z = [2, -1]; W = [[1, -1, 0.5]].
  const z = tf.tensor2d([[2, -1]]);
  const W = tf.tensor2d([[1, -1, 0.5]]);
  // Cases: type 0 -> 2w, type 1 -> -w, uniform -> 0.5w; best of the three per word.
  assert.deepEqual(Array.from(fiveCaseScores(z, W, 2).dataSync()), [2, 1, 1]);
  const tags = topWordsByType(Float32Array.from([2, -1]), Float32Array.from([1, -1, 0.5]), 1, Int32Array.from([0, 1, 1]), 2, 5);
  assert.deepEqual(tags, [[{ word: 0, score: 2 }], [{ word: 1, score: 1 }, { word: 2, score: -0.5 }]]);
});
