// The int8 pass of src/lib/onnx/quantize.ts, run in onnxruntime: folding batch normalisation into
// the convolutions changes nothing beyond float rounding; the QDQ graph is what onnxruntime fuses
// into int8 convolutions (QLinearConv in its optimised graph), and its outputs stay close to float
// on inputs it was not calibrated on, far closer than the rows of other inputs are.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { initBatchNormFromData } from '../data-init.js';
import { tf } from '../../src/lib/backend/tf.js';
import { buildWeakModel, featureModel } from '../../src/lib/models/weak-model.js';
import { convertLayersModel, encodeConverted, type ConvertedModel } from '../../src/lib/onnx/export.js';
import { activationScale, calibrationGraph, foldBatchNorm, perChannelInt8, quantizedTensors, quantizeGraph, rangeOutputs } from '../../src/lib/onnx/quantize.js';
import { buildStudentModel, studentLayers } from '../../src/lib/sizenet/student.js';
import { loadOrt, type Ort } from '../../src/lib/onnx/session.js';
import { quantizedBytes } from '../../src/lib/onnx/int8.js';
import { decodeModelSummary } from '../../src/lib/onnx/proto.js';

const SIZE = 32;
const BATCH = 16;
let ort: Ort;
const converted: Record<string, ConvertedModel> = {};

/** Random images in [0, 1], NHWC, from a seeded generator. */
function images(seed: number): Float32Array {
  return tf.tidy(() => tf.randomUniform([BATCH, SIZE, SIZE, 3], 0, 1, 'float32', seed).dataSync() as Float32Array);
}

async function run(bytes: Uint8Array, input: Float32Array, optimized?: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1, ...(optimized ? { optimizedModelFilePath: optimized } : {}) });
  const out = await session.run({ image: new ort.Tensor('float32', input, [BATCH, SIZE, SIZE, 3]) });
  await session.release();
  return out.output.data as Float32Array;
}

/** Cosines of rows after removing the float rows' mean (an untrained tower's rows share most of their direction). */
function rowCosines(a: Float32Array, b: Float32Array): { own: number[]; other: number[] } {
  const dim = a.length / BATCH;
  const mean = new Float32Array(dim);
  for (let i = 0; i < a.length; i++) mean[i % dim] += a[i] / BATCH;
  const row = (x: Float32Array, i: number) => x.subarray(i * dim, (i + 1) * dim).map((v, k) => v - mean[k]);
  const cos = (x: Float32Array, y: Float32Array) => {
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let k = 0; k < x.length; k++) {
      dot += x[k] * y[k];
      nx += x[k] * x[k];
      ny += y[k] * y[k];
    }
    return dot / Math.sqrt(nx * ny);
  };
  const own: number[] = [];
  const other: number[] = [];
  for (let i = 0; i < BATCH; i++) {
    own.push(cos(row(a, i), row(b, i)));
    other.push(Math.max(...Array.from({ length: BATCH }, (_, j) => (j === i ? -1 : cos(row(a, j), row(b, i))))));
  }
  return { own, other };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  const loaded = await loadOrt();
  if (loaded instanceof Error) throw loaded;
  ort = loaded;
  const base = { inputSize: SIZE, width: 8, blocksPerStage: 1, stages: 2, projection: 0, vocabularySize: 10, seed: 2 };
  const towers = {
    small: base,
    resnet18: { ...base, tower: { family: 'resnet18', input: { height: SIZE, width: SIZE }, params: { alpha: 0.25 }, seed: 3 } },
    mobilenetv2: { ...base, tower: { family: 'mobilenetv2', input: { height: SIZE, width: SIZE }, params: { alpha: 0.35 }, seed: 4 } },
  };
  for (const [name, config] of Object.entries(towers)) {
    const weak = buildWeakModel(config);
    // Batch normalisation from data, as training leaves it (and away from 0/1, so folding it really changes the weights).
    const sample = tf.tensor4d(images(11), [BATCH, SIZE, SIZE, 3]);
    initBatchNormFromData(weak, sample);
    sample.dispose();
    const net = featureModel(weak, 'pooled');
    converted[name] = await convertLayersModel(net, {}, { name: 'output', tensor: net.outputs[0] });
  }
});

