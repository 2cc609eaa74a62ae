// Lanczos-3 resampling of small 8-bit images in plain JS, for the JPEG fast path (jpeg-fast.ts):
// at 100-250 px libvips's per-call pipeline costs more than the arithmetic. Separable, centres at
// half pixels, the kernel widened by the shrink factor when shrinking (antialiasing), edges
// extended: what libvips's reduce does, in floating point instead of its fixed-point masks, so
// results differ from sharp's by a grey level at most here and there (test/lib/jpeg-fast.test.ts).

const LOBES = 3;

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -LOBES || x >= LOBES) return 0;
  const px = Math.PI * x;
  return (LOBES * Math.sin(px) * Math.sin(px / LOBES)) / (px * px);
}

/** Catmull-Rom, libvips's "bicubic" interpolator, which its resize uses to enlarge. */
function catmullRom(x: number): number {
  const a = Math.abs(x);
  if (a < 1) return (1.5 * a - 2.5) * a * a + 1;
  if (a < 2) return ((-0.5 * a + 2.5) * a - 4) * a + 2;
  return 0;
}

/** Per output position along one axis: `taps` source indices (clamped) and weights summing to 1. */
interface AxisWeights {
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

/**
 * Weights for output positions first .. first + count - 1 of an axis of inSize pixels resized to
 * outSize. Shrinking: Lanczos-3 widened by the factor, centres at half pixels (libvips's reduce);
 * enlarging: Catmull-Rom sampled at x / scale - 0.5 (libvips's affine, as measured on sharp).
 */
function axisWeights(inSize: number, outSize: number, scale: number, first: number, count: number): AxisWeights {
  const enlarge = scale > 1;
  const step = enlarge ? 1 / scale : inSize / outSize;
  const widen = enlarge ? 1 : step;
  const support = enlarge ? 2 : LOBES * widen;
  // Every source index within the support (floor(c + s) - floor(c - s) <= ceil(2s) of them),
  // padded with zero weights to a multiple of 4: the loops below take taps four at a time.
  const taps = 4 * Math.ceil(Math.ceil(2 * support) / 4);
  const index = new Int32Array(count * taps);
  const weight = new Float32Array(count * taps);
  for (let i = 0; i < count; i++) {
    const centre = enlarge ? (first + i) * step - 0.5 : (first + i + 0.5) * step - 0.5;
    const start = Math.floor(centre - support) + 1;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const w = enlarge ? catmullRom(start + k - centre) : lanczos3((start + k - centre) / widen);
      index[i * taps + k] = Math.min(inSize - 1, Math.max(0, start + k));
      weight[i * taps + k] = w;
      sum += w;
    }
    for (let k = 0; k < taps; k++) weight[i * taps + k] /= sum;
  }
  return { taps, index, weight };
}

/**
 * Resizes `pixels` (rows of `channels` bytes a pixel, RGB first) to outWidth x outHeight and returns
 * the window of width x height at (left, top) of the result as RGB floats in [0, 1], each value a
 * whole grey level / 255 as if the resized image had been stored as bytes.
 */
export function resampleWindow(
  pixels: Uint8Array,
  inWidth: number,
  inHeight: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  scale: number,
  window: { left: number; top: number; width: number; height: number },
): Float32Array {
  const { left, top, width, height } = window;
  const h = axisWeights(inWidth, outWidth, scale, left, width);
  const v = axisWeights(inHeight, outHeight, scale, top, height);
  // Only the source rows the window's output rows read.
  let rowFrom = inHeight;
  let rowTo = 0;
  for (const r of v.index) {
    rowFrom = Math.min(rowFrom, r);
    rowTo = Math.max(rowTo, r);
  }
  const rows = rowTo - rowFrom + 1;
  const rowLength = width * 3;
  const across = new Float32Array(rows * rowLength);
  const hTaps = h.taps;
  const hIndex = h.index;
  const hWeight = h.weight;
  for (let k = 0; k < hIndex.length; k++) hIndex[k] *= channels;
  for (let y = 0; y < rows; y++) {
    const src = (rowFrom + y) * inWidth * channels;
    let o = y * rowLength;
    for (let x = 0; x < width; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = x * hTaps, end = k + hTaps; k < end; k += 4) {
        const s0 = src + hIndex[k];
        const s1 = src + hIndex[k + 1];
        const s2 = src + hIndex[k + 2];
        const s3 = src + hIndex[k + 3];
        const w0 = hWeight[k];
        const w1 = hWeight[k + 1];
        const w2 = hWeight[k + 2];
        const w3 = hWeight[k + 3];
        r += w0 * pixels[s0] + w1 * pixels[s1] + w2 * pixels[s2] + w3 * pixels[s3];
        g += w0 * pixels[s0 + 1] + w1 * pixels[s1 + 1] + w2 * pixels[s2 + 1] + w3 * pixels[s3 + 1];
        b += w0 * pixels[s0 + 2] + w1 * pixels[s1 + 2] + w2 * pixels[s2 + 2] + w3 * pixels[s3 + 2];
      }
      across[o++] = r;
      across[o++] = g;
      across[o++] = b;
    }
  }
  const out = new Float32Array(width * height * 3);
  const vTaps = v.taps;
  for (let y = 0; y < height; y++) {
    const o = y * rowLength;
    for (let k = y * vTaps, end = k + vTaps; k < end; k += 4) {
      const s0 = (v.index[k] - rowFrom) * rowLength;
      const s1 = (v.index[k + 1] - rowFrom) * rowLength;
      const s2 = (v.index[k + 2] - rowFrom) * rowLength;
      const s3 = (v.index[k + 3] - rowFrom) * rowLength;
      const w0 = v.weight[k];
      const w1 = v.weight[k + 1];
      const w2 = v.weight[k + 2];
      const w3 = v.weight[k + 3];
      for (let i = 0; i < rowLength; i++) out[o + i] += w0 * across[s0 + i] + w1 * across[s1 + i] + w2 * across[s2 + i] + w3 * across[s3 + i];
    }
    for (let i = 0; i < rowLength; i++) {
      const level = Math.round(out[o + i]);
      out[o + i] = (level < 0 ? 0 : level > 255 ? 255 : level) / 255;
    }
  }
  return out;
}
