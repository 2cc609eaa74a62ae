// Static int8 quantization of a converted graph, in the QDQ form onnxruntime's own quantizer
// writes: batch normalisation folded into the convolution before it; convolution weights int8,
// symmetric, one scale per output channel; activations uint8, one scale and zero point per tensor,
// from the min/max a calibration run measured. onnxruntime turns each DequantizeLinear -> Conv ->
// QuantizeLinear group into one QLinearConv (Add into QLinearAdd; a ReLU or ReLU6 before a
// QuantizeLinear whose range starts at 0 is dropped), which runs on int8 dot products (VNNI where
// the CPU has it). Dense layers (Gemm, or MatMul with a constant [in, out] weight) read uint8
// activations and int8 weights, one scale per output column, with an int32 bias: onnxruntime runs
// them as QGemm or QLinearMatMul, or, where the output stays float (the logits before a softmax or
// sigmoid), as QGemm with a float output or MatMulIntegerToFloat. Outputs change by the rounding:
// callers state the agreement they measured.
import type { ConvertedGraph } from './convert.js';
import { AttributeType, DataType, type NodeInit, type TensorInit } from './proto.js';

/**
 * Ops whose activation inputs are quantized; their outputs are too (past a sole ReLU or ReLU6),
 * except a dense layer's, which is quantized only where a quantized op reads it.
 */
const QUANTIZED_OPS = new Set(['Conv', 'Add', 'MaxPool', 'Gemm', 'MatMul']);
const DENSE_OPS = new Set(['Gemm', 'MatMul']);
const ACTIVATIONS = new Set(['Relu', 'Clip']);

export interface TensorRange {
  min: number;
  max: number;
}

