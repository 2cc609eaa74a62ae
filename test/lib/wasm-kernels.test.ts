// The project's WASM kernels against the plain CPU backend (an independent implementation) and
// against central differences of the forward ops.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { builtinKernelName, registerWasmKernels, WASM_KERNEL_NAMES } from '../../src/lib/backend/wasm-kernels.js';
import { simdLoops } from '../../src/lib/backend/kernels/simd.js';
import type { BackendWasm } from '../../src/lib/backend/kernels/scratch.js';

type Values = Float32Array | Int32Array;
interface Operand {
  values: Values;
  shape: number[];
}
type Pad = 'same' | 'valid' | number[][];

beforeAll(async () => {
  registerWasmKernels();
  assert.equal(await tf.setBackend('wasm'), true);
});

/** Deterministic values in [-1, 1) (mulberry32). */
function randomValues(size: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

function operand(shape: number[], seed: number): Operand {
  return { values: randomValues(tf.util.sizeFromShape(shape), seed), shape };
}

function toTensor(op: Operand): tf.Tensor {
  return tf.tensor(op.values, op.shape, op.values instanceof Int32Array ? 'int32' : 'float32');
}

/** Runs one kernel through the engine on `backend` and reads its output. */
async function runKernelOn(backend: string, kernelName: string, inputs: Record<string, Operand>, attrs: Record<string, unknown>): Promise<Operand> {
  await tf.setBackend(backend);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, op] of Object.entries(inputs)) tensors[name] = toTensor(op);
  try {
    const out = tf.engine().runKernel(kernelName, tensors as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
    const result = { values: out.dataSync() as Values, shape: out.shape.slice() };
    out.dispose();
    return result;
  } finally {
    tf.dispose(Object.values(tensors));
    await tf.setBackend('wasm');
  }
}

/** Forward op on `backend`, read back. */
async function forwardOn(backend: string, f: () => tf.Tensor): Promise<Operand> {
  await tf.setBackend(backend);
  try {
    const out = tf.tidy(f);
    const result = { values: out.dataSync() as Values, shape: out.shape.slice() };
    out.dispose();
    return result;
  } finally {
    await tf.setBackend('wasm');
  }
}

/** max |actual - expected| must stay within `relTol` of max |expected|. */
function assertClose(actual: Operand, expected: Operand | { values: ArrayLike<number>; shape: number[] }, label: string, relTol = 1e-4): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  let scale = 1e-6;
  let worst = 0;
  for (let i = 0; i < expected.values.length; i++) scale = Math.max(scale, Math.abs(expected.values[i]));
  for (let i = 0; i < expected.values.length; i++) worst = Math.max(worst, Math.abs(actual.values[i] - expected.values[i]));
  assert.ok(worst <= relTol * scale, `${label}: max difference ${worst} exceeds ${relTol} x ${scale}`);
}

/** d/dp of sum(forward(p) * weights), by central differences with float64 sums. */
function centralDifference(at: Float32Array, step: number, weights: Float32Array, forward: (p: Float32Array) => Values): Float64Array {
  const loss = (p: Float32Array): number => {
    const y = forward(p);
    let sum = 0;
    for (let i = 0; i < y.length; i++) sum += y[i] * weights[i];
    return sum;
  };
  const grad = new Float64Array(at.length);
  const probe = Float32Array.from(at);
  for (let i = 0; i < at.length; i++) {
    probe[i] = at[i] + step;
    const up = loss(probe);
    probe[i] = at[i] - step;
    const down = loss(probe);
    probe[i] = at[i];
    grad[i] = (up - down) / (2 * step);
  }
  return grad;
}

/** Reads a forward op's output on the CPU backend for the numeric gradients. */
function cpuForward(f: () => tf.Tensor): Values {
  const previous = tf.getBackend();
  tf.setBackend('cpu');
  try {
    return tf.tidy(() => f().dataSync() as Values);
  } finally {
    tf.setBackend(previous);
  }
}

interface ConvCase {
  x: number[];
  filter: number[];
  strides: number | [number, number];
  pad: Pad;
}

