// A tfjs LayersModel graph as an ONNX graph, walked generically from the requested output tensors
// back to the input through each layer's inbound nodes, so any model built from the standard Keras
// layer classes converts, nested models (SizeNet's image model) included. Keras is channels-last;
// onnxruntime's convolutions are NCHW, so a 4-D value is moved to NCHW once, before the first layer
// that needs it, and back only where Keras order matters (Flatten, Dense on maps, outputs).
import { tf } from '../backend/tf.js';
import { AttributeType, DataType, type Attribute, type NodeInit, type TensorInit, type ValueInfo } from './proto.js';

/** A value of the ONNX graph: its name, rank and whether a 4-D value is in NCHW or Keras's NHWC order. */
interface Value {
  name: string;
  rank: number;
  nchw: boolean;
  /** Keras shape, batch first (null: dynamic). */
  shape: Array<number | null>;
}

export interface GraphOutput {
  /** Name of the ONNX output. */
  name: string;
  tensor: tf.SymbolicTensor;
}

export interface ConvertedGraph {
  nodes: NodeInit[];
  initializers: TensorInit[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** Thrown for a layer or setting the converter does not know; the message names the layer. */
export class UnsupportedLayerError extends Error {}

const BATCH = 'batch';

type LayerConfig = Record<string, unknown>;

class GraphBuilder {
  readonly nodes: NodeInit[] = [];
  readonly initializers: TensorInit[] = [];
  private used = new Set<string>();

  unique(base: string): string {
    let name = base.replace(/[^A-Za-z0-9_./:-]/g, '_');
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }

  floats(base: string, data: Float32Array | number[], dims: number[]): string {
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const name = this.unique(base);
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) });
    return name;
  }

  int64s(base: string, data: number[]): string {
    const values = BigInt64Array.from(data.map((v) => BigInt(v)));
    const name = this.unique(base);
    this.initializers.push({ name, dims: [data.length], dataType: DataType.INT64, rawData: new Uint8Array(values.buffer) });
    return name;
  }

  node(opType: string, base: string, input: string[], attribute: Attribute[] = []): string {
    const output = this.unique(base);
    this.nodes.push({ opType, name: output, input, output: [output], attribute });
    return output;
  }
}

const ints = (name: string, values: number[]): Attribute => ({ name, type: AttributeType.INTS, ints: values });
const int = (name: string, value: number): Attribute => ({ name, type: AttributeType.INT, i: value });
const float = (name: string, value: number): Attribute => ({ name, type: AttributeType.FLOAT, f: value });
const str = (name: string, value: string): Attribute => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });

/** Keras axis (negative allowed) of a rank-`rank` value -> the axis in the value's actual order. */
function actualAxis(v: Value, kerasAxis: number): number {
  const axis = kerasAxis < 0 ? v.rank + kerasAxis : kerasAxis;
  if (v.rank === 4 && v.nchw) return [0, 2, 3, 1][axis];
  return axis;
}

function pair(value: unknown, what: string): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2) return [Number(value[0]), Number(value[1])];
  throw new UnsupportedLayerError(`${what}: expected a number or a pair, got ${JSON.stringify(value)}`);
}

/**
 * Converts the part of a LayersModel that computes `outputs` from its (single) input; `values` holds
 * every weight's values, read beforehand (a GPU backend cannot read them synchronously).
 */
