// UnsortedSegmentSum for WASM (the gradient of gather, i.e. of embedding lookups): one pass adding
// each row of x into its segment's row. Measured far faster than a one-hot matmul, which costs
// numSegments x rows x width multiply-adds for a few thousand real additions.
import { tf } from '../tf.js';
import { heapView, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';

/**
 * out[segmentIds[r], ...] += x[r, ...] for every leading index r; ids outside [0, numSegments)
 * are dropped, as the CPU backend does. segmentIds' shape is a prefix of x's.
 */
export function unsortedSegmentSum(backend: BackendWasm, x: TensorInfo, segmentIds: TensorInfo, numSegments: number): TensorInfo {
  const idRank = segmentIds.shape.length;
  for (let axis = 0; axis < idRank; axis++) {
    if (segmentIds.shape[axis] !== x.shape[axis]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] is not a prefix of x shape [${x.shape}]`);
    }
  }
  const rowWidth = tf.util.sizeFromShape(x.shape.slice(idRank));
  const rowCount = tf.util.sizeFromShape(segmentIds.shape);
  const dtype = x.dtype === 'int32' ? 'int32' : 'float32';
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idRank)], dtype);
  const sums = heapView(backend, out);
  sums.fill(0);
  const values = heapView(backend, x);
  const ids = heapView(backend, segmentIds);
  for (let r = 0; r < rowCount; r++) {
    const segment = ids[r];
    if (segment < 0 || segment >= numSegments) continue;
    const to = segment * rowWidth;
    const from = r * rowWidth;
    for (let k = 0; k < rowWidth; k++) sums[to + k] += values[from + k];
  }
  return out;
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: KernelArgs) =>
    unsortedSegmentSum(backend, inputs.x, inputs.segmentIds, attrs.numSegments as number)) as unknown as tf.KernelFunc,
};
