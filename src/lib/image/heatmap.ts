// A saliency map drawn over its photo as a PNG a person can look at.
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

/** Blue -> cyan -> green -> yellow -> red for t in [0, 1]. */
export function heatColour(t: number): [number, number, number] {
  const v = Math.max(0, Math.min(1, t));
  const r = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 1)));
  return [r, g, b];
}

/** PNG of the photo (HWC floats) blended half and half with the min-max scaled map, upscaled to `displaySize`. */
export async function saliencyOverlayPng(photo: Float32Array, map: Float32Array, height: number, width: number, displaySize = 256): Promise<Buffer> {
  let min = Infinity;
  let max = -Infinity;
  for (const v of map) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max - min || 1;
  const rgb = Buffer.alloc(height * width * 3);
  for (let i = 0; i < height * width; i++) {
    const colour = heatColour((map[i] - min) / span);
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.round(255 * (0.5 * photo[i * 3 + c] + 0.5 * colour[c]));
  }
  const scale = Math.max(1, Math.round(displaySize / Math.max(height, width)));
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .resize(width * scale, height * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
}
