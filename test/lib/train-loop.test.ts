// The one training loop: plateau schedule, early stop with the best weights, --stop-after then a
// resume that ends bit-identical to an uninterrupted run, and loop states of earlier versions.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { tf } from '../../src/lib/backend/tf.js';
import { initialTrainingState, shuffledBatches, trainLoop, upgradeState, type TrainingState } from '../../src/lib/train/loop.js';
import { startOrResume } from '../../src/lib/train/checkpoint.js';
import { createRandom } from '../../src/lib/random.js';
import { scratchDir } from '../helpers.js';

await tf.setBackend('cpu');

// y = 2x0 - x1 with noise drawn from the loop's generator, learnt by one dense unit.
const xs = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7));
const ys = Float32Array.from({ length: 32 }, (_, i) => 2 * xs[2 * i] - xs[2 * i + 1]);

function toyModel(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })] });
}

async function run(dir: string, options: { resume: boolean; stopAfter?: number; epochs?: number; validation?: number[] }): Promise<{ weights: number[]; state: TrainingState; stderr: string }> {
  const model = toyModel();
  const optimizer: tf.Optimizer = tf.train.momentum(0.05, 0.9);
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (d) => (text += d));
  const io = { stderr };
  const { state, best } = await startOrResume({
    resume: options.resume, dir, fingerprint: 'toy', model, optimizers: [[optimizer, 'optimizer/']], io, command: 'toy',
    fresh: () => initialTrainingState(7, 'toy', { lr: 0.05, sinceDecay: 0 }),
  });
  const scores = options.validation;
  await trainLoop({
    model, state, best, maxEpochs: options.epochs ?? 6, patience: 3, stopAfter: options.stopAfter, io, command: 'toy',
    schedule: { optimizer, patience: 1, factor: 10 },
    checkpoint: { dir, kind: 'toy-checkpoint', optimizers: [[optimizer, 'optimizer/']] },
    batches: (random) => shuffledBatches(32, 8, random),
    step(batch, random) {
      const x = tf.tensor2d(batch.flatMap((i) => [xs[2 * i], xs[2 * i + 1]]), [batch.length, 2]);
      const y = tf.tensor2d(batch.map((i) => ys[i] + 0.01 * (random.next() - 0.5)), [batch.length, 1]);
      const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar, variables);
      optimizer.applyGradients(grads);
      const loss = value.dataSync()[0];
      tf.dispose([x, y, value, ...Object.values(grads)]);
      return loss;
    },
    validate: () => (scores ? { score: scores[state.epoch], metrics: { valScore: scores[state.epoch] } } : null),
  });
  const weights = model.getWeights().flatMap((w) => [...w.dataSync()]);
  model.dispose();
  optimizer.dispose();
  return { weights, state, stderr: text };
}

test('the loop stops after --patience epochs without a better score, divides the learning rate on plateaus, and ends with the best weights', async () => {
  const dir = join(scratchDir(), 'a.checkpoint');
  // Epoch 2 is best; 3, 4 and 5 are worse: stop after epoch 5.
  const { state } = await run(dir, { resume: false, epochs: 10, validation: [0.5, 0.2, 0.3, 0.4, 0.9, 0.1, 0.1] });
  assert.equal(state.epoch, 5);
  assert.equal(state.bestEpoch, 2);
  // One epoch without improvement divides lr by 10 (schedule patience 1); the log says each epoch's.
  const lrs = (state.log as Array<{ lr: number }>).map((e) => e.lr);
  assert.deepEqual(lrs.map((lr) => Number(lr.toPrecision(6))), [0.05, 0.05, 0.05, 0.005, 0.0005]);
  assert.ok(Math.abs(state.lr! - 0.05 / 1000) < 1e-12, `lr ${state.lr}`);
  // The model written is the best epoch's: resuming from its checkpoint restores those weights.
  const best = await run(dir, { resume: true, epochs: 5 });
  assert.match(best.stderr, /resuming after epoch 5/);
  assert.match(best.stderr, /nothing left to train/);
});

test('--stop-after then a resume ends bit-identical to one uninterrupted run', async () => {
  const root = scratchDir();
  const whole = await run(join(root, 'whole'), { resume: false });
  const first = await run(join(root, 'staged'), { resume: false, stopAfter: 2 });
  assert.equal(first.state.epoch, 2);
  const rest = await run(join(root, 'staged'), { resume: true });
  assert.equal(rest.state.epoch, 6);
  assert.deepEqual(rest.weights, whole.weights);
  assert.notDeepEqual(first.weights, whole.weights);
});

test('loop states of earlier versions resume: train-weak kept best P@1, train-sizenet bestLoss', () => {
  const random = createRandom(1).state();
  const weak = upgradeState({ epoch: 3, lr: 0.01, best: 0.4, sinceBest: 1, sinceDecay: 1, random, log: [], fingerprint: 'f' } as unknown as TrainingState);
  assert.equal(weak.bestScore, -0.4);
  assert.equal('best' in weak, false);
  const sizenet = upgradeState({ epoch: 3, bestLoss: 0.2, sinceBest: 0, bestEpoch: 3, random, log: [], fingerprint: 'f' } as unknown as TrainingState);
  assert.equal(sizenet.bestScore, 0.2);
  assert.equal(sizenet.bestEpoch, 3);
});
