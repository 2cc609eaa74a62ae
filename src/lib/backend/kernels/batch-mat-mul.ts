// BatchMatMul and _FusedMatMul for WASM: the backend sends a product to XNNPACK only when neither
// operand is transposed, and otherwise runs a naive triple loop, measured 10-50x slower; so
// transposed operands of a single (unbatched) product are transposed first, then multiplied plain.
// Every dense layer's backward pass multiplies by transposed operands.
import { tf } from '../tf.js';
import { builtinKernelName, runBuiltinKernel, withScratch, type KernelArgs, type TensorInfo } from './scratch.js';

function isSingleMatrix(shape: number[]): boolean {
  return tf.util.sizeFromShape(shape.slice(0, -2)) === 1;
}

function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, axis) => axis);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

/** Runs the backend's own `kernelName` with operands made untransposed where that is possible. */
function untransposedMatMul(kernelName: string): (args: KernelArgs) => TensorInfo {
  const builtin = builtinKernelName(kernelName);
  return ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const { a, b } = inputs;
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    const plainRun = !(transposeA || transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32' || !isSingleMatrix(a.shape) || !isSingleMatrix(b.shape);
    if (plainRun) return runBuiltinKernel(kernelName, { inputs, backend, attrs });
    return withScratch(backend, (scratch) => {
      const plainA = transposeA ? scratch.transpose(a, lastTwoSwapped(a.shape.length)) : a;
      const plainB = transposeB ? scratch.transpose(b, lastTwoSwapped(b.shape.length)) : b;
      return scratch.run(builtin, { ...inputs, a: plainA, b: plainB }, { ...attrs, transposeA: false, transposeB: false });
    });
  };
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: untransposedMatMul(tf.BatchMatMul) as unknown as tf.KernelFunc,
};

export const fusedMatMulConfig: tf.KernelConfig = {
  kernelName: tf._FusedMatMul,
  backendName: 'wasm',
  kernelFunc: untransposedMatMul(tf._FusedMatMul) as unknown as tf.KernelFunc,
};
