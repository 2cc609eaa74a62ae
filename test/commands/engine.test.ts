// --engine ort|tfjs|auto: embed, tag, classify and predict-sizenet give the same outputs (1e-4) on
// onnxruntime and on tfjs, run as processes; auto takes onnxruntime and says so; a model that does
// not convert falls back to tfjs under auto and is an error under --engine ort.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { saveMobileWeakModel } from '../model-fixtures.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { readNpy, writeNpy } from '../../src/lib/io/npy.js';
import { buildWeakModel } from '../../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../../src/lib/models/weak-files.js';
import { buildImageClassifier, CLASSIFIER_MODEL_KIND, imageFeatureModel } from '../../src/lib/facets/classifier-model.js';
import { SIZENET_MODEL_KIND } from '../../src/lib/sizenet/evaluation.js';
import { buildStudentModel, studentLayers } from '../../src/lib/sizenet/student.js';
import { decodeModelSummary } from '../../src/lib/onnx/proto.js';

const INPUT = 32;
let dir: string;
let images: string;
let imagePaths: string[];
const labels = ['dress', 'shoe', 'bag'];

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  const records = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 24);
  imagePaths = records.map((r) => join(catalogue, String(r.image)));
  images = join(dir, 'images.ndjson');
  writeFileSync(images, records.map((r) => JSON.stringify({ id: r.id, image: join(catalogue, String(r.image)) })).join('\n') + '\n');

  const vocabulary = Array.from({ length: 10 }, (_, i) => `word${i}`);
  const config = { inputSize: INPUT, width: 8, blocksPerStage: 1, stages: 2, projection: 6, vocabularySize: vocabulary.length, seed: 2 };
  const weak = buildWeakModel(config);
  // Larger word weights than the initialiser's, so that tag's softmax is not flat and its ranking means something.
  const words = weak.getLayer('words');
  words.setWeights([tf.randomNormal(words.getWeights()[0].shape, 0, 2, 'float32', 3)]);
  await saveModel(weak, join(dir, 'weak.model'), { metadata: { kind: WEAK_MODEL_KIND, vocabulary, config, backend: 'cpu', log: [] } });

  await saveMobileWeakModel(dir, config, vocabulary);

  const classifier = buildImageClassifier(imageFeatureModel(weak, 'embedding'), labels.length, { kind: 'mlp', hidden: 6, dropout: 0.1, seed: 4 });
  await saveModel(classifier, join(dir, 'classifier.model'), { metadata: { kind: CLASSIFIER_MODEL_KIND, labels, input: 'image', inputDim: INPUT, labelField: 'silhouette' } });

  const studentConfig = { inputDim: 6, hidden: [8, 6, 4], dropout: 0, seed: 5 };
  await saveModel(buildStudentModel(studentConfig, studentLayers(studentConfig)), join(dir, 'sizenet.model'), { metadata: { kind: SIZENET_MODEL_KIND, config: studentConfig } });

  // A classifier whose head holds a layer with no ONNX conversion (RepeatVector).
  const image = tf.input({ shape: [INPUT, INPUT, 3], name: 'image' });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(tf.layers.conv2d({ filters: 4, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) }).apply(image)) as tf.SymbolicTensor;
  const repeated = tf.layers.flatten().apply(tf.layers.repeatVector({ n: 2, name: 'repeat' }).apply(pooled)) as tf.SymbolicTensor;
  const odd = tf.model({ inputs: image, outputs: tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }).apply(repeated) as tf.SymbolicTensor });
  await saveModel(odd, join(dir, 'odd.model'), { metadata: { kind: CLASSIFIER_MODEL_KIND, labels, input: 'image', inputDim: INPUT, labelField: 'silhouette' } });
});

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
  assert.ok(worst < 1e-4, `${what}: engines differ by ${worst}`);
}

