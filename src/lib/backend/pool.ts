// A pool of worker threads, each with its own tfjs backend. WASM computes on one thread in Node
// (tfjs turns its threads off), so threads are how inference and training use every core:
// inference sends each batch to the least busy worker; data-parallel training splits a batch
// across model replicas, averages their gradients here, and every replica applies the same
// average with its own identical optimizer, so the replicas stay equal without copying weights.
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import { tf } from './tf.js';
import { UsageError } from '../command.js';
import { compiledSibling } from '../io/paths.js';
import type { OptimizerSpec, PoolMessage, PoolReply, TensorData } from './pool-protocol.js';

export type { OptimizerSpec, TensorData, LossFunction } from './pool-protocol.js';
export { BUILTIN_LOSSES } from './pool-protocol.js';

export interface WorkerPoolOptions {
  /** Worker threads; default one per core. */
  workers?: number;
  /** Backend of every worker (see selectBackend); default 'wasm'. */
  backend?: string;
  /**
   * URL of a module each worker imports before anything else: it may register custom layers and
   * export `losses: Record<string, LossFunction>` usable by name in `startTraining`.
   */
  workerModule?: string;
}

/** A model for the workers: a directory written by saveModel, or a model of this thread. */
export type ModelSource = string | tf.LayersModel;

export interface TrainingOptions {
  model: ModelSource;
  /** A built-in loss name (see BUILTIN_LOSSES) or one exported by the worker module; a mean over the batch. */
  loss: string;
  optimizer: OptimizerSpec;
}

export interface GradientResult {
  /** Mean loss over the whole batch. */
  loss: number;
  /** Gradient of the mean loss, packed in the order of `model.trainableWeights`. */
  gradients: Float32Array;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface PoolThread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/** Wraps a tensor's values for the pool (a copy; the tensor stays usable). */
export async function tensorData(tensor: tf.Tensor): Promise<TensorData> {
  const dtype = tensor.dtype === 'int32' ? 'int32' : 'float32';
  const values = await tensor.data();
  return { shape: tensor.shape.slice(), dtype, data: dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values) };
}

/** A tensor holding the values of `data`. */
export function fromTensorData(data: TensorData): tf.Tensor {
  return tf.tensor(data.data, data.shape, data.dtype);
}

/** Rows [start, end) of a tensor's data along the first axis, as a new (transferable) array. */
function sliceRows(data: TensorData, start: number, end: number): TensorData {
  const rowSize = data.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [end - start, ...data.shape.slice(1)], dtype: data.dtype, data: data.data.slice(start * rowSize, end * rowSize) };
}

/** Bounds of `parts` contiguous, near-equal shards of `rows` rows (empty shards left out). */
export function shardBounds(rows: number, parts: number): Array<[number, number]> {
  const bounds: Array<[number, number]> = [];
  for (let i = 0; i < parts; i++) {
    const start = Math.floor((i * rows) / parts);
    const end = Math.floor(((i + 1) * rows) / parts);
    if (end > start) bounds.push([start, end]);
  }
  return bounds;
}

function ownsWholeBuffer(array: Float32Array | Int32Array): boolean {
  return array.byteOffset === 0 && array.byteLength === array.buffer.byteLength && !(array.buffer instanceof SharedArrayBuffer);
}

/** This process's Node flags minus those that only apply to a main script given inline (`-e`, `--input-type`). */
export function threadExecArgv(execArgv: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i];
    if (/^(-e|-p|--eval|--print)$/.test(flag)) i++;
    else if (!/^(--input-type|--eval|--print)=/.test(flag) && !/^-(e|p)./.test(flag)) kept.push(flag);
  }
  return kept;
}

function rebuildError(error: NonNullable<PoolReply['error']>, workerIndex: number): Error {
  if (error.name === 'UsageError') return new UsageError(error.message, error.place ?? {});
  const rebuilt = new Error(`worker ${workerIndex}: ${error.message}`);
  if (error.stack) rebuilt.stack = `${rebuilt.message}\n(worker stack) ${error.stack}`;
  return rebuilt;
}

