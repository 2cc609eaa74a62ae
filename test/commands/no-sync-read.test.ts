// WebGPU in Node cannot read a tensor synchronously, so nothing a trainer or an inference command
// runs may: each trainer trains a few steps (validation, checkpoints and reports included) and each
// inference command runs, as processes on WASM whose synchronous reads throw (a preload hook), and
// must succeed. The hook is first shown to bite.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { generateScenes } from '../../fixtures/lib/scenes.js';
import { writeNpy } from '../../src/lib/io/npy.js';

const hook = join(repoRoot, 'dist', 'test', 'no-sync-read-hook.js');
// One training thread: the WASM worker pool copies weights synchronously, and WebGPU never uses it.
const env = { NODE_OPTIONS: `--import=${hook}`, ATELIER_BACKEND: 'wasm', ATELIER_TRAIN_WORKERS: '1', ATELIER_DEBUG: '1' };
let dir: string;
let catalogue: string;
let images: string;
let imagePaths: string[];

/** Runs atelier with synchronous reads throwing; it must exit 0 (the stack names the read if not). */
async function runWithoutSyncReads(args: string[]): Promise<string> {
  const r = await runAtelier(args, { env, timeoutMs: 180_000 });
  assert.equal(r.code, 0, `atelier ${args[0]} with synchronous reads failing:\n${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  const records = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 48);
  imagePaths = records.map((r) => join(catalogue, String(r.image)));
  images = join(dir, 'images.ndjson');
  writeFileSync(images, records.map((r, i) => JSON.stringify({ ...r, image: imagePaths[i], tokens: [r.silhouette, r.colour, r.pattern] })).join('\n') + '\n');
  const words = [...new Set(records.flatMap((r) => [r.silhouette, r.colour, r.pattern]))];
  writeFileSync(join(dir, 'vocab.ndjson'), words.map((word) => JSON.stringify({ word })).join('\n') + '\n');
});

test('the hook makes a synchronous read fail', () => {
  const r = spawnSync(process.execPath, ['--import', hook, '-e', "import('@tensorflow/tfjs').then((tf) => tf.scalar(1).dataSync())"], { cwd: repoRoot, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /synchronous tensor read/);
});

test('train-weak, embed (tfjs and onnxruntime) and tag read asynchronously', { timeout: 300_000 }, async () => {
  const model = join(dir, 'weak.model');
  await runWithoutSyncReads(['train-weak', '-i', images, '--vocab', join(dir, 'vocab.ndjson'), '-o', model, '--input-size', '16', '--width', '4', '--stages', '2', '--batch', '8', '--epoch-size', '24', '--epochs', '2', '--negatives', '3', '--close-negatives', '0.5', '--val-fraction', '0.3']);
  for (const engine of ['tfjs', 'ort']) await runWithoutSyncReads(['embed', '-m', model, '-i', images, '-o', join(dir, `${engine}.npy`), '--engine', engine, '--workers', '1']);
  assert.equal(parseNdjson(await runWithoutSyncReads(['tag', '-m', model, '-i', images, '--engine', 'tfjs', '--workers', '1'])).length, 48);
});

test('train-classifier, classify and rise read asynchronously', { timeout: 300_000 }, async () => {
  const model = join(dir, 'classifier.model');
  await runWithoutSyncReads(['train-classifier', '-i', images, '-l', 'silhouette', '--mode', 'finetune', '--tower', 'small', '--input-size', '24', '--width', '4', '--stages', '2', '--epochs', '2', '--batch', '8', '--val-fraction', '0.3', '--test-fraction', '0.2', '-o', model]);
  assert.equal(parseNdjson(await runWithoutSyncReads(['classify', '-m', model, '-i', images, '--engine', 'tfjs'])).length, 48);
  await runWithoutSyncReads(['rise', '-m', model, '--n', '16', '--s', '4', '--engine', 'tfjs', '--metrics', '--steps', '4', imagePaths[0]]);
});

test('train-triplet and train-attention read asynchronously', { timeout: 300_000 }, async () => {
  await runWithoutSyncReads(['train-triplet', '-i', images, '--input-size', '24', '--width', '4', '--stages', '2', '--groups', '4', '--per-group', '2', '--epochs', '2', '--val-fraction', '0.3', '-o', join(dir, 'triplet.model')]);
  await runWithoutSyncReads(['train-attention', '-i', images, '-l', 'pattern,slim_cut', '--scale', '8', '--width', '4', '--texture-dim', '8', '--hidden', '16', '--glimpse', '4', '--epochs', '1', '--batch', '16', '-o', join(dir, 'attention.model')]);
});

test('train-sizenet and predict-sizenet read asynchronously', { timeout: 300_000 }, async () => {
  const teacher = join(dir, 'teacher.ndjson');
  const scored = await runAtelier(['teacher-score', join(catalogue, 'sales', 'articles.ndjson'), '-o', teacher]);
  assert.equal(scored.code, 0, scored.stderr);
  const truth = parseNdjson(readFileSync(join(catalogue, 'truth.ndjson'), 'utf8'));
  const features = join(dir, 'attrs.npy');
  await writeNpy(features, Float32Array.from(truth.flatMap((t, i) => [Number(t.slim_cut), (i % 7) / 7, Number(t.silhouette === 'dress')])), [truth.length, 3]);
  writeFileSync(join(dir, 'attrs.ids.ndjson'), truth.map((t) => JSON.stringify({ id: t.id })).join('\n') + '\n');
  const model = join(dir, 'sizenet.model');
  await runWithoutSyncReads(['train-sizenet', '-f', features, '-t', teacher, '-o', model, '--epochs', '2', '--hidden', '8,6,4']);
  await runWithoutSyncReads(['predict-sizenet', '-m', model, '-f', features, '--engine', 'tfjs']);
});

test('train-locate and locate read asynchronously', { timeout: 300_000 }, async () => {
  await generateScenes({ out: join(dir, 'scenes'), seed: 3, products: 20, variant: 'varied' });
  const scenes = join(dir, 'scenes', 'scenes.ndjson');
  const model = join(dir, 'locate.model');
  await runWithoutSyncReads(['train-locate', '-i', scenes, '--image-size', '48', '--input-size', '16', '--stages', '2', '--width', '4', '--epochs', '2', '--val-fraction', '0.3', '-o', model]);
  assert.ok(parseNdjson(await runWithoutSyncReads(['locate', '-m', model, '-i', scenes])).length > 0);
});