export function convertLayersGraph(input: { name: string; tensor: tf.SymbolicTensor }, outputs: GraphOutput[], values: ReadonlyMap<object, Float32Array>): ConvertedGraph {
  const b = new GraphBuilder();
  b.unique(input.name);
  for (const output of outputs) b.unique(output.name);
  const inputShape = input.tensor.shape;
  const root: Value = { name: input.name, rank: inputShape.length, nchw: false, shape: inputShape };
  const nchwOf = new Map<string, Value>();
  const kerasOf = new Map<string, Value>();

  const toNchw = (v: Value): Value => {
    if (v.rank !== 4 || v.nchw) return v;
    let t = nchwOf.get(v.name);
    if (!t) {
      t = { ...v, nchw: true, name: b.node('Transpose', `${v.name}/nchw`, [v.name], [ints('perm', [0, 3, 1, 2])]) };
      nchwOf.set(v.name, t);
    }
    return t;
  };
  const toKeras = (v: Value): Value => {
    if (!v.nchw) return v;
    let t = kerasOf.get(v.name);
    if (!t) {
      t = { ...v, nchw: false, name: b.node('Transpose', `${v.name}/nhwc`, [v.name], [ints('perm', [0, 2, 3, 1])]) };
      kerasOf.set(v.name, t);
    }
    return t;
  };
  const like = (v: Value, name: string, shape: Array<number | null> = v.shape): Value => ({ name, rank: shape.length, nchw: v.nchw && shape.length === 4, shape });

  function activation(kind: string, v: Value, base: string): Value {
    const x = v.name;
    switch (kind) {
      case 'linear':
        return v;
      case 'relu':
        return like(v, b.node('Relu', base, [x]));
      case 'relu6':
        return like(v, b.node('Clip', base, [x, b.floats(`${base}/min`, [0], []), b.floats(`${base}/max`, [6], [])]));
      case 'sigmoid':
        return like(v, b.node('Sigmoid', base, [x]));
      case 'tanh':
        return like(v, b.node('Tanh', base, [x]));
      case 'softplus':
        return like(v, b.node('Softplus', base, [x]));
      case 'softsign':
        return like(v, b.node('Softsign', base, [x]));
      case 'elu':
        return like(v, b.node('Elu', base, [x], [float('alpha', 1)]));
      case 'selu':
        return like(v, b.node('Selu', base, [x]));
      case 'hardSigmoid':
        return like(v, b.node('HardSigmoid', base, [x], [float('alpha', 0.2), float('beta', 0.5)]));
      case 'softmax':
        return like(v, b.node('Softmax', base, [x], [int('axis', actualAxis(v, -1))]));
      case 'logSoftmax':
        return like(v, b.node('LogSoftmax', base, [x], [int('axis', actualAxis(v, -1))]));
      case 'swish':
        return like(v, b.node('Mul', base, [x, b.node('Sigmoid', `${base}/sigmoid`, [x])]));
      case 'mish': {
        const t = b.node('Tanh', `${base}/tanh`, [b.node('Softplus', `${base}/softplus`, [x])]);
        return like(v, b.node('Mul', base, [x, t]));
      }
      case 'gelu': {
        // x · ½(1 + erf(x/√2)), tfjs's exact GELU.
        const erf = b.node('Erf', `${base}/erf`, [b.node('Mul', `${base}/scaled`, [x, b.floats(`${base}/rsqrt2`, [Math.SQRT1_2], [])])]);
        const half = b.node('Mul', `${base}/half`, [b.node('Add', `${base}/onePlus`, [erf, b.floats(`${base}/one`, [1], [])]), b.floats(`${base}/0.5`, [0.5], [])]);
        return like(v, b.node('Mul', base, [x, half]));
      }
      default:
        throw new UnsupportedLayerError(`activation '${kind}' has no ONNX conversion`);
    }
  }

  function weightsOf(layer: tf.layers.Layer): Map<string, { data: Float32Array; shape: number[] }> {
    const named = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const w of layer.weights) {
      const data = values.get(w);
      if (!data) throw new Error(`weight ${w.name} was not read before conversion`);
      named.set(w.originalName.split('/').pop()!, { data, shape: w.shape as number[] });
    }
    return named;
  }

  /** Conv weights [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
  function convKernel(k: { data: Float32Array; shape: number[] }): { data: Float32Array; dims: number[] } {
    const [kh, kw, cin, cout] = k.shape;
    const out = new Float32Array(k.data.length);
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) out[((o * cin + c) * kh + i) * kw + j] = k.data[((i * kw + j) * cin + c) * cout + o];
    return { data: out, dims: [cout, cin, kh, kw] };
  }

  /** Depthwise weights [kh, kw, in, mult] -> ONNX [in·mult, 1, kh, kw] (output channel c·mult + m, as TF orders them). */
  function depthwiseKernel(k: { data: Float32Array; shape: number[] }): { data: Float32Array; dims: number[] } {
    const [kh, kw, cin, mult] = k.shape;
    const out = new Float32Array(k.data.length);
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < cin; c++) for (let m = 0; m < mult; m++) out[((c * mult + m) * kh + i) * kw + j] = k.data[((i * kw + j) * cin + c) * mult + m];
    return { data: out, dims: [cin * mult, 1, kh, kw] };
  }

  function padding(config: LayerConfig, what: string): Attribute {
    if (config.dataFormat !== undefined && config.dataFormat !== 'channelsLast') throw new UnsupportedLayerError(`${what}: only channelsLast data is supported`);
    // TF's 'same' puts the odd pixel of padding at the end, which is ONNX's SAME_UPPER.
    if (config.padding === 'same') return str('auto_pad', 'SAME_UPPER');
    if (config.padding === 'valid') return str('auto_pad', 'VALID');
    throw new UnsupportedLayerError(`${what}: padding '${String(config.padding)}' has no ONNX conversion`);
  }

  function conv(layer: tf.layers.Layer, config: LayerConfig, x: Value, kernel: { data: Float32Array; dims: number[] }, bias: Float32Array | undefined, group: number, base: string, outShape: Array<number | null>): Value {
    const v = toNchw(x);
    const inputs = [v.name, b.floats(`${base}/W`, kernel.data, kernel.dims)];
    if (bias) inputs.push(b.floats(`${base}/B`, bias, [bias.length]));
    const attrs = [
      ints('kernel_shape', kernel.dims.slice(2)),
      ints('strides', pair(config.strides ?? 1, layer.name)),
      ints('dilations', pair(config.dilationRate ?? 1, layer.name)),
      int('group', group),
      padding(config, layer.name),
    ];
    return like({ ...v, shape: outShape }, b.node('Conv', base, inputs, attrs));
  }

  function layerOutputs(layer: tf.layers.Layer, base: string, inputs: Value[], outShapes: Array<Array<number | null>>): Value[] {
    const config = layer.getConfig() as LayerConfig;
    const cls = layer.getClassName();
    const x = inputs[0];
    const out = outShapes[0];
    const withActivation = (v: Value) => activation(String(config.activation ?? 'linear'), v, `${base}/${String(config.activation)}`);
    switch (cls) {
      case 'Conv2D': {
        const w = weightsOf(layer);
        return [withActivation(conv(layer, config, x, convKernel(w.get('kernel')!), w.get('bias')?.data, 1, base, out))];
      }
      case 'DepthwiseConv2D': {
        const w = weightsOf(layer);
        const k = w.get('depthwise_kernel')!;
        return [withActivation(conv(layer, config, x, depthwiseKernel(k), w.get('bias')?.data, k.shape[2], base, out))];
      }
      case 'SeparableConv2D': {
        const w = weightsOf(layer);
        const k = w.get('depthwise_kernel')!;
        const mid = [out[0], null, null, k.shape[2] * k.shape[3]];
        const depthwise = conv(layer, config, x, depthwiseKernel(k), undefined, k.shape[2], `${base}/depthwise`, mid);
        const pointwise = conv(layer, { strides: 1, dilationRate: 1, padding: 'valid' }, depthwise, convKernel(w.get('pointwise_kernel')!), w.get('bias')?.data, 1, base, out);
        return [withActivation(pointwise)];
      }
      case 'Dense': {
        const w = weightsOf(layer);
        const kernel = w.get('kernel')!;
        const bias = w.get('bias');
        const v = toKeras(x);
        const kernelName = b.floats(`${base}/kernel`, kernel.data, kernel.shape);
        let y: string;
        if (v.rank === 2 && bias) y = b.node('Gemm', base, [v.name, kernelName, b.floats(`${base}/bias`, bias.data, bias.shape)]);
        else {
          y = b.node('MatMul', bias ? `${base}/matmul` : base, [v.name, kernelName]);
          if (bias) y = b.node('Add', base, [y, b.floats(`${base}/bias`, bias.data, bias.shape)]);
        }
        return [withActivation({ name: y, rank: out.length, nchw: false, shape: out })];
      }
      case 'BatchNormalization': {
        const axis = Number(config.axis ?? -1);
        if (!(axis === -1 || axis === x.rank - 1)) throw new UnsupportedLayerError(`${layer.name}: batch normalisation over axis ${axis} has no conversion`);
        if (x.rank !== 2 && x.rank !== 4) throw new UnsupportedLayerError(`${layer.name}: batch normalisation of a rank-${x.rank} value has no conversion`);
        const v = toNchw(x);
        const w = weightsOf(layer);
        const channels = w.get('moving_mean')!.shape[0];
        const gamma = w.get('gamma')?.data ?? new Float32Array(channels).fill(1);
        const beta = w.get('beta')?.data ?? new Float32Array(channels);
        const inputs = [v.name, b.floats(`${base}/gamma`, gamma, [channels]), b.floats(`${base}/beta`, beta, [channels]), b.floats(`${base}/mean`, w.get('moving_mean')!.data, [channels]), b.floats(`${base}/var`, w.get('moving_variance')!.data, [channels])];
        return [like(v, b.node('BatchNormalization', base, inputs, [float('epsilon', Number(config.epsilon ?? 1e-3))]))];
      }
      case 'LayerNormalization': {
        const axes = Array.isArray(config.axis) ? (config.axis as number[]) : [Number(config.axis ?? -1)];
        if (axes.length !== 1 || !(axes[0] === -1 || axes[0] === x.rank - 1)) throw new UnsupportedLayerError(`${layer.name}: layer normalisation over axes ${JSON.stringify(config.axis)} has no conversion`);
        const v = toKeras(x);
        const w = weightsOf(layer);
        const channels = v.shape[v.rank - 1] as number;
        const gamma = w.get('gamma')?.data ?? new Float32Array(channels).fill(1);
        const beta = w.get('beta')?.data ?? new Float32Array(channels);
        return [like(v, b.node('LayerNormalization', base, [v.name, b.floats(`${base}/gamma`, gamma, [channels]), b.floats(`${base}/beta`, beta, [channels])], [int('axis', -1), float('epsilon', Number(config.epsilon ?? 1e-3))]))];
      }
      case 'Activation':
        return [withActivation(x)];
      case 'ReLU': {
        if (config.maxValue === null || config.maxValue === undefined) return [like(x, b.node('Relu', base, [x.name]))];
        return [like(x, b.node('Clip', base, [x.name, b.floats(`${base}/min`, [0], []), b.floats(`${base}/max`, [Number(config.maxValue)], [])]))];
      }
      case 'LeakyReLU':
        return [like(x, b.node('LeakyRelu', base, [x.name], [float('alpha', Number(config.alpha ?? 0.3))]))];
      case 'ELU':
        return [like(x, b.node('Elu', base, [x.name], [float('alpha', Number(config.alpha ?? 1))]))];
      case 'ThresholdedReLU':
        return [like(x, b.node('ThresholdedRelu', base, [x.name], [float('alpha', Number(config.theta ?? 1))]))];
      case 'Softmax': {
        const axis = Number(config.axis ?? -1);
        return [like(x, b.node('Softmax', base, [x.name], [int('axis', actualAxis(x, axis))]))];
      }
      case 'PReLU': {
        const alpha = weightsOf(layer).get('alpha')!;
        // The slope has the input's shape without the batch axis; in NCHW that is [C, H, W].
        const v = toKeras(x);
        return [like(v, b.node('PRelu', base, [v.name, b.floats(`${base}/slope`, alpha.data, alpha.shape)]))];
      }
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'AlphaDropout':
        // Training-time only: identity at inference.
        return [x];
      case 'Rescaling': {
        const scaled = b.node('Mul', `${base}/scale`, [x.name, b.floats(`${base}/scale`, [Number(config.scale)], [])]);
        return [like(x, b.node('Add', base, [scaled, b.floats(`${base}/offset`, [Number(config.offset ?? 0)], [])]))];
      }
      case 'Flatten': {
        if (x.rank === 2) return [x];
        const v = toKeras(x);
        return [{ name: b.node('Flatten', base, [v.name], [int('axis', 1)]), rank: 2, nchw: false, shape: out }];
      }
      case 'Reshape': {
        const v = toKeras(x);
        const target = config.targetShape as number[];
        return [{ name: b.node('Reshape', base, [v.name, b.int64s(`${base}/shape`, [0, ...target])]), rank: out.length, nchw: false, shape: out }];
      }
      case 'Permute': {
        const v = toKeras(x);
        return [{ name: b.node('Transpose', base, [v.name], [ints('perm', [0, ...(config.dims as number[])])]), rank: out.length, nchw: false, shape: out }];
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        if (config.dataFormat !== undefined && config.dataFormat !== 'channelsLast') throw new UnsupportedLayerError(`${layer.name}: only channelsLast data is supported`);
        const v = toNchw(x);
        const keep = config.keepDims === true;
        const op = cls === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax';
        return [{ name: b.node(op, base, [v.name], [ints('axes', [2, 3]), int('keepdims', keep ? 1 : 0)]), rank: out.length, nchw: keep, shape: out }];
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const v = toNchw(x);
        const kernel = pair(config.poolSize, layer.name);
        const attrs = [ints('kernel_shape', kernel), ints('strides', pair(config.strides ?? kernel, layer.name)), padding(config, layer.name)];
        return [like({ ...v, shape: out }, b.node(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', base, [v.name], attrs))];
      }
      case 'ZeroPadding2D': {
        const v = toNchw(x);
        const [[top, bottom], [left, right]] = config.padding as [[number, number], [number, number]];
        return [like({ ...v, shape: out }, b.node('Pad', base, [v.name, b.int64s(`${base}/pads`, [0, 0, top, left, 0, 0, bottom, right])]))];
      }
      case 'Cropping2D': {
        const v = toNchw(x);
        const [[top, bottom], [left, right]] = config.cropping as [[number, number], [number, number]];
        const [h, w] = [x.shape[1] as number, x.shape[2] as number];
        const attrs = [b.int64s(`${base}/starts`, [top, left]), b.int64s(`${base}/ends`, [h - bottom, w - right]), b.int64s(`${base}/axes`, [2, 3])];
        return [like({ ...v, shape: out }, b.node('Slice', base, [v.name, ...attrs]))];
      }
      case 'UpSampling2D': {
        const v = toNchw(x);
        const [sh, sw] = pair(config.size, layer.name);
        // tfjs resizes with alignCorners = false and no half-pixel centres: 'asymmetric' in ONNX.
        const mode = config.interpolation === 'bilinear' ? 'linear' : 'nearest';
        const attrs = [str('mode', mode), str('coordinate_transformation_mode', 'asymmetric'), str('nearest_mode', 'floor')];
        return [like({ ...v, shape: out }, b.node('Resize', base, [v.name, '', b.floats(`${base}/scales`, [1, 1, sh, sw], [4])], attrs))];
      }
      case 'Add':
      case 'Multiply':
      case 'Average':
      case 'Maximum':
      case 'Minimum': {
        const nchw = inputs.some((v) => v.nchw);
        const aligned = inputs.map((v) => (nchw ? toNchw(v) : v));
        const op = { Add: 'Sum', Multiply: 'Mul', Average: 'Mean', Maximum: 'Max', Minimum: 'Min' }[cls]!;
        if (op === 'Mul' && aligned.length > 2) {
          let acc = aligned[0].name;
          for (let i = 1; i < aligned.length; i++) acc = b.node('Mul', i === aligned.length - 1 ? base : `${base}/${i}`, [acc, aligned[i].name]);
          return [like({ ...aligned[0], shape: out }, acc)];
        }
        return [like({ ...aligned[0], shape: out }, b.node(op, base, aligned.map((v) => v.name)))];
      }
      case 'Concatenate': {
        const nchw = inputs.some((v) => v.nchw);
        const aligned = inputs.map((v) => (nchw ? toNchw(v) : v));
        return [like({ ...aligned[0], shape: out }, b.node('Concat', base, aligned.map((v) => v.name), [int('axis', actualAxis(aligned[0], Number(config.axis ?? -1)))]))];
      }
      default:
        throw new UnsupportedLayerError(`layer '${layer.name}' of class ${cls} has no ONNX conversion`);
    }
  }

  // Values by symbolic tensor id within a scope; a nested model applied to outer tensors gets its own scope.
  function valueOf(tensor: tf.SymbolicTensor, scope: Map<number, Value>, prefix: string): Value {
    const known = scope.get(tensor.id);
    if (known) return known;
    const layer = tensor.sourceLayer;
    if (layer.getClassName() === 'InputLayer') throw new UnsupportedLayerError(`the model reads input '${layer.name}', which is not the exported input`);
    const node = layer.inboundNodes[tensor.nodeIndex];
    const inputs = node.inputTensors.map((t) => valueOf(t, scope, prefix));
    let results: Value[];
    if (layer instanceof tf.LayersModel) {
      const inner = new Map<number, Value>();
      layer.inputs.forEach((t, i) => inner.set(t.id, inputs[i]));
      results = layer.outputs.map((t) => valueOf(t, inner, `${prefix}${layer.name}/`));
    } else {
      results = layerOutputs(layer, `${prefix}${layer.name}`, inputs, node.outputTensors.map((t) => t.shape));
    }
    node.outputTensors.forEach((t, i) => scope.set(t.id, results[i]));
    const result = scope.get(tensor.id);
    if (!result) throw new UnsupportedLayerError(`layer '${layer.name}' did not produce output ${tensor.tensorIndex}`);
    return result;
  }

  const scope = new Map<number, Value>([[input.tensor.id, root]]);
  const graphOutputs: ValueInfo[] = [];
  for (const output of outputs) {
    const v = toKeras(valueOf(output.tensor, scope, ''));
    b.nodes.push({ opType: 'Identity', name: `${output.name}/identity`, input: [v.name], output: [output.name], attribute: [] });
    graphOutputs.push({ name: output.name, shape: output.tensor.shape.map((d, i) => (d === null ? (i === 0 ? BATCH : `${output.name}_${i}`) : d)) });
  }
  return {
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [{ name: input.name, shape: inputShape.map((d, i) => (d === null ? (i === 0 ? BATCH : `${input.name}_${i}`) : d)) }],
    outputs: graphOutputs,
  };
}