const convCases: ConvCase[] = [
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { x: [3, 9, 6, 2], filter: [3, 2, 2, 5], strides: [2, 1], pad: 'valid' },
  { x: [1, 5, 5, 2], filter: [1, 1, 2, 3], strides: 2, pad: 'same' },
  // 1x1 stride 1: the filter gradient is one matrix product.
  { x: [2, 6, 7, 5], filter: [1, 1, 5, 4], strides: 1, pad: 'same' },
  { x: [3, 4, 5, 3], filter: [1, 1, 3, 6], strides: 1, pad: 'valid' },
  // Channels in fours and eights, 1,152 and 1,600 rows: the SIMD tiles, two blocks of rows.
  { x: [2, 24, 24, 8], filter: [1, 1, 8, 16], strides: 1, pad: 'same' },
  { x: [4, 20, 20, 12], filter: [1, 1, 12, 8], strides: 1, pad: 'valid' },
  // Channels in fours and eights, larger filters: the SIMD taps (each tap's rows and columns inside x), strides, pads.
  { x: [2, 9, 11, 4], filter: [3, 3, 4, 8], strides: 1, pad: 'same' },
  { x: [2, 10, 9, 8], filter: [3, 3, 8, 16], strides: 2, pad: 'same' },
  { x: [1, 13, 12, 4], filter: [7, 7, 4, 8], strides: 2, pad: 'same' },
  { x: [2, 8, 9, 4], filter: [3, 2, 4, 8], strides: [2, 1], pad: 'valid' },
  { x: [2, 7, 7, 4], filter: [3, 3, 4, 8], strides: 1, pad: [[0, 0], [2, 0], [0, 3], [0, 0]] },
  { x: [2, 6, 7, 3], filter: [5, 5, 3, 2], strides: 3, pad: 'same' },
  { x: [2, 11, 13, 3], filter: [4, 5, 3, 2], strides: [3, 2], pad: 'same' },
  { x: [2, 6, 6, 2], filter: [3, 3, 2, 2], strides: 1, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { x: [2, 9, 9, 2], filter: [3, 3, 2, 2], strides: 2, pad: [[0, 0], [0, 4], [3, 0], [0, 0]] },
  // dy of 65,536 values: the filter gradient pads it to an odd size.
  { x: [4, 64, 64, 2], filter: [3, 3, 2, 4], strides: 1, pad: 'same' },
  { x: [4, 64, 63, 3], filter: [3, 3, 3, 8], strides: 2, pad: 'same' },
];

function convOutShape(c: ConvCase): number[] {
  const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.filter as [number, number, number, number], c.strides, 1, c.pad as 'same');
  return info.outShape;
}

test('registers every kernel for wasm, keeps replaced backend kernels callable, and a second call changes nothing', () => {
  for (const name of WASM_KERNEL_NAMES) assert.ok(tf.getKernel(name, 'wasm'), name);
  for (const name of [tf.Conv2DBackpropInput, tf.MaxPoolGrad, tf.BatchMatMul, tf._FusedMatMul, tf.Mean, tf.Sum]) {
    assert.ok(tf.getKernel(builtinKernelName(name), 'wasm'), `builtin ${name}`);
  }
  const before = WASM_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')!.kernelFunc);
  const builtinBefore = tf.getKernel(builtinKernelName(tf.Conv2DBackpropInput), 'wasm')!.kernelFunc;
  registerWasmKernels();
  assert.deepEqual(WASM_KERNEL_NAMES.map((name) => tf.getKernel(name, 'wasm')!.kernelFunc), before);
  assert.equal(tf.getKernel(builtinKernelName(tf.Conv2DBackpropInput), 'wasm')!.kernelFunc, builtinBefore);
  assert.notEqual(builtinBefore, tf.getKernel(tf.Conv2DBackpropInput, 'wasm')!.kernelFunc);
});

test('Conv2DBackpropFilter matches the CPU backend', async () => {
  for (const [index, c] of convCases.entries()) {
    const inputs = { x: operand(c.x, 10 + index), dy: operand(convOutShape(c), 50 + index) };
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.filter };
    const expected = await runKernelOn('cpu', tf.Conv2DBackpropFilter, inputs, attrs);
    const actual = await runKernelOn('wasm', tf.Conv2DBackpropFilter, inputs, attrs);
    assertClose(actual, expected, `filter gradient ${JSON.stringify(c)}`);
  }
});

test('Conv2DBackpropInput matches the CPU backend and the backend\'s own kernel', async () => {
  for (const [index, c] of convCases.entries()) {
    const inputs = { dy: operand(convOutShape(c), 70 + index), filter: operand(c.filter, 90 + index) };
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x };
    const expected = await runKernelOn('cpu', tf.Conv2DBackpropInput, inputs, attrs);
    const actual = await runKernelOn('wasm', tf.Conv2DBackpropInput, inputs, attrs);
    assertClose(actual, expected, `input gradient ${JSON.stringify(c)}`);
    if (!Array.isArray(c.pad)) {
      const builtin = await runKernelOn('wasm', builtinKernelName(tf.Conv2DBackpropInput), inputs, attrs);
      assertClose(actual, builtin, `input gradient vs backend's own ${JSON.stringify(c)}`);
    }
  }
});

