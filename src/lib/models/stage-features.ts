// `embed --layer stages`: features from every resolution of an image tower, not only its last.
// The pooled features of a tower's last stage keep what its training asked for (article types, for
// a weak tower) and lose what it did not need there, colour first: on myntra-44k the weak
// MobileNetV2's pooled features probe baseColour no better than raw pixels. The earlier stages still
// hold it. This takes, for each spatial resolution the image path passes through, the output of the
// last layer at that resolution, averages it over the map, and concatenates the results from the
// input side to the pooled features (whose columns end the row, unchanged). `--layer stages-max` adds
// each stage's maximum over its map after those columns.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import { TOWER_LAYER } from './towers/spec.js';

/** The feature layers made of stages: each stage averaged over its map, or averaged and its maximum too. */
export type StageLayer = 'stages' | 'stages-max';
export const STAGE_LAYERS: readonly StageLayer[] = ['stages', 'stages-max'];

/** The layer that concatenates the stages (stageFeatureModel), by stage layer, in a model whose head reads them. */
export const STAGES_LAYER: Record<StageLayer, string> = { stages: 'stages', 'stages-max': 'stages_max' };

export function isStageLayer(layer: string): layer is StageLayer {
  return (STAGE_LAYERS as readonly string[]).includes(layer);
}

/** One resolution stage: the layer whose output is averaged, its map size and channel count. */
export interface TowerStage {
  layer: string;
  height: number;
  width: number;
  channels: number;
}

// Padding and cropping change the map size without being a stage of their own.
const NOT_A_STAGE = /^(InputLayer|ZeroPadding2D|Cropping2D)$/;

/** The stages of `model`'s image path up to the map its 'pooled' layer pools, in order. */
export function towerStages(model: tf.LayersModel): Array<TowerStage & { tensor: tf.SymbolicTensor }> {
  const pooled = model.layers.find((l) => l.name === TOWER_LAYER.pooled);
  const node = pooled?.inboundNodes.at(-1);
  const last = node?.inputTensors.length === 1 ? node.inputTensors[0] : undefined;
  if (!last || last.shape.length !== 4) {
    throw new UsageError("the model has no globally pooled feature map ('pooled' layer), so no stages", { field: '--layer' });
  }
  // The tensors on the path from the image to that map, walked back through the nodes that made
  // them (a layer shared with another graph, as a cut backbone's are, has other nodes too), then put
  // in the model's layer order, which is topological.
  const order = new Map(model.layers.map((l, i) => [l.name, i]));
  const onPath = new Map<number, tf.SymbolicTensor>();
  const todo = [last];
  while (todo.length) {
    const t = todo.pop()!;
    if (onPath.has(t.id)) continue;
    onPath.set(t.id, t);
    const node = t.sourceLayer.inboundNodes[t.nodeIndex];
    todo.push(...node.inputTensors);
  }
  const path = [...onPath.values()].sort((a, b) => (order.get(a.sourceLayer.name) ?? -1) - (order.get(b.sourceLayer.name) ?? -1));
  const stages = new Map<string, TowerStage & { tensor: tf.SymbolicTensor }>();
  for (const tensor of path) {
    if (NOT_A_STAGE.test(tensor.sourceLayer.getClassName()) || tensor.shape.length !== 4) continue;
    const [, height, width, channels] = tensor.shape as number[];
    // Map keeps a key where it was first set: stages stay in the order the image reaches them.
    stages.set(`${height}x${width}`, { layer: tensor.sourceLayer.name, height, width, channels, tensor });
  }
  return [...stages.values()];
}

/**
 * image -> [n, Σ channels] ('stages'): each stage's map averaged over its positions, concatenated in
 * stage order; or [n, 2·Σ channels] ('stages-max'): those columns, then each stage's maximum over its
 * map in the same order. The maximum keeps what a small part of the image shows (a garment's colour
 * against a white background, a print), which the mean dilutes.
 */
export function stageFeatureModel(model: tf.LayersModel, layer: StageLayer = 'stages'): tf.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: stageOutputs(model)[layer], name: layer === 'stages' ? 'tower_stages' : 'tower_stages_max' });
}

/** Both stage layers of `model`'s graph, sharing the averages (an exported file computes them once for both outputs). */
export function stageOutputs(model: tf.LayersModel): Record<StageLayer, tf.SymbolicTensor> {
  const stages = towerStages(model);
  const means = stages.map((stage, i) => tf.layers.globalAveragePooling2d({ name: `stage${i + 1}_pool` }).apply(stage.tensor) as tf.SymbolicTensor);
  const maxima = stages.map((stage, i) => tf.layers.globalMaxPooling2d({ name: `stage${i + 1}_max` }).apply(stage.tensor) as tf.SymbolicTensor);
  const joined = (layer: StageLayer, parts: tf.SymbolicTensor[]) =>
    parts.length === 1 ? parts[0] : (tf.layers.concatenate({ axis: -1, name: STAGES_LAYER[layer] }).apply(parts) as tf.SymbolicTensor);
  return { stages: joined('stages', means), 'stages-max': joined('stages-max', [...means, ...maxima]) };
}
