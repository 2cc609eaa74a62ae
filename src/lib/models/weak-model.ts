// The weakly supervised model (Joulin et al. 2015; the report ch. 2 and 4): a small ResNet-style
// image tower z = f(x, θ), an optional low-rank projection (the report's W1, e.g. 400-d), and the
// word matrix W (the report's W2): the score of word k is w_kᵀ z. All tfjs-layers, so the whole
// image -> word-scores model saves as one directory and any command (tag, embed, rise) can load it.
import { tf } from '../backend/tf.js';
import { buildTowerGraph, type TowerSpec } from './towers/index.js';
import { WordTypeScores } from './type-attention.js';

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
  /** Any registered tower (default: the small one of width, blocksPerStage, stages). */
  tower?: TowerSpec;
  /** Fashion-type attention (report §4.3): the projection is types x projection wide. */
  attentionTypes?: number;
}

export const DEFAULT_TOWER: TowerConfig = { inputSize: 64, width: 16, blocksPerStage: 1, stages: 4, projection: 0 };

/** Smallest input side the tower accepts: the stem and every stage halve it, and the last map must be ≥ 2×2. */
export function minimumInputSize(config: Pick<TowerConfig, 'stages'>): number {
  return 2 ** (config.stages + 1);
}

/** Layer names that other code relies on. */
export const LAYER = { input: 'image', pooled: 'pooled', projection: 'projection', words: 'words' } as const;

/** The tower spec of a round-1 config: the small family with its width, blocks and stages. */
export function smallTowerSpec(config: Pick<TowerConfig, 'inputSize' | 'width' | 'blocksPerStage' | 'stages'>, seed: number): TowerSpec {
  return { family: 'small', input: { height: config.inputSize, width: config.inputSize }, params: { width: config.width, blocks: config.blocksPerStage, stages: config.stages }, seed };
}

/** Builds image -> embedding (pooled or projected), as symbolic tensors on a fresh input. */
function buildTowerAndProjection(config: WeakModelConfig, backbone?: tf.LayersModel): { input: tf.SymbolicTensor; pooled: tf.SymbolicTensor; embedding: tf.SymbolicTensor } {
  const { input, pooled } = backbone
    ? { input: backbone.inputs[0], pooled: backbone.outputs[0] }
    : buildTowerGraph(config.tower ?? smallTowerSpec(config, config.seed));
  const embedding =
    config.projection > 0
      ? (tf.layers.dense({ units: config.projection * (config.attentionTypes ?? 1), useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: config.seed + 7 }), name: LAYER.projection }).apply(pooled) as tf.SymbolicTensor)
      : pooled;
  return { input, pooled, embedding };
}

/**
 * The full model: image -> one score per vocabulary word, on a fresh tower or on `backbone`
 * (image -> pooled features, e.g. from loadBackbone; its layers are shared, not copied).
 */
export function buildWeakModel(config: WeakModelConfig, backbone?: tf.LayersModel): tf.LayersModel {
  const { input, embedding } = buildTowerAndProjection(config, backbone);
  const wordLayer = config.attentionTypes
    ? new WordTypeScores({ units: config.vocabularySize, types: config.attentionTypes, seed: config.seed, name: LAYER.words })
    : tf.layers.dense({ units: config.vocabularySize, useBias: false, kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.01, seed: config.seed + 3 }), name: LAYER.words });
  const scores = wordLayer.apply(embedding) as tf.SymbolicTensor;
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

/**
 * Starts the word matrix from pretrained word vectors (the report §4.1: word2vec rows as W2), rows
 * of `vectors` in vocabulary order, NaN-free, `present[k]` false where a word has none (it keeps its
 * random start). The vectors are scaled to the random start's RMS, so the first steps move the
 * scores as much as from a random start; only the directions are word2vec's.
 */
export async function initWordMatrix(model: tf.LayersModel, vectors: Float32Array, present: boolean[]): Promise<void> {
  const kernel = wordKernel(model);
  const [dim, count] = kernel.shape;
  const start = (await kernel.data()) as Float32Array; // [dim, K]
  let startSq = 0;
  let vecSq = 0;
  let n = 0;
  for (let k = 0; k < count; k++) {
    if (!present[k]) continue;
    for (let j = 0; j < dim; j++) {
      startSq += start[j * count + k] ** 2;
      vecSq += vectors[k * dim + j] ** 2;
    }
    n++;
  }
  if (n === 0) return;
  const scale = vecSq > 0 ? Math.sqrt(startSq / vecSq) : 0;
  const next = Float32Array.from(start);
  for (let k = 0; k < count; k++) if (present[k]) for (let j = 0; j < dim; j++) next[j * count + k] = vectors[k * dim + j] * scale;
  const value = tf.tensor2d(next, [dim, count]);
  kernel.assign(value);
  value.dispose();
}
