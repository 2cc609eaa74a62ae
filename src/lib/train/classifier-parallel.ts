// train-classifier's image fine-tuning on the training workers (parallel-gradients.ts): the main
// thread draws the crops, each worker cuts its shard's pixels from the shared images and returns
// the gradient of its weighted cross-entropy (with --stn, plus the same on the transformer's class
// evidence); shards are weighted by their examples' total weight, so the average is the whole
// batch's Σ w·CE / Σ w.
import { tf } from '../backend/tf.js';
import { classifierNets, weightedCrossEntropy } from '../facets/classifier-model.js';
import { ParallelGradients, type ParallelTask, type Shard } from './parallel-gradients.js';
import { cropPixels, inputSides, shareImageStore, sharedImageStore, type ImageStore, type InputShape, type SharedImages } from '../image/batch.js';
import { shardBounds } from '../backend/pool.js';

interface ClassifierShard {
  slots: Int32Array;
  crops: Int32Array;
  labels: Int32Array;
  sampleWeights?: Float32Array;
}

interface ClassifierOptions {
  inputSize: InputShape;
  training: boolean;
}

type SharedClassifier = SharedImages & { classWeights: Float32Array; stn: boolean };

/** Starts the training workers of an image classifier on `store`'s images (shared, not copied); `stn`: it has a spatial transformer. */
export function openClassifierParallel(model: tf.LayersModel, store: ImageStore, classWeights: Float32Array, workers: number, stn = false): Promise<ParallelGradients> {
  const shared: SharedClassifier = { ...shareImageStore(store), classWeights, stn };
  return ParallelGradients.open({ model, workers, task: 'classifier', shared });
}

/** Loss (as a scalar the caller disposes) and gradients of one batch, computed by the workers. */
export async function classifierGradients(
  parallel: ParallelGradients,
  variables: tf.Variable[],
  batch: { slots: number[]; crops: Int32Array; labels: number[]; sampleWeights?: number[]; classWeights: Float32Array },
  options: ClassifierOptions,
): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap }> {
  const shards: Shard[] = shardBounds(batch.slots.length, parallel.size).map(([start, end]) => {
    const labels = Int32Array.from(batch.labels.slice(start, end));
    const sampleWeights = batch.sampleWeights ? Float32Array.from(batch.sampleWeights.slice(start, end)) : undefined;
    let weight = 0;
    labels.forEach((c, i) => (weight += batch.classWeights[c] * (sampleWeights ? sampleWeights[i] : 1)));
    const data: ClassifierShard = { slots: Int32Array.from(batch.slots.slice(start, end)), crops: batch.crops.slice(3 * start, 3 * end), labels, sampleWeights };
    return { weight, data };
  });
  const { loss, grads } = await parallel.gradients(variables, shards, options);
  return { value: tf.scalar(loss), grads };
}

/** The classifier's loss in a training worker. */
export function classifierParallelTask(model: tf.LayersModel, shared: unknown): ParallelTask {
  const s = shared as SharedClassifier;
  const store = sharedImageStore(s);
  // With a transformer, the loss adds the same term on its class evidence (classifier-trainer.ts).
  const net = classifierNets(model, s.stn).trainingNet;
  const classWeights = tf.keep(tf.tensor1d(s.classWeights));
  return {
    loss(shardData, optionData) {
      const shard = shardData as ClassifierShard;
      const options = optionData as ClassifierOptions;
      const { height, width } = inputSides(options.inputSize);
      const x = tf.tensor4d(cropPixels(store, shard.slots, options.inputSize, shard.crops), [shard.slots.length, height, width, 3]);
      const y = tf.tensor1d(shard.labels, 'int32');
      const w = shard.sampleWeights ? tf.tensor1d(shard.sampleWeights) : undefined;
      const outputs = [net.apply(x, { training: options.training })].flat() as tf.Tensor2D[];
      if (outputs.length === 1) return weightedCrossEntropy(outputs[0], y, classWeights, w);
      return tf.addN(outputs.map((logits) => weightedCrossEntropy(logits, y, classWeights, w))) as tf.Scalar;
    },
  };
}
