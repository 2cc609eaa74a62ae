// atelier export: every model kind, saved as training saves it, exported by the command and run
// in onnxruntime-node on fixture images, equals the tfjs model within 1e-4, at any batch size;
// Python's onnx checker (Debian python3-onnx) validates the files when it is installed.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { randomiseNormalisation } from '../model-fixtures.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { buildWeakModel } from '../../src/lib/models/weak-model.js';
import { stageFeatureModel } from '../../src/lib/models/stage-features.js';
import { WEAK_MODEL_KIND } from '../../src/lib/models/weak-files.js';
import { buildFeatureClassifier, buildImageClassifier, CLASSIFIER_MODEL_KIND, imageFeatureModel } from '../../src/lib/facets/classifier-model.js';
import { SIMILARITY_MODEL_KIND } from '../../src/lib/similarity/triplet.js';
import { SIZENET_MODEL_KIND } from '../../src/lib/sizenet/evaluation.js';
import { buildImageStudentModel, buildStudentModel, studentLayers } from '../../src/lib/sizenet/student.js';
import { buildSmallCnn } from '../../src/lib/models/small-cnn.js';
import { computeFeatures } from '../../src/lib/models/image-features.js';
import { pathRecords } from '../../src/lib/image/records.js';
import { createSkipCounter } from '../../src/lib/image/skips.js';
import { decodeModelSummary } from '../../src/lib/onnx/proto.js';

const INPUT = 32;
let dir: string;
let images: Float32Array;
let imageCount: number;
const pythonOnnx = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;

/** A MobileNet/ResNet-like graph of standard Keras layers none of atelier's own models use. */
function kerasLayersModel(): tf.LayersModel {
  const input = tf.input({ shape: [INPUT, INPUT, 3], name: 'image' });
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  let x = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]] }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', kernelInitializer: init(1) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  const depthwise = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2, activation: 'relu6', depthwiseInitializer: init(2) }).apply(x) as tf.SymbolicTensor;
  const projected = tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, kernelInitializer: init(3) }).apply(depthwise) as tf.SymbolicTensor;
  x = tf.layers.add().apply([x, projected]) as tf.SymbolicTensor;
  const separable = tf.layers.separableConv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'swish', depthwiseInitializer: init(4), pointwiseInitializer: init(5) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.concatenate().apply([x, separable]) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.averagePooling2d({ poolSize: 2 }).apply(x) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  let y = tf.layers.dense({ units: 5, activation: 'tanh', kernelInitializer: init(6) }).apply(flat) as tf.SymbolicTensor;
  y = tf.layers.dropout({ rate: 0.3 }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.concatenate().apply([y, pooled]) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(7) }).apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y });
  randomiseNormalisation(model, 40);
  return model;
}

interface Case {
  name: string;
  model: tf.LayersModel;
  metadata: Record<string, unknown>;
  /** ONNX output name -> the tfjs model computing it. */
  outputs: Record<string, tf.LayersModel>;
  labels?: string[];
}

const cases: Case[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  const paths = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8'))
    .slice(0, 6)
    .map((r) => join(catalogue, String(r.image)));
  const rows: Float32Array[] = [];
  // The pixels exactly as embed, tag and classify feed them: cover-resize, centre crop, /255.
  for await (const batch of computeFeatures(null, pathRecords(paths), INPUT, 16, createSkipCounter(), { stderr: process.stderr }, 'test')) rows.push(batch.rows);
  images = Float32Array.from(rows.flatMap((r) => [...r]));
  imageCount = images.length / (INPUT * INPUT * 3);

  const vocabulary = Array.from({ length: 12 }, (_, i) => `word${i}`);
  const weakConfig = { inputSize: INPUT, width: 8, blocksPerStage: 1, stages: 2, projection: 6, vocabularySize: vocabulary.length, seed: 1 };
  const weak = buildWeakModel(weakConfig);
  randomiseNormalisation(weak, 10);
  const sub = (model: tf.LayersModel, layer: string) => tf.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tf.SymbolicTensor });
  cases.push({ name: 'weak', model: weak, metadata: { kind: WEAK_MODEL_KIND, vocabulary, config: weakConfig, backend: 'cpu', log: [] }, outputs: { scores: weak, embedding: sub(weak, 'projection'), pooled: sub(weak, 'pooled'), stages: stageFeatureModel(weak), stages_max: stageFeatureModel(weak, 'stages-max') }, labels: vocabulary });

  const labels = ['dress', 'shoe', 'bag'];
  const tower = imageFeatureModel(weak, 'embedding');
  const imageClassifier = buildImageClassifier(tower, labels.length, { kind: 'mlp', hidden: 7, dropout: 0.2, seed: 3 });
  cases.push({ name: 'image-classifier', model: imageClassifier, metadata: { kind: CLASSIFIER_MODEL_KIND, labels, input: 'image', inputDim: INPUT }, outputs: { probs: imageClassifier, features: sub(imageClassifier, 'projection') }, labels });

  const featureClassifier = buildFeatureClassifier(10, 4, { kind: 'linear', hidden: 0, dropout: 0.1, seed: 4 });
  cases.push({ name: 'feature-classifier', model: featureClassifier, metadata: { kind: CLASSIFIER_MODEL_KIND, labels: ['a', 'b', 'c', 'd'], input: 'features', inputDim: 10 }, outputs: { probs: featureClassifier }, labels: ['a', 'b', 'c', 'd'] });

  const pooled = weak.getLayer('pooled').output as tf.SymbolicTensor;
  const embedding = tf.layers.dense({ units: 5, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }), name: 'similarity' }).apply(pooled) as tf.SymbolicTensor;
  const similarity = tf.model({ inputs: weak.inputs, outputs: embedding });
  cases.push({ name: 'similarity', model: similarity, metadata: { kind: SIMILARITY_MODEL_KIND }, outputs: { embedding: similarity } });

  const studentConfig = { inputDim: 6, hidden: [8, 6, 4], dropout: 0, seed: 6 };
  const student = buildStudentModel(studentConfig, studentLayers(studentConfig));
  cases.push({ name: 'sizenet', model: student, metadata: { kind: SIZENET_MODEL_KIND, config: studentConfig }, outputs: { p_size_issue: student } });
  const imageStudent = buildImageStudentModel(tower, student);
  cases.push({ name: 'sizenet-image', model: imageStudent, metadata: { kind: SIZENET_MODEL_KIND, config: studentConfig, tower: 'weak' }, outputs: { p_size_issue: imageStudent } });

  const cnn = buildSmallCnn({ variant: 'maxpool', inputSize: INPUT, filters: [4, 4, 8, 8], classes: 5, seed: 7 });
  cases.push({ name: 'small-cnn', model: cnn, metadata: {}, outputs: { output: cnn } });
  const keras = kerasLayersModel();
  cases.push({ name: 'keras-layers', model: keras, metadata: {}, outputs: { output: keras } });

  for (const c of cases) await saveModel(c.model, join(dir, `${c.name}.model`), { metadata: c.metadata });
});

