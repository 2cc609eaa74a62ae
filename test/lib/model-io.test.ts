import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile, readdir, truncate, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { tf } from '../../src/lib/backend/tf.js';
import {
  saveModel, loadModel, saveTensors, loadTensors, loadMetadata, optimizerStateTensors, restoreOptimizerState, isCheckpointDirectory,
  MODEL_JSON, WEIGHTS_FILE,
} from '../../src/lib/backend/model-io.js';
import { buildSmallCnn } from '../../src/lib/models/small-cnn.js';
import { UsageError } from '../../src/lib/command.js';
import { scratchDir, repoRoot } from '../helpers.js';

await tf.setBackend('cpu');

function tinyCnn(seed = 1): tf.Sequential {
  return buildSmallCnn({ variant: 'stride2', inputSize: 8, classes: 3, filters: [4, 4, 8, 8], seed });
}

async function weightArrays(model: tf.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array));
}

test('a saved model loads with bit-identical weights, predictions, extra tensors and metadata', async () => {
  const dir = join(scratchDir(), 'model');
  const model = tinyCnn();
  const wordMatrix = tf.randomNormal([5, 7], 0, 1, 'float32', 3);
  const counts = tf.tensor1d([3, 1, 4, 1, 5], 'int32');
  const metadata = { epoch: 7, rng: { a: 1, b: 2, c: 3, d: 4 }, note: 'résumé' };
  await saveModel(model, dir, { extraTensors: { 'words/W': wordMatrix, counts }, metadata });
  assert.deepEqual((await readdir(dir)).sort(), ['extra.bin', MODEL_JSON, WEIGHTS_FILE].sort());

  const loaded = await loadModel(dir);
  const [before, after] = [await weightArrays(model), await weightArrays(loaded.model)];
  assert.equal(after.length, before.length);
  before.forEach((w, i) => assert.deepEqual(after[i], w));
  const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 9);
  assert.deepEqual(await (loaded.model.predict(x) as tf.Tensor).data(), await (model.predict(x) as tf.Tensor).data());
  assert.deepEqual(await loaded.extraTensors['words/W'].data(), await wordMatrix.data());
  assert.equal(loaded.extraTensors.counts.dtype, 'int32');
  assert.deepEqual(Array.from(await loaded.extraTensors.counts.data()), [3, 1, 4, 1, 5]);
  assert.deepEqual(loaded.metadata, metadata);
  assert.deepEqual(await loadMetadata(dir), metadata);
});

test('model.json stays loadable by stock tfjs (weightsManifest holds only the model weights)', async () => {
  const dir = join(scratchDir(), 'model');
  await saveModel(tinyCnn(), dir, { extraTensors: { extra: tf.ones([3]) } });
  const json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8'));
  assert.equal(json.format, 'layers-model');
  assert.deepEqual(json.weightsManifest[0].paths, [WEIGHTS_FILE]);
  assert.ok(!json.weightsManifest[0].weights.some((w: { name: string }) => w.name === 'extra'));
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest[0].weights,
    weightData: new Uint8Array(await readFile(join(dir, WEIGHTS_FILE))).buffer,
  }));
  assert.equal(model.countParams(), tinyCnn().countParams());
});

