// DepthwiseConv2dNativeBackpropFilter / ...BackpropInput for WASM as direct loops over the WASM
// heap: a depthwise conv does C times fewer multiply-adds than a full one, so a JS loop is cheap;
// the input gradient of the common case (multiplier 1) runs as a forward depthwise conv in XNNPACK.
// Forward: y[n,oy,ox,c*m+q] = sum_{i,j} xpad[n, oy*sh+i*dh, ox*sw+j*dw, c] * w[i,j,c,q].
import { tf } from '../tf.js';
import { assertChannelsLast, float32Output, heapView, withScratch, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';
import { blockedSums, simdLoops } from './simd.js';

interface DepthwiseGeometry {
  strides: [number, number] | number;
  dilations: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function depthwiseInfo(xShape: number[], filterShape: number[], g: DepthwiseGeometry): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    g.strides, g.dilations ?? 1, g.pad, g.dimRoundingMode, true, 'channelsLast');
}

function geometryOf(attrs: tf.NamedAttrMap): DepthwiseGeometry {
  return {
    strides: attrs.strides as [number, number],
    dilations: (attrs.dilations ?? 1) as [number, number],
    pad: attrs.pad as DepthwiseGeometry['pad'],
    dimRoundingMode: attrs.dimRoundingMode as DepthwiseGeometry['dimRoundingMode'],
  };
}

/**
 * The filter gradient of multiplier 1 with channels in fours, in WebAssembly SIMD (simd.ts): for each
 * image, output row and tap, one call sums the row's valid columns four channels at a time into an
 * f32 scratch; each image's sums are then added into the f64 result, as the JS loop below adds products.
 * Null where it does not apply.
 */
function depthwiseFilterGradientSimd(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, filterShape: number[], info: tf.backend_util.Conv2DInfo): TensorInfo | null {
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  if (outChannels !== channels || channels % 4 !== 0) return null;
  const loops = simdLoops(backend);
  if (!loops) return null;
  const taps = filterHeight * filterWidth * channels;
  const xPtr = heapView(backend, x).byteOffset;
  const dyPtr = heapView(backend, dy).byteOffset;
  const row = channels * 4;
  // One image per block.
  const total = blockedSums(backend, batchSize, 1, taps, (scratch, n) => {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let i = 0; i < filterHeight; i++) {
        const iy = oy * strideHeight + i * dilationHeight - padInfo.top;
        if (iy < 0 || iy >= inHeight) continue;
        for (let j = 0; j < filterWidth; j++) {
          // The columns ox whose input column ix = ox*sw + j*dw - left lies inside the image.
          const shift = j * dilationWidth - padInfo.left;
          const first = Math.max(0, Math.ceil(-shift / strideWidth));
          const last = Math.min(outWidth - 1, Math.floor((inWidth - 1 - shift) / strideWidth));
          if (last < first) continue;
          const ix = first * strideWidth + shift;
          loops.dotRowsAccumulate(
            xPtr + ((n * inHeight + iy) * inWidth + ix) * row, strideWidth * row,
            dyPtr + ((n * outHeight + oy) * outWidth + first) * row, row,
            scratch + (i * filterWidth + j) * row, channels / 4, last - first + 1);
        }
      }
    }
  });
  return float32Output(backend, filterShape, total);
}

/** dW[i,j,c,q] = sum_{n,oy,ox} xpad[n, oy*sh+i*dh, ox*sw+j*dw, c] * dy[n,oy,ox,c*m+q]. */
export function depthwiseFilterGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, filterShape: number[], g: DepthwiseGeometry): TensorInfo {
  const info = depthwiseInfo(x.shape, filterShape, g);
  const bySimd = depthwiseFilterGradientSimd(backend, x, dy, filterShape, info);
  if (bySimd) return bySimd;
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  const multiplier = outChannels / inChannels;
  const xv = heapView(backend, x);
  const dyv = heapView(backend, dy);
  // Accumulate in float64: each weight sums N*Ho*Wo products.
  const acc = new Float64Array(filterHeight * filterWidth * outChannels);
  for (let n = 0; n < batchSize; n++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let i = 0; i < filterHeight; i++) {
        const iy = oy * strideHeight + i * dilationHeight - padInfo.top;
        if (iy < 0 || iy >= inHeight) continue;
        for (let ox = 0; ox < outWidth; ox++) {
          const dyBase = ((n * outHeight + oy) * outWidth + ox) * outChannels;
          for (let j = 0; j < filterWidth; j++) {
            const ix = ox * strideWidth + j * dilationWidth - padInfo.left;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((n * inHeight + iy) * inWidth + ix) * inChannels;
            const wBase = (i * filterWidth + j) * outChannels;
            if (multiplier === 1) {
              for (let c = 0; c < inChannels; c++) acc[wBase + c] += xv[xBase + c] * dyv[dyBase + c];
            } else {
              for (let c = 0; c < inChannels; c++) {
                const xValue = xv[xBase + c];
                for (let q = 0, k = c * multiplier; q < multiplier; q++, k++) acc[wBase + k] += xValue * dyv[dyBase + k];
              }
            }
          }
        }
      }
    }
  }
  return float32Output(backend, filterShape, acc);
}

