// The tower flags through the trainers, run as a user runs them on the fixture catalogue: a
// pretrained backbone (nsfwjs's MobileNetV2) fine-tuned head-then-all beats the same tower from
// scratch with the same steps; head-then-fine-tune with its own tower learning rate resumes
// bit-exactly; a non-square MobileNetV2 weak model trains, records its tower and tags.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

let dir: string;
let catalogue: string;
let images: string;
let backbone: string;

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  // 200 images of the catalogue with absolute paths: 6 silhouettes.
  images = join(dir, 'images.ndjson');
  const rows = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 200);
  writeFileSync(images, rows.map((r) => JSON.stringify({ ...r, image: join(catalogue, String(r.image)) })).join('\n') + '\n');
  backbone = join(dir, 'mobilenetv2');
  const r = await runAtelier(['import-backbone', '--from', 'nsfwjs', '-o', backbone]);
  assert.equal(r.code, 0, r.stderr);
});

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

test('train-classifier: the pretrained MobileNetV2 fine-tuned for 2 epochs beats the same tower from scratch by >= 0.3 validation accuracy', async () => {
  // Identical schedules: 1 epoch of head only, 1 of everything (tower at lr x 0.01, BatchNorm statistics frozen), 48 px.
  const schedule = ['-l', 'silhouette', '--mode', 'finetune', '--input-size', '48', '--epochs', '2', '--head-epochs', '1', '--backbone-lr', '0.01', '--freeze-bn', '--lr', '0.01', '--seed', '1'];
  const [pre, scratch] = await Promise.all([
    runAtelier(['train-classifier', '-i', images, ...schedule, '--backbone', backbone, '-o', join(dir, 'pre.model')], { timeoutMs: 300_000 }),
    runAtelier(['train-classifier', '-i', images, ...schedule, '--tower', 'mobilenetv2', '-o', join(dir, 'scratch.model')], { timeoutMs: 300_000 }),
  ]);
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(scratch.code, 0, scratch.stderr);
  const a = JSON.parse(pre.stdout);
  const b = JSON.parse(scratch.stdout);
  // Measured: pretrained val 0.63 / train 0.65, scratch 0.11 / 0.10 (chance 1/6).
  assert.ok(a.val.accuracy >= b.val.accuracy + 0.3, `val accuracy pretrained ${a.val.accuracy} vs scratch ${b.val.accuracy}`);
  assert.ok(a.train.accuracy >= b.train.accuracy + 0.3, `train accuracy pretrained ${a.train.accuracy} vs scratch ${b.train.accuracy}`);
  const meta = readJson(join(dir, 'pre.model', 'model.json')).atelier.metadata;
  assert.equal(meta.tower.family, 'backbone');
  assert.equal(meta.tower.backbone.layer, 'out_relu');
  assert.deepEqual(meta.tower.backbone.preprocessing.mean, [0, 0, 0]);
  assert.equal(readJson(join(dir, 'scratch.model', 'model.json')).atelier.metadata.tower.family, 'mobilenetv2');
  // classify reproduces the model's input: its probabilities for the training images.
  const c = await runAtelier(['classify', '-m', join(dir, 'pre.model'), '-i', images]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(parseNdjson(c.stdout).length, 200);
});

test('train-classifier: head-then-fine-tune with a tower learning rate resumes bit-exactly', async () => {
  const flags = ['-i', images, '-l', 'colour', '--mode', 'finetune', '--tower', 'small', '--input-size', '32x24', '--width', '4', '--stages', '3', '--epochs', '3', '--head-epochs', '1', '--backbone-lr', '0.1', '--patience', '9', '--seed', '2'];
  const whole = await runAtelier(['train-classifier', ...flags, '-o', join(dir, 'whole.model')]);
  assert.equal(whole.code, 0, whole.stderr);
  const first = await runAtelier(['train-classifier', ...flags, '--stop-after', '2', '-o', join(dir, 'staged.model')]);
  assert.equal(first.code, 0, first.stderr);
  const rest = await runAtelier(['train-classifier', ...flags, '--resume', '-o', join(dir, 'staged.model')]);
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stderr, /resuming after epoch 2/);
  const weights = (name: string) => readFileSync(join(dir, name, 'weights.bin'));
  assert.ok(weights('whole.model').equals(weights('staged.model')), 'resumed weights differ from an uninterrupted run');
  const meta = readJson(join(dir, 'whole.model', 'model.json')).atelier.metadata;
  assert.deepEqual(meta.tower.input, { height: 32, width: 24 });
  assert.equal(meta.tower.resize, 'contain');
});

