// What the worker pool (pool.ts) and its threads (pool-worker.ts) send each other, and the pieces
// both sides need: tensors as plain typed arrays, gradients packed into one Float32Array, losses.
import { tf } from './tf.js';
import type { ErrorPlace } from '../command.js';

/** A tensor as it crosses threads: its buffer is transferred, not copied, where possible. */
export interface TensorData {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/** The optimizer every replica runs; identical specs give identical updates on every worker. */
export type OptimizerSpec =
  | { name: 'sgd'; learningRate: number }
  | { name: 'momentum'; learningRate: number; momentum?: number; nesterov?: boolean }
  | { name: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number };

/** Mean loss over the examples of a batch, from targets and model outputs. */
export type LossFunction = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar;

/** Losses known by name; a `workerModule` may add its own through an exported `losses` record. */
export const BUILTIN_LOSSES: Readonly<Record<string, LossFunction>> = {
  /** Model outputs probabilities (softmax layer), targets are one-hot. */
  categoricalCrossentropy: (y, p) => tf.mean(tf.metrics.categoricalCrossentropy(y, p)) as tf.Scalar,
  /** Model outputs probabilities, targets are class indices. */
  sparseCategoricalCrossentropy: (y, p) =>
    tf.mean(tf.metrics.categoricalCrossentropy(tf.oneHot(tf.cast(tf.reshape(y, [-1]), 'int32'), p.shape[p.rank - 1]), p)) as tf.Scalar,
  /** Model outputs logits, targets are one-hot. */
  softmaxCrossEntropy: (y, logits) => tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar,
  meanSquaredError: (y, p) => tf.losses.meanSquaredError(y, p) as tf.Scalar,
};

export function lossFunction(name: string, custom: Record<string, LossFunction> = {}): LossFunction {
  const loss = custom[name] ?? BUILTIN_LOSSES[name];
  if (!loss) throw new Error(`unknown loss '${name}' (built in: ${Object.keys(BUILTIN_LOSSES).join(', ')})`);
  return loss;
}

/** Concatenates the values of `tensors` (in order) into one Float32Array. */
export function packTensors(tensors: tf.Tensor[]): Float32Array {
  const packed = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
  let offset = 0;
  for (const t of tensors) {
    packed.set(t.dataSync() as Float32Array, offset);
    offset += t.size;
  }
  return packed;
}

/** Splits a packed Float32Array back into tensors of the given shapes. */
export function unpackTensors(packed: Float32Array, shapes: number[][]): tf.Tensor[] {
  let offset = 0;
  const tensors = shapes.map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const t = tf.tensor(packed.subarray(offset, offset + size), shape, 'float32');
    offset += size;
    return t;
  });
  if (offset !== packed.length) throw new Error(`packed tensors hold ${packed.length} values, the shapes need ${offset}`);
  return tensors;
}

/** A model replica's source: a directory written by saveModel, or serialised artifacts. */
interface ModelSource {
  dir?: string;
  artifacts?: tf.io.ModelArtifacts;
}

/** A request without its id. */
export type PoolMessage =
  | { op: 'init'; backend: string; workerModule?: string }
  | ({ op: 'loadModel' } & ModelSource)
  | { op: 'predict'; x: TensorData }
  | ({ op: 'startTraining'; loss: string; optimizer: OptimizerSpec } & ModelSource)
  | { op: 'gradients'; x: TensorData; y: TensorData }
  | { op: 'applyGradients'; gradients: Float32Array; learningRate?: number }
  | { op: 'getWeights' }
  | { op: 'saveModel'; dir: string; metadata?: Record<string, unknown> };

export type PoolRequest = PoolMessage & { id: number };

export interface PoolReply {
  id: number;
  result?: unknown;
  error?: { name: string; message: string; place?: ErrorPlace; stack?: string };
}
