// Data-parallel gradients: N worker threads, each with its own WASM backend (and our kernels) and
// a replica of the model, compute the gradient of their shard of a batch. The main thread keeps
// the one true model and optimizer: before a step it writes every weight into shared memory, the
// workers read it, and their gradients come back through shared memory too. Gradients are averaged
// weighted by shard size (or added, see Combine) in worker order, so a run depends only on its seed
// and worker count; the update is applied once, here, so the optimizer state, checkpoints and
// --resume stay as they are (sending weights costs what sending gradients would, and keeps the
// replicas stateless).
//
// BatchNorm: each worker normalises with its own shard's statistics (as PyTorch DDP without
// SyncBatchNorm does); the moving mean/variance the workers' steps produce are averaged the same
// way (weighted by shard size, in worker order). Synchronising the batch statistics would need one
// round trip per BN layer per step, which costs more than it gives at batch 32 on a few cores.
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import { tf } from '../backend/tf.js';
import { threadExecArgv } from '../backend/pool.js';
import { compiledSibling } from '../io/paths.js';
import type { BackendChoice } from '../backend/select.js';
import { nonNegativeInt } from '../options.js';

/** What the main thread asks a worker. */
export type ParallelRequest =
  | { op: 'init'; artifacts: tf.io.ModelArtifacts; task: string; shared: unknown; weights: SharedArrayBuffer; out: SharedArrayBuffer; shapes: number[][] }
  | { op: 'step'; version: number; variables: number[]; changed: number[]; shard: unknown; options: unknown }
  | { op: 'outputs'; version: number; changed: number[]; shard: unknown; options: unknown }
  | { op: 'memory' };

export interface ParallelReply {
  id: number;
  result?: unknown;
  error?: { message: string; stack?: string };
}

/** One worker's part of a batch: its weight in the batch's loss (its rows, or its examples' total weight) and what its task reads. */
export interface Shard {
  weight: number;
  data: unknown;
}

/** A task's loss of a shard: a scalar, or its total and named parts (combined like the loss, for a trainer's log). */
export type TaskLoss = tf.Scalar | { total: tf.Scalar; parts: tf.Scalar[] };

/** What a task (parallel-worker.ts's table) does in one replica: its loss of a shard and, for outputs(), the model's outputs on it. */
export interface ParallelTask {
  loss(shard: unknown, options: unknown): TaskLoss;
  outputs?(shard: unknown, options: unknown): tf.Tensor;
}

/** A worker's answer to a step: its shard's loss and the named parts of it a task reports (e.g. train-attention's terms). */
export interface StepResult {
  loss: number;
  parts: number[];
}

/**
 * How the workers' gradients make the batch's: 'mean' weighs each by its shard's share of the
 * weights (each worker's loss is its shard's mean); 'sum' adds them (each worker's loss is already
 * its part of the batch's, e.g. divided by the batch's count, or a vector-Jacobian product).
 */
export type Combine = 'mean' | 'sum';

/** The yargs option of the trainers. */
export const trainWorkersOption = {
  workers: {
    describe: 'training threads, each with its own WASM backend, computing the gradient of a share of each batch (0: ATELIER_TRAIN_WORKERS if set, else one per core on WASM; 1: this thread only, as before; native backends always use this thread). Results depend on the seed and this number',
    type: 'number' as const,
    default: 0,
    check: nonNegativeInt,
  },
};

