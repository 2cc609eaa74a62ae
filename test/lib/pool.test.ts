import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tf } from '../../src/lib/backend/tf.js';
import { selectBackend } from '../../src/lib/backend/select.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { createWorkerPool, shardBounds, tensorData, threadExecArgv, type TensorData } from '../../src/lib/backend/pool.js';
import { BUILTIN_LOSSES } from '../../src/lib/backend/pool-protocol.js';
import { buildSmallCnn } from '../../src/lib/models/small-cnn.js';
import { UsageError } from '../../src/lib/command.js';
import { scratchDir, repoRoot } from '../helpers.js';

// The main thread computes with the same backend as the workers, so results agree to rounding.
await selectBackend({ requested: 'wasm', quiet: true });

const INPUT = 12;
const CLASSES = 3;
function tinyCnn(seed = 1): tf.Sequential {
  return buildSmallCnn({ variant: 'stride2', inputSize: INPUT, classes: CLASSES, filters: [4, 4, 8, 8], seed });
}

function batch(rows: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const x = tf.randomUniform([rows, INPUT, INPUT, 3], 0, 1, 'float32', seed);
  const labels = tf.tensor1d(Array.from({ length: rows }, (_, i) => (i * 7 + seed) % CLASSES), 'int32');
  return { x, y: tf.oneHot(labels, CLASSES).toFloat() };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  assert.ok(worst <= tolerance, `${what}: largest relative difference ${worst} > ${tolerance}`);
}

const pool = await createWorkerPool({ workers: 2, backend: 'wasm' });
afterAll(() => pool.close());

test('worker threads get this process\'s Node flags without an inline main script', () => {
  assert.deepEqual(threadExecArgv(['--max-old-space-size=4096', '--input-type=module', '-e', 'code', '--enable-source-maps']), ['--max-old-space-size=4096', '--enable-source-maps']);
  assert.deepEqual(threadExecArgv(['--eval=code', '-p', 'x']), []);
});

test('shards cover the batch in order, near-equal, never empty', () => {
  assert.deepEqual(shardBounds(7, 2), [[0, 3], [3, 7]]);
  assert.deepEqual(shardBounds(1, 2), [[0, 1]]);
  assert.deepEqual(shardBounds(32, 3), [[0, 10], [10, 21], [21, 32]]);
});

test('pool inference returns, in order, what the model predicts in this thread', async () => {
  const model = tinyCnn();
  const dir = join(scratchDir(), 'model');
  await saveModel(model, dir);
  await pool.loadModel(dir);
  const inputs = [5, 1, 8, 3, 6].map((rows, i) => batch(rows, 10 + i).x);
  const expected = inputs.map((x) => (model.predict(x) as tf.Tensor).dataSync());
  const outputs: TensorData[] = [];
  for await (const out of pool.predictBatches((async function* () {
    for (const x of inputs) yield await tensorData(x);
  })())) outputs.push(out);
  assert.equal(outputs.length, inputs.length);
  outputs.forEach((out, i) => {
    assert.deepEqual(out.shape, [inputs[i].shape[0], CLASSES]);
    assertClose(out.data, expected[i], 1e-6, `batch ${i}`);
  });
  // A model handed over from memory predicts the same.
  await pool.loadModel(tinyCnn());
  assertClose((await pool.predict(await tensorData(inputs[2]))).data, expected[2], 1e-6, 'in-memory model');
});

test('the averaged gradient of the shards equals the full-batch gradient', async () => {
  const model = tinyCnn(2);
  const parameters = await pool.startTraining({ model, loss: 'categoricalCrossentropy', optimizer: { name: 'sgd', learningRate: 0.5 } });
  assert.equal(parameters, model.countParams());
  // 7 rows split 3 + 4: an unweighted mean of the two shard gradients would be wrong.
  const { x, y } = batch(7, 3);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const full = tf.variableGrads(() => BUILTIN_LOSSES.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor), variables);
  const expected = Float32Array.from(variables.flatMap((v) => Array.from(full.grads[v.name].dataSync())));
  const got = await pool.gradients(await tensorData(x), await tensorData(y));
  assert.ok(Math.abs(got.loss - full.value.dataSync()[0]) < 1e-5, `loss ${got.loss} vs ${full.value.dataSync()[0]}`);
  assertClose(got.gradients, expected, 1e-5, 'gradient');
  assert.ok(expected.some((g) => Math.abs(g) > 1e-4), 'the gradient is not trivially zero');
});

