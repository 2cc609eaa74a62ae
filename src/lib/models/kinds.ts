// The registry of model kinds: what each atelier model directory is, decided once from its
// metadata. Each kind declares its id (metadata.kind), what its output is (logits, probabilities
// or an embedding), where its labels are, and its image -> features sub-model. Commands ask here;
// none of them guesses a model's kind or its feature layer from layer names.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import { CLASSIFIER_MODEL_KIND, classifierFeatureLayer } from '../facets/classifier-model.js';
import { SIMILARITY_MODEL_KIND } from '../similarity/triplet.js';
import { SIZENET_MODEL_KIND } from '../sizenet/evaluation.js';
import { WEAK_MODEL_KIND } from './weak-files.js';
import { LAYER, featureModel, hasLayer } from './weak-model.js';
import { LOCATE_MODEL_KIND } from './locate.js';
import { isStageLayer, STAGE_LAYERS, stageFeatureModel, type StageLayer } from './stage-features.js';

/** What a model's output is: raw scores (softmax/sigmoid still to apply), probabilities, or an embedding. */
export type ModelOutput = 'logits' | 'probabilities' | 'embedding';
export const MODEL_OUTPUTS: readonly ModelOutput[] = ['logits', 'probabilities', 'embedding'];

/**
 * The features `embed --layer` asks for: pooled tower features, the projection, the model's
 * embedding, or every resolution stage of the tower pooled (by mean, or mean and max) and
 * concatenated (stage-features.ts).
 */
export type FeatureLayer = 'pooled' | 'projection' | 'embedding' | StageLayer;
export const FEATURE_LAYERS: readonly FeatureLayer[] = ['pooled', 'projection', 'embedding', ...STAGE_LAYERS];

export interface ModelKind {
  /** The value of metadata.kind. */
  id: string;
  /** Short name for messages: 'weak', 'classifier', ... */
  name: string;
  /** The command that writes models of this kind. */
  trainedBy: string;
  output: ModelOutput;
  /** Metadata field holding the output names (vocabulary or class labels); null when outputs are unnamed. */
  labelsField: 'vocabulary' | 'labels' | null;
  /** image -> features of this kind (throws a UsageError when it has none at `layer`). */
  features(model: tf.LayersModel, layer: FeatureLayer, metadata: Record<string, unknown>): tf.LayersModel;
}

function subModel(model: tf.LayersModel, layer: string): tf.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tf.SymbolicTensor });
}

function noLayer(kind: string, layer: string, why: string): UsageError {
  return new UsageError(`this ${kind} model has no '${layer}' features (${why})`, { field: '--layer' });
}

/** An image tower's named layer, or the model's own output for 'embedding'. */
function towerLayer(model: tf.LayersModel, layer: FeatureLayer, kind: string): tf.LayersModel {
  if (layer === 'embedding') return model;
  if (isStageLayer(layer)) return stageFeatureModel(model, layer);
  if (!hasLayer(model, layer)) throw noLayer(kind, layer, layer === 'projection' ? 'trained with --projection 0' : 'not an atelier tower');
  return subModel(model, layer);
}

const WEAK: ModelKind = {
  id: WEAK_MODEL_KIND,
  name: 'weak',
  trainedBy: 'train-weak',
  // The word layer is a plain dense layer: scores w_kᵀz, softmax over the vocabulary still to apply.
  output: 'logits',
  labelsField: 'vocabulary',
  features(model, layer) {
    if (layer === 'projection' && !hasLayer(model, LAYER.projection)) throw noLayer('weak', layer, 'trained with --projection 0');
    return isStageLayer(layer) ? stageFeatureModel(model, layer) : featureModel(model, layer);
  },
};

const CLASSIFIER: ModelKind = {
  id: CLASSIFIER_MODEL_KIND,
  name: 'classifier',
  trainedBy: 'train-classifier',
  // The head ends in a softmax layer (CLASSIFIER_LAYER.probs).
  output: 'probabilities',
  labelsField: 'labels',
  features(model, layer, metadata) {
    if (metadata.input === 'features') throw noLayer('classifier', layer, 'a head on precomputed features has no tower');
    if (isStageLayer(layer)) return stageFeatureModel(model, layer);
    const name = layer !== 'embedding' ? layer : classifierFeatureLayer(model);
    if (!hasLayer(model, name)) throw noLayer('classifier', name, name === LAYER.projection ? 'its tower has no projection' : 'not an atelier tower');
    return subModel(model, name);
  },
};

const SIMILARITY: ModelKind = {
  id: SIMILARITY_MODEL_KIND,
  name: 'similarity',
  trainedBy: 'train-triplet',
  output: 'embedding',
  labelsField: null,
  features: (model, layer) => towerLayer(model, layer, 'similarity'),
};

const SIZENET: ModelKind = {
  id: SIZENET_MODEL_KIND,
  name: 'sizenet',
  trainedBy: 'train-sizenet',
  // The student (and its --image-model) ends in a sigmoid: one P(size issue).
  output: 'probabilities',
  labelsField: null,
  features(_model, layer) {
    throw noLayer('sizenet', layer, 'embed with the tower it was trained on');
  },
};

