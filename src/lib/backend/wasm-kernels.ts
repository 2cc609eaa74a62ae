// The project's own WASM kernels: the gradients tfjs-backend-wasm 4.22 lacks (conv filter,
// depthwise, gather) and faster or corrected replacements for slow or wrong ones (conv input
// gradient, max-pool gradient, transposed matmuls), so that CNNs train on WASM; one-pass
// BatchNorm and ReLU6 gradients in place of tfjs's chains of full-size intermediates; per-channel
// Mean and Sum without the transpose the backend's reductions make; an Identity that shares its
// input's buffer instead of copying every tensor a gradient saves.
import '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf.js';
import { batchMatMulConfig, fusedMatMulConfig } from './kernels/batch-mat-mul.js';
import { columnMeanConfig, columnSumConfig } from './kernels/column-reduce.js';
import { conv2dBackpropFilterConfig } from './kernels/conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './kernels/conv2d-backprop-input.js';
import { depthwiseConv2dBackpropFilterConfig, depthwiseConv2dBackpropInputConfig } from './kernels/depthwise-conv2d-backprop.js';
import { batchNormGradStatsConfig, clipByValueGradConfig, registerElementwiseGradients } from './kernels/elementwise-grads.js';
import { sharedIdentityConfig } from './kernels/identity.js';
import { maxPoolGradConfig } from './kernels/max-pool-grad.js';
import { builtinKernelName } from './kernels/scratch.js';
import { unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.js';

export { builtinKernelName };

/** Kernels registered for backend 'wasm', replacing the backend's own where it has one. */
export const WASM_KERNEL_CONFIGS: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  depthwiseConv2dBackpropFilterConfig,
  depthwiseConv2dBackpropInputConfig,
  unsortedSegmentSumConfig,
  maxPoolGradConfig,
  batchMatMulConfig,
  fusedMatMulConfig,
  batchNormGradStatsConfig,
  clipByValueGradConfig,
  columnMeanConfig,
  columnSumConfig,
  sharedIdentityConfig,
];

/** Names of the kernels `registerWasmKernels` provides. */
export const WASM_KERNEL_NAMES: readonly string[] = WASM_KERNEL_CONFIGS.map((config) => config.kernelName);

/**
 * Registers the project's kernels for backend 'wasm'. A backend kernel it replaces stays callable
 * as `builtinKernelName(name)` (ours delegate to some of them). Call it before
 * `tf.setBackend('wasm')` so those are set up with the backend; calling it again changes nothing.
 * Also replaces the BatchNorm and ClipByValue gradients by one-pass ones (used where the active
 * backend has their helper kernels, so other backends keep tfjs's).
 */
export function registerWasmKernels(): void {
  for (const config of WASM_KERNEL_CONFIGS) {
    const registered = tf.getKernel(config.kernelName, 'wasm');
    if (registered?.kernelFunc === config.kernelFunc) continue;
    if (registered) {
      const builtinName = builtinKernelName(config.kernelName);
      if (!tf.getKernel(builtinName, 'wasm')) tf.registerKernel({ ...registered, kernelName: builtinName });
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    tf.registerKernel(config);
  }
  registerElementwiseGradients();
}
