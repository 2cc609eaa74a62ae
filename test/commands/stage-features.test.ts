// embed --layer stages: every resolution stage of the tower, averaged over its map and concatenated
// from the input side to the pooled features. The stages are found on the image path (also when the
// tower's layers are shared with the backbone they were cut from), each block is the mean of its
// layer's map, the last block is --layer pooled, both engines and an exported weak model's .onnx file
// write the same rows, and an .onnx file that holds no stages (an image classifier's) is refused.
// --layer stages-max adds each stage's maximum over its map after those columns.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { saveMobileWeakModel } from '../model-fixtures.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { readNpy } from '../../src/lib/io/npy.js';
import { buildWeakModel, featureModel } from '../../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../../src/lib/models/weak-files.js';
import { cutBackbone, PREPROCESSING } from '../../src/lib/models/backbone.js';
import { stageFeatureModel, towerStages } from '../../src/lib/models/stage-features.js';
import { buildImageClassifier, CLASSIFIER_MODEL_KIND, imageFeatureModel } from '../../src/lib/facets/classifier-model.js';

let dir: string;
let images: string;
const vocabulary = Array.from({ length: 10 }, (_, i) => `word${i}`);
const config = { inputSize: 32, width: 8, blocksPerStage: 1, stages: 3, projection: 6, vocabularySize: vocabulary.length, seed: 2 };

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  const records = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 12);
  images = join(dir, 'images.ndjson');
  writeFileSync(images, records.map((r) => JSON.stringify({ id: r.id, image: join(catalogue, String(r.image)) })).join('\n') + '\n');
  await saveModel(buildWeakModel(config), join(dir, 'weak.model'), { metadata: { kind: WEAK_MODEL_KIND, vocabulary, config, backend: 'cpu', log: [] } });
  await saveMobileWeakModel(dir, config, vocabulary);
});

function worstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
  return worst;
}

test('the stages of a small tower run from the first stage to the pooled map; each block is its map averaged, the last is pooled', async () => {
  const model = buildWeakModel(config);
  const stages = towerStages(model);
  assert.deepEqual(stages.map((s) => [s.height, s.channels]), [[16, 8], [8, 16], [4, 32]]);
  const features = stageFeatureModel(model);
  assert.deepEqual(features.outputs[0].shape, [null, 8 + 16 + 32]);
  const x = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 5);
  const rows = (features.predict(x) as tf.Tensor2D).arraySync();
  let offset = 0;
  for (const stage of stages) {
    const map = tf.model({ inputs: model.inputs, outputs: model.getLayer(stage.layer).output as tf.SymbolicTensor }).predict(x) as tf.Tensor4D;
    const mean = tf.mean(map, [1, 2]).arraySync() as number[][];
    for (let n = 0; n < 3; n++) assert.ok(worstDifference(rows[n].slice(offset, offset + stage.channels), mean[n]) < 1e-5, `stage ${stage.layer}`);
    offset += stage.channels;
  }
  const pooled = (featureModel(model, 'pooled').predict(x) as tf.Tensor2D).arraySync();
  for (let n = 0; n < 3; n++) assert.ok(worstDifference(rows[n].slice(-32), pooled[n]) < 1e-5);
});

test('stages-max: the stage columns, then each stage map\'s maximum in the same order', () => {
  const model = buildWeakModel(config);
  const stages = towerStages(model);
  const features = stageFeatureModel(model, 'stages-max');
  assert.deepEqual(features.outputs[0].shape, [null, 2 * (8 + 16 + 32)]);
  const x = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 6);
  const rows = (features.predict(x) as tf.Tensor2D).arraySync();
  const means = (stageFeatureModel(model, 'stages').predict(x) as tf.Tensor2D).arraySync();
  for (let n = 0; n < 3; n++) assert.ok(worstDifference(rows[n].slice(0, 56), means[n]) < 1e-6, 'the first half is --layer stages');
  let offset = 56;
  for (const stage of stages) {
    const map = tf.model({ inputs: model.inputs, outputs: model.getLayer(stage.layer).output as tf.SymbolicTensor }).predict(x) as tf.Tensor4D;
    const max = tf.max(map, [1, 2]).arraySync() as number[][];
    for (let n = 0; n < 3; n++) assert.ok(worstDifference(rows[n].slice(offset, offset + stage.channels), max[n]) < 1e-6, `stage ${stage.layer}`);
    offset += stage.channels;
  }
});