/**
 * With multiplier 1 and no dilation, dx is a forward depthwise conv (XNNPACK) of dy, spread to
 * stride s with zeros, by the filter rotated 180 degrees: dx[y] = sum_k D[y + top - (fh-1) + k] w[fh-1-k],
 * D[oy*s] = dy[oy]. Null where that needs a negative padding (the loop below takes those).
 */
function depthwiseInputGradientByConv(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo | null {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, padInfo } = info;
  if (outChannels !== inChannels || info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const spreadRows = (outHeight - 1) * sh + 1;
  const spreadCols = (outWidth - 1) * sw + 1;
  const pads = { top: fh - 1 - padInfo.top, left: fw - 1 - padInfo.left, bottom: 0, right: 0 };
  pads.bottom = inHeight + fh - 1 - spreadRows - pads.top;
  pads.right = inWidth + fw - 1 - spreadCols - pads.left;
  if (Math.min(pads.top, pads.left, pads.bottom, pads.right) < 0) return null;
  return withScratch(backend, (scratch) => {
    const rotated = scratch.make([fh, fw, inChannels, 1], 'float32');
    const r = heapView(backend, rotated);
    const w = heapView(backend, filter);
    const tap = fh * fw;
    for (let k = 0; k < tap; k++) r.set(w.subarray((tap - 1 - k) * inChannels, (tap - k) * inChannels), k * inChannels);
    let spread = dy;
    if (sh > 1 || sw > 1) {
      spread = scratch.make([batchSize, spreadRows, spreadCols, inChannels], 'float32');
      const out = heapView(backend, spread);
      const src = heapView(backend, dy);
      out.fill(0);
      for (let n = 0; n < batchSize; n++) {
        for (let oy = 0; oy < outHeight; oy++) {
          for (let ox = 0; ox < outWidth; ox++) {
            const from = ((n * outHeight + oy) * outWidth + ox) * inChannels;
            out.set(src.subarray(from, from + inChannels), ((n * spreadRows + oy * sh) * spreadCols + ox * sw) * inChannels);
          }
        }
      }
    }
    const pad = [[0, 0], [pads.top, pads.bottom], [pads.left, pads.right], [0, 0]];
    return scratch.run(tf.DepthwiseConv2dNative, { x: spread, filter: rotated }, { strides: [1, 1], pad, dilations: [1, 1], dataFormat: 'NHWC', dimRoundingMode: undefined });
  });
}

/** dx[n, oy*sh+i*dh, ox*sw+j*dw, c] += sum_q dy[n,oy,ox,c*m+q] * w[i,j,c,q] (padding dropped). */
export function depthwiseInputGradient(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, inputShape: number[], g: DepthwiseGeometry): TensorInfo {
  const info = depthwiseInfo(inputShape, filter.shape, g);
  const byConv = depthwiseInputGradientByConv(backend, dy, filter, info);
  if (byConv) return byConv;
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  const multiplier = outChannels / inChannels;
  const out = backend.makeOutput(inputShape, 'float32');
  const dx = heapView(backend, out) as Float32Array;
  dx.fill(0);
  const dyv = heapView(backend, dy);
  const wv = heapView(backend, filter);
  for (let n = 0; n < batchSize; n++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let i = 0; i < filterHeight; i++) {
        const iy = oy * strideHeight + i * dilationHeight - padInfo.top;
        if (iy < 0 || iy >= inHeight) continue;
        for (let ox = 0; ox < outWidth; ox++) {
          const dyBase = ((n * outHeight + oy) * outWidth + ox) * outChannels;
          for (let j = 0; j < filterWidth; j++) {
            const ix = ox * strideWidth + j * dilationWidth - padInfo.left;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((n * inHeight + iy) * inWidth + ix) * inChannels;
            const wBase = (i * filterWidth + j) * outChannels;
            if (multiplier === 1) {
              for (let c = 0; c < inChannels; c++) dx[xBase + c] += dyv[dyBase + c] * wv[wBase + c];
            } else {
              for (let c = 0; c < inChannels; c++) {
                let sum = 0;
                for (let q = 0, k = c * multiplier; q < multiplier; q++, k++) sum += dyv[dyBase + k] * wv[wBase + k];
                dx[xBase + c] += sum;
              }
            }
          }
        }
      }
    }
  }
  return out;
}

export const depthwiseConv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: KernelArgs) => {
    assertChannelsLast('DepthwiseConv2dNativeBackpropFilter', attrs.dataFormat);
    return depthwiseFilterGradient(backend, inputs.x, inputs.dy, attrs.filterShape as number[], geometryOf(attrs));
  }) as unknown as tf.KernelFunc,
};

export const depthwiseConv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: KernelArgs) => {
    assertChannelsLast('DepthwiseConv2dNativeBackpropInput', attrs.dataFormat);
    return depthwiseInputGradient(backend, inputs.dy, inputs.filter, attrs.inputShape as number[], geometryOf(attrs));
  }) as unknown as tf.KernelFunc,
};