export class WorkerPool {
  private readonly threads: PoolThread[] = [];
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;
  private parameterCount = 0;

  private constructor(readonly backend: string) {}

  /** Starts `workers` threads and initialises their backend; rejects if any fails to start. */
  static async create(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    const count = options.workers ?? cpus().length;
    if (!Number.isInteger(count) || count < 1) throw new UsageError(`a worker pool needs at least one worker (got ${count})`, { field: 'workers' });
    const pool = new WorkerPool(options.backend ?? 'wasm');
    for (let i = 0; i < count; i++) pool.threads.push(pool.startThread(i));
    try {
      await Promise.all(pool.threads.map((_, i) => pool.call(i, { op: 'init', backend: pool.backend, workerModule: options.workerModule })));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Number of worker threads. */
  get size(): number {
    return this.threads.length;
  }

  private startThread(index: number): PoolThread {
    const worker = new Worker(compiledSibling(import.meta.url, './pool-worker.js'), { execArgv: threadExecArgv(process.execArgv) });
    // An idle pool must not keep the process alive; a thread is referenced only while it has work.
    worker.unref();
    const thread: PoolThread = { worker, pending: new Map() };
    worker.on('message', (reply: PoolReply) => {
      const waiting = thread.pending.get(reply.id);
      if (!waiting) return;
      thread.pending.delete(reply.id);
      if (thread.pending.size === 0) worker.unref();
      if (reply.error) waiting.reject(rebuildError(reply.error, index));
      else waiting.resolve(reply.result);
    });
    worker.on('error', (err) => this.fail(new Error(`worker ${index} crashed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`worker ${index} exited unexpectedly with code ${code}`));
    });
    return thread;
  }

  /** A crashed or exited worker breaks the pool: everything waiting and everything later rejects. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const thread of this.threads) {
      for (const waiting of thread.pending.values()) waiting.reject(error);
      thread.pending.clear();
      thread.worker.unref();
    }
    if (!this.closed) void this.close();
  }

  private call<T>(index: number, request: PoolMessage, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    const thread = this.threads[index];
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (thread.pending.size === 0) thread.worker.ref();
      thread.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      try {
        thread.worker.postMessage({ ...request, id }, transfer);
      } catch (err) {
        thread.pending.delete(id);
        if (thread.pending.size === 0) thread.worker.unref();
        reject(err as Error);
      }
    });
  }

  private broadcast<T>(request: PoolMessage): Promise<T[]> {
    return Promise.all(this.threads.map((_, i) => this.call<T>(i, request)));
  }

  private async modelSource(model: ModelSource): Promise<{ dir?: string; artifacts?: tf.io.ModelArtifacts }> {
    if (typeof model === 'string') return { dir: model };
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (captured) => {
      artifacts = captured;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(captured) };
    }));
    if (artifacts?.weightData) artifacts.weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    return { artifacts };
  }

  /** Loads the same model into every worker for `predict`. */
  async loadModel(model: ModelSource): Promise<void> {
    await this.broadcast({ op: 'loadModel', ...(await this.modelSource(model)) });
  }

  /**
   * Runs the model on one batch in the least busy worker. The batch's buffer is transferred to the
   * worker (so `x.data` is detached afterwards) when the array owns its whole buffer.
   */
  predict(x: TensorData): Promise<TensorData> {
    let index = 0;
    for (let i = 1; i < this.threads.length; i++) if (this.threads[i].pending.size < this.threads[index].pending.size) index = i;
    return this.call<TensorData>(index, { op: 'predict', x }, ownsWholeBuffer(x.data) ? [x.data.buffer as ArrayBuffer] : []);
  }

  /**
   * Predicts a stream of batches, yielding outputs in input order, with at most `inFlight`
   * batches (default two per worker) handed out at a time.
   */
  async *predictBatches(batches: Iterable<TensorData> | AsyncIterable<TensorData>, inFlight = 2 * this.threads.length): AsyncGenerator<TensorData> {
    const waiting: Array<Promise<TensorData>> = [];
    try {
      for await (const batch of batches) {
        const result = this.predict(batch);
        // Marks the rejection as seen so an early one does not surface as unhandled before it is awaited.
        result.catch(() => {});
        waiting.push(result);
        if (waiting.length >= inFlight) yield await waiting.shift()!;
      }
      while (waiting.length > 0) yield await waiting.shift()!;
    } finally {
      await Promise.allSettled(waiting);
    }
  }

  /** Gives every worker a replica of `model` and the same optimizer; returns the trainable parameter count. */
  async startTraining(options: TrainingOptions): Promise<number> {
    const counts = await this.broadcast<number>({ op: 'startTraining', loss: options.loss, optimizer: options.optimizer, ...(await this.modelSource(options.model)) });
    this.parameterCount = counts[0];
    return this.parameterCount;
  }

  /**
   * Gradient of the batch's mean loss: the batch is split across the replicas and their shard
   * gradients are averaged weighted by shard size, which equals the full-batch gradient.
   */
  async gradients(x: TensorData, y: TensorData): Promise<GradientResult> {
    const rows = x.shape[0];
    if (y.shape[0] !== rows) throw new Error(`inputs have ${rows} rows but targets ${y.shape[0]}`);
    const bounds = shardBounds(rows, this.threads.length);
    const shards = await Promise.all(
      bounds.map(([start, end], i) => {
        const xs = sliceRows(x, start, end);
        const ys = sliceRows(y, start, end);
        return this.call<GradientResult>(i, { op: 'gradients', x: xs, y: ys }, [xs.data.buffer as ArrayBuffer, ys.data.buffer as ArrayBuffer]);
      }),
    );
    const average = new Float32Array(shards[0].gradients.length);
    let loss = 0;
    shards.forEach((shard, i) => {
      const weight = (bounds[i][1] - bounds[i][0]) / rows;
      loss += weight * shard.loss;
      const g = shard.gradients;
      for (let k = 0; k < average.length; k++) average[k] += weight * g[k];
    });
    return { loss, gradients: average };
  }

  /** Applies one packed gradient on every replica (each with its own identical optimizer). */
  async applyGradients(gradients: Float32Array, learningRate?: number): Promise<void> {
    if (this.parameterCount && gradients.length !== this.parameterCount) {
      throw new Error(`gradient holds ${gradients.length} values, the model trains ${this.parameterCount}`);
    }
    await this.broadcast({ op: 'applyGradients', gradients, learningRate });
  }

  /** One data-parallel training step on a batch; returns the batch's mean loss before the update. */
  async trainStep(x: TensorData, y: TensorData, options: { learningRate?: number } = {}): Promise<number> {
    const { loss, gradients } = await this.gradients(x, y);
    await this.applyGradients(gradients, options.learningRate);
    return loss;
  }

  /** Every replica's weights (all of `model.getWeights()`, packed); equal across replicas while training. */
  replicaWeights(): Promise<Float32Array[]> {
    return this.broadcast<Float32Array>({ op: 'getWeights' });
  }

  /** Saves replica 0 (model and, when training, optimizer state) with saveModel's atomic layout. */
  async saveModel(dir: string, metadata?: Record<string, unknown>): Promise<void> {
    await this.call(0, { op: 'saveModel', dir, metadata });
  }

  /** Stops every worker; waiting requests reject. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closedError = new Error('the worker pool was closed');
    for (const thread of this.threads) {
      for (const waiting of thread.pending.values()) waiting.reject(closedError);
      thread.pending.clear();
    }
    await Promise.all(this.threads.map((thread) => thread.worker.terminate()));
  }
}

/** Starts a worker pool; see WorkerPool. */
export function createWorkerPool(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
  return WorkerPool.create(options);
}