test('a tower cut from a backbone (its layers shared with the backbone graph) still has its stages', () => {
  const input = tf.input({ shape: [32, 32, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'a', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: 1, name: 'pad' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, name: 'b', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'b_relu' }).apply(x) as tf.SymbolicTensor;
  const backbone = tf.model({ inputs: input, outputs: x });
  const { tower } = cutBackbone(backbone, { input: { height: 32, width: 32 }, preprocessing: PREPROCESSING.unit });
  assert.ok(backbone.getLayer('a').inboundNodes.length === 2, 'the cut re-applies the backbone layers');
  const model = buildWeakModel({ ...config, projection: 0 }, tower);
  // The padded 18x18 map is no stage; the relu, last at 8x8, ends the path.
  assert.deepEqual(towerStages(model).map((s) => `${s.layer} ${s.height}x${s.width}x${s.channels}`), ['a 16x16x4', 'b_relu 8x8x6']);
  assert.deepEqual(stageFeatureModel(model).outputs[0].shape, [null, 10]);
});

test('embed --layer stages: both engines and the exported file write the same rows, which end with --layer pooled; a classifier file is refused', async () => {
  for (const [name, pooledWidth, width] of [['weak', 32, 56], ['mobile', 1280, 0]] as const) {
    const rows: Record<string, Float32Array> = {};
    let dim = 0;
    for (const engine of ['ort', 'tfjs']) {
      const out = join(dir, `${name}-stages-${engine}.npy`);
      const r = await runAtelier(['embed', '-m', join(dir, `${name}.model`), '-i', images, '-o', out, '--layer', 'stages', '--engine', engine, '--workers', '1']);
      assert.equal(r.code, 0, r.stderr);
      const npy = await readNpy(out);
      dim = npy.header.shape[1];
      assert.equal(npy.header.shape[0], 12);
      if (width) assert.equal(dim, width);
      rows[engine] = npy.data as Float32Array;
    }
    assert.ok(worstDifference(rows.tfjs, rows.ort) < 1e-4, `${name}: engines differ`);
    const out = join(dir, `${name}-pooled.npy`);
    const r = await runAtelier(['embed', '-m', join(dir, `${name}.model`), '-i', images, '-o', out, '--layer', 'pooled', '--engine', 'tfjs', '--workers', '1']);
    assert.equal(r.code, 0, r.stderr);
    const pooled = await readNpy(out);
    assert.equal(pooled.header.shape[1], pooledWidth);
    assert.ok(dim > pooledWidth, `${name}: ${dim} stage columns`);
    const tail = Float32Array.from({ length: 12 * pooledWidth }, (_, i) => rows.tfjs[Math.floor(i / pooledWidth) * dim + dim - pooledWidth + (i % pooledWidth)]);
    assert.ok(worstDifference(tail, pooled.data as Float32Array) < 1e-5, `${name}: the last block is the pooled features`);
  }
  // An exported weak model holds the stages: onnxruntime on the file gives the model directory's rows.
  const onnx = join(dir, 'weak.onnx');
  assert.equal((await runAtelier(['export', '-m', join(dir, 'weak.model'), '-o', onnx])).code, 0);
  const fromFile = join(dir, 'weak-stages-file.npy');
  const served = await runAtelier(['embed', '-m', onnx, '-i', images, '-o', fromFile, '--layer', 'stages']);
  assert.equal(served.code, 0, served.stderr);
  assert.ok(worstDifference((await readNpy(join(dir, 'weak-stages-tfjs.npy'))).data as Float32Array, (await readNpy(fromFile)).data as Float32Array) < 1e-4);
  // stages-max: both engines and the file agree, and its first half is the stages.
  const maxRows: Float32Array[] = [];
  for (const [model, extra] of [[join(dir, 'weak.model'), ['--engine', 'tfjs', '--workers', '1']], [join(dir, 'weak.model'), ['--engine', 'ort', '--workers', '1']], [onnx, []]] as const) {
    const out = join(dir, `weak-stages-max-${maxRows.length}.npy`);
    const r = await runAtelier(['embed', '-m', model, '-i', images, '-o', out, '--layer', 'stages-max', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    const npy = await readNpy(out);
    assert.deepEqual(npy.header.shape, [12, 112]);
    maxRows.push(npy.data as Float32Array);
  }
  assert.ok(worstDifference(maxRows[0], maxRows[1]) < 1e-4 && worstDifference(maxRows[0], maxRows[2]) < 1e-4, 'stages-max: engines or file differ');
  const stageRows = (await readNpy(join(dir, 'weak-stages-tfjs.npy'))).data as Float32Array;
  assert.ok(worstDifference(Float32Array.from({ length: 12 * 56 }, (_, i) => maxRows[0][Math.floor(i / 56) * 112 + (i % 56)]), stageRows) < 1e-5);
  // An image classifier's file holds its features only.
  const classifier = buildImageClassifier(imageFeatureModel(buildWeakModel(config), 'embedding'), 3, { kind: 'linear', hidden: 0, dropout: 0, seed: 4 });
  await saveModel(classifier, join(dir, 'classifier.model'), { metadata: { kind: CLASSIFIER_MODEL_KIND, labels: ['a', 'b', 'c'], input: 'image', inputDim: 32, labelField: 'silhouette' } });
  const classifierOnnx = join(dir, 'classifier.onnx');
  assert.equal((await runAtelier(['export', '-m', join(dir, 'classifier.model'), '-o', classifierOnnx])).code, 0);
  const r = await runAtelier(['embed', '-m', classifierOnnx, '-i', images, '-o', join(dir, 'x.npy'), '--layer', 'stages']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^atelier embed: .*classifier\.onnx: --layer: the \.onnx file has no 'stages' image features .*embed from the model directory\n$/);
  // The model directory has them.
  const fromDirectory = await runAtelier(['embed', '-m', join(dir, 'classifier.model'), '-i', images, '-o', join(dir, 'c.npy'), '--layer', 'stages', '--workers', '1']);
  assert.equal(fromDirectory.code, 0, fromDirectory.stderr);
  assert.deepEqual((await readNpy(join(dir, 'c.npy'))).header.shape, [12, 56]);
});

test('train-classifier --tower-layer stages: the head reads every stage; classify and embed read the saved model; on colour it beats the pooled head', async () => {
  const catalogue = await fixtureCatalogue();
  const records = join(catalogue, 'images.ndjson');
  const accuracy: Record<string, number> = {};
  for (const layer of ['pooled', 'stages', 'stages-max']) {
    const model = join(dir, `colour-${layer}.model`);
    const report = join(dir, `colour-${layer}.json`);
    const r = await runAtelier(['train-classifier', '-i', records, '-l', 'colour', '--tower', join(dir, 'weak.model'), '--tower-layer', layer, '--epochs', '30', '--workers', '1', '-o', model, '--report', report], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    accuracy[layer] = JSON.parse(readFileSync(report, 'utf8')).test.accuracy;
  }
  const model = join(dir, 'colour-stages.model');
  const classified = await runAtelier(['classify', '-m', model, '-i', images]);
  assert.equal(classified.code, 0, classified.stderr);
  assert.equal(parseNdjson(classified.stdout).length, 12);
  const features = join(dir, 'colour-stages-features.npy');
  const embedded = await runAtelier(['embed', '-m', model, '-i', images, '-o', features, '--workers', '1']);
  assert.equal(embedded.code, 0, embedded.stderr);
  assert.deepEqual((await readNpy(features)).header.shape, [12, 56], 'embed writes what the head reads: the 56 stage columns');
  // An untrained tower, 8 colours (chance 0.125), 472 test images: measured pooled 0.502, stages 0.693
  // (2026-12-04). The margin asked, 0.10, is about 3 standard errors of the difference below the gap.
  assert.ok(accuracy.stages >= accuracy.pooled + 0.1, JSON.stringify(accuracy));
  // stages-max: the head reads 112 columns and is saved so that embed writes them.
  const maxFeatures = join(dir, 'colour-stages-max-features.npy');
  assert.equal((await runAtelier(['embed', '-m', join(dir, 'colour-stages-max.model'), '-i', images, '-o', maxFeatures, '--workers', '1'])).code, 0);
  assert.deepEqual((await readNpy(maxFeatures)).header.shape, [12, 112]);
  // Measured 0.638 (2026-12-04): above pooled, below the means alone on these 8 flat colours, where a
  // maximum adds columns, not evidence. Asked: pooled + 0.08 (about 3 standard errors of the difference).
  assert.ok(accuracy['stages-max'] >= accuracy.pooled + 0.08, JSON.stringify(accuracy));
});
