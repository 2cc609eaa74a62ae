// Gradients of FusedBatchNorm and ClipByValue (ReLU6) in one pass each. tfjs-core's BatchNorm
// gradient tiles 1/sqrt(var) to the full [N,H,W,C] shape and makes ~10 full-size intermediates;
// measured 17-37% of a ResNet-18/MobileNetV2 step on WASM, Tile alone. The ReLU6 gradient makes
// four full-size tensors (>=, <=, and, where); ours is one pass, in WebAssembly SIMD. Gradients are global in tfjs, so ours take the
// fast path only where the active backend has the helper kernel and fall back to tfjs's own.
import { tf } from '../tf.js';
import { float32Output, heapView, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';
import { blockedSums, simdLoops, SUM_BLOCK_ROWS } from './simd.js';

/** Per-channel [sum(dy), sum(dy * (x - mean))] of x, dy viewed as [M, C]: shape [2, C]. */
export const BATCH_NORM_GRAD_STATS = 'AtelierBatchNormGradStats';
/** dy where clipValueMin <= x <= clipValueMax, else 0. */
export const CLIP_BY_VALUE_GRAD = 'AtelierClipByValueGrad';

/** The same sums, laid out as the kernel's [2, C] output, in WebAssembly SIMD (simd.ts) for channels in fours; null where it does not apply. */
function batchNormGradStatsSimd(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, mean: TensorInfo, channels: number): Float64Array | null {
  if (channels % 4 !== 0 || channels === 0 || dy.dtype !== 'float32' || mean.dtype !== 'float32') return null;
  const loops = simdLoops(backend);
  if (!loops) return null;
  const rows = tf.util.sizeFromShape(x.shape) / channels;
  const [xPtr, dyPtr, meanPtr] = [x, dy, mean].map((t) => heapView(backend, t).byteOffset);
  const row = channels * 4;
  // sum(dy) in the first row, sum(dy (x - mean)) in the second.
  return blockedSums(backend, rows, SUM_BLOCK_ROWS, 2 * channels, (scratch, start, count) => {
    loops.sumRowsAccumulate(dyPtr + start * row, row, scratch, channels / 4, count);
    loops.centredDotRowsAccumulate(xPtr + start * row, dyPtr + start * row, row, meanPtr, scratch + row, channels / 4, count);
  });
}

function batchNormGradStatsKernel({ inputs, backend }: KernelArgs): TensorInfo {
  const { x, dy, mean } = inputs;
  const channels = x.shape[x.shape.length - 1];
  const bySimd = batchNormGradStatsSimd(backend, x, dy, mean, channels);
  if (bySimd) return float32Output(backend, [2, channels], bySimd);
  const out = backend.makeOutput([2, channels], 'float32');
  const xv = heapView(backend, x);
  const dyv = heapView(backend, dy);
  const mv = heapView(backend, mean);
  // float64 sums: each channel adds N*H*W products.
  const sumDy = new Float64Array(channels);
  const sumDyX = new Float64Array(channels);
  for (let base = 0; base < xv.length; base += channels) {
    for (let c = 0; c < channels; c++) {
      const g = dyv[base + c];
      sumDy[c] += g;
      sumDyX[c] += g * (xv[base + c] - mv[c]);
    }
  }
  const ov = heapView(backend, out);
  ov.set(sumDy, 0);
  ov.set(sumDyX, channels);
  return out;
}

function clipByValueGradKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const { x, dy } = inputs;
  // The bounds as f32, as tfjs's own gradient compares them (scalar tensors): a bound such as 0.1
  // that f32 cannot hold is compared rounded, in the SIMD loop and the JS loop alike.
  const low = Math.fround(attrs.clipValueMin as number);
  const high = Math.fround(attrs.clipValueMax as number);
  const out = backend.makeOutput(x.shape, 'float32');
  const xv = heapView(backend, x);
  const dyv = heapView(backend, dy);
  const ov = heapView(backend, out);
  // Four floats at a time in WebAssembly SIMD where the engine has it; the JS loop does the tail.
  const loops = dy.dtype === 'float32' ? simdLoops(backend) : null;
  const chunks = loops ? Math.floor(xv.length / 4) : 0;
  if (loops && chunks > 0) loops.clipGradient(xv.byteOffset, dyv.byteOffset, ov.byteOffset, low, high, chunks);
  for (let i = 4 * chunks; i < xv.length; i++) {
    const v = xv[i];
    ov[i] = v >= low && v <= high ? dyv[i] : 0;
  }
  return out;
}