test('embed: onnxruntime and tfjs write the same rows; auto picks onnxruntime and says so on stderr', async () => {
  const rows: Record<string, Float32Array> = {};
  for (const engine of ['ort', 'tfjs', 'auto']) {
    const out = join(dir, `emb-${engine}.npy`);
    const r = await runAtelier(['embed', '-m', join(dir, 'weak.model'), '-i', images, '-o', out, '--batch', '10', '--engine', engine]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, engine === 'tfjs' ? /atelier embed: engine tfjs \(forced by --engine=tfjs\)/ : engine === 'ort' ? /atelier embed: engine ort \(forced/ : /atelier embed: engine ort \(fastest available/);
    const npy = await readNpy(out);
    assert.deepEqual(npy.header.shape, [24, 6]);
    rows[engine] = npy.data as Float32Array;
  }
  assertClose(rows.tfjs, rows.ort, 'embed ort vs tfjs');
  assertClose(rows.tfjs, rows.auto, 'embed auto vs tfjs');
  const pooled = await Promise.all(['ort', 'tfjs'].map(async (engine) => {
    const out = join(dir, `pooled-${engine}.npy`);
    const r = await runAtelier(['embed', '-m', join(dir, 'weak.model'), '-i', images, '-o', out, '--layer', 'pooled', '--engine', engine]);
    assert.equal(r.code, 0, r.stderr);
    return (await readNpy(out)).data as Float32Array;
  }));
  assertClose(pooled[1], pooled[0], 'embed --layer pooled');
});

test('embed on a non-square MobileNetV2 model: onnxruntime and tfjs write the same rows; export records the contain resize', async () => {
  const rows: Record<string, Float32Array> = {};
  for (const engine of ['ort', 'tfjs']) {
    const out = join(dir, `mobile-${engine}.npy`);
    const r = await runAtelier(['embed', '-m', join(dir, 'mobile.model'), '-i', images, '-o', out, '--batch', '10', '--engine', engine]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`engine ${engine} \\(forced`));
    const npy = await readNpy(out);
    assert.deepEqual(npy.header.shape, [24, 1280]);
    rows[engine] = npy.data as Float32Array;
  }
  assertClose(rows.tfjs, rows.ort, 'mobilenetv2 embed ort vs tfjs');
  const onnx = join(dir, 'mobile.onnx');
  const r = await runAtelier(['export', '-m', join(dir, 'mobile.model'), '-o', onnx]);
  assert.equal(r.code, 0, r.stderr);
  const preprocessing = JSON.parse(decodeModelSummary(readFileSync(onnx)).metadata.preprocessing);
  assert.deepEqual(preprocessing.inputSize, { height: 48, width: 32 });
  assert.match(preprocessing.resize, /fit inside .* 54x36 /);
});

test('tag and classify: the same scores and probabilities on both engines', async () => {
  const tagged = await Promise.all(['ort', 'tfjs'].map((engine) => runAtelier(['tag', '-m', join(dir, 'weak.model'), '-i', images, '--k', '10', '--engine', engine])));
  for (const r of tagged) assert.equal(r.code, 0, r.stderr);
  const scoreTable = (text: string) => parseNdjson(text).flatMap((l) => (l.words as Array<{ word: string; score: number }>).sort((a, b) => a.word.localeCompare(b.word)).map((w) => w.score));
  assertClose(scoreTable(tagged[1].stdout), scoreTable(tagged[0].stdout), 'tag');

  const classified = await Promise.all(['ort', 'tfjs'].map((engine) => runAtelier(['classify', '-m', join(dir, 'classifier.model'), '-i', images, '--engine', engine])));
  for (const r of classified) assert.equal(r.code, 0, r.stderr);
  assert.match(classified[0].stderr, /engine ort/);
  const probs = (text: string) => parseNdjson(text).flatMap((l) => labels.map((label) => (l.probs as Record<string, number>)[label]));
  assert.equal(probs(classified[0].stdout).length, 24 * labels.length);
  assertClose(probs(classified[1].stdout), probs(classified[0].stdout), 'classify');
});

test('predict-sizenet: the same probabilities on both engines', async () => {
  const features = join(dir, 'features.npy');
  const count = 37;
  await writeNpy(features, tf.randomNormal([count, 6], 0, 1, 'float32', 8).dataSync() as Float32Array, [count, 6]);
  writeFileSync(join(dir, 'features.ids.ndjson'), Array.from({ length: count }, (_, i) => JSON.stringify({ id: `a${i}` })).join('\n') + '\n');
  const runs = await Promise.all(['ort', 'tfjs'].map((engine) => runAtelier(['predict-sizenet', '-m', join(dir, 'sizenet.model'), '-f', features, '--engine', engine])));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const p = (text: string) => parseNdjson(text).map((l) => Number(l.p_size_issue));
  assert.equal(p(runs[0].stdout).length, count);
  assertClose(p(runs[1].stdout), p(runs[0].stdout), 'predict-sizenet');
});

test('rise: the same saliency maps and scores on both engines', async () => {
  const runs = await Promise.all(['ort', 'tfjs'].map((engine) => runAtelier(['rise', '-m', join(dir, 'classifier.model'), '--class', 'shoe', '--n', '200', '--s', '4', '--batch', '50', '--metrics', '--steps', '8', '--maps-dir', join(dir, `maps-${engine}`), '--engine', engine, imagePaths[0], imagePaths[1]])));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.match(runs[0].stderr, /atelier rise: engine ort/);
  const [ort, tfjs] = runs.map((r) => parseNdjson(r.stdout));
  assert.equal(ort.length, 2);
  for (let i = 0; i < 2; i++) {
    assertClose([tfjs[i].score as number, ...(tfjs[i].deletion as number[]), ...(tfjs[i].insertion as number[])], [ort[i].score as number, ...(ort[i].deletion as number[]), ...(ort[i].insertion as number[])], 'rise scores and curves');
    const maps = await Promise.all([tfjs[i], ort[i]].map(async (line) => (await readNpy(String(line.saliency))).data as Float32Array));
    assertClose(maps[0], maps[1], 'rise saliency');
  }
});

test('a model onnxruntime cannot take: auto falls back to tfjs saying why, --engine ort is one line, exit 2; info reports the engine', async () => {
  const auto = await runAtelier(['classify', '-m', join(dir, 'odd.model'), imagePaths[0]]);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stderr, /atelier classify: engine tfjs \(the model does not run in onnxruntime: layer 'repeat' of class RepeatVector has no ONNX conversion\)/);
  assert.equal(parseNdjson(auto.stdout).length, 1);

  const forced = await runAtelier(['classify', '-m', join(dir, 'odd.model'), imagePaths[0]], { env: { ATELIER_ENGINE: 'ort' } });
  assert.equal(forced.code, 2);
  assert.equal(forced.stderr.trim().split('\n').filter((l) => !l.startsWith('atelier: backend')).length, 1, forced.stderr);
  assert.match(forced.stderr, /atelier classify: --engine: engine 'ort' cannot run this model: layer 'repeat'/);

  const info = await runAtelier(['info']);
  assert.equal(info.code, 0, info.stderr);
  const report = JSON.parse(info.stdout);
  assert.equal(report.engine, 'ort');
  assert.equal(report.engineThreads, report.cores);
  assert.match(report.versions['onnxruntime-node'], /^\d+\.\d+/);
  const tfjs = JSON.parse((await runAtelier(['info'], { env: { ATELIER_ENGINE: 'tfjs' } })).stdout);
  assert.equal(tfjs.engine, 'tfjs');
});