test('conv2d gradients on wasm match central differences of the forward conv', async () => {
  const cases: ConvCase[] = [
    { x: [2, 5, 4, 2], filter: [3, 2, 2, 3], strides: [2, 1], pad: 'same' },
    { x: [1, 6, 5, 2], filter: [3, 3, 2, 2], strides: 2, pad: 'valid' },
    { x: [2, 4, 3, 3], filter: [1, 1, 3, 2], strides: 1, pad: 'same' },
  ];
  for (const [index, c] of cases.entries()) {
    const x = operand(c.x, 200 + index);
    const filter = operand(c.filter, 210 + index);
    const weights = randomValues(tf.util.sizeFromShape(convOutShape(c)), 220 + index);
    const conv = (xv: Float32Array, fv: Float32Array) => cpuForward(() => tf.conv2d(tf.tensor4d(xv, c.x as [number, number, number, number]), tf.tensor4d(fv, c.filter as [number, number, number, number]), c.strides, c.pad as 'same'));
    const [dInput, dFilter] = tf.tidy(() => tf.grads((xt: tf.Tensor, ft: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt as tf.Tensor4D, ft as tf.Tensor4D, c.strides, c.pad as 'same'), tf.tensor(weights, convOutShape(c)))))([toTensor(x), toTensor(filter)]));
    assert.equal(tf.getBackend(), 'wasm');
    const numericFilter = centralDifference(filter.values as Float32Array, 0.5, weights, (fv) => conv(x.values as Float32Array, fv));
    const numericInput = centralDifference(x.values as Float32Array, 0.5, weights, (xv) => conv(xv, filter.values as Float32Array));
    assertClose({ values: dFilter.dataSync() as Float32Array, shape: dFilter.shape }, { values: numericFilter, shape: c.filter }, `numeric filter gradient ${JSON.stringify(c)}`, 1e-3);
    assertClose({ values: dInput.dataSync() as Float32Array, shape: dInput.shape }, { values: numericInput, shape: c.x }, `numeric input gradient ${JSON.stringify(c)}`, 1e-3);
    tf.dispose([dFilter, dInput]);
  }
});

interface DepthwiseCase {
  x: number[];
  filter: number[];
  strides: number;
  dilations: number;
  pad: Pad;
}

const depthwiseCases: DepthwiseCase[] = [
  { x: [2, 7, 8, 3], filter: [3, 3, 3, 1], strides: 1, dilations: 1, pad: 'same' },
  { x: [2, 7, 8, 3], filter: [3, 3, 3, 2], strides: 2, dilations: 1, pad: 'same' },
  { x: [3, 9, 6, 4], filter: [3, 2, 4, 1], strides: 2, dilations: 1, pad: 'valid' },
  { x: [2, 6, 6, 2], filter: [2, 2, 2, 2], strides: 1, dilations: 1, pad: [[0, 0], [1, 0], [0, 2], [0, 0]] },
  // Multiplier 1 without dilation: the input gradient is a forward depthwise conv (MobileNetV2's layers).
  { x: [2, 8, 9, 5], filter: [3, 3, 5, 1], strides: 2, dilations: 1, pad: 'same' },
  { x: [2, 9, 8, 4], filter: [3, 3, 4, 1], strides: 2, dilations: 1, pad: [[0, 0], [1, 1], [0, 1], [0, 0]] },
  { x: [1, 7, 7, 3], filter: [5, 3, 3, 1], strides: 1, dilations: 1, pad: 'valid' },
  // Multiplier 1, channels in fours: the filter gradient runs in WebAssembly SIMD (simd.ts), one to three chunks of four.
  { x: [2, 7, 6, 8], filter: [3, 3, 8, 1], strides: 1, dilations: 1, pad: 'same' },
  { x: [2, 9, 7, 12], filter: [3, 3, 12, 1], strides: 2, dilations: 1, pad: 'same' },
  { x: [3, 5, 8, 4], filter: [2, 3, 4, 1], strides: 1, dilations: 1, pad: 'valid' },
  { x: [2, 6, 6, 4], filter: [3, 3, 4, 1], strides: 1, dilations: 1, pad: [[0, 0], [2, 0], [0, 2], [0, 0]] },
];

function depthwiseOutShape(c: DepthwiseCase): number[] {
  return tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.filter as [number, number, number, number], c.strides, c.dilations, c.pad as 'same', undefined, true).outShape;
}

test('DepthwiseConv2dNativeBackpropFilter and ...BackpropInput match the CPU backend', async () => {
  for (const [index, c] of depthwiseCases.entries()) {
    const x = operand(c.x, 300 + index);
    const filter = operand(c.filter, 320 + index);
    const dy = operand(depthwiseOutShape(c), 340 + index);
    const common = { strides: c.strides, dilations: c.dilations, pad: c.pad };
    const filterAttrs = { ...common, filterShape: c.filter };
    assertClose(
      await runKernelOn('wasm', tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, filterAttrs),
      await runKernelOn('cpu', tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, filterAttrs),
      `depthwise filter gradient ${JSON.stringify(c)}`);
    const inputAttrs = { ...common, inputShape: c.x };
    assertClose(
      await runKernelOn('wasm', tf.DepthwiseConv2dNativeBackpropInput, { dy, filter }, inputAttrs),
      await runKernelOn('cpu', tf.DepthwiseConv2dNativeBackpropInput, { dy, filter }, inputAttrs),
      `depthwise input gradient ${JSON.stringify(c)}`);
  }
});

