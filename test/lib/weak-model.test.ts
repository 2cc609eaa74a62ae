// The weak model's shape contract (what tag, embed, rise and the classifiers rely on) and the resume
// path shared by the training commands.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/lib/backend/tf.js';
import { buildWeakModel, featureModel, hasLayer, headVariables, LAYER, minimumInputSize, towerVariables, wordKernel } from '../../src/lib/models/weak-model.js';
import { optimizerStateTensors, saveModel } from '../../src/lib/backend/model-io.js';
import { checkpointDirFor, resumeFromCheckpoint } from '../../src/lib/train/checkpoint.js';
import { UsageError } from '../../src/lib/command.js';
import { scratchDir } from '../helpers.js';

const config = { inputSize: 16, width: 4, blocksPerStage: 1, stages: 3, projection: 6, vocabularySize: 11, seed: 3 };

test('weak model: image -> projection -> words; feature models and variable groups', () => {
  assert.equal(minimumInputSize({ stages: 3 }), 16);
  const model = buildWeakModel(config);
  assert.deepEqual(model.inputs[0].shape, [null, 16, 16, 3]);
  assert.deepEqual(model.outputs[0].shape, [null, 11]);
  assert.ok(hasLayer(model, LAYER.projection) && hasLayer(model, LAYER.words));
  assert.deepEqual(wordKernel(model).shape, [6, 11]);
  assert.deepEqual(featureModel(model, 'embedding').outputs[0].shape, [null, 6]);
  assert.deepEqual(featureModel(model, 'projection').outputs[0].shape, [null, 6]);
  const pooledWidth = featureModel(model, 'pooled').outputs[0].shape[1];
  assert.equal(pooledWidth, 4 * 2 ** (config.stages - 1), 'pooled width doubles at each stage');
  const tower = towerVariables(model);
  const head = headVariables(model);
  assert.equal(tower.length + head.length, model.trainableWeights.length, 'every weight is in exactly one group');
  assert.equal(head.length, 2, 'projection and word matrix');
  // Same seed, same weights; another seed, other weights.
  const again = buildWeakModel(config);
  const other = buildWeakModel({ ...config, seed: 4 });
  const first = (m: tf.LayersModel) => m.getWeights()[0].dataSync()[0];
  assert.equal(first(model), first(again));
  assert.notEqual(first(model), first(other));
  [model, again, other].forEach((m) => m.dispose());
});

test('resumeFromCheckpoint restores weights and optimizer, refuses another fingerprint or a missing checkpoint', async () => {
  const dir = scratchDir();
  const out = join(dir, 'm.model');
  const checkpoint = checkpointDirFor(out);
  assert.equal(checkpoint, `${out}.checkpoint`);
  assert.equal(checkpointDirFor(`${out}/`, '/x'), '/x');
  const model = buildWeakModel(config);
  const optimizer = tf.train.adam(0.01);
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 1);
  for (let i = 0; i < 2; i++) optimizer.minimize(() => tf.mean(tf.square(model.predict(x) as tf.Tensor)) as tf.Scalar);
  await saveModel(model, checkpoint, { extraTensors: await optimizerStateTensors(optimizer), metadata: { checkpoint: { fingerprint: 'a', epoch: 2 } } });

  const fresh = buildWeakModel({ ...config, seed: 9 });
  const freshOptimizer = tf.train.adam(0.01);
  await assert.rejects(resumeFromCheckpoint(checkpoint, 'b', fresh, freshOptimizer), (e: unknown) => e instanceof UsageError && /other data or settings/.test(e.message));
  await assert.rejects(resumeFromCheckpoint(join(dir, 'none'), 'a', fresh, freshOptimizer), (e: unknown) => e instanceof UsageError && /no checkpoint/.test(e.message));
  const resumed = await resumeFromCheckpoint<{ fingerprint: string; epoch: number }>(checkpoint, 'a', fresh, freshOptimizer);
  assert.equal(resumed.state.epoch, 2);
  model.getWeights().forEach((w, i) => assert.deepEqual([...w.dataSync()], [...fresh.getWeights()[i].dataSync()]));
  // One more step from both gives the same weights: the Adam moments came back too.
  optimizer.minimize(() => tf.mean(tf.square(model.predict(x) as tf.Tensor)) as tf.Scalar);
  freshOptimizer.minimize(() => tf.mean(tf.square(fresh.predict(x) as tf.Tensor)) as tf.Scalar);
  model.getWeights().forEach((w, i) => assert.deepEqual([...w.dataSync()], [...fresh.getWeights()[i].dataSync()]));
  tf.dispose(Object.values(resumed.extraTensors));
});