test('optimizer state restored from a checkpoint continues training exactly like the original', async () => {
  const dir = join(scratchDir(), 'ckpt');
  const x = tf.randomUniform([4, 8, 8, 3], 0, 1, 'float32', 5);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
  const step = (model: tf.LayersModel, optimizer: tf.Optimizer) =>
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.predict(x) as tf.Tensor), true)?.dispose();
  const model = tinyCnn();
  const optimizer = tf.train.adam(0.01);
  for (let i = 0; i < 3; i++) step(model, optimizer);
  await saveModel(model, dir, { extraTensors: await optimizerStateTensors(optimizer), metadata: { step: 3 } });

  const resumed = await loadModel(dir);
  const resumedOptimizer = tf.train.adam(0.01);
  assert.equal(await restoreOptimizerState(resumedOptimizer, resumed.extraTensors), true);
  step(model, optimizer);
  step(resumed.model, resumedOptimizer);
  const [a, b] = [await weightArrays(model), await weightArrays(resumed.model)];
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i} differs after the resumed step`));
});

test('named tensors alone save and load; loadModel on such a directory is a usage error', async () => {
  const dir = join(scratchDir(), 'words');
  const w = tf.tensor2d([[1, 2], [3, 4]]);
  await saveTensors(dir, { W: w }, { vocabulary: 2 });
  const { tensors, metadata } = await loadTensors(dir);
  assert.deepEqual(Array.from(await tensors.W.data()), [1, 2, 3, 4]);
  assert.deepEqual(tensors.W.shape, [2, 2]);
  assert.deepEqual(metadata, { vocabulary: 2 });
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof UsageError && /no model topology/.test(err.message));
});

test('a corrupt model.json, a truncated weights file or a missing directory is a UsageError naming the file', async () => {
  const root = scratchDir();
  const dir = join(root, 'model');
  await saveModel(tinyCnn(), dir);
  const jsonPath = join(dir, MODEL_JSON);
  const original = await readFile(jsonPath, 'utf8');

  await writeFile(jsonPath, original.slice(0, original.length / 2));
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof UsageError && err.place.file === jsonPath && /not valid JSON/.test(err.message));

  await writeFile(jsonPath, JSON.stringify({ ...JSON.parse(original), weightsManifest: [{ paths: ['../../etc/passwd'], weights: [] }] }));
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof UsageError && err.place.file === jsonPath);

  await writeFile(jsonPath, original);
  await truncate(join(dir, WEIGHTS_FILE), 100);
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof UsageError && err.place.file === join(dir, WEIGHTS_FILE) && /100 bytes/.test(err.message));

  await assert.rejects(loadModel(join(root, 'absent')), (err: unknown) => err instanceof UsageError && err.place.file === join(root, 'absent', MODEL_JSON));
  await mkdir(join(root, 'empty'));
  assert.equal(await isCheckpointDirectory(join(root, 'empty')), false);
});

// A child saves versions 1, 2, 3, ... of a checkpoint whose 24 MB extra tensor is filled with the
// version number; it is killed during a save. What loads must be one complete version.
const SAVER_CHILD = `
import { tf } from ${JSON.stringify(pathToFileURL(join(repoRoot, 'dist/src/lib/backend/tf.js')).href)};
import { saveModel } from ${JSON.stringify(pathToFileURL(join(repoRoot, 'dist/src/lib/backend/model-io.js')).href)};
await tf.setBackend('cpu');
const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 2 })] });
for (let version = 1; ; version++) {
  const filler = tf.fill([6_000_000], version);
  process.stdout.write('saving ' + version + '\\n');
  await saveModel(model, process.argv[1], { extraTensors: { filler }, metadata: { version } });
  process.stdout.write('saved ' + version + '\\n');
  filler.dispose();
}
`;

/** Kills the saver `delayMs` after its second save has created its temp directory beside `dir`. */
async function killDuringSave(dir: string, delayMs: number): Promise<{ lastSaved: number; inProgress: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SAVER_CHILD, dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const tempPrefix = `.${basename(dir)}.tmp-`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`saver exited early: ${out}`);
    if (/saving 2\n/.test(out) && (await readdir(dirname(dir))).some((name) => name.startsWith(tempPrefix))) break;
    await delay(1);
  }
  await delay(delayMs);
  child.kill('SIGKILL');
  await exited;
  const saved = [...out.matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
  const saving = [...out.matchAll(/saving (\d+)/g)].map((m) => Number(m[1]));
  return { lastSaved: Math.max(...saved), inProgress: Math.max(...saving) };
}

test('a save killed part-way leaves the previous complete directory', async () => {
  const root = scratchDir();
  let interrupted = false;
  for (const delayMs of [0, 10, 40]) {
    const dir = join(root, `ckpt-${delayMs}`);
    const { lastSaved, inProgress } = await killDuringSave(dir, delayMs);
    // Looked for now: the next run's save sweeps the temp names of dead processes from this directory.
    interrupted ||= (await readdir(root)).some((name) => name.startsWith(`.ckpt-${delayMs}.tmp-`));
    assert.ok(lastSaved >= 1);
    const { tensors, metadata } = await loadTensors(dir);
    const version = metadata.version as number;
    assert.ok(version === lastSaved || version === inProgress, `loaded version ${version}, saved ${lastSaved}, in progress ${inProgress}`);
    const values = (await tensors.filler.data()) as Float32Array;
    assert.equal(values.length, 6_000_000);
    assert.ok(values[0] === version && values[values.length - 1] === version, 'extra tensor is complete and of the same version');
  }
  // At least one kill did land inside a save: its unfinished temp directory is still there.
  assert.ok(interrupted, 'no kill interrupted a write');
});
