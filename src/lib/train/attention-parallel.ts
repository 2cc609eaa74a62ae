// train-attention on the training workers (parallel-gradients.ts): the main thread draws the crops,
// each worker cuts its shard's pixels from the shared images, runs the global + attention model
// (its AttentionBranch layer registers with the model code this module imports) and returns the
// gradient of the deck's loss on its rows. Every term is a mean over rows, so shards are weighted by
// their row counts; the terms come back too, for the epoch's log line.
import { tf } from '../backend/tf.js';
import { shardBounds } from '../backend/pool.js';
import { cropPixels, drawCrops, shareImageStore, sharedImageStore, type ImageStore, type SharedImages } from '../image/batch.js';
import type { RectImageStore } from '../image/rect-store.js';
import type { Random } from '../random.js';
import { attentionLoss, type LossWeights } from '../models/attention/model.js';
import { ParallelGradients, type ParallelTask, type Shard } from './parallel-gradients.js';

interface AttentionShard {
  slots: Int32Array;
  crops: Int32Array;
  /** Multi-hot labels, row-major [rows, classes]. */
  targets: Float32Array;
}

interface AttentionOptions {
  height: number;
  width: number;
  classes: number;
  weights: LossWeights;
}

/** The loss terms besides the total, in the order `parts` gives them. */
export const ATTENTION_LOSS_PARTS = ['classification', 'diversity', 'localisation', 'evidence'] as const;

function asImageStore(store: RectImageStore): ImageStore {
  return { pixels: store.pixels, storedSize: store.storedHeight, storedWidth: store.storedWidth };
}

/** Starts the training workers of the attention model (its training view) on `store`'s images (shared, not copied). */
export function openAttentionParallel(model: tf.LayersModel, store: RectImageStore, workers: number): Promise<ParallelGradients> {
  return ParallelGradients.open({ model, workers, task: 'attention', shared: shareImageStore(asImageStore(store)) });
}

/**
 * The batch's loss, its terms (ATTENTION_LOSS_PARTS) and gradients for `variables`, from the
 * workers; crops are drawn from `random` as rectBatchPixels draws them.
 */
export async function attentionGradients(
  parallel: ParallelGradients,
  variables: tf.Variable[],
  store: RectImageStore,
  batch: { slots: number[]; targets: Float32Array },
  options: AttentionOptions,
  random: Random,
): Promise<{ loss: number; parts: number[]; grads: tf.NamedTensorMap }> {
  const crops = drawCrops(asImageStore(store), batch.slots.length, { height: options.height, width: options.width }, random);
  const c = options.classes;
  const shards: Shard[] = shardBounds(batch.slots.length, parallel.size).map(([start, end]) => ({
    weight: end - start,
    data: { slots: Int32Array.from(batch.slots.slice(start, end)), crops: crops.slice(3 * start, 3 * end), targets: batch.targets.slice(start * c, end * c) } satisfies AttentionShard,
  }));
  return parallel.gradients(variables, shards, options);
}

/** The attention model's loss in a training worker. */
export function attentionParallelTask(model: tf.LayersModel, shared: unknown): ParallelTask {
  const store = sharedImageStore(shared as SharedImages);
  return {
    loss(shardData, optionData) {
      const shard = shardData as AttentionShard;
      const options = optionData as AttentionOptions;
      const rows = shard.slots.length;
      const x = tf.tensor4d(cropPixels(store, shard.slots, { height: options.height, width: options.width }, shard.crops), [rows, options.height, options.width, 3]);
      const [logits, maps, theta, evidence] = model.apply(x, { training: true }) as tf.Tensor[];
      const y = tf.tensor2d(shard.targets, [rows, options.classes]);
      const loss = attentionLoss(logits as tf.Tensor2D, y, maps as tf.Tensor3D, theta as tf.Tensor3D, evidence as tf.Tensor2D, options.weights);
      return { total: loss.total, parts: ATTENTION_LOSS_PARTS.map((key) => loss[key]) };
    },
  };
}