test('folding batch normalisation into the convolutions keeps the outputs (1e-4 of their scale)', async () => {
  for (const [name, model] of Object.entries(converted)) {
    const folded = foldBatchNorm(model.graph);
    assert.equal(folded.nodes.filter((n) => n.opType === 'BatchNormalization').length, 0, `${name}: every batch norm after a convolution is folded`);
    const input = images(1);
    const [a, b] = await Promise.all([run(encodeConverted(model), input), run(encodeConverted(model, folded), input)]);
    const scale = Math.max(...a.map(Math.abs));
    const worst = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.ok(scale > 1e-3, `${name}: outputs are not all ~0 (max |y| ${scale})`);
    assert.ok(worst <= 1e-4 * Math.max(1, scale), `${name}: max |float - folded| ${worst} at output scale ${scale}`);
  }
});

test('the int8 graph runs as fused int8 convolutions; on unseen inputs each row stays nearest its own float row', async () => {
  const dir = scratchDir();
  for (const [name, model] of Object.entries(converted)) {
    const calibration = [1, 2, 3].map((seed) => ({ data: images(seed), shape: [BATCH, SIZE, SIZE, 3] }));
    const { bytes, agreement } = await quantizedBytes(ort, model, calibration);
    const unseen = images(7);
    const optimized = join(dir, `${name}.optimized.onnx`);
    const [a, b] = await Promise.all([run(encodeConverted(model), unseen), run(bytes, unseen, optimized)]);
    const nodes = decodeModelSummary(readFileSync(optimized)).nodes;
    assert.ok(nodes.includes('QLinearConv'), `${name}: onnxruntime fused QLinearConv (optimised ops: ${[...new Set(nodes)].join(', ')})`);
    assert.ok(!nodes.includes('Conv'), `${name}: no float convolution is left`);
    const { own, other } = rowCosines(a, b);
    const meanOwn = own.reduce((s, c) => s + c, 0) / own.length;
    const meanOther = other.reduce((s, c) => s + c, 0) / other.length;
    // Measured (centred cosine, mean / worst; best other image): small 0.998 / 0.995, 0.52;
    // ResNet-18 (alpha 0.25) 0.977 / 0.936, 0.24; MobileNetV2 (alpha 0.35, 52 quantized convs of
    // random weights) 0.74 / 0.39, 0.32: post-training int8 is lossy on depthwise towers.
    const floor = name === 'mobilenetv2' ? { mean: 0.6, margin: 0.25 } : { mean: 0.95, margin: 0.4 };
    assert.ok(meanOwn >= floor.mean, `${name}: mean centred cosine of an int8 row with its float row ${meanOwn.toFixed(4)}`);
    // Baseline: the same int8 row against the closest float row of another image.
    assert.ok(meanOwn - meanOther >= floor.margin, `${name}: int8 rows are nearer their own float rows (${meanOwn.toFixed(4)}) than any other image's (${meanOther.toFixed(4)}) by ${floor.margin}`);
    own.forEach((c, i) => assert.ok(c > other[i], `${name}: row ${i} is nearest its own float row (${c.toFixed(4)} vs ${other[i].toFixed(4)})`));
    const recorded = JSON.parse(decodeModelSummary(bytes).metadata['atelier.precision']);
    assert.equal(recorded.calibrationImages, 3 * BATCH);
    assert.deepEqual(recorded.agreement, agreement);
  }
});

