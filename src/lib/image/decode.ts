// Image decoding through sharp: any input libvips reads (JPEG, PNG, WebP, TIFF, ...), upright,
// sRGB, alpha flattened onto white, resized, as HWC float32 in [0, 1]. No tfjs here except the two
// tensor helpers at the end, which load it on first use.
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';
import { UsageError } from '../command.js';
import { isRemotePath, remoteFileInCache } from '../io/remote.js';
import type { tf as Tf } from '../backend/tf.js';
import { decodeSmallJpeg } from './jpeg-fast.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

/** Default cap on decoded pixels (width x height): 50 megapixels, enough for any shop photo. */
export const DEFAULT_PIXEL_LIMIT = 50_000_000;

/** Why an image could not be used; callers count these in the end-of-run summary. */
export type ImageSkipReason = 'truncated' | 'not-an-image' | 'empty' | 'too-large' | 'unreadable' | 'corrupt';

/** How a decoded image is fitted into width x height. */
export type ImageFit = 'cover' | 'contain' | 'fill';

/** A rectangle of the source image in its own pixels. */
export interface ImageRegion { left: number; top: number; width: number; height: number }

export interface DecodeOptions {
  /** Output width in pixels. */
  width: number;
  /** Output height in pixels. */
  height: number;
  /** 'cover' fills the frame and crops the overflow; 'contain' keeps it all and pads with white; 'fill' stretches it (box coordinates scale by side). Default 'cover'. */
  fit?: ImageFit;
  /** Cover only: where the crop sits, each axis in [-1, 1] (-1 left/top edge, 0 centre, 1 right/bottom edge). */
  cropOffset?: { x: number; y: number };
  /** Cover only: >= 1 scales the image up before cropping, so the crop shows a smaller region (augmentation). */
  zoom?: number;
  /** Mirror left-right (augmentation). */
  flipHorizontal?: boolean;
  /** Cut this region out of the source before the resize (clamped to the image; e.g. a located garment). */
  region?: ImageRegion;
  /** Images with more pixels than this are refused as 'too-large' before they are decoded. */
  pixelLimit?: number;
}

/** An image as rows of pixels, each pixel R, G, B in [0, 1]: index (y * width + x) * 3 + c. */
export interface DecodedImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: 3;
}

export interface ImageFailure {
  ok: false;
  reason: ImageSkipReason;
  /** What the decoder said, on one line. */
  message: string;
}

export type DecodeResult = { ok: true; image: DecodedImage } | ImageFailure;

/** Input accepted by `decodeImage`: a file path or the encoded bytes. */
export type ImageInput = string | Uint8Array;

const WHITE = { r: 255, g: 255, b: 255 };

// Byte -> float lookup: exact v / 255 in float32, and cheaper than a division per sample.
const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Decodes, orients and resizes one image (small plain JPEGs in a cover fit through jpeg-fast.ts,
 * the rest through sharp). Bad image data (truncated, corrupt, not an image, over
 * the pixel limit, unreadable file) comes back as `{ ok: false, reason }`; it throws only when
 * the call itself is wrong (bad sizes or options).
 */
export async function decodeImage(input: ImageInput, options: DecodeOptions): Promise<DecodeResult> {
  const { width, height } = options;
  const fit = options.fit ?? 'cover';
  const offset = options.cropOffset ?? { x: 0, y: 0 };
  const zoom = options.zoom ?? 1;
  const pixelLimit = options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
  checkOptions(input, width, height, fit, offset, zoom, pixelLimit);

  if (typeof input !== 'string' && input.length === 0) return failure('empty', 'no bytes');
  if (typeof input === 'string' && isRemotePath(input)) {
    // An image named by URL inside a record: fetched into the cache; a missing or refused one is skipped like an unreadable file.
    try {
      input = await remoteFileInCache(input);
    } catch (error) {
      if (error instanceof UsageError) return failure('unreadable', error.message);
      throw error;
    }
  }

  if (fit === 'cover' && !options.region) {
    // Read at once: for a small file a synchronous read costs a tenth of an asynchronous one.
    const bytes = typeof input === 'string' ? readBytes(input) : input;
    const data = bytes && decodeSmallJpeg(bytes, { width, height, zoom, offset, flip: options.flipHorizontal === true, pixelLimit });
    if (data) return { ok: true, image: { data, width, height, channels: 3 } };
  }

  // sharp writes sRGB by default, so greyscale, CMYK (through its ICC profile) and 16-bit inputs
  // all arrive as 8-bit RGB.
  const pipeline = sharp(input, { limitInputPixels: pixelLimit, autoOrient: true }).flatten({ background: WHITE });
  if (options.region) {
    let meta: sharpModule.Metadata;
    try {
      meta = await sharp(input, { limitInputPixels: pixelLimit, autoOrient: true }).metadata();
    } catch (error) {
      return classifyFailure(input, error);
    }
    const sides = meta.autoOrient ?? { width: meta.width ?? 0, height: meta.height ?? 0 };
    const area = clampRegion(options.region, sides.width, sides.height);
    if (!area) return failure('corrupt', `region ${JSON.stringify(options.region)} lies outside the ${sides.width}x${sides.height} image`);
    pipeline.extract(area);
  }
  if (fit === 'fill') {
    pipeline.resize(width, height, { fit: 'fill' });
  } else if (fit === 'contain') {
    pipeline.resize(width, height, { fit: 'contain', background: WHITE });
  } else {
    // Scale so both sides reach the frame (times zoom); the crop itself happens in the copy loop.
    pipeline.resize(Math.round(width * zoom), Math.round(height * zoom), { fit: 'outside' });
  }
  pipeline.removeAlpha().raw({ depth: 'uchar' });

  let pixels: Buffer;
  let info: sharpModule.OutputInfo;
  try {
    ({ data: pixels, info } = await pipeline.toBuffer({ resolveWithObject: true }));
  } catch (error) {
    return classifyFailure(input, error);
  }
  if (info.channels !== 3) return failure('corrupt', `decoded to ${info.channels} channels, expected 3`);
  if (info.width < width || info.height < height) {
    return failure('corrupt', `resized to ${info.width}x${info.height}, smaller than ${width}x${height}`);
  }

  const left = Math.round(((info.width - width) * (offset.x + 1)) / 2);
  const top = Math.round(((info.height - height) * (offset.y + 1)) / 2);
  const data = bytesToUnitFloats(pixels, info.width, left, top, width, height, options.flipHorizontal === true);
  return { ok: true, image: { data, width, height, channels: 3 } };
}

