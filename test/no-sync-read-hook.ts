// Preloaded into atelier processes (NODE_OPTIONS=--import=...) by test/commands/no-sync-read.test.ts:
// every synchronous tensor read (dataSync, arraySync, bufferSync all go through the engine's
// readSync) throws, as tfjs-backend-webgpu's does in Node for want of OffscreenCanvas.
import * as tfc from '@tensorflow/tfjs-core';

const engine = tfc.engine() as unknown as { readSync(dataId: object): unknown };
engine.readSync = () => {
  throw new Error('synchronous tensor read (dataSync/arraySync): WebGPU in Node cannot do it, read with await data()');
};
