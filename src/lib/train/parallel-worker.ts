// One training thread of ParallelGradients (parallel-gradients.ts): its own WASM backend with our
// kernels, a model replica whose weights it reads from shared memory when they change, and a task
// that turns a shard into a loss. Its gradient and its moved statistics go back through shared memory.
import { parentPort } from 'node:worker_threads';
import { tf } from '../backend/tf.js';
import { selectBackend } from '../backend/select.js';
import { weakParallelTask } from './weak-trainer.js';
import { classifierParallelTask } from './classifier-parallel.js';
import type { ParallelReply, ParallelRequest } from './parallel-gradients.js';

/** Builds a task's loss for one replica; `shared` is what the main thread gave once at start. */
export type ParallelTaskFactory = (model: tf.LayersModel, shared: unknown) => { loss(shard: unknown, options: unknown): tf.Scalar };

const TASKS: Record<string, ParallelTaskFactory> = { weak: weakParallelTask, classifier: classifierParallelTask };

interface Replica {
  model: tf.LayersModel;
  task: ReturnType<ParallelTaskFactory>;
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
      const { model, weights, out, offsets } = replica;
      if (request.version !== replica.version) {
        model.weights.forEach((w, i) => {
          const value = tf.tensor(weights.slice(offsets[i], offsets[i + 1]), w.shape as number[], 'float32');
          w.write(value);
          value.dispose();
        });
        replica.version = request.version;
      }
      const variables = request.variables.map((i) => model.weights[i].read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => replica!.task.loss(request.shard, request.options), variables);
      variables.forEach((v, k) => out.set(grads[v.name].dataSync() as Float32Array, offsets[request.variables[k]]));
      for (const i of request.changed) out.set(model.weights[i].read().dataSync() as Float32Array, offsets[i]);
      const loss = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    }
    case 'memory':
      return tf.memory().numTensors;
  }
}

// One request at a time: the main thread waits for every worker's answer before the next step.
port.on('message', (request: ParallelRequest & { id: number }) => {
  handle(request).then(
    (result) => port.postMessage({ id: request.id, result } satisfies ParallelReply),
    (err: unknown) => port.postMessage({ id: request.id, error: err instanceof Error ? { message: err.message, stack: err.stack } : { message: String(err) } } satisfies ParallelReply),
  );
});
