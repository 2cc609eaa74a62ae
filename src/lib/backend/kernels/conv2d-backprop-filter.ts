// Conv2DBackpropFilter for WASM, re-expressed as one forward convolution (XNNPACK):
// dW[i,j,ci,co] = sum_{n,oy,ox} xpad[n, oy*s+i, ox*s+j, ci] * dy[n,oy,ox,co] is a correlation of
// x seen as Ci single-channel images with N channels ([Ci,H,W,N]) by dy seen as a filter
// [Ho,Wo,N,Co] dilated by the forward stride. Where the channels allow (in fours and eights) and the
// map is not tiny, SIMD tiles of x^T dy per filter tap replace it (3-4x faster on large maps: the
// XNNPACK conv packs a dy-sized filter and runs a 3x3-output conv with a huge kernel). A 1x1 stride-1
// conv (MobileNetV2's pointwise layers) is x^T dy: the same SIMD tiles, else one matrix product.
import { tf } from '../tf.js';
import { assertChannelsLast, axisWindow, builtinKernelName, cropSpatial, float32Output, heapView, withScratch, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';
import { blockedSums, simdLoops, type SimdLoops } from './simd.js';

/** Size of dy from which the zero row/column that makes Ho*Wo odd pays for itself. */
const ODD_PAD_MIN_SIZE = 1 << 16;

export interface Conv2DGradientGeometry {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Filter gradient of an NHWC conv2d (dilation 1) as a forward conv over transposed tensors. */
export function conv2dFilterGradient(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  filterShape: [number, number, number, number],
  geometry: Conv2DGradientGeometry,
): TensorInfo {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, geometry.strides, 1, geometry.pad, geometry.dimRoundingMode, false, 'channelsLast');
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, inHeight, inWidth, outHeight, outWidth, padInfo } = info;
  // The backend transposes a conv filter to [Co, K] when it first sees it; with K a multiple of a
  // large power of two every write of that transpose hits one cache set (measured 3x slower), so
  // a big dy gets one zero row/column to make Ho*Wo odd.
  const oddPad = tf.util.sizeFromShape(dy.shape) >= ODD_PAD_MIN_SIZE;
  const extraRows = oddPad && outHeight % 2 === 0 ? 1 : 0;
  const extraCols = oddPad && outWidth % 2 === 0 ? 1 : 0;
  if (fh === 1 && fw === 1 && sh === 1 && sw === 1 && padInfo.top === 0 && padInfo.left === 0) return pointwiseFilterGradient(backend, x, dy);
  const bySimd = tapsFilterGradientSimd(backend, x, dy, info);
  if (bySimd) return bySimd;
  const filterRows = outHeight + extraRows;
  const filterCols = outWidth + extraCols;
  return withScratch(backend, (scratch) => {
    // The rows of padded x that the gradient reads: (Ho-1)*sh + fh from -top; the rest is cropped.
    const rows = axisWindow(inHeight, padInfo.top, (filterRows - 1) * sh + fh - padInfo.top - inHeight);
    const cols = axisWindow(inWidth, padInfo.left, (filterCols - 1) * sw + fw - padInfo.left - inWidth);
    const xCropped = cropSpatial(scratch, x, rows, cols);
    const xAsBatchOfChannels = scratch.transpose(xCropped, [3, 1, 2, 0]);
    const dyOdd = extraRows || extraCols ? scratch.pad(dy, [[0, 0], [0, extraRows], [0, extraCols], [0, 0]]) : dy;
    const dyAsFilter = scratch.transpose(dyOdd, [1, 2, 0, 3]);
    const grad = scratch.conv2d(
      xAsBatchOfChannels, dyAsFilter, [1, 1],
      { top: rows.padBefore, bottom: rows.padAfter, left: cols.padBefore, right: cols.padAfter }, [sh, sw]);
    return scratch.transpose(grad, [1, 2, 0, 3]);
  });
}