/** Worker threads a trainer uses: 1 (this thread) off WASM, else the asked number or one per core. */
export function trainingWorkers(backend: BackendChoice, workers: number, env: NodeJS.ProcessEnv = {}): number {
  if (backend.name !== 'wasm') return 1;
  if (workers > 0) return workers;
  // A job scheduler (or the test suite, which runs two trainers at once) may share the cores out.
  const fromEnv = Number(env.ATELIER_TRAIN_WORKERS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : cpus().length;
}

interface Thread {
  worker: Worker;
  out: Float32Array;
  waiting?: { resolve(value: unknown): void; reject(error: Error): void };
}

export class ParallelGradients {
  private readonly threads: Thread[] = [];
  private readonly offsets: number[] = [];
  private weights!: Float32Array;
  private version = 0;
  /** outputs() published this step's weights; the gradients() that follows reuses them. */
  private published = false;
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;

  private constructor(private readonly model: tf.LayersModel) {}

  /**
   * Starts `workers` threads with replicas of `model` and the task `task` (see parallel-worker.ts),
   * which gets `shared` (e.g. SharedArrayBuffers of decoded images) once.
   */
  static async open(options: { model: tf.LayersModel; workers: number; task: string; shared?: unknown }): Promise<ParallelGradients> {
    const engine = new ParallelGradients(options.model);
    const weights = options.model.weights;
    let total = 0;
    for (const w of weights) {
      if (w.dtype !== 'float32') throw new Error(`parallel training needs float32 weights (${w.name} is ${w.dtype})`);
      engine.offsets.push(total);
      total += (w.shape as number[]).reduce((a, b) => a * b, 1);
    }
    engine.offsets.push(total);
    const weightBuffer = new SharedArrayBuffer(total * 4);
    engine.weights = new Float32Array(weightBuffer);
    const artifacts = await modelArtifacts(options.model);
    const shapes = weights.map((w) => w.shape as number[]);
    try {
      for (let i = 0; i < options.workers; i++) {
        const out = new SharedArrayBuffer(total * 4);
        engine.threads.push(engine.startThread(i, new Float32Array(out)));
      }
      await Promise.all(engine.threads.map((t, i) => engine.call(i, { op: 'init', artifacts, task: options.task, shared: options.shared, weights: weightBuffer, out: t.out.buffer as SharedArrayBuffer, shapes })));
    } catch (err) {
      await engine.close();
      throw err;
    }
    return engine;
  }

  get size(): number {
    return this.threads.length;
  }

  private startThread(index: number, out: Float32Array): Thread {
    const worker = new Worker(compiledSibling(import.meta.url, './parallel-worker.js'), { execArgv: threadExecArgv(process.execArgv) });
    worker.unref();
    const thread: Thread = { worker, out };
    worker.on('message', (reply: ParallelReply) => {
      const waiting = thread.waiting;
      thread.waiting = undefined;
      worker.unref();
      if (!waiting) return;
      if (reply.error) {
        const error = new Error(`training worker ${index}: ${reply.error.message}`);
        if (reply.error.stack) error.stack = `${error.message}\n(worker stack) ${reply.error.stack}`;
        waiting.reject(error);
      } else waiting.resolve(reply.result);
    });
    worker.on('error', (err) => this.fail(new Error(`training worker ${index} crashed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`training worker ${index} exited unexpectedly with code ${code}`));
    });
    return thread;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const thread of this.threads) {
      thread.waiting?.reject(error);
      thread.waiting = undefined;
    }
    void this.close();
  }

  private call<T>(index: number, request: ParallelRequest): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the training workers are closed'));
    const thread = this.threads[index];
    return new Promise<T>((resolve, reject) => {
      thread.waiting = { resolve: resolve as (value: unknown) => void, reject };
      thread.worker.ref();
      thread.worker.postMessage({ ...request, id: this.nextId++ });
    });
  }

  /** Writes every weight into shared memory for the workers' next request. */
  private publish(): void {
    this.model.weights.forEach((w, i) => this.weights.set(w.read().dataSync() as Float32Array, this.offsets[i]));
    this.version++;
  }

  /** Weights the optimizer does not train (BatchNorm moving statistics): the workers send them back when a step moves them. */
  private untrained(): number[] {
    const trainable = new Set(this.model.trainableWeights.map((w) => w.read()));
    return this.model.weights.flatMap((w, i) => (trainable.has(w.read()) ? [] : [i]));
  }

  /**
   * The model's outputs on each shard (row-major, in shard order), as its task's `outputs` computes
   * them, for a loss that couples the rows of a batch (train-triplet mines its triplets over the
   * whole batch): the caller takes the loss and its gradient by the outputs here, and hands each
   * worker its rows' part of that gradient for gradients(..., 'sum'). The workers' moving statistics
   * are left as they were. The weights must not change before that gradients() call: it reuses them.
   */
  outputs(shards: Shard[], options: unknown): Promise<Float32Array[]> {
    return this.taskOutputs(shards, options, true);
  }

  /**
   * The model's current outputs on each shard, as its task's `outputs` computes them, for work
   * between steps (train-weak's validation scores): unlike outputs(), the next gradients() publishes
   * the weights again, so nothing is assumed about what happens in between.
   */
  infer(shards: Shard[], options: unknown): Promise<Float32Array[]> {
    return this.taskOutputs(shards, options, false);
  }

  /** Publishes the weights and asks each worker for its task's outputs on its shard; `reuse`: the next gradients() keeps these weights. */
  private taskOutputs(shards: Shard[], options: unknown, reuse: boolean): Promise<Float32Array[]> {
    if (shards.length > this.threads.length) throw new Error(`${shards.length} shards for ${this.threads.length} workers`);
    this.publish();
    this.published = reuse;
    const changed = this.untrained();
    return Promise.all(shards.map((shard, i) => this.call<Float32Array>(i, { op: 'outputs', version: this.version, changed, shard: shard.data, options })));
  }

  /**
   * Loss of the whole batch and its gradient for `variables` (tensors keyed by variable name; the
   * caller disposes them), from one shard per worker (at most `size`), combined as `combine` says;
   * `parts` are the task's named terms, combined alike. Moving statistics the workers' forward
   * passes updated (BatchNorm) are averaged into the main model, weighted by the shards' weights.
   */
  async gradients(variables: tf.Variable[], shards: Shard[], options: unknown, combine: Combine = 'mean'): Promise<{ loss: number; grads: tf.NamedTensorMap; parts: number[] }> {
    if (shards.length > this.threads.length) throw new Error(`${shards.length} shards for ${this.threads.length} workers`);
    const weights = this.model.weights;
    if (!this.published) this.publish();
    this.published = false;
    const byVariable = new Map(weights.map((w, i) => [w.read() as tf.Variable, i]));
    const indices = variables.map((v) => {
      const i = byVariable.get(v);
      if (i === undefined) throw new Error(`variable ${v.name} is not a weight of the model`);
      return i;
    });
    const changed = this.untrained();
    const results = await Promise.all(shards.map((shard, i) => this.call<StepResult>(i, { op: 'step', version: this.version, variables: indices, changed, shard: shard.data, options })));
    const total = shards.reduce((n, s) => n + s.weight, 0);
    const share = shards.map((s) => (total > 0 ? s.weight / total : 1 / shards.length));
    const gradShare = combine === 'sum' ? shards.map(() => 1) : share;
    let loss = 0;
    const parts = (results[0]?.parts ?? []).map(() => 0);
    results.forEach((r, i) => {
      loss += gradShare[i] * r.loss;
      r.parts.forEach((p, k) => (parts[k] += gradShare[i] * p));
    });
    const grads: tf.NamedTensorMap = {};
    indices.forEach((wi, k) => {
      grads[variables[k].name] = tf.tensor(this.average(wi, shards.length, gradShare), variables[k].shape, 'float32');
    });
    for (const wi of changed) {
      const start = this.offsets[wi];
      const end = this.offsets[wi + 1];
      let moved = false;
      for (let t = 0; t < shards.length && !moved; t++) {
        const out = this.threads[t].out;
        for (let o = start; o < end; o++) if (out[o] !== this.weights[o]) { moved = true; break; }
      }
      if (!moved) continue;
      const value = tf.tensor(this.average(wi, shards.length, share), weights[wi].shape as number[], 'float32');
      weights[wi].write(value);
      value.dispose();
    }
    return { loss, grads, parts };
  }

  /** Weighted sum over the first `count` workers of weight `wi`'s slot in their output, in worker order. */
  private average(wi: number, count: number, share: number[]): Float32Array {
    const start = this.offsets[wi];
    const end = this.offsets[wi + 1];
    const sum = new Float64Array(end - start);
    for (let t = 0; t < count; t++) {
      const out = this.threads[t].out;
      const s = share[t];
      for (let o = start; o < end; o++) sum[o - start] += s * out[o];
    }
    return Float32Array.from(sum);
  }

  /** Tensors alive in each worker (for memory checks). */
  memory(): Promise<number[]> {
    return Promise.all(this.threads.map((_, i) => this.call<number>(i, { op: 'memory' })));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const thread of this.threads) {
      thread.waiting?.reject(new Error('the training workers were closed'));
      thread.waiting = undefined;
    }
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

async function modelArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (captured) => {
    artifacts = captured;
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(captured) };
  }));
  if (!artifacts) throw new Error('tfjs did not hand over the model artifacts');
  if (artifacts.weightData) artifacts.weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
  return artifacts;
}
