// SizeNet student maths and the classification metrics, against hand computations.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { weightedBinaryCrossEntropy } from '../../src/lib/sizenet/student.js';
import { binaryReport, multiClassReport, rocAuc, rocCurve } from '../../src/lib/metrics/classification.js';
import { quadrantAnalysis } from '../../src/lib/sizenet/evaluation.js';

test('weighted BCE equals Σ w·BCE / Σ w computed by hand, and is stable for large logits', async () => {
  await tf.setBackend('cpu');
  const logits = [2, -1, 0.5, 30, -30];
  const labels = [1, 0, 0, 1, 0];
  const weights = [0.5, 2, 1, 1.5, 0.25];
  const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
  let num = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = sigmoid(logits[i]);
    const bce = labels[i] === 1 ? -Math.log(p) : -Math.log(1 - p);
    num += weights[i] * (Number.isFinite(bce) ? bce : 0);
  }
  const expected = num / weights.reduce((a, b) => a + b, 0);
  const got = weightedBinaryCrossEntropy(tf.tensor1d(logits), tf.tensor1d(labels), tf.tensor1d(weights)).dataSync()[0];
  assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  // A confidently wrong sample with weight 0 contributes nothing.
  const masked = weightedBinaryCrossEntropy(tf.tensor1d([-40, 3]), tf.tensor1d([1, 1]), tf.tensor1d([0, 1])).dataSync()[0];
  assert.ok(Math.abs(masked - Math.log(1 + Math.exp(-3))) < 1e-5);
  const grad = tf.grad((z: tf.Tensor) => weightedBinaryCrossEntropy(z as tf.Tensor1D, tf.tensor1d([1, 0]), tf.tensor1d([1, 3])))(tf.tensor1d([0, 0])).dataSync();
  // d/dz of w(softplus(z) - y z) / Σw = w (σ(z) - y) / Σw.
  assert.ok(Math.abs(grad[0] - (1 * (0.5 - 1)) / 4) < 1e-6 && Math.abs(grad[1] - (3 * 0.5) / 4) < 1e-6);
});

test('ROC AUC: perfect, reversed, ties count one half, and equals the Mann-Whitney count', () => {
  assert.equal(rocAuc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]), 1);
  assert.equal(rocAuc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]), 0);
  assert.equal(rocAuc([0.5, 0.5], [1, 0]), 0.5);
  const scores = [0.3, 0.7, 0.7, 0.1, 0.9, 0.4, 0.4, 0.6];
  const labels = [0, 1, 0, 0, 1, 1, 0, 1];
  let pairs = 0;
  let wins = 0;
  for (let i = 0; i < scores.length; i++) for (let j = 0; j < scores.length; j++) {
    if (labels[i] !== 1 || labels[j] !== 0) continue;
    pairs++;
    wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
  }
  assert.ok(Math.abs(rocAuc(scores, labels) - wins / pairs) < 1e-12);
  const curve = rocCurve(scores, labels);
  assert.deepEqual([curve[0].fpr, curve[0].tpr], [0, 0]);
  assert.deepEqual([curve.at(-1)!.fpr, curve.at(-1)!.tpr], [1, 1]);
  assert.ok(Number.isNaN(rocAuc([0.1, 0.2], [1, 1])), 'one class only: undefined');
});

test('binary report and per-class F1 from confusion counts', () => {
  const r = binaryReport([0.9, 0.6, 0.4, 0.2, 0.7], [1, 0, 1, 0, 1], 0.5);
  assert.deepEqual([r.tp, r.fp, r.tn, r.fn], [2, 1, 1, 1]);
  assert.equal(r.precision, 2 / 3);
  assert.equal(r.recall, 2 / 3);
  assert.equal(r.accuracy, 3 / 5);
  const m = multiClassReport([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2], ['a', 'b', 'c']);
  assert.deepEqual(m.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 2]]);
  const b = m.perClass[1];
  assert.equal(b.precision, 2 / 3);
  assert.equal(b.recall, 1);
  assert.ok(Math.abs(b.f1 - 0.8) < 1e-12);
  assert.ok(Math.abs(m.accuracy - 5 / 7) < 1e-12);
});

test('quadrants split by probability threshold and median weight, with agreement to the teacher', () => {
  const q = quadrantAnalysis([0.9, 0.8, 0.2, 0.1], [1, 0, 0, 1], [3, 1, 3, 1], 0.5);
  assert.equal(q.weightThreshold, 2);
  const byName = Object.fromEntries(q.quadrants.map((c) => [c.name, c]));
  assert.equal(byName['high p, high w'].agreement, 1);
  assert.equal(byName['high p, low w'].agreement, 0);
  assert.equal(byName['low p, high w'].agreement, 1);
  assert.equal(byName['low p, low w'].teacherSizeIssueShare, 1);
});
