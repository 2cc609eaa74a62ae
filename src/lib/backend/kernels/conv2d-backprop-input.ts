// Conv2DBackpropInput for WASM as one forward convolution (XNNPACK). With stride s the input
// gradient splits by output phase: rows h with (h + padTop) mod s = r receive only the filter taps
// i = r, r+s, ...; so dx is one stride-1 conv of the undilated dy with a filter holding all s*s
// phase sub-filters (rotated 180 degrees, in/out channels swapped) side by side as output channels,
// followed by a depth-to-space interleave. No multiply-adds are spent on the zeros of a dilated dy.
import { tf } from '../tf.js';
import { assertChannelsLast, axisWindow, cropSpatial, heapView, withScratch, type BackendWasm, type KernelArgs, type KernelScratch, type TensorInfo } from './scratch.js';
import type { Conv2DGradientGeometry } from './conv2d-backprop-filter.js';

/**
 * Phase filter P[t,u,co,(rh,rw,ci)] = w[rh + (kh-1-t)*sh, rw + (kw-1-u)*sw, ci, co], zero where the
 * tap falls outside the filter; kh = ceil(fh/sh), kw = ceil(fw/sw).
 */
function phaseFilter(scratch: KernelScratch, filter: TensorInfo, sh: number, sw: number): TensorInfo {
  const [fh, fw, ci, co] = filter.shape;
  const kh = Math.ceil(fh / sh);
  const kw = Math.ceil(fw / sw);
  const outChannels = sh * sw * ci;
  const phase = scratch.make([kh, kw, co, outChannels], 'float32');
  const p = heapView(scratch.backend, phase);
  const w = heapView(scratch.backend, filter);
  p.fill(0);
  for (let t = 0; t < kh; t++) {
    for (let u = 0; u < kw; u++) {
      for (let rh = 0; rh < sh; rh++) {
        const i = rh + (kh - 1 - t) * sh;
        if (i >= fh) continue;
        for (let rw = 0; rw < sw; rw++) {
          const j = rw + (kw - 1 - u) * sw;
          if (j >= fw) continue;
          const wBase = (i * fw + j) * ci * co;
          const pBase = (t * kw + u) * co * outChannels + (rh * sw + rw) * ci;
          for (let c = 0; c < ci; c++) {
            for (let o = 0; o < co; o++) p[pBase + o * outChannels + c] = w[wBase + c * co + o];
          }
        }
      }
    }
  }
  return phase;
}

/** Input gradient of an NHWC conv2d (dilation 1) as a forward conv of dy with the phase filter. */
export function conv2dInputGradient(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  inputShape: [number, number, number, number],
  geometry: Conv2DGradientGeometry,
): TensorInfo {
  const info = tf.backend_util.computeConv2DInfo(
    inputShape, filter.shape as [number, number, number, number], geometry.strides, 1, geometry.pad, geometry.dimRoundingMode, false, 'channelsLast');
  const { batchSize, inChannels, filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, inHeight, inWidth, outHeight, outWidth, padInfo } = info;
  const kh = Math.ceil(fh / sh);
  const kw = Math.ceil(fw / sw);
  // Padded-input row m = q*sh + r holds dx row m - top; phase rows q cover m in [top, top + H).
  const q0h = Math.floor(padInfo.top / sh);
  const qh = Math.ceil((padInfo.top + inHeight) / sh) - q0h;
  const q0w = Math.floor(padInfo.left / sw);
  const qw = Math.ceil((padInfo.left + inWidth) / sw) - q0w;
  return withScratch(backend, (scratch) => {
    // Phase row q reads dy rows q-(kh-1) .. q.
    const rows = axisWindow(outHeight, kh - 1 - q0h, q0h + qh - outHeight);
    const cols = axisWindow(outWidth, kw - 1 - q0w, q0w + qw - outWidth);
    const phases = scratch.conv2d(
      cropSpatial(scratch, dy, rows, cols), phaseFilter(scratch, filter, sh, sw), [1, 1],
      { top: rows.padBefore, bottom: rows.padAfter, left: cols.padBefore, right: cols.padAfter }, [1, 1]);
    if (sh === 1 && sw === 1) return phases;
    // [N*Qh, Qw, sh, sw*Ci] -> [N*Qh, sh, Qw, sw*Ci] is the depth-to-space interleave.
    const split = scratch.reshape(phases, [batchSize * qh, qw, sh, sw * inChannels]);
    const interleaved = scratch.transpose(split, [0, 2, 1, 3]);
    const full = scratch.reshape(interleaved, [batchSize, qh * sh, qw * sw, inChannels]);
    const rowStart = padInfo.top - q0h * sh;
    const colStart = padInfo.left - q0w * sw;
    if (rowStart === 0 && colStart === 0 && qh * sh === inHeight && qw * sw === inWidth) return full;
    return scratch.slice(full, [0, rowStart, colStart, 0], [batchSize, inHeight, inWidth, inChannels]);
  });
}

function conv2dBackpropInputKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  assertChannelsLast('Conv2DBackpropInput', attrs.dataFormat);
  return conv2dInputGradient(backend, inputs.dy, inputs.filter, attrs.inputShape as [number, number, number, number], {
    strides: attrs.strides as [number, number],
    pad: attrs.pad as Conv2DGradientGeometry['pad'],
    dimRoundingMode: attrs.dimRoundingMode as Conv2DGradientGeometry['dimRoundingMode'],
  });
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInputKernel as unknown as tf.KernelFunc,
};
