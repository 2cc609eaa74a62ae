// The weakly supervised model (Joulin et al. 2015; the report ch. 2 and 4): a small ResNet-style
// image tower z = f(x, θ), an optional low-rank projection (the report's W1, e.g. 400-d), and the
// word matrix W (the report's W2): the score of word k is w_kᵀ z. All tfjs-layers, so the whole
// image -> word-scores model saves as one directory and any command (tag, embed, rise) can load it.
import { tf } from '../backend/tf.js';

export interface TowerConfig {
  /** Square input side in pixels. */
  inputSize: number;
  /** Filters of the first stage; stage i has width·2^i filters. */
  width: number;
  /** Residual blocks per stage. */
  blocksPerStage: number;
  /** Number of stages; each after the first halves the resolution with a stride-2 conv. */
  stages: number;
  /** Projection dimension (0: none, the pooled features are the embedding). */
  projection: number;
}

export interface WeakModelConfig extends TowerConfig {
  vocabularySize: number;
  seed: number;
}

export const DEFAULT_TOWER: TowerConfig = { inputSize: 64, width: 16, blocksPerStage: 1, stages: 4, projection: 0 };

/** Smallest input side the tower accepts: the stem and every stage halve it, and the last map must be ≥ 2×2. */
export function minimumInputSize(config: Pick<TowerConfig, 'stages'>): number {
  return 2 ** (config.stages + 1);
}

/** Layer names that other code relies on. */
export const LAYER = { input: 'image', pooled: 'pooled', projection: 'projection', words: 'words' } as const;

function convBnRelu(x: tf.SymbolicTensor, filters: number, stride: number, name: string, seed: number, relu = true): tf.SymbolicTensor {
  let y = tf.layers
    .conv2d({ filters, kernelSize: 3, strides: stride, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed }), name: `${name}_conv` })
    .apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_bn` }).apply(y) as tf.SymbolicTensor;
  return relu ? (tf.layers.reLU({ name: `${name}_relu` }).apply(y) as tf.SymbolicTensor) : y;
}

/** One basic residual block; a stride-2 block downsamples with a strided conv (MaxPoolGrad is slow on WASM). */
function residualBlock(x: tf.SymbolicTensor, filters: number, stride: number, name: string, seed: number): tf.SymbolicTensor {
  const inputFilters = x.shape[x.shape.length - 1] as number;
  const a = convBnRelu(x, filters, stride, `${name}_a`, seed);
  const b = convBnRelu(a, filters, 1, `${name}_b`, seed + 1, false);
  let shortcut = x;
  if (stride !== 1 || inputFilters !== filters) {
    shortcut = tf.layers
      .conv2d({ filters, kernelSize: 1, strides: stride, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: seed + 2 }), name: `${name}_short_conv` })
      .apply(x) as tf.SymbolicTensor;
    shortcut = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_short_bn` }).apply(shortcut) as tf.SymbolicTensor;
  }
  const sum = tf.layers.add({ name: `${name}_add` }).apply([b, shortcut]) as tf.SymbolicTensor;
  return tf.layers.reLU({ name: `${name}_out` }).apply(sum) as tf.SymbolicTensor;
}

/** Builds image -> embedding (pooled or projected), as symbolic tensors on a fresh input. */
function buildTowerGraph(config: TowerConfig, seed: number): { input: tf.SymbolicTensor; pooled: tf.SymbolicTensor; embedding: tf.SymbolicTensor } {
  const input = tf.input({ shape: [config.inputSize, config.inputSize, 3], name: LAYER.input });
  let x = convBnRelu(input, config.width, 2, 'stem', seed);
  let layerSeed = seed + 10;
  for (let stage = 0; stage < config.stages; stage++) {
    const filters = config.width * 2 ** stage;
    for (let block = 0; block < config.blocksPerStage; block++) {
      const stride = stage > 0 && block === 0 ? 2 : 1;
      x = residualBlock(x, filters, stride, `s${stage}b${block}`, layerSeed);
      layerSeed += 10;
    }
  }
  const pooled = tf.layers.globalAveragePooling2d({ name: LAYER.pooled }).apply(x) as tf.SymbolicTensor;
  const embedding =
    config.projection > 0
      ? (tf.layers.dense({ units: config.projection, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 7 }), name: LAYER.projection }).apply(pooled) as tf.SymbolicTensor)
      : pooled;
  return { input, pooled, embedding };
}

/** The full model: image -> one score per vocabulary word. */
export function buildWeakModel(config: WeakModelConfig): tf.LayersModel {
  const { input, embedding } = buildTowerGraph(config, config.seed);
  const scores = tf.layers
    .dense({ units: config.vocabularySize, useBias: false, kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.01, seed: config.seed + 3 }), name: LAYER.words })
    .apply(embedding) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: scores, name: 'atelier_weak' });
}

/** The sub-model image -> features at `layer` ('pooled', 'projection' or 'embedding' = the input of the word layer). */
export function featureModel(model: tf.LayersModel, layer: 'pooled' | 'projection' | 'embedding'): tf.LayersModel {
  let output: tf.SymbolicTensor;
  if (layer === 'embedding') {
    const words = model.getLayer(LAYER.words);
    output = words.input as tf.SymbolicTensor;
  } else {
    output = model.getLayer(layer).output as tf.SymbolicTensor;
  }
  return tf.model({ inputs: model.inputs, outputs: output });
}

/** True when the model has a layer named `name`. */
export function hasLayer(model: tf.LayersModel, name: string): boolean {
  return model.layers.some((l) => l.name === name);
}

/** The word matrix W as the word layer's kernel, shape [dim, K] (column k is w_k). */
export function wordKernel(model: tf.LayersModel): tf.Variable {
  const kernel = model.getLayer(LAYER.words).trainableWeights[0];
  if (!kernel) throw new Error('the model has no word matrix');
  return kernel.read() as tf.Variable;
}

/** Trainable weights of the tower only (everything before the projection/word layers). */
export function towerVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.filter((w) => !isHeadWeight(w.originalName)).map((w) => w.read() as tf.Variable);
}

/** Trainable weights of the head (projection and word matrix). */
export function headVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.filter((w) => isHeadWeight(w.originalName)).map((w) => w.read() as tf.Variable);
}

function isHeadWeight(name: string): boolean {
  return name.startsWith(`${LAYER.words}/`) || name.startsWith(`${LAYER.projection}/`);
}