/**
 * 1x1 stride-1 conv: dW[ci,co] = sum_m x[m,ci] dy[m,co], one product x^T dy, or (dy^T x)^T when
 * dy has fewer channels: the backend's matmul goes to XNNPACK only with untransposed operands,
 * so the operand with fewer channels is the one transposed.
 */
function pointwiseFilterGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo): TensorInfo {
  const inChannels = x.shape[3];
  const outChannels = dy.shape[3];
  const rows = tf.util.sizeFromShape(x.shape) / inChannels;
  const bySimd = pointwiseFilterGradientSimd(backend, x, dy, rows, inChannels, outChannels);
  if (bySimd) return bySimd;
  const matMul = builtinKernelName(tf.BatchMatMul);
  return withScratch(backend, (scratch) => {
    const x3 = scratch.reshape(x, [1, rows, inChannels]);
    const dy3 = scratch.reshape(dy, [1, rows, outChannels]);
    if (inChannels <= outChannels) {
      const product = scratch.run(matMul, { a: scratch.transpose(x3, [0, 2, 1]), b: dy3 }, { transposeA: false, transposeB: false });
      return scratch.reshape(product, [1, 1, inChannels, outChannels]);
    }
    const product = scratch.run(matMul, { a: scratch.transpose(dy3, [0, 2, 1]), b: x3 }, { transposeA: false, transposeB: false });
    return scratch.reshape(scratch.transpose(product, [0, 2, 1]), [1, 1, inChannels, outChannels]);
  });
}

/**
 * What the SIMD tiles (simd.ts outerGridAccumulate) read: the loops and x, dy in place on the heap, for
 * NHWC float32 x with input channels in fours and dy with output channels in eights; null otherwise.
 */