const LOCATE: ModelKind = {
  id: LOCATE_MODEL_KIND,
  name: 'locate',
  trainedBy: 'train-locate',
  // One row per patch: the foreground logit, then four box edges (regression, not scores).
  output: 'logits',
  labelsField: null,
  features(_model, layer) {
    throw noLayer('locate', layer, 'it scores patches; embed with --crop of its boxes');
  },
};

/** Every kind atelier writes. Adding a kind is one entry here. */
export const MODEL_KINDS: readonly ModelKind[] = [WEAK, CLASSIFIER, SIMILARITY, SIZENET, LOCATE];

/** A loaded model as the registry sees it. */
export interface DescribedModel {
  /** null: a model of no atelier kind (built elsewhere); it is treated as a plain image model. */
  kind: ModelKind | null;
  output: ModelOutput;
  /** Names of the outputs, in order (vocabulary or class labels), when the kind has them. */
  labels: string[] | null;
  metadata: Record<string, unknown>;
}

export function findKind(id: unknown): ModelKind | null {
  return MODEL_KINDS.find((k) => k.id === id) ?? null;
}

/**
 * What `model` with `metadata` is. A known kind's declaration decides its output; a model of no
 * atelier kind may state `output` in its metadata, else it is derived once, here, from its last
 * layer (older directories and models built elsewhere). `where` names the directory in errors.
 * With `model` null (metadata read before the backend loads) a model of no kind reads as logits.
 */
export function describeModel(model: tf.LayersModel | null, metadata: Record<string, unknown>, where: string): DescribedModel {
  const kind = findKind(metadata.kind);
  let labels: string[] | null = null;
  if (kind?.labelsField) {
    const value = metadata[kind.labelsField];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new UsageError(`a ${kind.name} model's metadata needs '${kind.labelsField}' (a list of strings)`, { file: where, field: kind.labelsField });
    }
    labels = value as string[];
  }
  if (kind) return { kind, output: kind.output, labels, metadata };
  const stated = metadata.output;
  if (stated !== undefined && !MODEL_OUTPUTS.includes(stated as ModelOutput)) {
    throw new UsageError(`expected one of ${MODEL_OUTPUTS.join(', ')}, got ${JSON.stringify(stated)}`, { file: where, field: 'output' });
  }
  // A model of no kind may still name its outputs, under either field.
  const named = [metadata.labels, metadata.vocabulary].find((v) => Array.isArray(v) && v.every((x) => typeof x === 'string')) as string[] | undefined;
  return { kind: null, output: (stated as ModelOutput | undefined) ?? (model ? derivedOutput(model) : 'logits'), labels: named ?? null, metadata };
}

/** A last layer that squashes (a softmax layer, or a softmax/sigmoid activation) outputs probabilities. */
function derivedOutput(model: tf.LayersModel): ModelOutput {
  const last = model.layers[model.layers.length - 1];
  const activation = (last.getConfig() as { activation?: string }).activation;
  if (last.getClassName() === 'Softmax' || activation === 'softmax' || activation === 'sigmoid') return 'probabilities';
  return 'logits';
}

/** The described model when it is of kind `id`, else a UsageError naming the trainer that makes such models. */
export function requireKind(described: DescribedModel, id: string, where: string): DescribedModel & { kind: ModelKind; labels: string[] | null } {
  if (described.kind?.id !== id) {
    const wanted = findKind(id);
    throw new UsageError(`not a ${wanted?.trainedBy ?? id} model (kind ${JSON.stringify(described.metadata.kind ?? null)})`, { file: where });
  }
  return described as DescribedModel & { kind: ModelKind };
}

/** image -> features for embed: the kind's feature layer, or for a model of no kind its output (or a named layer). */
export function imageFeatures(described: DescribedModel, model: tf.LayersModel, layer: FeatureLayer): tf.LayersModel {
  if (described.kind) return described.kind.features(model, layer, described.metadata);
  return towerLayer(model, layer, 'image');
}

/**
 * Output rows [B, C] as probabilities per the model's declared output: logits get a softmax over
 * the classes (a sigmoid when there is one column); probabilities are taken as they are.
 */
export function outputProbabilities(output: ModelOutput, rows: tf.Tensor2D): tf.Tensor2D {
  if (output === 'embedding') throw new UsageError('the model outputs an embedding, not class scores', { field: '--model' });
  if (output === 'probabilities') return rows;
  return tf.tidy(() => (rows.shape[1] > 1 ? tf.softmax(rows) : tf.sigmoid(rows)) as tf.Tensor2D);
}

/** The same for one row on the CPU (tag's per-image word probabilities). */
export function rowProbabilities(output: ModelOutput, scores: Float32Array): Float32Array {
  if (output === 'embedding') throw new UsageError('the model outputs an embedding, not class scores', { field: '--model' });
  if (output === 'probabilities') return scores;
  if (scores.length === 1) return Float32Array.of(1 / (1 + Math.exp(-scores[0])));
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  const out = new Float32Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** `count` rows packed in `data`, each turned into probabilities as rowProbabilities does. */
export function rowsProbabilities(output: ModelOutput, data: Float32Array, count: number): Float32Array {
  if (output === 'probabilities') return data;
  const columns = data.length / count;
  const out = new Float32Array(data.length);
  for (let i = 0; i < count; i++) out.set(rowProbabilities(output, data.subarray(i * columns, (i + 1) * columns)), i * columns);
  return out;
}