function inputFor(model: tf.LayersModel, count: number, seed: number): { data: Float32Array; shape: number[] } {
  const shape = model.inputs[0].shape;
  if (shape.length === 4) return { data: images.slice(0, count * INPUT * INPUT * 3), shape: [count, INPUT, INPUT, 3] };
  const dim = shape[1] as number;
  return { data: tf.randomNormal([count, dim], 0, 1, 'float32', seed).dataSync() as Float32Array, shape: [count, dim] };
}

function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
  return worst;
}

test('every model kind exports, and onnxruntime gives the tfjs outputs within 1e-4 on fixture images at any batch size', async () => {
  for (const c of cases) {
    const out = join(dir, `${c.name}.onnx`);
    const r = await runAtelier(['export', '-m', join(dir, `${c.name}.model`), '-o', out]);
    assert.equal(r.code, 0, `${c.name}: ${r.stderr}`);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual(summary.outputs.map((o: { name: string }) => o.name).sort(), Object.keys(c.outputs).sort(), c.name);

    const bytes = readFileSync(out);
    const onnx = decodeModelSummary(bytes);
    assert.ok(onnx.opset >= 17, `${c.name}: opset ${onnx.opset}`);
    const image = c.model.inputs[0].shape.length === 4;
    assert.deepEqual(onnx.inputs, [image ? 'image' : 'features']);
    const preprocessing = JSON.parse(onnx.metadata.preprocessing);
    if (image) assert.deepEqual([preprocessing.layout, preprocessing.inputSize, preprocessing.storedSize], ['NHWC', INPUT, 36]);
    if (c.labels) assert.deepEqual(JSON.parse(onnx.metadata.labels), c.labels, c.name);
    assert.ok(!onnx.nodes.includes('Dropout'), 'dropout is identity at inference');

    const session = await ort.InferenceSession.create(bytes);
    for (const count of image ? [1, imageCount] : [1, 7]) {
      const x = inputFor(c.model, count, count);
      const results = await session.run({ [onnx.inputs[0]]: new ort.Tensor('float32', x.data, x.shape) });
      for (const [name, reference] of Object.entries(c.outputs)) {
        const expected = tf.tidy(() => reference.predict(tf.tensor(x.data, x.shape)) as tf.Tensor);
        const got = results[name];
        assert.deepEqual(got.dims.map(Number), expected.shape, `${c.name}.${name} shape`);
        const diff = maxRelativeDifference(expected.dataSync(), got.data as Float32Array);
        assert.ok(diff < 1e-4, `${c.name}.${name} (batch ${count}): differs from tfjs by ${diff}`);
        expected.dispose();
      }
    }
    await session.release();
  }
});

test('the exported files pass the ONNX checker with full shape inference (Python onnx, Debian python3-onnx)', (ctx) => {
  if (!pythonOnnx) ctx.skip('python3-onnx is not installed (apt-get install python3-onnx)');
  const script = 'import sys, onnx\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\nprint(len(sys.argv) - 1)';
  const r = spawnSync('/usr/bin/python3', ['-c', script, ...cases.map((c) => join(dir, `${c.name}.onnx`))], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), String(cases.length));
});

test('a layer with no ONNX conversion, or a directory that is not a model: one line, exit 2', async () => {
  const input = tf.input({ shape: [4], name: 'features' });
  const repeated = tf.layers.repeatVector({ n: 2, name: 'repeat' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: tf.layers.flatten().apply(repeated) as tf.SymbolicTensor });
  await saveModel(model, join(dir, 'repeat.model'), { metadata: {} });
  const r = await runAtelier(['export', '-m', join(dir, 'repeat.model'), '-o', join(dir, 'repeat.onnx')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^atelier export: .*repeat\.model: cannot export: layer 'repeat' of class RepeatVector has no ONNX conversion/);

  const missing = await runAtelier(['export', '-m', dir, '-o', join(dir, 'x.onnx')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /not a model directory/);
});