test('every quantized tensor is measured; a missing range is an error, not a silent float', () => {
  const folded = foldBatchNorm(converted.resnet18.graph);
  const tensors = quantizedTensors(folded);
  assert.ok(tensors.length >= 10, `${tensors.length} tensors`);
  const calibrating = calibrationGraph(folded, tensors);
  assert.deepEqual(calibrating.outputs.slice(1).map((o) => o.name).sort(), tensors.flatMap((t) => Object.values(rangeOutputs(t))).sort());
  assert.throws(() => quantizeGraph(folded, new Map()), /no calibration range for tensor/);
});

test('activation scales cover zero exactly: a ReLU output starts at zero point 0', () => {
  const relu = activationScale({ min: 0, max: 2.55 });
  assert.equal(relu.zeroPoint, 0);
  assert.ok(Math.abs(relu.scale - 0.01) < 1e-12);
  const mixed = activationScale({ min: -1, max: 1 });
  assert.equal(mixed.zeroPoint, 128);
  assert.ok(Math.abs(mixed.scale - 2 / 255) < 1e-12);
  // A range that excludes 0 is widened to include it, so 0 stays exact.
  assert.equal(activationScale({ min: 0.5, max: 1 }).zeroPoint, 0);
  assert.deepEqual(activationScale({ min: 0, max: 0 }), { scale: 1, zeroPoint: 0 });
});

test('dense layers: the input and each hidden ReLU output are quantized, the logit before the sigmoid stays float; weights get one scale per output column', async () => {
  const config = { inputDim: 6, hidden: [5, 4, 3], dropout: 0, seed: 1 };
  const student = buildStudentModel(config, studentLayers(config));
  const { graph } = await convertLayersModel(student, {}, { name: 'output', tensor: student.outputs[0] });
  const producers = new Map(graph.nodes.map((n) => [n.output[0], n.opType]));
  const chosen = quantizedTensors(graph);
  assert.deepEqual(chosen.map((t) => producers.get(t) ?? 'input'), ['input', 'Relu', 'Relu', 'Relu']);
  const ranges = new Map(chosen.map((t) => [t, { min: 0, max: 4 }]));
  const quantized = quantizeGraph(graph, ranges);
  // Every Gemm reads int8 weights and an int32 bias through DequantizeLinear; the sigmoid reads the last Gemm directly.
  const gemms = quantized.nodes.filter((n) => n.opType === 'Gemm');
  assert.equal(gemms.length, 4);
  for (const g of gemms) assert.ok(g.input[1].endsWith('/int8/dq') && g.input[2].endsWith('/int32/dq'), g.input.join(','));
  const sigmoid = quantized.nodes.find((n) => n.opType === 'Sigmoid')!;
  assert.equal(quantized.nodes.find((n) => n.output[0] === sigmoid.input[0])?.opType, 'Gemm');
  // [in = 2, out = 3], row-major: column c's peak sets its scale.
  const { q, scale } = perChannelInt8(Float32Array.of(1, -0.5, 0, -2, 0.25, 0), [2, 3], 1);
  assert.deepEqual(Array.from(scale), [2 / 127, 0.5 / 127, 1].map((v) => Math.fround(v)));
  assert.deepEqual(Array.from(q), [64, -127, 0, -127, 64, 0]);
});

test('an exported weak model\'s embedding output stays float where the quantized word matrix reads it', async () => {
  const weak = buildWeakModel({ inputSize: 16, width: 4, blocksPerStage: 1, stages: 1, projection: 0, vocabularySize: 5, seed: 1 });
  const { graph } = await convertLayersModel(weak, { kind: 'atelier-weak' });
  const chosen = quantizedTensors(graph);
  const quantized = quantizeGraph(graph, new Map(chosen.map((t) => [t, { min: 0, max: 4 }])));
  const identity = quantized.nodes.find((n) => n.output[0] === 'embedding')!;
  // The word matrix reads the pooled features through QDQ; the output reads them as they are.
  assert.ok(chosen.includes(identity.input[0]), `the word matrix's input ${identity.input[0]} is quantized`);
  assert.ok(!identity.input[0].endsWith('/dq'), identity.input[0]);
  weak.dispose();
});
