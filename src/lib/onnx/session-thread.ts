// An onnxruntime session on its own worker thread. onnxruntime-node's `run` returns a promise but
// computes on the calling thread (inside a setImmediate), so a session on the main thread stops
// image decoding for the whole forward pass: on ResNet-18 int8 at 96 px, decode and forward took
// turns. On a worker thread the forward pass runs while the main thread decodes the next batch.
import { Worker } from 'node:worker_threads';
import { compiledSibling } from '../io/paths.js';
import { threadExecArgv } from '../backend/pool.js';

export interface TensorValue {
  data: Float32Array;
  dims: number[];
}

export type SessionRequest = { id: number; feeds: Record<string, TensorValue>; release?: undefined } | { id: number; release: true; feeds?: undefined };
export type SessionReply = { id: number; error?: string; inputNames?: string[]; outputNames?: string[]; outputs?: Record<string, TensorValue> };

/** A session on its thread: float32 feeds in, every output out; runs are answered in order. */
export interface SessionThread {
  inputNames: string[];
  outputNames: string[];
  run(feeds: Record<string, TensorValue>): Promise<Record<string, TensorValue>>;
  release(): Promise<void>;
}

/** Opens `bytes` (an ONNX model) as a session on a new worker thread; `threads` intra-op threads (default: sessionOptions'). */
export function openSessionThread(bytes: Uint8Array, threads?: number): Promise<SessionThread> {
  const worker = new Worker(compiledSibling(import.meta.url, './session-worker.js'), { execArgv: threadExecArgv(process.execArgv), workerData: { bytes, threads } });
  // Idle, it must not keep the process alive (a command that fails before release exits anyway).
  worker.unref();
  const pending = new Map<number, { resolve(reply: SessionReply): void; reject(error: Error): void }>();
  let failure: Error | undefined;
  let nextId = 1;
  const fail = (error: Error) => {
    failure ??= error;
    for (const waiting of pending.values()) waiting.reject(failure);
    pending.clear();
  };
  worker.on('message', (reply: SessionReply) => {
    const waiting = pending.get(reply.id);
    if (!waiting) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if (reply.error !== undefined) waiting.reject(new Error(reply.error));
    else waiting.resolve(reply);
  });
  worker.on('error', (err) => fail(new Error(`the onnxruntime thread crashed: ${err.message}`)));
  worker.on('exit', (code) => fail(new Error(`the onnxruntime thread exited with code ${code}`)));
  const call = (request: SessionRequest): Promise<SessionReply> => {
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      if (pending.size === 0) worker.ref();
      pending.set(request.id, { resolve, reject });
      worker.postMessage(request);
    });
  };
  const ready = new Promise<SessionReply>((resolve, reject) => {
    worker.ref();
    pending.set(0, { resolve, reject });
  });
  return ready.then(
    (opened) => ({
      inputNames: opened.inputNames!,
      outputNames: opened.outputNames!,
      run: async (feeds) => (await call({ id: nextId++, feeds })).outputs!,
      async release() {
        if (!failure) await call({ id: nextId++, release: true }).catch(() => {});
        failure ??= new Error('the session is released');
        await worker.terminate();
      },
    }),
    async (err: Error) => {
      await worker.terminate();
      throw err;
    },
  );
}
