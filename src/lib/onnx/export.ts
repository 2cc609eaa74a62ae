// An atelier model directory as one .onnx file: the graph (convert.ts) with the outputs each model
// kind is used for, and in metadata_props what a server needs to feed it and read it: the input
// preprocessing, the labels or vocabulary (the order of the output columns) and atelier's metadata.
import { tf } from '../backend/tf.js';
import { atelierVersion } from '../version.js';
import { CLASSIFIER_LAYER, CLASSIFIER_MODEL_KIND, imageFeatureModel } from '../facets/classifier-model.js';
import { resizeModeOf, storedSizeFor } from '../models/image-features.js';
import type { ImageFit } from '../image/decode.js';
import { hasLayer, LAYER } from '../models/weak-model.js';
import { stageOutputs } from '../models/stage-features.js';
import { WEAK_MODEL_KIND } from '../models/weak-files.js';
import { SIZENET_MODEL_KIND } from '../sizenet/evaluation.js';
import { SIMILARITY_MODEL_KIND } from '../similarity/triplet.js';
import { convertLayersGraph, type ConvertedGraph, type GraphOutput } from './convert.js';
import { encodeModel, OPSET } from './proto.js';

export interface OnnxOutputInfo {
  name: string;
  /** What the columns are, e.g. "probability per label (softmax)". */
  meaning: string;
}

export interface ExportedModel {
  bytes: Uint8Array;
  inputName: string;
  outputs: OnnxOutputInfo[];
  metadata: Record<string, string>;
}

/** How atelier turns an image into the model's input, in words and numbers, for metadata_props. */
export function imagePreprocessing(height: number, width: number, fit: ImageFit = 'cover'): Record<string, unknown> {
  const stored = { height: storedSizeFor(height), width: storedSizeFor(width) };
  const how = fit === 'contain' ? 'fit inside (padded with white, never cropped)' : fit === 'fill' ? 'fill (stretched to)' : 'cover';
  return {
    layout: 'NHWC',
    dtype: 'float32',
    channels: 'RGB',
    scale: '1/255 (pixel values in [0, 1])',
    resize: `resize to ${how} ${stored.height}x${stored.width} (height x width; sharp, lanczos3), then take the centre ${height}x${width} crop`,
    inputSize: height === width ? height : { height, width },
    storedSize: height === width ? stored.height : stored,
  };
}

/** The kind's main output name and meaning, and the extra outputs (features) it is used for. */
function outputsFor(model: tf.LayersModel, kind: string): Array<GraphOutput & { meaning: string }> {
  const image = model.inputs[0].shape.length === 4;
  const main = model.outputs[0];
  if (kind === WEAK_MODEL_KIND || hasLayer(model, LAYER.words)) {
    const outputs = [
      { name: 'scores', tensor: main, meaning: 'score w_k·z of each vocabulary word (metadata "labels" order); not probabilities' },
      { name: 'embedding', tensor: model.getLayer(LAYER.words).input as tf.SymbolicTensor, meaning: 'the image embedding z that feeds the word matrix (atelier embed --layer embedding)' },
    ];
    if (hasLayer(model, LAYER.projection)) outputs.push({ name: 'pooled', tensor: model.getLayer(LAYER.pooled).output as tf.SymbolicTensor, meaning: 'globally pooled tower features (atelier embed --layer pooled)' });
    const stages = stageOutputs(model);
    outputs.push({ name: 'stages', tensor: stages.stages, meaning: 'the last layer at each resolution of the tower, averaged and concatenated (atelier embed --layer stages)' });
    outputs.push({ name: 'stages_max', tensor: stages['stages-max'], meaning: 'the stages, then the maximum of each over its map (atelier embed --layer stages-max)' });
    return outputs;
  }
  if (kind === CLASSIFIER_MODEL_KIND || hasLayer(model, CLASSIFIER_LAYER.logits)) {
    const outputs = [{ name: 'probs', tensor: main, meaning: 'probability of each label (metadata "labels" order), softmax' }];
    if (image) outputs.push({ name: 'features', tensor: imageFeatureModel(model, 'embedding').outputs[0], meaning: 'tower features (atelier embed on this model)' });
    return outputs;
  }
  if (kind === SIZENET_MODEL_KIND) return [{ name: 'p_size_issue', tensor: main, meaning: 'probability of a size issue (sigmoid)' }];
  if (kind === SIMILARITY_MODEL_KIND) return [{ name: 'embedding', tensor: main, meaning: 'similarity embedding (L2-normalise it for cosine search, as atelier embed --normalize does)' }];
  return [{ name: 'output', tensor: main, meaning: 'the model output' }];
}

