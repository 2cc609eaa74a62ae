// DepthwiseConv2dNativeBackpropFilter / ...BackpropInput for WASM as direct loops over the WASM
// heap: a depthwise conv does C times fewer multiply-adds than a full one, so a JS loop is cheap.
// Forward: y[n,oy,ox,c*m+q] = sum_{i,j} xpad[n, oy*sh+i*dh, ox*sw+j*dw, c] * w[i,j,c,q].
import { tf } from '../tf.js';
import { assertChannelsLast, heapView, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';

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

/** dW[i,j,c,q] = sum_{n,oy,ox} xpad[n, oy*sh+i*dh, ox*sw+j*dw, c] * dy[n,oy,ox,c*m+q]. */
export function depthwiseFilterGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, filterShape: number[], g: DepthwiseGeometry): TensorInfo {
  const info = depthwiseInfo(x.shape, filterShape, g);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  const multiplier = outChannels / inChannels;
  const out = backend.makeOutput(filterShape, 'float32');
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
  (heapView(backend, out) as Float32Array).set(acc);
  return out;
}

/** dx[n, oy*sh+i*dh, ox*sw+j*dw, c] += sum_q dy[n,oy,ox,c*m+q] * w[i,j,c,q] (padding dropped). */
export function depthwiseInputGradient(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, inputShape: number[], g: DepthwiseGeometry): TensorInfo {
  const info = depthwiseInfo(inputShape, filter.shape, g);
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
