// The registry of model kinds: each kind atelier writes declares its output, and a model of no
// kind has it derived from its last layer, a softmax layer included (the guess RISE once got wrong).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { MODEL_KINDS, describeModel, outputProbabilities, requireKind, rowProbabilities } from '../../src/lib/models/kinds.js';
import { buildFeatureClassifier, CLASSIFIER_MODEL_KIND } from '../../src/lib/facets/classifier-model.js';
import { UsageError } from '../../src/lib/command.js';

test('every kind atelier writes is registered once, with its output', () => {
  const ids = MODEL_KINDS.map((k) => k.id);
  assert.deepEqual(ids, ['atelier-weak', 'atelier-classifier', 'atelier-similarity', 'atelier-sizenet', 'atelier-locate']);
  assert.deepEqual(Object.fromEntries(MODEL_KINDS.map((k) => [k.name, k.output])), { weak: 'logits', classifier: 'probabilities', similarity: 'embedding', sizenet: 'probabilities', locate: 'logits' });
});

test('a classifier is read as probabilities, from its kind or, without one, from its softmax layer', async () => {
  await tf.setBackend('cpu');
  const model = buildFeatureClassifier(4, 3, { kind: 'linear', hidden: 0, dropout: 0, seed: 1 });
  const described = describeModel(model, { kind: CLASSIFIER_MODEL_KIND, labels: ['a', 'b', 'c'] }, 'm');
  assert.equal(described.output, 'probabilities');
  assert.deepEqual(requireKind(described, CLASSIFIER_MODEL_KIND, 'm').labels, ['a', 'b', 'c']);
  assert.equal(describeModel(model, {}, 'm').output, 'probabilities', 'the last layer is a Softmax layer with no activation field');
  const dense = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4] })] });
  assert.equal(describeModel(dense, {}, 'm').output, 'logits');
  assert.equal(describeModel(dense, { output: 'probabilities' }, 'm').output, 'probabilities', 'a model may state it');
  assert.throws(() => describeModel(dense, { output: 'odds' }, 'm'), UsageError);
  assert.throws(() => requireKind(describeModel(dense, {}, 'm'), CLASSIFIER_MODEL_KIND, 'm'), /not a train-classifier model/);
});

test('probabilities are taken as they are; logits get a softmax (or a sigmoid for one column)', () => {
  const p = tf.tensor2d([[0.9, 0.1]]);
  assert.deepEqual(Array.from(outputProbabilities('probabilities', p).dataSync()), Array.from(p.dataSync()));
  const soft = outputProbabilities('logits', tf.tensor2d([[0, Math.log(3)]])).dataSync();
  assert.ok(Math.abs(soft[1] - 0.75) < 1e-6);
  assert.ok(Math.abs(rowProbabilities('logits', Float32Array.of(0))[0] - 0.5) < 1e-7);
  assert.ok(Math.abs(rowProbabilities('logits', Float32Array.of(0, Math.log(3)))[1] - 0.75) < 1e-6);
});