test('depthwise conv gradients on wasm match central differences, dilated ones too (the CPU kernels ignore dilation)', async () => {
  const cases: DepthwiseCase[] = [
    { x: [2, 5, 4, 2], filter: [3, 3, 2, 2], strides: 2, dilations: 1, pad: 'same' },
    { x: [1, 7, 7, 2], filter: [3, 3, 2, 1], strides: 1, dilations: 2, pad: 'same' },
    { x: [2, 6, 5, 3], filter: [3, 3, 3, 1], strides: 2, dilations: 1, pad: 'same' },
    // The SIMD filter gradient: stride 2, and dilation 2 (which the CPU kernels ignore).
    { x: [2, 7, 6, 8], filter: [3, 3, 8, 1], strides: 2, dilations: 1, pad: 'same' },
    { x: [1, 8, 7, 4], filter: [3, 3, 4, 1], strides: 1, dilations: 2, pad: 'same' },
  ];
  for (const [index, c] of cases.entries()) {
    const x = operand(c.x, 400 + index);
    const filter = operand(c.filter, 410 + index);
    const dy = operand(depthwiseOutShape(c), 420 + index);
    const forward = (xv: Float32Array, fv: Float32Array) => cpuForward(() => tf.depthwiseConv2d(tf.tensor4d(xv, c.x as [number, number, number, number]), tf.tensor4d(fv, c.filter as [number, number, number, number]), c.strides, 'same', 'NHWC', c.dilations));
    const common = { strides: c.strides, dilations: c.dilations, pad: c.pad };
    const dFilter = await runKernelOn('wasm', tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, { ...common, filterShape: c.filter });
    const dInput = await runKernelOn('wasm', tf.DepthwiseConv2dNativeBackpropInput, { dy, filter }, { ...common, inputShape: c.x });
    const weights = dy.values as Float32Array;
    assertClose(dFilter, { values: centralDifference(filter.values as Float32Array, 0.5, weights, (fv) => forward(x.values as Float32Array, fv)), shape: c.filter }, `numeric depthwise filter gradient ${JSON.stringify(c)}`, 1e-3);
    assertClose(dInput, { values: centralDifference(x.values as Float32Array, 0.5, weights, (xv) => forward(xv, filter.values as Float32Array)), shape: c.x }, `numeric depthwise input gradient ${JSON.stringify(c)}`, 1e-3);
  }
});

test('UnsortedSegmentSum matches the CPU backend, drops ids out of range, keeps int32', async () => {
  const cases: Array<{ x: Operand; ids: Operand; numSegments: number }> = [
    { x: operand([6, 4], 500), ids: { values: Int32Array.from([2, 0, 2, 5, 1, 2]), shape: [6] }, numSegments: 7 },
    { x: operand([5], 502), ids: { values: Int32Array.from([0, 0, 1, 1, 1]), shape: [5] }, numSegments: 2 },
    { x: { values: Int32Array.from([1, 2, 3, 4, 5, 6]), shape: [3, 2] }, ids: { values: Int32Array.from([1, 1, 0]), shape: [3] }, numSegments: 3 },
  ];
  for (const c of cases) {
    const inputs = { x: c.x, segmentIds: c.ids };
    const actual = await runKernelOn('wasm', tf.UnsortedSegmentSum, inputs, { numSegments: c.numSegments });
    assertClose(actual, await runKernelOn('cpu', tf.UnsortedSegmentSum, inputs, { numSegments: c.numSegments }), `segment sum ${c.x.shape}`);
    if (c.x.values instanceof Int32Array) assert.ok(actual.values instanceof Int32Array);
  }
  // Ids of any rank index the leading axes of x (the CPU kernel takes only 1-D ids).
  const x = operand([2, 3, 5], 501);
  const ids = Int32Array.from([1, 1, 0, 3, -1, 4]);
  assertClose(
    await runKernelOn('wasm', tf.UnsortedSegmentSum, { x, segmentIds: { values: ids, shape: [2, 3] } }, { numSegments: 4 }),
    await runKernelOn('cpu', tf.UnsortedSegmentSum, { x: { values: x.values, shape: [6, 5] }, segmentIds: { values: ids, shape: [6] } }, { numSegments: 4 }),
    'segment sum with 2-D ids');
  const sums = await runKernelOn('wasm', tf.UnsortedSegmentSum, { x: { values: Float32Array.from([1, 10, 100, 1000]), shape: [4] }, segmentIds: { values: Int32Array.from([1, -1, 3, 1]), shape: [4] } }, { numSegments: 3 });
  assert.deepEqual(Array.from(sums.values), [0, 1001, 0]);
});

test('the gradient of an embedding lookup (gather) matches central differences', () => {
  const table = operand([9, 3], 600);
  const ids = Int32Array.from([4, 1, 4, 8, 0, 4]);
  const weights = randomValues(ids.length * 3, 601);
  const [grad] = tf.tidy(() => tf.grads((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor(weights, [ids.length, 3]))))([toTensor(table)]));
  const numeric = centralDifference(table.values as Float32Array, 0.5, weights, (tv) => cpuForward(() => tf.gather(tf.tensor2d(tv, [9, 3]), tf.tensor1d(ids, 'int32'))));
  assertClose({ values: grad.dataSync() as Float32Array, shape: grad.shape }, { values: numeric, shape: [9, 3] }, 'numeric gather gradient', 1e-3);
  grad.dispose();
});

