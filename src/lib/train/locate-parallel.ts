// train-locate on the training workers (parallel-gradients.ts): the main thread draws the patches,
// each worker takes a share of the batch's images with their patches, cuts them from the shared
// images and returns the gradient of its part of the loss (locateLossPart: its sums over the batch's
// counts of classified and regressed patches), so the parts add up to the batch's locateLoss.
import { tf } from '../backend/tf.js';
import { shardBounds } from '../backend/pool.js';
import { shareImageStore, sharedImageStore, type ImageStore, type SharedImages } from '../image/batch.js';
import { cropPatches, locateLossPart, type Box, type LocatePatch } from '../models/locate.js';
import { ParallelGradients, type ParallelTask, type Shard } from './parallel-gradients.js';

interface LocateShard {
  slots: Int32Array;
  /** Each window's image, counted from the shard's first. */
  imageIndex: Int32Array;
  /** [x, y, w, h] per window, as image fractions. */
  windows: Float64Array;
  targets: Float32Array;
  classified: Float32Array;
  regressed: Float32Array;
  edges: Float32Array;
}

interface LocateOptions {
  patch: { height: number; width: number };
  boxWeight: number;
  batch: { classified: number; regressed: number };
}

/** Starts the training workers of a locator on square images (`side` pixels, bytes); `images` become views of the shared copy. */
export function openLocateParallel(model: tf.LayersModel, images: Uint8Array[], side: number, workers: number): Promise<ParallelGradients> {
  const store: ImageStore = { pixels: images, storedSize: side };
  const shared = shareImageStore(store);
  store.pixels.forEach((p, i) => (images[i] = p));
  return ParallelGradients.open({ model, workers, task: 'locate', shared });
}

/** The batch's loss and gradients for `variables`, from the workers; `patches` are in image order, `image` indexing `slots`. */
export async function locateGradients(
  parallel: ParallelGradients,
  variables: tf.Variable[],
  batch: { slots: number[]; patches: Array<LocatePatch & { image: number }> },
  options: { patch: { height: number; width: number }; boxWeight: number },
): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
  const { patches } = batch;
  const counts = { classified: patches.reduce((n, p) => n + p.classified, 0), regressed: patches.reduce((n, p) => n + p.regressed, 0) };
  const shards: Shard[] = shardBounds(batch.slots.length, parallel.size).map(([start, end]) => {
    const mine = patches.filter((p) => p.image >= start && p.image < end);
    const data: LocateShard = {
      slots: Int32Array.from(batch.slots.slice(start, end)),
      imageIndex: Int32Array.from(mine, (p) => p.image - start),
      windows: Float64Array.from(mine.flatMap((p) => [p.window.x, p.window.y, p.window.w, p.window.h])),
      targets: Float32Array.from(mine, (p) => p.target),
      classified: Float32Array.from(mine, (p) => p.classified),
      regressed: Float32Array.from(mine, (p) => p.regressed),
      edges: Float32Array.from(mine.flatMap((p) => p.edges)),
    };
    return { weight: mine.length, data };
  }).filter((s) => s.weight > 0);
  const taskOptions: LocateOptions = { ...options, batch: counts };
  const { loss, grads } = await parallel.gradients(variables, shards, taskOptions, 'sum');
  return { loss, grads };
}

/** The locator's loss part in a training worker. */
export function locateParallelTask(model: tf.LayersModel, shared: unknown): ParallelTask {
  const store = sharedImageStore(shared as SharedImages);
  const side = store.storedSize;
  return {
    loss(shardData, optionData) {
      const shard = shardData as LocateShard;
      const options = optionData as LocateOptions;
      // As train-locate's imagesOf: bytes / 255 in float32.
      const data = new Float32Array(shard.slots.length * side * side * 3);
      shard.slots.forEach((slot, i) => {
        const pixels = store.pixels[slot];
        for (let k = 0; k < pixels.length; k++) data[i * pixels.length + k] = pixels[k] / 255;
      });
      const images = tf.tensor4d(data, [shard.slots.length, side, side, 3]);
      const count = shard.targets.length;
      const windows: Box[] = Array.from({ length: count }, (_, i) => ({ x: shard.windows[4 * i], y: shard.windows[4 * i + 1], w: shard.windows[4 * i + 2], h: shard.windows[4 * i + 3] }));
      const x = cropPatches(images, windows, Array.from(shard.imageIndex), options.patch.height, options.patch.width);
      const output = model.apply(x, { training: true }) as tf.Tensor2D;
      return locateLossPart(output, tf.tensor1d(shard.targets), tf.tensor1d(shard.classified), tf.tensor1d(shard.regressed), tf.tensor2d(shard.edges, [count, 4]), options.boxWeight, options.batch);
    },
  };
}
