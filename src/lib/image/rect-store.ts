// Decoded images kept as bytes at a margin above a rectangular input (height x width), for random
// crops and flips while training; embed takes the centre crop of the same (storedSizeFor each side).
import { decodeRecords, imageToBytes, type ImageRecord } from './records.js';
import type { SkipCounter } from './skips.js';
import type { Random } from '../random.js';

export interface RectImageStore {
  pixels: Uint8Array[];
  storedHeight: number;
  storedWidth: number;
}

/** Decodes every image at storedHeight x storedWidth (cover fit); returns the store and each stored image's index in `records` (told apart by their record objects). */
export async function decodeRectStore(
  records: ImageRecord[], storedHeight: number, storedWidth: number, skips: SkipCounter, io: { stderr: NodeJS.WritableStream }, commandName: string, onImage?: () => void,
): Promise<{ store: RectImageStore; sourceIndex: number[] }> {
  const indexOf = new Map(records.map((r, i) => [r.record, i]));
  const pixels: Uint8Array[] = [];
  const sourceIndex: number[] = [];
  for await (const r of decodeRecords(records, { width: storedWidth, height: storedHeight, fit: 'cover' }, skips, io, commandName)) {
    pixels.push(imageToBytes(r.image));
    sourceIndex.push(indexOf.get(r.record)!);
    onImage?.();
  }
  return { store: { pixels, storedHeight, storedWidth }, sourceIndex };
}

/** [n, height, width, 3] floats in [0, 1]: the centre crop, or with `random` a random crop and flip. */
export function rectBatchPixels(store: RectImageStore, images: ArrayLike<number>, height: number, width: number, random?: Random): Float32Array {
  const { storedHeight, storedWidth } = store;
  const out = new Float32Array(images.length * height * width * 3);
  for (let n = 0; n < images.length; n++) {
    const src = store.pixels[images[n]];
    const x0 = random ? random.int(storedWidth - width + 1) : (storedWidth - width) >> 1;
    const y0 = random ? random.int(storedHeight - height + 1) : (storedHeight - height) >> 1;
    const flip = random ? random.next() < 0.5 : false;
    let o = n * height * width * 3;
    for (let y = 0; y < height; y++) {
      const row = (y + y0) * storedWidth;
      for (let x = 0; x < width; x++) {
        const s = (row + (flip ? x0 + width - 1 - x : x0 + x)) * 3;
        out[o++] = src[s] / 255;
        out[o++] = src[s + 1] / 255;
        out[o++] = src[s + 2] / 255;
      }
    }
  }
  return out;
}
