// import-backbone and the backbone cut: the nsfwjs MobileNetV2 imported offline keeps the package's
// weights bit for bit, and its features match nsfwjs's own model; preprocessing is exact.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as nsfwjs from 'nsfwjs';
import { tf } from '../../src/lib/backend/tf.js';
import { selectBackend } from '../../src/lib/backend/select.js';
import { loadModel } from '../../src/lib/backend/model-io.js';
import { nsfwjsArtifacts } from '../../src/lib/backend/backbone-io.js';
import { cutBackbone, parsePreprocessing, PREPROCESSING } from '../../src/lib/models/backbone.js';
import { runAtelier, scratchDir } from '../helpers.js';

let dir: string;
let imported: string;

beforeAll(async () => {
  await selectBackend({ requested: 'wasm', env: {}, stderr: { write: () => true } as unknown as NodeJS.WritableStream });
  dir = scratchDir();
  imported = join(dir, 'mobilenetv2');
  const r = await runAtelier(['import-backbone', '--from', 'nsfwjs', '-o', imported]);
  assert.equal(r.code, 0, r.stderr);
  const line = JSON.parse(r.stdout);
  assert.equal(line.layers, 162);
  assert.equal(line.defaultLayer, 'out_relu');
});

test('import-backbone: every weight is bit-identical to the package shard as tfjs dequantizes it', async () => {
  const artifacts = await nsfwjsArtifacts();
  const reference = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  const { model } = await loadModel(imported);
  const ours = new Map(model.weights.map((w) => [w.originalName, w.read()]));
  assert.equal(ours.size, Object.keys(reference).length);
  for (const [name, expected] of Object.entries(reference)) {
    const got = ours.get(name);
    assert.ok(got, `weight ${name} is missing`);
    assert.deepEqual(got.shape, expected.shape, name);
    const a = Buffer.from((got.dataSync() as Float32Array).buffer);
    const b = Buffer.from((expected.dataSync() as Float32Array).buffer);
    assert.ok(a.equals(b), `weight ${name} differs`);
  }
  tf.dispose(Object.values(reference));
  model.dispose();
});

test("backbone cut: features match nsfwjs's own model at flatten_1 (default cut and named layer), max |diff| < 1e-5", async () => {
  const nsfw = await nsfwjs.load('MobileNetV2');
  const { model } = await loadModel(imported);
  const bytes = tf.tidy(() => tf.randomUniform([224, 224, 3], 0, 256, 'int32', 7));
  const theirs = nsfw.infer(bytes as tf.Tensor3D, 'flatten_1') as tf.Tensor;
  const pixels = tf.tidy(() => tf.div(tf.cast(bytes, 'float32'), 255).expandDims(0));
  for (const layer of [undefined, 'flatten_1']) {
    const { tower, layer: used } = cutBackbone(model, { input: { height: 224, width: 224 }, layer, preprocessing: PREPROCESSING.unit });
    assert.equal(used, layer ?? 'out_relu');
    const ours = tower.predict(pixels) as tf.Tensor;
    assert.deepEqual(ours.shape, [1, 1280]);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]);
    assert.ok(diff < 1e-5, `${used}: max abs diff ${diff}`);
    ours.dispose();
  }
  tf.dispose([bytes, theirs, pixels]);
  model.dispose();
});

test('backbone cut: preprocessing presets are exact, at another input size, and wrong flags are one-line usage errors', () => {
  const input = tf.input({ shape: [8, 8, 3] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'c' });
  const net = tf.model({ inputs: input, outputs: tf.layers.globalAveragePooling2d({ name: 'g' }).apply(conv.apply(input)) as tf.SymbolicTensor });
  const x = tf.randomUniform([2, 6, 4, 3], 0, 1, 'float32', 3);
  for (const name of ['tf', 'caffe', 'torch'] as const) {
    const p = PREPROCESSING[name];
    const { tower } = cutBackbone(net, { input: { height: 6, width: 4 }, layer: 'c', preprocessing: p });
    const got = tower.predict(x) as tf.Tensor;
    const expected = tf.tidy(() => {
      const ordered = p.channels === 'bgr' ? tf.reverse(x, 3) : x;
      const pre = tf.div(tf.sub(tf.mul(ordered, p.scale), tf.tensor1d(p.mean)), tf.tensor1d(p.std));
      return tf.mean(conv.apply(pre) as tf.Tensor, [1, 2]);
    });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0]);
    assert.ok(diff < 1e-4, `${name}: ${diff}`);
    tf.dispose([got, expected]);
  }
  assert.deepEqual(parsePreprocessing('scale=255,mean=1:2:3,std=2,channels=bgr'), { scale: 255, mean: [1, 2, 3], std: [2, 2, 2], channels: 'bgr' });
  assert.throws(() => parsePreprocessing('mean=1:2'), /expected one number or three/);
  assert.throws(() => cutBackbone(net, { input: { height: 6, width: 4 }, layer: 'nope', preprocessing: PREPROCESSING.unit }), /no layer 'nope'/);
  x.dispose();
});