test('train-weak: a non-square MobileNetV2 (alpha 0.35) trains, records its tower, and tag/embed/rise read it back; head-then-fine-tune resumes bit-exactly', async () => {
  const items = join(dir, 'items.ndjson');
  const vocab = join(dir, 'vocab.ndjson');
  const rows = parseNdjson(readFileSync(images, 'utf8'));
  writeFileSync(items, rows.map((r) => JSON.stringify({ id: r.id, source: r.product, image: r.image, tokens: [r.colour, r.silhouette, r.pattern] })).join('\n') + '\n');
  const words = new Map<string, number>();
  for (const r of rows) for (const w of [r.colour, r.silhouette, r.pattern]) words.set(String(w), (words.get(String(w)) ?? 0) + 1);
  writeFileSync(vocab, [...words].sort((a, b) => b[1] - a[1]).map(([word, count]) => JSON.stringify({ word, count, df: count })).join('\n') + '\n');
  const model = join(dir, 'weak.model');
  const r = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', model, '--tower', 'mobilenetv2:0.35', '--input-size', '48x32', '--epochs', '1', '--epoch-size', '64', '--batch', '16', '--negatives', '5']);
  assert.equal(r.code, 0, r.stderr);
  const meta = readJson(join(model, 'model.json')).atelier.metadata;
  assert.deepEqual(meta.tower, { family: 'mobilenetv2', input: { height: 48, width: 32 }, params: { alpha: 0.35 }, seed: 1, resize: 'contain' });
  const t = await runAtelier(['tag', '-m', model, '-i', items, '--k', '2']);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(parseNdjson(t.stdout).length, 200);
  const e = await runAtelier(['embed', '-m', model, '-i', items, '-o', join(dir, 'weak.npy')]);
  assert.equal(e.code, 0, e.stderr);
  // rise maps the non-square input: a 48 x 32 saliency map.
  const first = String(rows[0].image);
  const rise = await runAtelier(['rise', '-m', model, '--n', '20', '--s', '4', '--maps-dir', join(dir, 'maps'), first]);
  assert.equal(rise.code, 0, rise.stderr);
  const header = readFileSync(String(parseNdjson(rise.stdout)[0].saliency)).subarray(0, 128).toString('latin1');
  assert.match(header, /'shape': \(48, 32\)/);
  // Head-then-fine-tune with a tower learning-rate multiplier and frozen BatchNorm resumes bit-exactly.
  const flags = ['-i', items, '--vocab', vocab, '--input-size', '32', '--width', '4', '--stages', '3', '--epochs', '3', '--head-epochs', '1', '--backbone-lr', '0.5', '--freeze-bn', '--epoch-size', '64', '--batch', '16', '--negatives', '5'];
  for (const args of [['-o', join(dir, 'w1')], ['-o', join(dir, 'w2'), '--stop-after', '2'], ['-o', join(dir, 'w2'), '--resume']]) {
    const run = await runAtelier(['train-weak', ...flags, ...args]);
    assert.equal(run.code, 0, run.stderr);
  }
  assert.ok(readFileSync(join(dir, 'w1', 'weights.bin')).equals(readFileSync(join(dir, 'w2', 'weights.bin'))), 'resumed weak model differs');
  // A bad tower name is one usage line before any image is decoded.
  const bad = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'x'), '--tower', 'vgg16']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--tower: unknown tower 'vgg16'/);
});