interface PoolCase {
  x: number[];
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid';
  relu: boolean;
}

const poolCases: PoolCase[] = [
  { x: [2, 8, 8, 3], filterSize: 2, strides: 2, pad: 'valid', relu: false },
  { x: [2, 7, 9, 4], filterSize: 3, strides: 2, pad: 'same', relu: true },
  { x: [3, 6, 6, 2], filterSize: 2, strides: 1, pad: 'same', relu: false },
  { x: [2, 10, 11, 3], filterSize: [3, 2], strides: [2, 1], pad: 'same', relu: true },
];

test('MaxPoolGrad matches the CPU backend, ties (ReLU zeros) included', async () => {
  for (const [index, c] of poolCases.entries()) {
    const raw = operand(c.x, 700 + index);
    const x = c.relu ? { values: raw.values.map((v) => Math.max(0, v)) as Float32Array, shape: c.x } : raw;
    const output = await forwardOn('cpu', () => tf.maxPool(toTensor(x) as tf.Tensor4D, c.filterSize, c.strides, c.pad));
    const dy = operand(output.shape, 720 + index);
    const attrs = { filterSize: c.filterSize, strides: c.strides, pad: c.pad };
    const inputs = { dy, input: x, output };
    assertClose(await runKernelOn('wasm', tf.MaxPoolGrad, inputs, attrs), await runKernelOn('cpu', tf.MaxPoolGrad, inputs, attrs), `max-pool gradient ${JSON.stringify(c)}`);
  }
});

test('max-pool gradient on wasm matches central differences', () => {
  const shape: [number, number, number, number] = [2, 5, 6, 2];
  const x = operand(shape, 800);
  const outShape = [2, 3, 3, 2];
  const weights = randomValues(tf.util.sizeFromShape(outShape), 801);
  const [grad] = tf.tidy(() => tf.grads((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 2, 2, 'same'), tf.tensor(weights, outShape))))([toTensor(x)]));
  const numeric = centralDifference(x.values as Float32Array, 1e-3, weights, (xv) => cpuForward(() => tf.maxPool(tf.tensor4d(xv, shape), 2, 2, 'same')));
  assertClose({ values: grad.dataSync() as Float32Array, shape: grad.shape }, { values: numeric, shape }, 'numeric max-pool gradient', 1e-3);
  grad.dispose();
});

test('BatchMatMul and _FusedMatMul with transposed operands match the CPU backend', async () => {
  const cases: Array<{ a: number[]; b: number[]; transposeA: boolean; transposeB: boolean }> = [
    { a: [7, 5], b: [7, 3], transposeA: true, transposeB: false },
    { a: [5, 7], b: [3, 7], transposeA: false, transposeB: true },
    { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true },
    { a: [1, 7, 5], b: [1, 7, 4], transposeA: true, transposeB: false },
    { a: [3, 4, 5], b: [3, 6, 5], transposeA: false, transposeB: true },
    { a: [5, 7], b: [7, 3], transposeA: false, transposeB: false },
  ];
  for (const [index, c] of cases.entries()) {
    const inputs = { a: operand(c.a, 900 + index), b: operand(c.b, 920 + index) };
    const attrs = { transposeA: c.transposeA, transposeB: c.transposeB };
    assertClose(await runKernelOn('wasm', tf.BatchMatMul, inputs, attrs), await runKernelOn('cpu', tf.BatchMatMul, inputs, attrs), `matmul ${JSON.stringify(c)}`);
  }
  const a = operand([6, 4], 940);
  const b = operand([5, 4], 941);
  const bias = operand([5], 942);
  const fused = () => tf.fused.matMul({ a: toTensor(a) as tf.Tensor2D, b: toTensor(b) as tf.Tensor2D, transposeB: true, bias: toTensor(bias), activation: 'relu' });
  assertClose(await forwardOn('wasm', fused), await forwardOn('cpu', fused), 'fused matmul with transposed b, bias and relu');
});

/** Gradients of `f` at `inputs` on `backend`, read back. */
async function gradsOn(backend: string, f: (...ts: tf.Tensor[]) => tf.Tensor, inputs: Operand[]): Promise<Operand[]> {
  await tf.setBackend(backend);
  try {
    const grads = tf.tidy(() => tf.grads(f)(inputs.map(toTensor)));
    const out = grads.map((g) => ({ values: g.dataSync() as Values, shape: g.shape.slice() }));
    tf.dispose(grads);
    return out;
  } finally {
    await tf.setBackend('wasm');
  }
}