test('data-parallel SGD steps keep the replicas identical and match single-thread SGD', async () => {
  const model = tinyCnn(4);
  await pool.startTraining({ model, loss: 'categoricalCrossentropy', optimizer: { name: 'sgd', learningRate: 0.5 } });
  const optimizer = tf.train.sgd(0.5);
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    const { x, y } = batch(8, 20 + step);
    losses.push(await pool.trainStep(await tensorData(x), await tensorData(y)));
    optimizer.minimize(() => BUILTIN_LOSSES.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor), false);
  }
  const [first, second] = await pool.replicaWeights();
  assert.deepEqual(first, second, 'replicas diverged');
  const single = Float32Array.from(model.getWeights().flatMap((w) => Array.from(w.dataSync())));
  assertClose(first, single, 1e-4, 'weights after 3 steps');
  assert.ok(losses.every((l) => Number.isFinite(l) && l > 0));
});

test('a checkpoint saved by the pool resumes training exactly, Adam moments included', async () => {
  const dir = join(scratchDir(), 'ckpt');
  const optimizer = { name: 'adam', learningRate: 0.01 } as const;
  await pool.startTraining({ model: tinyCnn(5), loss: 'categoricalCrossentropy', optimizer });
  const batches = [batch(6, 31), batch(6, 32), batch(6, 33)];
  const data = await Promise.all(batches.map(async ({ x, y }) => [await tensorData(x), await tensorData(y)] as const));
  const copy = (d: TensorData): TensorData => ({ ...d, data: d.data.slice() });
  for (const [x, y] of data.slice(0, 2)) await pool.trainStep(copy(x), copy(y));
  await pool.saveModel(dir, { step: 2 });
  await pool.trainStep(copy(data[2][0]), copy(data[2][1]));
  const [continued] = await pool.replicaWeights();

  await pool.startTraining({ model: dir, loss: 'categoricalCrossentropy', optimizer });
  await pool.trainStep(copy(data[2][0]), copy(data[2][1]));
  const [resumed] = await pool.replicaWeights();
  assert.deepEqual(resumed, continued);
});

test('worker errors reject the call; the pool stays usable', async () => {
  const fresh = tinyCnn();
  await pool.loadModel(fresh);
  await assert.rejects(pool.predict({ shape: [1, 5, 5, 3], dtype: 'float32', data: new Float32Array(75) }), /worker \d: .*/);
  await assert.rejects(pool.loadModel(join(scratchDir(), 'absent')), (err: unknown) => err instanceof UsageError && /model\.json/.test(err.place.file ?? ''));
  await assert.rejects(pool.startTraining({ model: fresh, loss: 'noSuchLoss', optimizer: { name: 'sgd', learningRate: 1 } }), /unknown loss 'noSuchLoss'/);
  const { x } = batch(2, 1);
  assert.deepEqual((await pool.predict(await tensorData(x))).shape, [2, CLASSES]);
});

test('a worker that dies rejects what waits on it and breaks the pool', async () => {
  const module = join(scratchDir(), 'dying-worker.mjs');
  await writeFile(module, 'export const losses = { exitWorker: () => process.exit(3) };\n');
  const doomed = await createWorkerPool({ workers: 2, workerModule: pathToFileURL(module).href });
  try {
    await doomed.startTraining({ model: tinyCnn(), loss: 'exitWorker', optimizer: { name: 'sgd', learningRate: 1 } });
    const { x, y } = batch(4, 1);
    await assert.rejects(doomed.trainStep(await tensorData(x), await tensorData(y)), /exited unexpectedly with code 3/);
    await assert.rejects(doomed.replicaWeights(), /exited unexpectedly/);
  } finally {
    await doomed.close();
  }
});

function runNode(script: string): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: Date.now() - started });
    });
  });
}

test('a process exits by itself after close(), and even when it forgets to close an idle pool', async () => {
  const poolUrl = JSON.stringify(pathToFileURL(join(repoRoot, 'dist/src/lib/backend/pool.js')).href);
  const body = (close: boolean) => `
    import { createWorkerPool } from ${poolUrl};
    const pool = await createWorkerPool({ workers: 1 });
    await pool.loadModel(${JSON.stringify(join(repoRoot, 'no-such-model'))}).catch(() => {});
    ${close ? 'await pool.close(); await pool.close();' : ''}
  `;
  const [closed, forgotten] = await Promise.all([runNode(body(true)), runNode(body(false))]);
  assert.equal(closed.code, 0, closed.stderr);
  assert.equal(forgotten.code, 0, forgotten.stderr);
});
