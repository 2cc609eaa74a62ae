// One thread of the worker pool (src/lib/backend/pool.ts): its own tfjs backend (WASM by default,
// since WASM computes on one thread in Node), one model replica, requests answered in order.
import { parentPort } from 'node:worker_threads';
import { tf } from './tf.js';
import { selectBackend } from './select.js';
import { loadModel, optimizerStateTensors, restoreOptimizerState, saveModel } from './model-io.js';
import { UsageError } from '../command.js';
import {
  lossFunction, packTensors, unpackTensors, type LossFunction, type OptimizerSpec, type PoolRequest, type PoolReply, type TensorData,
} from './pool-protocol.js';

interface TrainingState {
  variables: tf.Variable[];
  optimizer: tf.Optimizer;
  loss: LossFunction;
}

interface WorkerState {
  model?: tf.LayersModel;
  training?: TrainingState;
  customLosses: Record<string, LossFunction>;
}

const port = parentPort;
if (!port) throw new Error('pool-worker.js runs only as a worker thread');
const state: WorkerState = { customLosses: {} };

function toTensor(data: TensorData): tf.Tensor {
  return tf.tensor(data.data, data.shape, data.dtype);
}

async function fromTensor(tensor: tf.Tensor): Promise<TensorData> {
  const dtype = tensor.dtype === 'int32' ? 'int32' : 'float32';
  const values = await tensor.data();
  // A view into a larger buffer (the WASM heap, a pool) must be copied before it can be transferred.
  const own = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice();
  return { shape: tensor.shape.slice(), dtype, data: dtype === 'int32' ? Int32Array.from(own) : (own as Float32Array) };
}

function requireModel(): tf.LayersModel {
  if (!state.model) throw new Error('no model loaded in this worker (call loadModel or startTraining first)');
  return state.model;
}

function requireTraining(): TrainingState {
  if (!state.training) throw new Error('training was not started in this worker (call startTraining first)');
  return state.training;
}

function makeOptimizer(spec: OptimizerSpec): tf.Optimizer {
  switch (spec.name) {
    case 'sgd':
      return tf.train.sgd(spec.learningRate);
    case 'momentum':
      return tf.train.momentum(spec.learningRate, spec.momentum ?? 0.9, spec.nesterov ?? false);
    case 'adam':
      return tf.train.adam(spec.learningRate, spec.beta1, spec.beta2, spec.epsilon);
  }
}

function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  // Every tfjs optimizer reads its `learningRate` field at each step.
  (optimizer as unknown as { learningRate: number }).learningRate = learningRate;
}

async function replaceModel(model: tf.LayersModel): Promise<void> {
  state.model?.dispose();
  state.training?.optimizer.dispose();
  state.training = undefined;
  state.model = model;
}

/** Loads a replica; returns the checkpoint's extra tensors (optimizer state), which the caller disposes. */
async function loadInto(source: { dir?: string; artifacts?: tf.io.ModelArtifacts }): Promise<tf.NamedTensorMap> {
  if (source.dir !== undefined) {
    const loaded = await loadModel(source.dir);
    await replaceModel(loaded.model);
    return loaded.extraTensors;
  }
  if (source.artifacts !== undefined) {
    await replaceModel(await tf.loadLayersModel(tf.io.fromMemory(source.artifacts)));
    return {};
  }
  throw new Error('loadModel needs a directory or model artifacts');
}

/** Loss and gradients of the replica on its shard, gradients packed in trainable-variable order. */
function shardGradients(x: TensorData, y: TensorData): { loss: number; gradients: Float32Array } {
  const model = requireModel();
  const { variables, loss } = requireTraining();
  const { value, grads } = tf.tidy(() =>
    tf.variableGrads(() => loss(toTensor(y), model.apply(toTensor(x), { training: true }) as tf.Tensor), variables),
  );
  const ordered = variables.map((v) => grads[v.name]);
  const packed = packTensors(ordered);
  const lossValue = value.dataSync()[0];
  tf.dispose([value, ordered]);
  return { loss: lossValue, gradients: packed };
}

function applyGradients(gradients: Float32Array, learningRate: number | undefined): void {
  const { variables, optimizer } = requireTraining();
  if (learningRate !== undefined) setLearningRate(optimizer, learningRate);
  tf.tidy(() => {
    const tensors = unpackTensors(gradients, variables.map((v) => v.shape));
    optimizer.applyGradients(Object.fromEntries(variables.map((v, i) => [v.name, tensors[i]])));
  });
}

async function handle(request: PoolRequest): Promise<{ result?: unknown; transfer?: ArrayBuffer[] }> {
  switch (request.op) {
    case 'init': {
      if (request.workerModule) {
        const module = (await import(request.workerModule)) as { losses?: Record<string, LossFunction> };
        state.customLosses = module.losses ?? {};
      }
      const choice = await selectBackend({ requested: request.backend, env: {}, quiet: true, probe: false });
      return { result: choice.name };
    }
    case 'loadModel':
      tf.dispose(Object.values(await loadInto(request)));
      return {};
    case 'predict': {
      const model = requireModel();
      const output = tf.tidy(() => model.predict(toTensor(request.x)));
      if (Array.isArray(output)) {
        tf.dispose(output);
        throw new Error('the pool predicts single-output models only');
      }
      const result = await fromTensor(output);
      output.dispose();
      return { result, transfer: [result.data.buffer as ArrayBuffer] };
    }
    case 'startTraining': {
      const loss = lossFunction(request.loss, state.customLosses);
      const checkpoint = request.dir !== undefined || request.artifacts !== undefined ? await loadInto(request) : {};
      const model = requireModel();
      state.training?.optimizer.dispose();
      const optimizer = makeOptimizer(request.optimizer);
      // A checkpoint written by saveModel below resumes with its optimizer state (moments, step count).
      await restoreOptimizerState(optimizer, checkpoint);
      tf.dispose(Object.values(checkpoint));
      state.training = { variables: model.trainableWeights.map((w) => w.read() as tf.Variable), optimizer, loss };
      return { result: state.training.variables.reduce((n, v) => n + v.size, 0) };
    }
    case 'gradients': {
      const result = shardGradients(request.x, request.y);
      return { result, transfer: [result.gradients.buffer as ArrayBuffer] };
    }
    case 'applyGradients':
      applyGradients(request.gradients, request.learningRate);
      return {};
    case 'getWeights': {
      const model = requireModel();
      const packed = packTensors(model.getWeights());
      return { result: packed, transfer: [packed.buffer as ArrayBuffer] };
    }
    case 'saveModel': {
      const model = requireModel();
      const extraTensors = state.training ? await optimizerStateTensors(state.training.optimizer) : {};
      await saveModel(model, request.dir, { extraTensors, metadata: request.metadata });
      return {};
    }
  }
}

function describeError(err: unknown): PoolReply['error'] {
  if (err instanceof UsageError) return { name: 'UsageError', message: err.message, place: err.place };
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { name: 'Error', message: String(err) };
}

// Requests are handled one after another: tfjs state (the model, the optimizer) is not re-entrant.
let queue: Promise<void> = Promise.resolve();
port.on('message', (request: PoolRequest) => {
  queue = queue.then(async () => {
    try {
      const { result, transfer } = await handle(request);
      port.postMessage({ id: request.id, result } satisfies PoolReply, transfer ?? []);
    } catch (err) {
      port.postMessage({ id: request.id, error: describeError(err) } satisfies PoolReply);
    }
  });
});