test('BatchNorm gradients (one pass on wasm) match tfjs\'s own on the CPU backend and central differences', async () => {
  // 6 channels: the JS loop; 8: the SIMD loops, in one block of rows, then in two (1,152 rows).
  for (const [shape, numeric] of [[[3, 4, 5, 6], true], [[3, 4, 5, 8], true], [[2, 24, 24, 8], false]] as Array<[[number, number, number, number], boolean]>) {
    await checkBatchNormGradients(shape, numeric);
  }
});

async function checkBatchNormGradients(shape: [number, number, number, number], numeric: boolean): Promise<void> {
  const channels = shape[3];
  const x = operand(shape, 1100);
  const params = [1101, 1102, 1103].map((seed) => operand([channels], seed));
  params[1].values = params[1].values.map((v) => 0.5 + Math.abs(v)) as Float32Array;
  const weights = randomValues(tf.util.sizeFromShape(shape), 1104);
  const w = () => tf.tensor(weights, shape);
  // Fixed statistics (inference), and batch statistics as a layer computes them in training.
  const fixed = (xt: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, scale: tf.Tensor) => tf.sum(tf.mul(tf.batchNorm(xt, mean, variance, tf.zeros([channels]), scale, 1e-3), w()));
  const training = (xt: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) => {
    const { mean, variance } = tf.moments(xt, [0, 1, 2]);
    return tf.sum(tf.mul(tf.batchNorm(xt, mean, variance, offset, scale, 1e-3), w()));
  };
  const fixedInputs = [x, params[0], params[1], params[2]];
  const trainingInputs = [x, params[2], params[0]];
  const expectedFixed = await gradsOn('cpu', fixed, fixedInputs);
  const actualFixed = await gradsOn('wasm', fixed, fixedInputs);
  ['x', 'mean', 'variance', 'scale'].forEach((name, i) => assertClose(actualFixed[i], expectedFixed[i], `fixed-statistics gradient of ${name}, ${shape}`));
  const expectedTraining = await gradsOn('cpu', training, trainingInputs);
  const actualTraining = await gradsOn('wasm', training, trainingInputs);
  ['x', 'scale', 'offset'].forEach((name, i) => assertClose(actualTraining[i], expectedTraining[i], `batch-statistics gradient of ${name}, ${shape}`));
  if (!numeric) return;
  const forward = (xv: Float32Array) => cpuForward(() => {
    const xt = tf.tensor4d(xv, shape);
    const { mean, variance } = tf.moments(xt, [0, 1, 2]);
    return tf.batchNorm(xt, mean, variance, toTensor(params[0]), toTensor(params[2]), 1e-3);
  });
  assertClose(actualTraining[0], { values: centralDifference(x.values as Float32Array, 1e-2, weights, forward), shape }, `numeric batch-statistics gradient of x, ${shape}`, 2e-3);
}

test('ReLU6 (ClipByValue) gradient on wasm matches the CPU backend, values at the bounds included', async () => {
  // 210 values: 52 SIMD chunks and a tail of 2; bounds f32 holds exactly, and bounds it rounds (compared as f32, as tfjs does).
  for (const [low, high] of [[0, 6], [-0.3, 0.7]]) {
    const x = operand([2, 5, 7, 3], 1200);
    x.values = x.values.map((v, i) => (i % 11 === 0 ? Math.fround(low) : i % 13 === 0 ? Math.fround(high) : v * 8)) as Float32Array;
    const weights = randomValues(x.values.length, 1201);
    const f = (xt: tf.Tensor) => tf.sum(tf.mul(tf.clipByValue(xt, low, high), tf.tensor(weights, x.shape)));
    const [expected] = await gradsOn('cpu', f, [x]);
    const [actual] = await gradsOn('wasm', f, [x]);
    assert.deepEqual(Array.from(actual.values), Array.from(expected.values), `bounds ${low}, ${high}`);
  }
});

test('Identity (tf.clone, and every tensor a gradient saves) shares the buffer: no copy, and each tensor outlives the other', () => {
  const backend = tf.backend();
  const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  const buffersBefore = backend.numDataIds();
  const y = tf.clone(x);
  assert.equal(backend.numDataIds(), buffersBefore, 'a clone adds no buffer');
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4, 5, 6], 'the clone outlives the original');
  const z = tf.clone(y);
  y.dispose();
  assert.deepEqual(z.shape, [2, 3]);
  assert.deepEqual(Array.from(z.dataSync()), [1, 2, 3, 4, 5, 6]);
  z.dispose();
  assert.equal(backend.numDataIds(), buffersBefore - 1, 'the buffer is freed with its last tensor');
  const words = tf.tensor1d(['a', 'b'], 'string');
  const wordsCopy = tf.clone(words);
  assert.deepEqual(wordsCopy.dataSync(), ['a', 'b']);
  tf.dispose([words, wordsCopy]);
});

test('NCHW data is refused with a clear error', () => {
  const x = tf.zeros([1, 2, 4, 4]);
  const dy = tf.zeros([1, 2, 4, 4]);
  assert.throws(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 2] }), /only NHWC/);
  tf.dispose([x, dy]);
});

