// Pretrained backbones: any tfjs layers model (e.g. tensorflowjs_converter's output of a Keras
// application) cut at a layer and put behind atelier's input, with its input preprocessing built
// into the graph as a frozen 1x1 conv, so every command that loads the model reproduces it.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import { TOWER_LAYER, type InputSize, type TowerSpec } from './towers/index.js';

/**
 * What the network expects, from atelier's RGB pixels x in [0, 1]: channels reordered, then
 * (x · scale - mean[c]) / std[c], mean and std in the network's channel order.
 */
export interface Preprocessing {
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  channels: 'rgb' | 'bgr';
}

/** The modes of keras.applications' preprocess_input, plus 'unit' (x in [0, 1] as is: nsfwjs). */
export const PREPROCESSING: Record<string, Preprocessing> = {
  unit: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1], channels: 'rgb' },
  // MobileNetV2, InceptionV3: x / 127.5 - 1.
  tf: { scale: 255, mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5], channels: 'rgb' },
  // ResNet50, VGG: BGR, ImageNet means subtracted on the 0-255 scale.
  caffe: { scale: 255, mean: [103.939, 116.779, 123.68], std: [1, 1, 1], channels: 'bgr' },
  // DenseNet, torchvision: ImageNet mean and std on [0, 1].
  torch: { scale: 1, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channels: 'rgb' },
};

/** What a backbone tower records in model metadata (under `tower.backbone`). */
export interface BackboneSpec {
  /** Where it came from (a path or a package name), for the record. */
  source: string;
  /** The layer the features are taken from. */
  layer: string;
  preprocessing: Preprocessing;
}

/** What a model's metadata records about its tower (field `tower`): enough to rebuild or reload it. */
export interface TowerRecord extends TowerSpec {
  /** Set when the tower is a cut pretrained network (family 'backbone'). */
  backbone?: BackboneSpec;
  /** How images are fitted to the input: 'cover' crops the overflow, 'contain' pads (non-square inputs). */
  resize: 'cover' | 'contain';
}

const HEAD_CLASSES = new Set(['Dense', 'Dropout', 'Activation', 'Softmax', 'Flatten', 'Reshape', 'AveragePooling2D', 'MaxPooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D']);

/** Parses --backbone-preprocess: a preset name or scale=S,mean=A:B:C,std=A:B:C,channels=rgb|bgr. */
export function parsePreprocessing(text: string, field = '--backbone-preprocess'): Preprocessing {
  if (PREPROCESSING[text]) return PREPROCESSING[text];
  const out: Preprocessing = { ...PREPROCESSING.unit };
  for (const part of text.split(',')) {
    const [key, value = ''] = part.split('=');
    const numbers = value.split(':').map(Number);
    const triple = (): [number, number, number] => {
      const t = numbers.length === 1 ? [numbers[0], numbers[0], numbers[0]] : numbers;
      if (t.length !== 3 || !t.every(Number.isFinite)) throw new UsageError(`${key}: expected one number or three joined by ':', got '${value}'`, { field });
      return t as [number, number, number];
    };
    if (key === 'scale' && numbers.length === 1 && Number.isFinite(numbers[0])) out.scale = numbers[0];
    else if (key === 'mean') out.mean = triple();
    else if (key === 'std') out.std = triple();
    else if (key === 'channels' && (value === 'rgb' || value === 'bgr')) out.channels = value;
    else throw new UsageError(`expected a preset (${Object.keys(PREPROCESSING).join(', ')}) or scale=S,mean=A:B:C,std=A:B:C,channels=rgb|bgr; cannot read '${part}'`, { field });
  }
  if (out.std.some((s) => s === 0)) throw new UsageError('std must not be 0', { field });
  return out;
}

function isIdentity(p: Preprocessing): boolean {
  return p.scale === 1 && p.channels === 'rgb' && p.mean.every((m) => m === 0) && p.std.every((s) => s === 1);
}

/**
 * The default cut: the last feature map before the classifier section at the end (pooling,
 * flatten, dense, dropout). The features are then its global average (max, if that section
 * pools by max), which equals a Keras GlobalAveragePooling2D or a 7x7 AveragePooling2D + Flatten
 * at the network's own input size and still works at other input sizes.
 */
export function defaultCutLayer(model: tf.LayersModel): string {
  let i = model.layers.length - 1;
  while (i > 0 && HEAD_CLASSES.has(model.layers[i].getClassName())) i--;
  const layer = model.layers[i];
  if (i <= 0 || (layer.outputShape as number[]).length !== 4) throw new UsageError(`cannot find the last feature map before the classifier of '${model.name}'; name one with --backbone-layer`, { field: '--backbone-layer' });
  return layer.name;
}

