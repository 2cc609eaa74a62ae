// One training thread of ParallelGradients (parallel-gradients.ts): its own WASM backend with our
// kernels, a model replica whose weights it reads from shared memory when they change, and a task
// that turns a shard into a loss. Its gradient and its moved statistics go back through shared memory.
import { parentPort } from 'node:worker_threads';
import { tf } from '../backend/tf.js';
import { selectBackend } from '../backend/select.js';
import { weakParallelTask } from './weak-trainer.js';
import { classifierParallelTask } from './classifier-parallel.js';
import { tripletParallelTask } from './triplet-parallel.js';
import { locateParallelTask } from './locate-parallel.js';
import { attentionParallelTask } from './attention-parallel.js';
import type { ParallelReply, ParallelRequest, ParallelTask, StepResult } from './parallel-gradients.js';

/** Builds a task for one replica; `shared` is what the main thread gave once at start. */
export type ParallelTaskFactory = (model: tf.LayersModel, shared: unknown) => ParallelTask;

const TASKS: Record<string, ParallelTaskFactory> = {
  weak: weakParallelTask, classifier: classifierParallelTask, triplet: tripletParallelTask, locate: locateParallelTask, attention: attentionParallelTask,
};

interface Replica {
  model: tf.LayersModel;
  task: ParallelTask;
  weights: Float32Array;
  out: Float32Array;
  offsets: number[];
  version: number;
}

const port = parentPort;
if (!port) throw new Error('parallel-worker.js runs only as a worker thread');
let replica: Replica | undefined;

async function handle(request: ParallelRequest): Promise<unknown> {
  switch (request.op) {
    case 'init': {
      await selectBackend({ requested: 'wasm', quiet: true });
      const model = await tf.loadLayersModel(tf.io.fromMemory(request.artifacts));
      const shapes = model.weights.map((w) => w.shape as number[]);
      if (JSON.stringify(shapes) !== JSON.stringify(request.shapes)) throw new Error('the replica\'s weights differ from the model\'s');
      const offsets = [0];
      for (const s of shapes) offsets.push(offsets[offsets.length - 1] + s.reduce((a, b) => a * b, 1));
      const factory = TASKS[request.task];
      if (!factory) throw new Error(`unknown training task '${request.task}'`);
      replica = { model, task: factory(model, request.shared), weights: new Float32Array(request.weights), out: new Float32Array(request.out), offsets, version: 0 };
      return null;
    }
    case 'step': {
      if (!replica) throw new Error('the worker was not started');
      const { model, out, offsets } = replica;
      syncWeights(replica, request.version);
      const variables = request.variables.map((i) => model.weights[i].read() as tf.Variable);
      let parts: tf.Scalar[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const loss = replica!.task.loss(request.shard, request.options);
        if (!('total' in loss)) return loss;
        parts = loss.parts.map((p) => tf.keep(p));
        return loss.total;
      }, variables);
      variables.forEach((v, k) => out.set(grads[v.name].dataSync() as Float32Array, offsets[request.variables[k]]));
      for (const i of request.changed) out.set(model.weights[i].read().dataSync() as Float32Array, offsets[i]);
      const result: StepResult = { loss: value.dataSync()[0], parts: parts.map((p) => p.dataSync()[0]) };
      tf.dispose([value, ...parts, ...Object.values(grads)]);
      return result;
    }
    case 'outputs': {
      if (!replica) throw new Error('the worker was not started');
      const { model, task } = replica;
      if (!task.outputs) throw new Error('this training task has no outputs');
      syncWeights(replica, request.version);
      // A training-mode forward pass moves the BatchNorm statistics: put them back, as the step moves them once.
      const statistics = request.changed.map((i) => model.weights[i].read().clone());
      const y = tf.tidy(() => task.outputs!(request.shard, request.options));
      request.changed.forEach((i, k) => model.weights[i].write(statistics[k]));
      tf.dispose(statistics);
      const rows = y.dataSync() as Float32Array;
      y.dispose();
      return rows;
    }
    case 'memory':
      return tf.memory().numTensors;
  }
}

/** Reads the weights from shared memory when the main thread has published new ones. */
function syncWeights(r: Replica, version: number): void {
  if (version === r.version) return;
  r.model.weights.forEach((w, i) => {
    const value = tf.tensor(r.weights.slice(r.offsets[i], r.offsets[i + 1]), w.shape as number[], 'float32');
    w.write(value);
    value.dispose();
  });
  r.version = version;
}

// One request at a time: the main thread waits for every worker's answer before the next step.
port.on('message', (request: ParallelRequest & { id: number }) => {
  handle(request).then(
    (result) => port.postMessage({ id: request.id, result } satisfies ParallelReply),
    (err: unknown) => port.postMessage({ id: request.id, error: err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) } } satisfies ParallelReply),
  );
});