test('kernels free every intermediate: engine tensors and backend buffers return to their count', () => {
  const backend = tf.backend();
  const x = tf.tensor(randomValues(2 * 9 * 9 * 3, 1000), [2, 9, 9, 3]);
  const filter = tf.tensor(randomValues(3 * 3 * 3 * 4, 1001), [3, 3, 3, 4]);
  const table = tf.tensor(randomValues(20 * 4, 1002), [20, 4]);
  const dw = tf.tensor(randomValues(3 * 3 * 3 * 2, 1003), [3, 3, 3, 2]);
  // Multiplier 1 on the conv's 4 channels: the SIMD filter gradient and its scratch sums.
  const dw4 = tf.tensor(randomValues(3 * 3 * 4 * 1, 1004), [3, 3, 4, 1]);
  const pw8 = tf.tensor(randomValues(4 * 8, 1006), [1, 1, 4, 8]);
  const ids = tf.tensor1d([3, 1, 3, 19], 'int32');
  // A pointwise conv of 4 -> 8 channels over 1,152 rows: the SIMD filter gradient and its block sums.
  const xPointwise = tf.tensor(randomValues(2 * 24 * 24 * 4, 1005), [2, 24, 24, 4]);
  const run = () => {
    const tensorsBefore = tf.memory().numTensors;
    const buffersBefore = backend.numDataIds();
    const grads = tf.grads((xt: tf.Tensor, ft: tf.Tensor, tt: tf.Tensor, dt: tf.Tensor, d4: tf.Tensor, pw: tf.Tensor) => {
      const conv = tf.conv2d(xt as tf.Tensor4D, ft as tf.Tensor4D, 2, 'same');
      const pooled = tf.maxPool(tf.depthwiseConv2d(xt as tf.Tensor4D, dt as tf.Tensor4D, 1, 'same'), 2, 2, 'same');
      const looked = tf.gather(tt, ids);
      const { mean, variance } = tf.moments(conv, [0, 1, 2]);
      const normed = tf.clipByValue(tf.batchNorm(conv, mean, variance, tf.zeros([4]), tf.ones([4]), 1e-3), 0, 6);
      const depthwise = tf.depthwiseConv2d(conv as tf.Tensor4D, d4 as tf.Tensor4D, 1, 'same');
      const pointwise = tf.conv2d(xPointwise as tf.Tensor4D, pw as tf.Tensor4D, 1, 'same');
      return tf.add(tf.add(tf.add(tf.add(tf.sum(tf.square(normed)), tf.sum(pooled)), tf.sum(tf.matMul(looked, looked, false, true))), tf.sum(tf.square(depthwise))), tf.sum(tf.square(pointwise)));
    })([x, filter, table, dw, dw4, pw8]);
    grads.forEach((g) => g.dataSync());
    tf.dispose(grads);
    assert.equal(tf.memory().numTensors, tensorsBefore);
    assert.equal(backend.numDataIds(), buffersBefore);
  };
  run();
  run();
  tf.dispose([x, filter, table, dw, dw4, pw8, xPointwise, ids]);
});

