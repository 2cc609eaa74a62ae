// Facet classifiers (GILT dress faceting): a linear or MLP head on frozen features, or the same
// head on an image tower trained end to end; a class-weighted cross-entropy for imbalanced facets.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import type { TowerRecord } from '../models/backbone.js';
import { LAYER, featureModel, hasLayer } from '../models/weak-model.js';
import { isStageLayer, STAGE_LAYERS, STAGES_LAYER, stageFeatureModel } from '../models/stage-features.js';
import type { FeatureLayer } from '../models/kinds.js';
import { copyMatchingWeights } from '../models/weak-files.js';
import { stnParts, transformModel } from '../models/attention/stn.js';

export const CLASSIFIER_MODEL_KIND = 'atelier-classifier';

/** Layer names classify, embed and the tests rely on. */
export const CLASSIFIER_LAYER = { features: 'features', hidden: 'head_hidden', dropout: 'head_dropout', logits: 'classes', probs: 'probs' } as const;

export interface HeadConfig {
  kind: 'linear' | 'mlp';
  /** Hidden units of the MLP head. */
  hidden: number;
  /** Dropout before the class layer while training. */
  dropout: number;
  seed: number;
}

/** What a classifier model directory's metadata holds. */
export interface ClassifierMetadata {
  kind: typeof CLASSIFIER_MODEL_KIND;
  labels: string[];
  labelField: string;
  /** 'features': the model reads feature rows; 'image': images of inputDim pixels; 'pixels': the flattened centre crop of inputDim pixels. */
  input: 'features' | 'image' | 'pixels';
  mode: 'head' | 'finetune';
  head: HeadConfig;
  /** Feature dimension (input 'features') or image side (input 'image'). */
  inputDim: number;
  classWeights: number[];
  /** The tower: its record (family, input, resize, backbone; `source` when read from another model), or the source model's path for round-1 towers. */
  tower?: string | (TowerRecord & { source?: string });
  towerLayer?: string;
  [key: string]: unknown;
}

/**
 * The model to save: a head trained on features from a tower (input 'image', mode 'head') is saved
 * with the tower in front, so classify then reads images; any other model as trained.
 */
export function classifierForSaving(model: tf.LayersModel, towerNet: tf.LayersModel | null, input: ClassifierMetadata['input'], mode: ClassifierMetadata['mode'], classes: number, head: HeadConfig): tf.LayersModel {
  if (input !== 'image' || mode !== 'head') return model;
  const saved = buildImageClassifier(towerNet!, classes, head);
  copyMatchingWeights(model, saved);
  return saved;
}

/** Applies the head to `x`: [dense → relu] → dropout → class logits → softmax. */
function applyHead(x: tf.SymbolicTensor, classes: number, head: HeadConfig): { logits: tf.SymbolicTensor; probs: tf.SymbolicTensor } {
  let h = x;
  if (head.kind === 'mlp') {
    h = tf.layers.dense({ units: head.hidden, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: head.seed + 1 }), name: CLASSIFIER_LAYER.hidden }).apply(h) as tf.SymbolicTensor;
  }
  if (head.dropout > 0) h = tf.layers.dropout({ rate: head.dropout, seed: head.seed + 2, name: CLASSIFIER_LAYER.dropout }).apply(h) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: head.seed + 3 }), name: CLASSIFIER_LAYER.logits }).apply(h) as tf.SymbolicTensor;
  const probs = tf.layers.softmax({ name: CLASSIFIER_LAYER.probs }).apply(logits) as tf.SymbolicTensor;
  return { logits, probs };
}

/** features [n, dim] -> class probabilities [n, classes]. */
export function buildFeatureClassifier(inputDim: number, classes: number, head: HeadConfig): tf.LayersModel {
  const input = tf.input({ shape: [inputDim], name: CLASSIFIER_LAYER.features });
  const { probs } = applyHead(input, classes, head);
  return tf.model({ inputs: input, outputs: probs, name: 'atelier_classifier' });
}

/** image -> features at `layer` of a saved atelier tower (`dir`), refusing a model that is not one or lacks the layer. */
export function towerFeatures(tower: tf.LayersModel, layer: FeatureLayer, dir: string): tf.LayersModel {
  if (!hasLayer(tower, LAYER.pooled)) throw new UsageError('not an atelier image tower (no pooled layer)', { file: dir, field: '--tower' });
  if (isStageLayer(layer)) return stageFeatureModel(tower, layer);
  if (layer !== 'embedding' && !hasLayer(tower, layer)) throw new UsageError(`the tower has no '${layer}' layer`, { file: dir, field: '--tower-layer' });
  return imageFeatureModel(tower, layer);
}

