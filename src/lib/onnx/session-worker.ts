// The thread an onnxruntime session runs on (session-thread.ts): onnxruntime-node's run blocks
// the thread that calls it, so here it blocks this one while the main thread decodes the next batch.
import { parentPort, workerData } from 'node:worker_threads';
import { loadOrt, sessionOptions } from './session.js';
import type { SessionReply, SessionRequest } from './session-thread.js';

const port = parentPort;
if (!port) throw new Error('session-worker.js runs only as a worker thread');

const ort = await loadOrt();
if (ort instanceof Error) {
  port.postMessage({ id: 0, error: ort.message } satisfies SessionReply);
} else {
  let session: import('onnxruntime-node').InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(workerData.bytes as Uint8Array, sessionOptions(workerData.threads as number | undefined));
    port.postMessage({ id: 0, inputNames: [...session.inputNames], outputNames: [...session.outputNames] } satisfies SessionReply);
  } catch (err) {
    port.postMessage({ id: 0, error: err instanceof Error ? err.message : String(err) } satisfies SessionReply);
  }
  port.on('message', async (request: SessionRequest) => {
    if (!session) return;
    if (request.release) {
      await session.release();
      session = undefined;
      port.postMessage({ id: request.id } satisfies SessionReply);
      return;
    }
    try {
      const feeds = Object.fromEntries(Object.entries(request.feeds).map(([name, t]) => [name, new ort.Tensor('float32', t.data, t.dims)]));
      const result = await session.run(feeds);
      const outputs = Object.fromEntries(Object.entries(result).map(([name, t]) => [name, { data: t.data as Float32Array, dims: t.dims.map(Number) }]));
      port.postMessage({ id: request.id, outputs } satisfies SessionReply);
    } catch (err) {
      port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies SessionReply);
    }
  });
}