function labelsOf(metadata: Record<string, unknown>): string[] | undefined {
  if (Array.isArray(metadata.vocabulary)) return metadata.vocabulary as string[];
  if (Array.isArray(metadata.labels)) return metadata.labels as string[];
  return undefined;
}

/** A model converted to an ONNX graph, not yet encoded (so that a pass such as quantization can rewrite the graph). */
export interface ConvertedModel {
  graph: ConvertedGraph;
  graphName: string;
  inputName: string;
  outputs: Array<{ name: string; meaning: string }>;
  metadata: Record<string, string>;
  kind: string;
}

/**
 * Converts a loaded model with the outputs its kind is used for (or `only`, a single output for
 * in-memory inference), dynamic batch. Throws UnsupportedLayerError for a layer with no conversion.
 */
export async function convertLayersModel(model: tf.LayersModel, metadata: Record<string, unknown>, only?: { name: string; tensor: tf.SymbolicTensor }): Promise<ConvertedModel> {
  const kind = typeof metadata.kind === 'string' ? metadata.kind : 'unknown';
  const outputs = only ? [{ ...only, meaning: 'requested output' }] : outputsFor(model, kind);
  const inputTensor = model.inputs[0];
  const image = inputTensor.shape.length === 4;
  const inputName = image ? 'image' : 'features';
  // Every weight read at once, with awaited reads (WebGPU in Node cannot read synchronously).
  const read = await Promise.all(model.weights.map((w) => w.read().data()));
  const values = new Map<object, Float32Array>(model.weights.map((w, i) => [w, read[i] as Float32Array]));
  const graph = convertLayersGraph({ name: inputName, tensor: inputTensor }, outputs, values);
  const labels = labelsOf(metadata);
  const props: Record<string, string> = {
    'atelier.kind': kind,
    'atelier.version': atelierVersion,
    preprocessing: JSON.stringify(image ? imagePreprocessing(inputTensor.shape[1] as number, inputTensor.shape[2] as number, resizeModeOf(metadata)) : { layout: 'NC', dtype: 'float32', input: 'feature rows of the kind the model was trained on', dim: inputTensor.shape[1] }),
    outputs: JSON.stringify(Object.fromEntries(outputs.map((o) => [o.name, o.meaning]))),
  };
  if (labels) props.labels = JSON.stringify(labels);
  if (!only) props['atelier.metadata'] = JSON.stringify(metadata);
  return { graph, graphName: model.name, inputName, outputs: outputs.map((o) => ({ name: o.name, meaning: o.meaning })), metadata: props, kind };
}

/** The .onnx bytes of a converted model, with `graph` in place of its own when given (opset 17). */
export function encodeConverted(converted: ConvertedModel, graph: ConvertedGraph = converted.graph, extraMetadata: Record<string, string> = {}): Uint8Array {
  return encodeModel({
    graphName: converted.graphName,
    ...graph,
    metadata: { ...converted.metadata, ...extraMetadata },
    producerVersion: atelierVersion,
    docString: `atelier ${converted.kind} model, opset ${OPSET}`,
  });
}

/** convertLayersModel, encoded: the model's .onnx bytes and what they hold. */
export async function exportLayersModel(model: tf.LayersModel, metadata: Record<string, unknown>, only?: { name: string; tensor: tf.SymbolicTensor }): Promise<ExportedModel> {
  const converted = await convertLayersModel(model, metadata, only);
  return { bytes: encodeConverted(converted), inputName: converted.inputName, outputs: converted.outputs, metadata: converted.metadata };
}