function floatsOf(t: TensorInit): Float32Array {
  const copy = new Uint8Array(t.rawData);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

function tensor(name: string, dims: number[], dataType: number, values: Float32Array | Int8Array | Uint8Array | Int32Array): TensorInit {
  return { name, dims, dataType, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** Who reads each tensor. */
function consumersOf(nodes: NodeInit[]): Map<string, NodeInit[]> {
  const readers = new Map<string, NodeInit[]>();
  for (const node of nodes) for (const name of node.input) readers.set(name, [...(readers.get(name) ?? []), node]);
  return readers;
}

/** Drops initializers no node reads. */
function withoutUnused(graph: ConvertedGraph): ConvertedGraph {
  const read = new Set(graph.nodes.flatMap((n) => n.input));
  return { ...graph, initializers: graph.initializers.filter((t) => read.has(t.name)) };
}

/**
 * The same function with every BatchNormalization that reads a Conv's only use folded into that
 * Conv's weights and bias (W·γ/√(σ²+ε), (b−μ)·γ/√(σ²+ε)+β), and 2-input Sums written as Add.
 */
export function foldBatchNorm(graph: ConvertedGraph): ConvertedGraph {
  const weights = new Map(graph.initializers.map((t) => [t.name, t]));
  const producer = new Map(graph.nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const readers = consumersOf(graph.nodes);
  const initializers = [...graph.initializers];
  const removed = new Set<NodeInit>();
  const replaced = new Map<NodeInit, NodeInit>();
  for (const bn of graph.nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const conv = producer.get(bn.input[0]);
    if (!conv || conv.opType !== 'Conv' || readers.get(conv.output[0])?.length !== 1 || replaced.has(conv)) continue;
    const params = bn.input.slice(1).map((name) => weights.get(name));
    const kernel = weights.get(conv.input[1]);
    if (!kernel || params.some((p) => !p)) continue;
    const [gamma, beta, mean, variance] = params.map((p) => floatsOf(p!));
    const epsilon = bn.attribute.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
    const w = floatsOf(kernel);
    const channels = kernel.dims[0];
    const perChannel = w.length / channels;
    const bias = conv.input[2] && weights.get(conv.input[2]) ? floatsOf(weights.get(conv.input[2])!) : new Float32Array(channels);
    const foldedW = new Float32Array(w.length);
    const foldedB = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const factor = gamma[c] / Math.sqrt(variance[c] + epsilon);
      for (let k = 0; k < perChannel; k++) foldedW[c * perChannel + k] = w[c * perChannel + k] * factor;
      foldedB[c] = (bias[c] - mean[c]) * factor + beta[c];
    }
    const wName = `${conv.input[1]}/folded`;
    const bName = `${conv.output[0]}/folded_bias`;
    initializers.push(tensor(wName, kernel.dims, DataType.FLOAT, foldedW), tensor(bName, [channels], DataType.FLOAT, foldedB));
    replaced.set(conv, { ...conv, input: [conv.input[0], wName, bName], output: [bn.output[0]] });
    removed.add(bn);
  }
  const nodes = graph.nodes
    .filter((n) => !removed.has(n))
    .map((n) => replaced.get(n) ?? (n.opType === 'Sum' && n.input.length === 2 ? { ...n, opType: 'Add' } : n));
  return withoutUnused({ ...graph, nodes, initializers });
}

/**
 * A dense layer as the converter writes it: a float activation times a constant 2-D float weight
 * [in, out] (MatMul, or Gemm with its default alpha, beta and no transposes, and a bias of [out]).
 */
function isQuantizableDense(node: NodeInit, weights: ReadonlyMap<string, TensorInit>): boolean {
  const w = weights.get(node.input[1]);
  if (weights.has(node.input[0]) || !w || w.dims.length !== 2 || w.dataType !== DataType.FLOAT) return false;
  if (node.opType === 'MatMul') return true;
  const plain = node.attribute.every((a) => (a.name === 'alpha' || a.name === 'beta' ? a.f === 1 : a.name === 'transA' || a.name === 'transB' ? !a.i : false));
  const bias = node.input[2] ? weights.get(node.input[2]) : undefined;
  return plain && (!node.input[2] || (bias !== undefined && bias.dims.length === 1 && bias.dims[0] === w.dims[1]));
}

/** The activation tensors quantizeGraph will quantize (and so the ones calibration must measure). */
export function quantizedTensors(graph: ConvertedGraph): string[] {
  const constants = new Set(graph.initializers.map((t) => t.name));
  const readers = consumersOf(graph.nodes);
  const chosen = new Set<string>();
  const weights = new Map(graph.initializers.map((t) => [t.name, t]));
  for (const node of graph.nodes) {
    if (!QUANTIZED_OPS.has(node.opType)) continue;
    if (DENSE_OPS.has(node.opType)) {
      // Its input in uint8; its output only where a quantized op reads it (and picks it up there).
      if (isQuantizableDense(node, weights)) chosen.add(node.input[0]);
      continue;
    }
    const activations = node.input.filter((name) => name !== '' && !constants.has(name));
    // An Add with a constant operand (a bias) is left in float.
    if (node.opType === 'Add' && activations.length !== 2) continue;
    const inputs = node.opType === 'Conv' ? activations.slice(0, 1) : activations;
    for (const name of inputs) chosen.add(name);
    const out = node.output[0];
    const next = readers.get(out) ?? [];
    chosen.add(next.length === 1 && ACTIVATIONS.has(next[0].opType) ? next[0].output[0] : out);
  }
  return [...chosen];
}

/** The names of the scalar outputs calibrationGraph adds for `tensor`. */
export function rangeOutputs(tensor: string): { min: string; max: string } {
  return { min: `${tensor}/calibration_min`, max: `${tensor}/calibration_max` };
}

/**
 * The graph with each of `tensors` reduced to its min and max as extra scalar outputs (rangeOutputs),
 * for measuring their ranges in a calibration run: onnxruntime reduces them where they are, instead
 * of handing every activation of every calibration image back to JS.
 */
export function calibrationGraph(graph: ConvertedGraph, tensors: string[]): ConvertedGraph {
  const keepdims = [{ name: 'keepdims', type: AttributeType.INT, i: 0 }];
  const nodes = [...graph.nodes];
  const outputs = [...graph.outputs];
  for (const t of tensors) {
    const { min, max } = rangeOutputs(t);
    nodes.push({ opType: 'ReduceMin', name: min, input: [t], output: [min], attribute: keepdims }, { opType: 'ReduceMax', name: max, input: [t], output: [max], attribute: keepdims });
    outputs.push({ name: min, shape: [] }, { name: max, shape: [] });
  }
  return { ...graph, nodes, outputs };
}

/** Symmetric int8 values of a float weight, one scale (peak / 127) per index of `axis`. */
export function perChannelInt8(w: Float32Array, dims: number[], axis: number): { q: Int8Array; scale: Float32Array } {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((n, d) => n * d, 1);
  const channelOf = (k: number) => Math.floor(k / inner) % channels;
  const scale = new Float32Array(channels);
  for (let k = 0; k < w.length; k++) scale[channelOf(k)] = Math.max(scale[channelOf(k)], Math.abs(w[k]));
  for (let c = 0; c < channels; c++) scale[c] = scale[c] > 0 ? scale[c] / 127 : 1;
  const q = Int8Array.from(w, (v, k) => Math.max(-127, Math.min(127, Math.round(v / scale[channelOf(k)]))));
  return { q, scale };
}

/** uint8 scale and zero point covering [min, max] and 0 (so a ReLU's 0 is exact). */
export function activationScale(range: TensorRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, range.min);
  const hi = Math.max(0, range.max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/**
 * The QDQ graph: every tensor of quantizedTensors(graph) passes through QuantizeLinear ->
 * DequantizeLinear before its readers; every Conv and dense layer with a quantized input reads
 * int8 per-channel weights and an int32 bias through DequantizeLinear. `graph` should be
 * foldBatchNorm's output; `ranges` must cover quantizedTensors(graph).
 */
export function quantizeGraph(graph: ConvertedGraph, ranges: ReadonlyMap<string, TensorRange>): ConvertedGraph {
  const weights = new Map(graph.initializers.map((t) => [t.name, t]));
  const initializers = [...graph.initializers];
  const nodes: NodeInit[] = [];
  const scales = new Map<string, number>();
  const dequantized = new Map<string, string>();
  const axis0 = [{ name: 'axis', type: AttributeType.INT, i: 0 }];
  const quantize = (name: string) => {
    const range = ranges.get(name);
    if (!range) throw new Error(`no calibration range for tensor ${name}`);
    const { scale, zeroPoint } = activationScale(range);
    scales.set(name, scale);
    const s = `${name}/scale`;
    const z = `${name}/zero_point`;
    initializers.push(tensor(s, [], DataType.FLOAT, Float32Array.of(scale)), tensor(z, [], DataType.UINT8, Uint8Array.of(zeroPoint)));
    nodes.push({ opType: 'QuantizeLinear', name: `${name}/q`, input: [name, s, z], output: [`${name}/q`], attribute: [] });
    nodes.push({ opType: 'DequantizeLinear', name: `${name}/dq`, input: [`${name}/q`, s, z], output: [`${name}/dq`], attribute: [] });
    dequantized.set(name, `${name}/dq`);
  };
  /** The node's weight in int8 (one scale per index of `axis`) and its bias in int32, through DequantizeLinear, as its inputs 1 and 2. */
  const quantizeWeights = (node: NodeInit, input: string[], axis: number) => {
    const kernel = weights.get(node.input[1])!;
    const { q, scale: wScale } = perChannelInt8(floatsOf(kernel), kernel.dims, axis);
    const channels = kernel.dims[axis];
    const wq = `${node.input[1]}/int8`;
    initializers.push(tensor(wq, kernel.dims, DataType.INT8, q), tensor(`${wq}/scale`, [channels], DataType.FLOAT, wScale), tensor(`${wq}/zero_point`, [channels], DataType.INT8, new Int8Array(channels)));
    nodes.push({ opType: 'DequantizeLinear', name: `${wq}/dq`, input: [wq, `${wq}/scale`, `${wq}/zero_point`], output: [`${wq}/dq`], attribute: [{ name: 'axis', type: AttributeType.INT, i: axis }] });
    input[1] = `${wq}/dq`;
    const bias = node.input[2] ? weights.get(node.input[2]) : undefined;
    if (bias) {
      // The bias in the int32 units of the product: scale x_scale · w_scale[c], zero point 0.
      const b = floatsOf(bias);
      const xScale = scales.get(node.input[0])!;
      const bScale = wScale.map((s) => s * xScale);
      const bq = Int32Array.from(b, (v, c) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(v / bScale[c]))));
      const name = `${node.input[2]}/int32`;
      initializers.push(tensor(name, [channels], DataType.INT32, bq), tensor(`${name}/scale`, [channels], DataType.FLOAT, bScale), tensor(`${name}/zero_point`, [channels], DataType.INT32, new Int32Array(channels)));
      nodes.push({ opType: 'DequantizeLinear', name: `${name}/dq`, input: [name, `${name}/scale`, `${name}/zero_point`], output: [`${name}/dq`], attribute: axis0 });
      input[2] = `${name}/dq`;
    }
  };
  const chosen = new Set(quantizedTensors(graph));
  for (const input of graph.inputs) if (chosen.has(input.name)) quantize(input.name);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  for (const node of graph.nodes) {
    // A graph output named by an Identity (convert.ts) stays float: read through the QDQ pair a
    // quantized reader put on its tensor (the word matrix on a weak model's embedding), it came out
    // rounded to that tensor's uint8 steps (0.025 on ResNet-18's pooled features, bench/RESULTS.md).
    const keepsFloat = node.opType === 'Identity' && graphOutputs.has(node.output[0]);
    const input = keepsFloat ? node.input : node.input.map((name) => dequantized.get(name) ?? name);
    if (node.opType === 'Conv' && scales.has(node.input[0]) && weights.has(node.input[1])) quantizeWeights(node, input, 0);
    // Dense weights are [in, out]: one scale per output column.
    if (DENSE_OPS.has(node.opType) && scales.has(node.input[0]) && isQuantizableDense(node, weights)) quantizeWeights(node, input, 1);
    nodes.push({ ...node, input });
    for (const out of node.output) if (chosen.has(out)) quantize(out);
  }
  return withoutUnused({ ...graph, nodes, initializers });
}
