// Mean and Sum over every axis but the last, for WASM: BatchNorm's moments in training and the
// bias and BatchNorm-offset gradients reduce an NHWC tensor to its channels. The backend's own
// kernels reduce innermost axes only, so they first transpose the whole tensor; this sums the
// rows in place, four channels at a time in WebAssembly SIMD (simd.ts). Other reductions, and
// channel counts not in fours, run the backend's own kernel.
import { tf } from '../tf.js';
import { float32Output, heapView, runBuiltinKernel, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';
import { blockedSums, simdLoops, SUM_BLOCK_ROWS } from './simd.js';

/** Column sums of `x` seen as [rows, channels], in f64; null where this does not apply. */
function columnSums(backend: BackendWasm, x: TensorInfo, axis: unknown): Float64Array | null {
  const rank = x.shape.length;
  if (x.dtype !== 'float32' || rank < 2) return null;
  const axes = [...tf.util.parseAxisParam(axis as number | number[], x.shape)].sort((a, b) => a - b);
  if (axes.length !== rank - 1 || axes.some((a, i) => a !== i)) return null;
  const channels = x.shape[rank - 1];
  if (channels % 4 !== 0 || channels === 0) return null;
  const loops = simdLoops(backend);
  if (!loops) return null;
  const rows = tf.util.sizeFromShape(x.shape) / channels;
  const xPtr = heapView(backend, x).byteOffset;
  const row = channels * 4;
  return blockedSums(backend, rows, SUM_BLOCK_ROWS, channels, (scratch, start, count) => loops.sumRowsAccumulate(xPtr + start * row, row, scratch, channels / 4, count));
}

function columnReduce(kernelName: string, finish: (sums: Float64Array, rows: number) => Float64Array): tf.KernelFunc {
  return (({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const { x } = inputs;
    const sums = columnSums(backend, x, attrs.axis);
    if (!sums) return runBuiltinKernel(kernelName, { inputs, backend, attrs });
    const channels = sums.length;
    const shape = attrs.keepDims ? [...x.shape.slice(0, -1).map(() => 1), channels] : [channels];
    return float32Output(backend, shape, finish(sums, tf.util.sizeFromShape(x.shape) / channels));
  }) as unknown as tf.KernelFunc;
}

export const columnMeanConfig: tf.KernelConfig = {
  kernelName: tf.Mean,
  backendName: 'wasm',
  kernelFunc: columnReduce(tf.Mean, (sums, rows) => sums.map((s) => s / rows)),
};

export const columnSumConfig: tf.KernelConfig = {
  kernelName: tf.Sum,
  backendName: 'wasm',
  kernelFunc: columnReduce(tf.Sum, (sums) => sums),
};
