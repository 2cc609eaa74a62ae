// rise on a model built in the test where one patch alone decides the output: the map must find it.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { readNpy } from '../../src/lib/io/npy.js';
import { generateMasks } from '../../src/lib/explain/rise.js';
import { createRandom } from '../../src/lib/random.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

const SIZE = 32;
// The planted patch: rows 4..11, columns 18..25.
const PATCH = { top: 4, left: 18, height: 8, width: 8 };
let dir: string;
let modelDir: string;
let image: string;

beforeAll(async () => {
  dir = scratchDir();
  await tf.setBackend('cpu');
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const patch = tf.layers.cropping2D({ cropping: [[PATCH.top, SIZE - PATCH.top - PATCH.height], [PATCH.left, SIZE - PATCH.left - PATCH.width]] }).apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(patch) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: 'sigmoid' });
  const output = dense.apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  // Output = sigmoid(16 * mean red of the patch - 12): high only when most of the patch is kept.
  dense.setWeights([tf.tensor2d([[16], [0], [0]]), tf.tensor1d([-12])]);
  modelDir = join(dir, 'planted.model');
  await saveModel(model, modelDir, { metadata: { kind: 'test-planted' } });
  image = join(dir, 'red.png');
  await sharp({ create: { width: SIZE, height: SIZE, channels: 3, background: { r: 255, g: 40, b: 40 } } }).png().toFile(image);
});

test('the saliency peak lies in the planted patch, which outweighs the rest', async () => {
  const maps = join(dir, 'maps');
  const r = await runAtelier(['rise', '-m', modelDir, '--n', '800', '--s', '8', '--maps-dir', maps, '--overlay', join(dir, 'overlay'), '--metrics', image]);
  assert.equal(r.code, 0, r.stderr);
  const [summary] = parseNdjson(r.stdout);
  const peak = summary.peak as { x: number; y: number };
  assert.ok(peak.x >= PATCH.left && peak.x < PATCH.left + PATCH.width && peak.y >= PATCH.top && peak.y < PATCH.top + PATCH.height, `peak at ${JSON.stringify(peak)}`);
  const map = await readNpy(summary.saliency as string);
  assert.deepEqual(map.header.shape, [SIZE, SIZE]);
  const data = map.data as Float32Array;
  let inside = 0;
  let outside = 0;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const inPatch = y >= PATCH.top && y < PATCH.top + PATCH.height && x >= PATCH.left && x < PATCH.left + PATCH.width;
      if (inPatch) inside += data[y * SIZE + x];
      else outside += data[y * SIZE + x];
    }
  }
  const patchPixels = PATCH.width * PATCH.height;
  const ratio = inside / patchPixels / (outside / (SIZE * SIZE - patchPixels));
  // RISE maps are smooth (masks are upsampled cells), so the contrast is modest: a map blind to the patch gives 1.0 ± 0.05.
  assert.ok(ratio > 1.3, `mean saliency inside the patch is ${ratio.toFixed(2)}x the rest (need > 1.3x)`);
  assert.ok((summary.deletionAuc as number) < (summary.insertionAuc as number), `deletion AUC ${summary.deletionAuc} < insertion AUC ${summary.insertionAuc}`);
  assert.ok(existsSync(summary.overlay as string));
  const overlay = await sharp(summary.overlay as string).metadata();
  assert.equal(overlay.format, 'png');
});

test('same masks and seed give identical maps; --masks saves and reuses them', async () => {
  const masks = join(dir, 'masks.npy');
  const a = await runAtelier(['rise', '-m', modelDir, '--n', '200', '--masks', masks, '--maps-dir', join(dir, 'a'), image]);
  const b = await runAtelier(['rise', '-m', modelDir, '--n', '200', '--masks', masks, '--maps-dir', join(dir, 'b'), image]);
  const c = await runAtelier(['rise', '-m', modelDir, '--n', '200', '--seed', '1', '--maps-dir', join(dir, 'c'), image]);
  for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
  const read = (r: { stdout: string }) => readFileSync(String(parseNdjson(r.stdout)[0].saliency));
  assert.ok(read(a).equals(read(b)), 'reused masks give the same map');
  assert.ok(read(a).equals(read(c)), 'the same seed gives the same masks');
  const saved = await readNpy(masks);
  assert.deepEqual(saved.header.shape, [200, SIZE, SIZE]);
});

test('masks follow the reference construction: smooth, in [0, 1], about p1 on average', () => {
  const masks = generateMasks({ count: 400, grid: 8, keepProbability: 0.3, height: 40, width: 40 }, createRandom(7));
  let sum = 0;
  let fractional = 0;
  for (const v of masks) {
    assert.ok(v >= 0 && v <= 1);
    sum += v;
    if (v > 0.01 && v < 0.99) fractional++;
  }
  const mean = sum / masks.length;
  assert.ok(Math.abs(mean - 0.3) < 0.03, `mean mask value ${mean.toFixed(3)} is near p1 = 0.3`);
  assert.ok(fractional / masks.length > 0.2, 'bilinear upsampling gives soft edges');
});

test('bad input: grid larger than the image, a model without an image input -> one line, exit 2', async () => {
  const a = await runAtelier(['rise', '-m', modelDir, '--s', '64', image]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--s: grid of 64 cells is larger than the 32-pixel image/);
  const dense = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [4] })] });
  const flat = join(dir, 'flat.model');
  await saveModel(dense, flat);
  const b = await runAtelier(['rise', '-m', flat, image]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /flat\.model: the model has no RGB image input/);
});

test('rise explains the probability classify reports: a classifier ends in softmax, which rise must not apply twice', async () => {
  const catalogue = await fixtureCatalogue();
  const labelled = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8'))
    .slice(0, 60)
    .map((r) => JSON.stringify({ ...r, image: join(catalogue, String(r.image)) }));
  const list = join(dir, 'labelled.ndjson');
  writeFileSync(list, labelled.join('\n') + '\n');
  const model = join(dir, 'pattern.model');
  const trained = await runAtelier(['train-classifier', '-i', list, '-l', 'pattern', '--mode', 'finetune', '--input-size', '32', '--width', '4', '--stages', '2', '--epochs', '2', '--patience', '1', '-o', model]);
  assert.equal(trained.code, 0, trained.stderr);
  const photo = String(JSON.parse(labelled[0]).image);
  const classified = await runAtelier(['classify', '-m', model, photo]);
  assert.equal(classified.code, 0, classified.stderr);
  const [prediction] = parseNdjson(classified.stdout);
  const label = String(prediction.label);
  const probability = (prediction.probs as Record<string, number>)[label];
  const explained = await runAtelier(['rise', '-m', model, '--class', label, '--n', '40', photo]);
  assert.equal(explained.code, 0, explained.stderr);
  const [summary] = parseNdjson(explained.stdout);
  assert.equal(summary.class, label);
  assert.ok(Math.abs((summary.score as number) - probability) < 1e-5, `rise score ${String(summary.score)} = classify's P(${label}) ${probability}`);
});