export const batchNormGradStatsConfig: tf.KernelConfig = {
  kernelName: BATCH_NORM_GRAD_STATS,
  backendName: 'wasm',
  kernelFunc: batchNormGradStatsKernel as unknown as tf.KernelFunc,
};

export const clipByValueGradConfig: tf.KernelConfig = {
  kernelName: CLIP_BY_VALUE_GRAD,
  backendName: 'wasm',
  kernelFunc: clipByValueGradKernel as unknown as tf.KernelFunc,
};

function activeBackendHas(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/**
 * y = (x - mean) * s + offset with s = scale / sqrt(var + eps) gives, per channel,
 * dx = dy * s, dmean = -sum(dy) * s, dvar = -0.5 * s / (var + eps) * sum(dy (x - mean)),
 * dscale = sum(dy (x - mean)) / sqrt(var + eps), doffset = sum(dy).
 */
function batchNormGradConfig(builtin: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: tf.FusedBatchNorm,
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved;
      const channels = x.shape[x.rank - 1];
      const perChannel = (t: tf.Tensor | undefined) => t == null || (t.rank === 1 && t.shape[0] === channels);
      const fast = activeBackendHas(BATCH_NORM_GRAD_STATS) && x.dtype === 'float32' && x.rank >= 2 && perChannel(mean) && perChannel(variance) && perChannel(scale);
      if (!fast) return builtin.gradFunc(dy, saved, attrs);
      const dyTensor = dy as tf.Tensor;
      const epsilon = (attrs as unknown as { varianceEpsilon: number }).varianceEpsilon;
      const invStd = tf.rsqrt(tf.add(variance, tf.scalar(epsilon)));
      const s = scale == null ? invStd : tf.mul(scale, invStd);
      // Made here, not in a gradient thunk: the engine disposes what a thunk makes but returns.
      const [sumDy, sumDyX] = tf.unstack(tf.engine().runKernel(BATCH_NORM_GRAD_STATS, { x, dy: dyTensor, mean } as unknown as tf.NamedTensorMap, {}) as tf.Tensor);
      return {
        x: () => tf.mul(dyTensor, s),
        mean: () => tf.neg(tf.mul(sumDy, s)),
        variance: () => tf.mul(tf.mul(sumDyX, s), tf.mul(tf.square(invStd), tf.scalar(-0.5))),
        scale: () => tf.mul(sumDyX, invStd),
        offset: () => tf.clone(sumDy),
      };
    },
  };
}

function clipGradConfig(builtin: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: tf.ClipByValue,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      if (!activeBackendHas(CLIP_BY_VALUE_GRAD) || x.dtype !== 'float32') return builtin.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(CLIP_BY_VALUE_GRAD, { x, dy } as unknown as tf.NamedTensorMap, attrs) as tf.Tensor };
    },
  };
}

const builtinGradients = new Map<string, tf.GradConfig>();

/** Replaces tfjs's BatchNorm and ClipByValue gradients with ours (once; tfjs's stay the fallback). */
export function registerElementwiseGradients(): void {
  for (const [name, make] of [[tf.FusedBatchNorm, batchNormGradConfig], [tf.ClipByValue, clipGradConfig]] as const) {
    if (builtinGradients.has(name)) continue;
    const builtin = tf.getGradient(name);
    if (!builtin) throw new Error(`tfjs has no gradient for ${name}`);
    builtinGradients.set(name, builtin);
    tf.registerGradient(make(builtin));
  }
}
