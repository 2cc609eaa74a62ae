// Identity for WASM that shares the input's buffer (reference counted, as the backend's own Reshape
// does) instead of copying it. tfjs-core saves every tensor a gradient needs through Identity
// (engine.clone), so in training the backend's copying Identity duplicated each saved activation:
// 1,556 full copies per MobileNetV2 step, and that many more bytes on the 4 GB heap. No kernel
// writes into its inputs, so a shared buffer is never changed under another tensor.
import { tf } from '../tf.js';
import { runBuiltinKernel, type KernelArgs, type TensorInfo } from './scratch.js';

function sharedIdentityKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const { x } = inputs;
  if (x.dtype === 'string') return runBuiltinKernel(tf.Identity, { inputs, backend, attrs });
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export const sharedIdentityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: sharedIdentityKernel as unknown as tf.KernelFunc,
};