function tileOperands(backend: BackendWasm, x: TensorInfo, dy: TensorInfo): { loops: SimdLoops; xPtr: number; dyPtr: number } | null {
  if (x.shape[3] % 4 !== 0 || dy.shape[3] % 8 !== 0 || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const loops = simdLoops(backend);
  if (!loops) return null;
  return { loops, xPtr: heapView(backend, x).byteOffset, dyPtr: heapView(backend, dy).byteOffset };
}

/** Bytes of x and dy rows a block of the SIMD product reads: small enough to stay in a core's L2 cache while every tile reads them. */
const POINTWISE_BLOCK_BYTES = 1 << 19;
/** Fewest rows (N*H*W) for which the SIMD product beats the matrix product. */
const POINTWISE_MIN_ROWS = 1024;

/**
 * x^T dy in 4 x 8 tiles (simd.ts outerGridAccumulate), for input channels in fours and output channels
 * in eights; null where that does not apply. The matrix product packs its whole right operand (an
 * activation) into XNNPACK's layout on every call, since each training step brings new tensors:
 * measured 3-5x the product's own time on MobileNetV2's shapes. This packs nothing. Rows go in blocks
 * that stay in cache while the tiles read them; each block's f32 sums join f64 totals (blockedSums).
 */
function pointwiseFilterGradientSimd(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, rows: number, inChannels: number, outChannels: number): TensorInfo | null {
  // Few rows (the last 3x3 maps) and many channels: the tile calls and f64 totals cost more than the
  // packing they save (measured 13.0 against 9.9 ms at 288 rows, 320 x 1280).
  const operands = rows >= POINTWISE_MIN_ROWS ? tileOperands(backend, x, dy) : null;
  if (!operands) return null;
  const { loops, xPtr, dyPtr } = operands;
  const xRow = inChannels * 4;
  const dyRow = outChannels * 4;
  const blockRows = Math.max(16, Math.min(1024, Math.floor(POINTWISE_BLOCK_BYTES / (xRow + dyRow))));
  const totals = blockedSums(backend, rows, blockRows, inChannels * outChannels, (scratch, start, count) => {
    for (let c = 0; c < inChannels; c += 4) {
      for (let o = 0; o < outChannels; o += 8) {
        loops.outerGridAccumulate(xPtr + start * xRow + c * 4, xRow, 0, dyPtr + start * dyRow + o * 4, dyRow, 0, scratch + (c * outChannels + o) * 4, dyRow, count, 1);
      }
    }
  });
  return float32Output(backend, [1, 1, inChannels, outChannels], totals);
}

/** Output rows of one band: every tap's tiles read the same few rows of x and dy, which stay in cache. */
const TAPS_BAND_ROWS = 4;
/**
 * Smallest output map (Ho*Wo) for the SIMD taps: below it each tile call has too few rows for its cost.
 * Measured against the XNNPACK formulation, batch 32, 3x3: 3.6x faster at 64x64x32, 2.7x at 8x8x128,
 * even at 4x4x256, 2.2x slower at 2x2x512.
 */
const TAPS_MIN_MAP = 17;

/**
 * Any filter (dilation 1) for input channels in fours and output channels in eights: for each image and
 * band of output rows, each tap's x^T dy over the output rows and columns where the tap falls inside x
 * (padding adds nothing), in 4 x 8 SIMD tiles (simd.ts outerGridAccumulate) that read x and dy in place:
 * no transposes, nothing packed. Each image's f32 sums join f64 totals (blockedSums). Null where it does not apply.
 */
function tapsFilterGradientSimd(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo | null {
  const { batchSize, inChannels, outChannels, filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, inHeight, inWidth, outHeight, outWidth, padInfo } = info;
  const operands = outHeight * outWidth >= TAPS_MIN_MAP ? tileOperands(backend, x, dy) : null;
  if (!operands) return null;
  const { loops, xPtr, dyPtr } = operands;
  const xPixel = inChannels * 4;
  const dyPixel = outChannels * 4;
  const totals = blockedSums(backend, batchSize, 1, fh * fw * inChannels * outChannels, (scratch, n) => {
    for (let band = 0; band < outHeight; band += TAPS_BAND_ROWS) {
      const bandEnd = Math.min(outHeight, band + TAPS_BAND_ROWS);
      for (let i = 0; i < fh; i++) {
        // Output rows whose input row oy*sh + i - top lies inside x.
        const rowStart = Math.max(band, Math.ceil((padInfo.top - i) / sh));
        const rowEnd = Math.min(bandEnd, Math.floor((inHeight - 1 + padInfo.top - i) / sh) + 1);
        if (rowEnd <= rowStart) continue;
        for (let j = 0; j < fw; j++) {
          const colStart = Math.max(0, Math.ceil((padInfo.left - j) / sw));
          const colEnd = Math.min(outWidth, Math.floor((inWidth - 1 + padInfo.left - j) / sw) + 1);
          if (colEnd <= colStart) continue;
          const xBase = xPtr + ((n * inHeight + rowStart * sh + i - padInfo.top) * inWidth + colStart * sw + j - padInfo.left) * xPixel;
          const dyBase = dyPtr + ((n * outHeight + rowStart) * outWidth + colStart) * dyPixel;
          const accBase = scratch + (i * fw + j) * inChannels * dyPixel;
          for (let c = 0; c < inChannels; c += 4) {
            for (let o = 0; o < outChannels; o += 8) {
              loops.outerGridAccumulate(
                xBase + c * 4, sw * xPixel, sh * inWidth * xPixel, dyBase + o * 4, dyPixel, outWidth * dyPixel,
                accBase + (c * outChannels + o) * 4, dyPixel, colEnd - colStart, rowEnd - rowStart);
            }
          }
        }
      }
    }
  });
  return float32Output(backend, [fh, fw, inChannels, outChannels], totals);
}

function conv2dBackpropFilterKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  assertChannelsLast('Conv2DBackpropFilter', attrs.dataFormat);
  return conv2dFilterGradient(backend, inputs.x, inputs.dy, attrs.filterShape as [number, number, number, number], {
    strides: attrs.strides as [number, number],
    pad: attrs.pad as Conv2DGradientGeometry['pad'],
    dimRoundingMode: attrs.dimRoundingMode as Conv2DGradientGeometry['dimRoundingMode'],
  });
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilterKernel as unknown as tf.KernelFunc,
};
