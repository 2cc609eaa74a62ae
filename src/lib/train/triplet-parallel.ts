// train-triplet on the training workers (parallel-gradients.ts). The hinge loss couples the rows of a
// batch (each anchor mines its negative among all of them), so a step takes two rounds: the workers
// embed their shards, this thread mines the triplets and takes the loss and its gradient by each
// embedding, then each worker backpropagates its rows' part of that gradient through the tower
// (the gradients of Σ z·g add up to the batch's). BatchNorm normalises each shard on its own.
import { tf } from '../backend/tf.js';
import { takeValues } from '../backend/read.js';
import { shardBounds } from '../backend/pool.js';
import { cropPixels, drawCrops, inputSides, shareImageStore, sharedImageStore, type ImageStore, type InputShape, type SharedImages } from '../image/batch.js';
import type { Random } from '../random.js';
import { l2Normalize, mineSemiHardTriplets, pairwiseSquaredDistances, tripletHingeLoss, type Triplets } from '../similarity/triplet.js';
import { ParallelGradients, type ParallelTask, type Shard } from './parallel-gradients.js';

interface TripletShard {
  slots: Int32Array;
  crops: Int32Array;
  /** The batch loss's gradient by this shard's embeddings, row-major (the backward round only). */
  outputGrads?: Float32Array;
}

interface TripletOptions {
  inputSize: InputShape;
}

/** Starts the training workers of a similarity model on `store`'s images (shared, not copied). */
export function openTripletParallel(model: tf.LayersModel, store: ImageStore, workers: number): Promise<ParallelGradients> {
  return ParallelGradients.open({ model, workers, task: 'triplet', shared: shareImageStore(store) });
}

/**
 * One step's loss (a scalar the caller disposes), gradients for `variables` and mined triplets,
 * computed by the workers; the crops are drawn from `random` as batchPixels draws them.
 */
export async function tripletGradients(
  parallel: ParallelGradients,
  variables: tf.Variable[],
  store: ImageStore,
  batch: { slots: number[]; groups: Int32Array },
  options: { inputSize: InputShape; margin: number },
  random: Random,
): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap; mined: Triplets }> {
  const crops = drawCrops(store, batch.slots.length, options.inputSize, random);
  const bounds = shardBounds(batch.slots.length, parallel.size);
  const shards = (outputGrads?: Float32Array, dim = 0): Shard[] => bounds.map(([start, end]) => ({
    weight: end - start,
    data: {
      slots: Int32Array.from(batch.slots.slice(start, end)), crops: crops.slice(3 * start, 3 * end),
      ...(outputGrads ? { outputGrads: outputGrads.slice(start * dim, end * dim) } : {}),
    } satisfies TripletShard,
  }));
  const taskOptions: TripletOptions = { inputSize: options.inputSize };
  const rows = await parallel.outputs(shards(), taskOptions);
  const dim = rows[0].length / (bounds[0][1] - bounds[0][0]);
  const all = new Float32Array(batch.slots.length * dim);
  rows.forEach((r, i) => all.set(r, bounds[i][0] * dim));
  const z = tf.tensor2d(all, [batch.slots.length, dim]);
  const distances = (e: tf.Tensor2D) => pairwiseSquaredDistances(l2Normalize(e));
  const mined = mineSemiHardTriplets(await takeValues(tf.tidy(() => distances(z))), batch.groups, options.margin);
  const { value, grad } = tf.valueAndGrad((e: tf.Tensor) => tripletHingeLoss(distances(e as tf.Tensor2D), mined, options.margin))(z);
  const outputGrads = Float32Array.from(await takeValues(grad));
  z.dispose();
  const { grads } = await parallel.gradients(variables, shards(outputGrads, dim), taskOptions, 'sum');
  return { value, grads, mined };
}

/** The similarity model in a training worker: embeddings of a shard, and Σ z·g for its backward round. */
export function tripletParallelTask(model: tf.LayersModel, shared: unknown): ParallelTask {
  const store = sharedImageStore(shared as SharedImages);
  const embed = (shard: TripletShard, options: TripletOptions): tf.Tensor2D => {
    const { height, width } = inputSides(options.inputSize);
    const x = tf.tensor4d(cropPixels(store, shard.slots, options.inputSize, shard.crops), [shard.slots.length, height, width, 3]);
    return model.apply(x, { training: true }) as tf.Tensor2D;
  };
  return {
    outputs: (shard, options) => embed(shard as TripletShard, options as TripletOptions),
    loss(shardData, options) {
      const shard = shardData as TripletShard;
      const z = embed(shard, options as TripletOptions);
      return tf.sum(tf.mul(z, tf.tensor2d(shard.outputGrads!, z.shape))) as tf.Scalar;
    },
  };
}
