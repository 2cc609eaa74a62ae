// Decoded images kept in memory as bytes, and batches of them as float pixels for a model: random
// crops and flips for training, the centre crop for inference.
import type { Random } from '../random.js';
import type { InputSize } from '../models/towers/index.js';

/** Decoded images kept as bytes at storedSize x storedWidth (a margin above the input size for random crops). */
export interface ImageStore {
  pixels: Uint8Array[];
  /** Stored height (and width, when storedWidth is not given). */
  storedSize: number;
  storedWidth?: number;
}

/** An input side (square) or H x W. */
export type InputShape = number | InputSize;

/** Height and width of an input given as a side or H x W. */
export function inputSides(input: InputShape): InputSize {
  return typeof input === 'number' ? { height: input, width: input } : input;
}

/**
 * Pixels of the given images as a [n, size, size, 3] float batch in [0, 1]. With a generator, each
 * image gets a random crop and a random horizontal flip (augmentation); without, the centre crop.
 */
export function batchPixels(store: ImageStore, images: ArrayLike<number>, input: InputShape, random?: Random): Float32Array {
  return cropPixels(store, images, input, random ? drawCrops(store, images.length, input, random) : undefined);
}

/** Random crop offsets and flips of `count` images, [x0, y0, flip] each, drawn in the order batchPixels always drew them. */
export function drawCrops(store: ImageStore, count: number, input: InputShape, random: Random): Int32Array {
  const { height, width } = inputSides(input);
  const marginX = (store.storedWidth ?? store.storedSize) - width;
  const marginY = store.storedSize - height;
  const crops = new Int32Array(count * 3);
  for (let n = 0; n < count; n++) {
    crops[3 * n] = random.int(marginX + 1);
    crops[3 * n + 1] = random.int(marginY + 1);
    crops[3 * n + 2] = random.next() < 0.5 ? 1 : 0;
  }
  return crops;
}

/** Pixels of the given images cut at `crops` (from drawCrops), or the centre crop without. */
export function cropPixels(store: ImageStore, images: ArrayLike<number>, input: InputShape, crops?: Int32Array): Float32Array {
  const { height, width } = inputSides(input);
  const storedHeight = store.storedSize;
  const storedWidth = store.storedWidth ?? store.storedSize;
  const out = new Float32Array(images.length * height * width * 3);
  const marginX = storedWidth - width;
  const marginY = storedHeight - height;
  for (let n = 0; n < images.length; n++) {
    const src = store.pixels[images[n]];
    const x0 = crops ? crops[3 * n] : marginX >> 1;
    const y0 = crops ? crops[3 * n + 1] : marginY >> 1;
    const flip = crops ? crops[3 * n + 2] === 1 : false;
    let o = n * height * width * 3;
    for (let y = 0; y < height; y++) {
      const row = (y + y0) * storedWidth;
      for (let x = 0; x < width; x++) {
        const sx = flip ? x0 + width - 1 - x : x0 + x;
        const s = (row + sx) * 3;
        out[o++] = src[s] / 255;
        out[o++] = src[s + 1] / 255;
        out[o++] = src[s + 2] / 255;
      }
    }
  }
  return out;
}

/**
 * The centre crops of decoded images (HWC floats, all the same size) as one [n, h, w, 3] batch:
 * what batchPixels gives for their bytes, without the round trip through bytes.
 */
export function centreCropImages(images: ReadonlyArray<{ data: Float32Array; width: number; height: number }>, input: InputShape): Float32Array {
  const { height, width } = inputSides(input);
  const out = new Float32Array(images.length * height * width * 3);
  const rowLength = width * 3;
  images.forEach((image, n) => {
    const x0 = (image.width - width) >> 1;
    const y0 = (image.height - height) >> 1;
    for (let y = 0; y < height; y++) {
      const from = ((y + y0) * image.width + x0) * 3;
      out.set(image.data.subarray(from, from + rowLength), (n * height + y) * rowLength);
    }
  });
  return out;
}

/** A square input stays a number (round-1 fingerprints and metadata keep their form); others H x W. */
export function compactInput(input: InputSize): InputShape {
  return input.height === input.width ? input.height : input;
}

/** An image store in one SharedArrayBuffer, as training workers receive it. */
export interface SharedImages {
  pixels: SharedArrayBuffer;
  count: number;
  storedSize: number;
  storedWidth?: number;
}

/** The images in one SharedArrayBuffer: the store's arrays become views of it, so worker threads share them without a copy. */
export function shareImageStore(store: ImageStore): SharedImages {
  const size = store.pixels[0]?.length ?? 0;
  if (store.pixels.some((p) => p.length !== size)) throw new Error('shared images must all have one size');
  const buffer = new SharedArrayBuffer(size * store.pixels.length);
  store.pixels.forEach((p, i) => {
    const view = new Uint8Array(buffer, i * size, size);
    view.set(p);
    store.pixels[i] = view;
  });
  return { pixels: buffer, count: store.pixels.length, storedSize: store.storedSize, storedWidth: store.storedWidth };
}

/** The store a worker thread reads: views of the shared buffer. */
export function sharedImageStore(s: SharedImages): ImageStore {
  const size = s.count ? s.pixels.byteLength / s.count : 0;
  return { pixels: Array.from({ length: s.count }, (_, i) => new Uint8Array(s.pixels, i * size, size)), storedSize: s.storedSize, storedWidth: s.storedWidth };
}