function readBytes(path: string): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined; // sharp reports it
  }
}

/** The region rounded to whole pixels and clipped to the image; null when nothing of it is left. */
function clampRegion(region: ImageRegion, width: number, height: number): ImageRegion | null {
  const left = Math.max(0, Math.floor(region.left));
  const top = Math.max(0, Math.floor(region.top));
  const right = Math.min(width, Math.ceil(region.left + region.width));
  const bottom = Math.min(height, Math.ceil(region.top + region.height));
  return right > left && bottom > top ? { left, top, width: right - left, height: bottom - top } : null;
}

/** Copies a width x height window of an RGB byte image into floats in [0, 1], optionally mirrored. */
function bytesToUnitFloats(
  pixels: Uint8Array,
  sourceWidth: number,
  left: number,
  top: number,
  width: number,
  height: number,
  flip: boolean,
): Float32Array {
  const out = new Float32Array(width * height * 3);
  const rowLength = width * 3;
  if (!flip && left === 0 && sourceWidth === width) {
    const start = top * rowLength;
    for (let i = 0; i < out.length; i++) out[i] = BYTE_TO_UNIT[pixels[start + i]];
    return out;
  }
  for (let y = 0; y < height; y++) {
    let src = ((top + y) * sourceWidth + left) * 3;
    let dst = y * rowLength;
    if (!flip) {
      for (let i = 0; i < rowLength; i++) out[dst + i] = BYTE_TO_UNIT[pixels[src + i]];
      continue;
    }
    dst += rowLength - 3;
    for (let x = 0; x < width; x++, src += 3, dst -= 3) {
      out[dst] = BYTE_TO_UNIT[pixels[src]];
      out[dst + 1] = BYTE_TO_UNIT[pixels[src + 1]];
      out[dst + 2] = BYTE_TO_UNIT[pixels[src + 2]];
    }
  }
  return out;
}

function checkOptions(
  input: unknown,
  width: number,
  height: number,
  fit: string,
  offset: { x: number; y: number },
  zoom: number,
  pixelLimit: number,
): void {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw new TypeError('decodeImage: input must be a file path or a Uint8Array/Buffer');
  }
  if (input === '') throw new TypeError('decodeImage: the file path is empty');
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(`decodeImage: width and height must be positive integers, got ${width}x${height}`);
  }
  if (fit !== 'cover' && fit !== 'contain' && fit !== 'fill') throw new RangeError(`decodeImage: fit must be 'cover', 'contain' or 'fill', got '${fit}'`);
  for (const v of [offset.x, offset.y]) {
    if (!(v >= -1 && v <= 1)) throw new RangeError(`decodeImage: cropOffset must be in [-1, 1], got ${v}`);
  }
  if (!(zoom >= 1) || !Number.isFinite(zoom)) throw new RangeError(`decodeImage: zoom must be a finite number >= 1, got ${zoom}`);
  if (!Number.isInteger(pixelLimit) || pixelLimit < 1) {
    throw new RangeError(`decodeImage: pixelLimit must be a positive integer, got ${pixelLimit}`);
  }
}

function failure(reason: ImageSkipReason, message: string): ImageFailure {
  return { ok: false, reason, message: message.replace(/\s+/g, ' ').trim() };
}

