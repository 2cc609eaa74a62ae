// MaxPoolGrad for WASM: each window's dy goes to the first maximum of its input window (as on the
// CPU backend), found in one pass over the channels-contiguous NHWC data. The backend's own kernel was the largest
// cost of a max-pooling CNN's training step; it also starts its search at FLT_MIN and keeps the
// last maximum, so windows of zeros or negatives send their gradient to the wrong pixel.
import { tf } from '../tf.js';
import { heapView, type BackendWasm, type KernelArgs, type TensorInfo } from './scratch.js';

interface PoolGeometry {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** dx[argmax of window] += dy[window] for every output position and channel. */
export function maxPoolGradient(backend: BackendWasm, dy: TensorInfo, input: TensorInfo, g: PoolGeometry): TensorInfo {
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], g.filterSize, g.strides, 1, g.pad, g.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth, strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth, dilationHeight, dilationWidth, padInfo } = info;
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = heapView(backend, out) as Float32Array;
  dx.fill(0);
  const x = heapView(backend, input);
  const dyv = heapView(backend, dy);
  const best = new Float32Array(channels);
  const bestAt = new Int32Array(channels);
  for (let n = 0; n < batchSize; n++) {
    for (let oy = 0; oy < outHeight; oy++) {
      const yStart = oy * strideHeight - padInfo.top;
      for (let ox = 0; ox < outWidth; ox++) {
        const xStart = ox * strideWidth - padInfo.left;
        let seen = false;
        for (let wy = 0; wy < effectiveFilterHeight; wy += dilationHeight) {
          const iy = yStart + wy;
          if (iy < 0 || iy >= inHeight) continue;
          for (let wx = 0; wx < effectiveFilterWidth; wx += dilationWidth) {
            const ix = xStart + wx;
            if (ix < 0 || ix >= inWidth) continue;
            const base = ((n * inHeight + iy) * inWidth + ix) * channels;
            if (!seen) {
              for (let c = 0; c < channels; c++) {
                best[c] = x[base + c];
                bestAt[c] = base + c;
              }
              seen = true;
              continue;
            }
            for (let c = 0; c < channels; c++) {
              const value = x[base + c];
              if (value > best[c]) {
                best[c] = value;
                bestAt[c] = base + c;
              }
            }
          }
        }
        if (!seen) continue;
        const dyBase = ((n * outHeight + oy) * outWidth + ox) * channels;
        for (let c = 0; c < channels; c++) dx[bestAt[c]] += dyv[dyBase + c];
      }
    }
  }
  return out;
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }: KernelArgs) =>
    maxPoolGradient(backend, inputs.dy, inputs.input, {
      filterSize: attrs.filterSize as [number, number],
      strides: attrs.strides as [number, number],
      pad: attrs.pad as PoolGeometry['pad'],
      dimRoundingMode: attrs.dimRoundingMode as PoolGeometry['dimRoundingMode'],
    })) as unknown as tf.KernelFunc,
};