function poolsByMax(model: tf.LayersModel, after: string): boolean {
  const index = model.layers.findIndex((l) => l.name === after);
  return model.layers.slice(index + 1).some((l) => /MaxPooling2D$/.test(l.getClassName()));
}

/**
 * image [n, H, W, 3] in [0, 1] -> features [n, C] named 'pooled': `model`'s layers re-applied
 * (shared, so training the result trains them) from a new input named 'image', through the
 * preprocessing, up to `layer` (default: defaultCutLayer), globally pooled when it is a map.
 */
export function cutBackbone(model: tf.LayersModel, options: { input: InputSize; layer?: string; preprocessing: Preprocessing }): { tower: tf.LayersModel; layer: string } {
  const layer = options.layer ?? defaultCutLayer(model);
  if (!model.layers.some((l) => l.name === layer)) throw new UsageError(`the backbone has no layer '${layer}'`, { field: '--backbone-layer' });
  if (model.inputs.length !== 1 || model.inputs[0].shape.length !== 4 || model.inputs[0].shape[3] !== 3) {
    throw new UsageError(`the backbone must take one RGB image input, not ${JSON.stringify(model.inputs.map((i) => i.shape))}`, { field: '--backbone' });
  }
  const image = tf.input({ shape: [options.input.height, options.input.width, 3], name: TOWER_LAYER.input });
  const tensors = new Map<number, tf.SymbolicTensor>();
  tensors.set(model.inputs[0].id, options.preprocessing && !isIdentity(options.preprocessing) ? preprocess(image, options.preprocessing) : image);
  let cut: tf.SymbolicTensor | undefined;
  for (const l of model.layers) {
    if (l.getClassName() === 'InputLayer') continue;
    const node = l.inboundNodes[0];
    const inputs = node.inputTensors.map((t) => tensors.get(t.id));
    if (inputs.some((t) => t === undefined)) throw new UsageError(`layer '${l.name}' has an input outside the image path`, { field: '--backbone' });
    let out: tf.SymbolicTensor | tf.SymbolicTensor[];
    try {
      out = l.apply(inputs.length === 1 ? inputs[0]! : (inputs as tf.SymbolicTensor[])) as tf.SymbolicTensor | tf.SymbolicTensor[];
    } catch (err) {
      throw new UsageError(`layer '${l.name}' does not accept a ${options.input.height}x${options.input.width} input: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`, { field: '--input-size' });
    }
    (Array.isArray(out) ? out : [out]).forEach((t, k) => tensors.set(node.outputTensors[k].id, t));
    if (l.name === layer) {
      cut = Array.isArray(out) ? out[0] : out;
      break;
    }
  }
  if (!cut) throw new UsageError(`layer '${layer}' is not on the image path`, { field: '--backbone-layer' });
  let pooled: tf.SymbolicTensor;
  if (cut.shape.length === 4) {
    const pool = poolsByMax(model, layer) ? tf.layers.globalMaxPooling2d({ name: TOWER_LAYER.pooled }) : tf.layers.globalAveragePooling2d({ name: TOWER_LAYER.pooled });
    pooled = pool.apply(cut) as tf.SymbolicTensor;
  } else if (cut.shape.length === 2) {
    // An identity, so the features keep the name every command looks for.
    pooled = tf.layers.activation({ activation: 'linear', name: TOWER_LAYER.pooled }).apply(cut) as tf.SymbolicTensor;
  } else {
    throw new UsageError(`layer '${layer}' gives ${cut.shape.length - 1}-d outputs; cut at a feature map or a vector`, { field: '--backbone-layer' });
  }
  return { tower: tf.model({ inputs: image, outputs: pooled, name: 'tower_backbone' }), layer };
}

/** The preprocessing as a frozen 1x1 conv: y_c = Σ_k x_k · K[k, c] + b_c (a permutation times scale/std, minus mean/std). */
function preprocess(image: tf.SymbolicTensor, p: Preprocessing): tf.SymbolicTensor {
  const layer = tf.layers.conv2d({ filters: 3, kernelSize: 1, useBias: true, trainable: false, name: 'preprocess' });
  const out = layer.apply(image) as tf.SymbolicTensor;
  const kernel = new Float32Array(9);
  const source = p.channels === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) kernel[source[c] * 3 + c] = p.scale / p.std[c];
  const bias = Float32Array.from(p.mean.map((m, c) => -m / p.std[c]));
  const values = [tf.tensor4d(kernel, [1, 1, 3, 3]), tf.tensor1d(bias)];
  layer.setWeights(values);
  tf.dispose(values);
  return out;
}