// libvips keeps one error buffer for all threads, so with decodes in parallel a decoder's message
// can be lost ("Warning treated as error...") or belong to another image: truncation is judged
// from the file's own bytes where the format allows, the message is only the fallback.
async function classifyFailure(input: ImageInput, error: unknown): Promise<ImageFailure> {
  const message = error instanceof Error ? error.message : String(error);
  if (/exceeds pixel limit/i.test(message)) return failure('too-large', message);
  if (/Input file is missing|ENOENT|EACCES|EISDIR|EPERM/i.test(message)) return failure('unreadable', message);
  const ends = typeof input === 'string' ? await readEnds(input) : endsOf(input);
  if ('readError' in ends) return failure('unreadable', ends.readError);
  if (ends.size === 0) return failure('empty', 'zero-byte file');
  if (/unsupported image format|Buffer is empty/i.test(message)) return failure('not-an-image', message);
  const cutShort = truncatedFormat(ends);
  if (cutShort !== undefined) return failure('truncated', `${cutShort} data ends before its end marker`);
  if (!isKnownFormat(ends.head) && TRUNCATION_WORDS.test(message)) return failure('truncated', message);
  return failure('corrupt', message);
}

const TRUNCATION_WORDS = /premature end of (JPEG )?(image|file)|end of stream|unexpected end|truncated/i;

interface FileEnds {
  size: number;
  head: Uint8Array;
  tail: Uint8Array;
}

const END_BYTES = 64;

function endsOf(bytes: Uint8Array): FileEnds {
  return { size: bytes.length, head: bytes.subarray(0, 16), tail: bytes.subarray(Math.max(0, bytes.length - END_BYTES)) };
}

async function readEnds(path: string): Promise<FileEnds | { readError: string }> {
  let file;
  try {
    file = await open(path, 'r');
    const { size } = await file.stat();
    const head = new Uint8Array(Math.min(16, size));
    const tail = new Uint8Array(Math.min(END_BYTES, size));
    await file.read(head, 0, head.length, 0);
    await file.read(tail, 0, tail.length, size - tail.length);
    return { size, head, tail };
  } catch (error) {
    return { readError: error instanceof Error ? error.message : String(error) };
  } finally {
    await file?.close();
  }
}

const startsWith = (bytes: Uint8Array, prefix: readonly number[]): boolean => prefix.every((b, i) => bytes[i] === b);
const JPEG_START = [0xff, 0xd8, 0xff];
const PNG_START = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const GIF_START = [0x47, 0x49, 0x46, 0x38];
const RIFF_START = [0x52, 0x49, 0x46, 0x46];

function isKnownFormat(head: Uint8Array): boolean {
  return [JPEG_START, PNG_START, GIF_START, RIFF_START].some((prefix) => startsWith(head, prefix));
}

/** The format's name when the bytes stop before the format's end marker, else undefined. */
function truncatedFormat({ size, head, tail }: FileEnds): string | undefined {
  const tailHas = (marker: readonly number[]): boolean => {
    for (let i = tail.length - marker.length; i >= 0; i--) if (marker.every((b, k) => tail[i + k] === b)) return true;
    return false;
  };
  // Encoders may pad after the end marker, so it is looked for near the end, not at it.
  if (startsWith(head, JPEG_START)) return tailHas([0xff, 0xd9]) ? undefined : 'JPEG';
  if (startsWith(head, PNG_START)) return tailHas([0x49, 0x45, 0x4e, 0x44]) ? undefined : 'PNG';
  if (startsWith(head, GIF_START)) return tail[tail.length - 1] === 0x3b ? undefined : 'GIF';
  if (startsWith(head, RIFF_START) && head.length >= 8) {
    const riffSize = head[4] | (head[5] << 8) | (head[6] << 16) | (head[7] * 2 ** 24);
    return size < riffSize + 8 ? 'WebP' : undefined;
  }
  return undefined;
}

/** Packs same-sized images into one NHWC Float32Array, in order. */
export function stackImages(images: readonly DecodedImage[]): Float32Array {
  if (images.length === 0) return new Float32Array(0);
  const { width, height } = images[0];
  const size = width * height * 3;
  const out = new Float32Array(images.length * size);
  images.forEach((image, i) => {
    if (image.width !== width || image.height !== height) {
      throw new RangeError(`stackImages: image ${i} is ${image.width}x${image.height}, expected ${width}x${height}`);
    }
    out.set(image.data, i * size);
  });
  return out;
}

type Tensor3D = ReturnType<typeof Tf.tensor3d>;
type Tensor4D = ReturnType<typeof Tf.tensor4d>;

/** One image as a [height, width, 3] float32 tensor; loads tfjs on first call. */
export async function imageToTensor(image: DecodedImage): Promise<Tensor3D> {
  const { tf } = await import('../backend/tf.js');
  return tf.tensor3d(image.data, [image.height, image.width, 3], 'float32');
}

/** Same-sized images as one [n, height, width, 3] float32 tensor; loads tfjs on first call. */
export async function imagesToTensor(images: readonly DecodedImage[]): Promise<Tensor4D> {
  if (images.length === 0) throw new RangeError('imagesToTensor: no images');
  const { tf } = await import('../backend/tf.js');
  const { width, height } = images[0];
  return tf.tensor4d(stackImages(images), [images.length, height, width, 3], 'float32');
}