/**
 * image -> class probabilities, the head on the output of `features` (image -> features, e.g.
 * from imageFeatureModel). Its layers are shared, not copied: training the result trains them.
 */
export function buildImageClassifier(features: tf.LayersModel, classes: number, head: HeadConfig): tf.LayersModel {
  const { probs } = applyHead(features.outputs[0], classes, head);
  return tf.model({ inputs: features.inputs, outputs: probs, name: 'atelier_image_classifier' });
}

/** The same model up to the class logits (shares weights), for the loss. */
export function logitsModel(classifier: tf.LayersModel): tf.LayersModel {
  return tf.model({ inputs: classifier.inputs, outputs: classifier.getLayer(CLASSIFIER_LAYER.logits).output as tf.SymbolicTensor });
}

/** Weighted cross-entropy, normalised by the total weight of the batch: Σ w_yᵢ·CEᵢ / Σ w_yᵢ. */
export function weightedCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classWeights: tf.Tensor1D, sampleWeights?: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(labels, logits.shape[1])), 1);
    // Per sample: its class weight, times its own weight when given (SizeNet's w = ln(1 + s)).
    const classPart = tf.gather(classWeights, labels);
    const w = sampleWeights ? tf.mul(classPart, sampleWeights) : classPart;
    return tf.div(tf.neg(tf.sum(tf.mul(w, picked))), tf.maximum(tf.sum(w), 1e-12)) as tf.Scalar;
  });
}

/** Trainable variables of the head layers only (the tower stays frozen in head mode). */
export function headVariables(model: tf.LayersModel): tf.Variable[] {
  const names = new Set<string>([CLASSIFIER_LAYER.hidden, CLASSIFIER_LAYER.logits]);
  return model.layers.filter((l) => names.has(l.name)).flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
}

/**
 * The image -> features part of any atelier image model, for embed: a weak model's chosen layer,
 * a classifier's tower features (its projection when it has one, else the pooled features), or
 * a similarity model's embedding (its output).
 */
export function imageFeatureModel(model: tf.LayersModel, layer: 'pooled' | 'projection' | 'embedding'): tf.LayersModel {
  if (hasLayer(model, LAYER.words)) return featureModel(model, layer);
  if (hasLayer(model, CLASSIFIER_LAYER.logits)) {
    const name = layer !== 'embedding' ? layer : classifierFeatureLayer(model);
    if (!hasLayer(model, name)) throw new UsageError(`this classifier has no '${name}' layer (a head on precomputed features has no tower)`, { field: '--layer' });
    return tf.model({ inputs: model.inputs, outputs: model.getLayer(name).output as tf.SymbolicTensor });
  }
  if (layer !== 'embedding' && hasLayer(model, layer) && model.outputLayers[0].name !== layer) {
    return tf.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tf.SymbolicTensor });
  }
  return model;
}

/** The layer an image classifier's head reads: its tower's stages (--tower-layer stages or stages-max), projection or pooled features. */
export function classifierFeatureLayer(model: tf.LayersModel): string {
  const stages = STAGE_LAYERS.map((layer) => STAGES_LAYER[layer]).find((name) => hasLayer(model, name));
  return stages ?? (hasLayer(model, LAYER.projection) ? LAYER.projection : LAYER.pooled);
}

/** The views of a classifier model that training and prediction run. */
export interface ClassifierNets {
  logitsNet: tf.LayersModel;
  /** The logits, and with a transformer also its class evidence: the outputs the loss is taken on. */
  trainingNet: tf.LayersModel;
  /** The transformer's box per image, or null without one. */
  boxesNet: tf.LayersModel | null;
}

export function classifierNets(model: tf.LayersModel, withStn: boolean): ClassifierNets {
  const logitsNet = logitsModel(model);
  // With --stn the loss adds the same cross-entropy on the transformer's class evidence, which trains where it looks.
  const evidence = withStn ? stnParts(model).evidence : null;
  const trainingNet = evidence ? tf.model({ inputs: model.inputs, outputs: [logitsNet.outputs[0], evidence] }) : logitsNet;
  const boxesNet = withStn ? transformModel(model) : null;
  return { logitsNet, trainingNet, boxesNet };
}