test('the SIMD loop module instantiates on the wasm heap and sums rows as plain JS does', () => {
  const backend = tf.backend() as unknown as BackendWasm;
  const loops = simdLoops(backend);
  assert.ok(loops, 'Node 20 runs WebAssembly SIMD: the depthwise filter gradient must take the SIMD path');
  // acc[c] += Σ_k x[k·xStep + c]·dy[k·dyStep + c]: 3 rows, x rows 2 apart (a stride-2 read), 8 channels.
  const x = tf.tensor1d(randomValues(6 * 8, 7));
  const dy = tf.tensor1d(randomValues(3 * 8, 8));
  const acc = tf.tensor1d(randomValues(8, 9));
  const view = (t: tf.Tensor) => backend.typedArrayFromHeap({ dataId: t.dataId, shape: t.shape, dtype: 'float32' }) as Float32Array;
  const [xv, dyv] = [view(x), view(dy)];
  const before = Float32Array.from(view(acc));
  loops.dotRowsAccumulate(xv.byteOffset, 2 * 8 * 4, dyv.byteOffset, 8 * 4, view(acc).byteOffset, 2, 3);
  const after = view(acc);
  for (let c = 0; c < 8; c++) {
    let expected = before[c];
    for (let k = 0; k < 3; k++) expected += xv[2 * k * 8 + c] * dyv[k * 8 + c];
    assert.ok(Math.abs(after[c] - expected) < 1e-5, `channel ${c}: ${after[c]} vs ${expected}`);
  }
  // Σ (x - centre)·dy over the first 3 rows of x (rows 8 floats apart in both), and plain column sums.
  const centre = tf.tensor1d(randomValues(8, 10));
  const centred = tf.zeros([8]);
  const sums = tf.zeros([8]);
  // Views again after the allocations (a growing heap detaches the old ones).
  const [xv2, dyv2] = [view(x), view(dy)];
  loops.centredDotRowsAccumulate(xv2.byteOffset, dyv2.byteOffset, 8 * 4, view(centre).byteOffset, view(centred).byteOffset, 2, 3);
  loops.sumRowsAccumulate(xv2.byteOffset, 8 * 4, view(sums).byteOffset, 2, 6);
  const [cv, centredView, sumView] = [view(centre), view(centred), view(sums)];
  for (let c = 0; c < 8; c++) {
    let dot = 0;
    let sum = 0;
    for (let k = 0; k < 3; k++) dot += (xv2[k * 8 + c] - cv[c]) * dyv2[k * 8 + c];
    for (let k = 0; k < 6; k++) sum += xv2[k * 8 + c];
    assert.ok(Math.abs(centredView[c] - dot) < 1e-5 && Math.abs(sumView[c] - sum) < 1e-5, `channel ${c}`);
  }
  // A 4 x 8 tile of x^T·dy over 3 rows: x rows 12 floats apart (a tile of 4 of 12 channels), dy rows 16.
  const tileX = tf.tensor1d(randomValues(3 * 12, 11));
  const tileDy = tf.tensor1d(randomValues(3 * 16, 12));
  const tileAcc = tf.tensor1d(randomValues(4 * 16, 13));
  const tileBefore = Float32Array.from(view(tileAcc));
  loops.outerGridAccumulate(view(tileX).byteOffset + 4 * 4, 12 * 4, 0, view(tileDy).byteOffset + 8 * 4, 16 * 4, 0, view(tileAcc).byteOffset + 8 * 4, 16 * 4, 3, 1);
  const [tx, td, ta] = [view(tileX), view(tileDy), view(tileAcc)];
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 16; c++) {
      let expected = tileBefore[r * 16 + c];
      if (c >= 8) for (let k = 0; k < 3; k++) expected += tx[k * 12 + 4 + r] * td[k * 16 + c];
      assert.ok(Math.abs(ta[r * 16 + c] - expected) < 1e-5, `tile row ${r}, column ${c}: ${ta[r * 16 + c]} vs ${expected}`);
    }
  }
  tf.dispose([tileX, tileDy, tileAcc]);
  // The clip gradient's mask: inside [0, 6] (bounds included) dy passes bit for bit, outside and NaN give +0.
  const clipX = tf.tensor1d([-1, 0, 3, 6, 6.5, NaN, -0, 2]);
  const clipDy = tf.tensor1d([1, 2, 3, 4, 5, 6, 7, -8]);
  const clipOut = tf.fill([8], 9);
  loops.clipGradient(view(clipX).byteOffset, view(clipDy).byteOffset, view(clipOut).byteOffset, 0, 6, 2);
  assert.deepEqual(Array.from(view(clipOut)), [0, 2, 3, 4, 0, 0, 7, -8]);
  tf.dispose([x, dy, acc, centre, centred, sums, clipX, clipDy, clipOut]);
});

test('Mean and Sum match the CPU backend: over all axes but the channels (SIMD, keepDims or not) and every other reduction (the backend\'s own)', async () => {
  const cases: Array<{ shape: number[]; axis: number | number[]; keepDims: boolean }> = [
    { shape: [3, 5, 7, 8], axis: [0, 1, 2], keepDims: false },
    { shape: [3, 5, 7, 8], axis: [2, 0, 1], keepDims: true },
    // More rows than one f32 block (1,024), and 12 channels: three chunks of four.
    { shape: [2, 33, 40, 12], axis: [0, 1, 2], keepDims: false },
    { shape: [1500, 4], axis: 0, keepDims: false },
    { shape: [1500, 4], axis: -2, keepDims: true },
    // Not the SIMD path: channels not in fours, innermost axes, a partial set, all axes.
    { shape: [3, 5, 7, 6], axis: [0, 1, 2], keepDims: false },
    { shape: [3, 5, 7, 8], axis: [3], keepDims: false },
    { shape: [3, 5, 7, 8], axis: [1, 2], keepDims: true },
    { shape: [3, 5, 7, 8], axis: [0, 1, 2, 3], keepDims: false },
  ];
  for (const [index, c] of cases.entries()) {
    const x = operand(c.shape, 500 + index);
    for (const kernel of [tf.Mean, tf.Sum]) {
      const attrs = { axis: c.axis, keepDims: c.keepDims };
      assertClose(await runKernelOn('wasm', kernel, { x }, attrs), await runKernelOn('cpu', kernel, { x }, attrs), `${kernel} ${JSON.stringify(c)}`);
    }
  }
  // int32 sums stay int32 (the backend's own kernel).
  const ints = { values: Int32Array.from({ length: 24 }, (_, i) => i - 7), shape: [6, 4] };
  const summed = await runKernelOn('wasm', tf.Sum, { x: ints }, { axis: 0, keepDims: false });
  assert.ok(summed.values instanceof Int32Array);
  assert.deepEqual(Array.from(summed.values), [18, 24, 30, 36]);
});
