// The fast path for small plain JPEGs (a catalogue's thumbnails): mozjpeg compiled to WASM
// (@jsquash/jpeg, the decoder sharp's libvips uses, so the pixels are the same) and our own
// resample.ts, in this thread. For a 128 px JPEG, sharp's per-call pipeline (libvips graph, thread
// hand-off) costs several times the decode itself. Anything unusual goes to sharp instead: an
// orientation, an ICC profile, CMYK, 12-bit, a large image, and any JPEG the decoder warns about
// (truncated or corrupt data), so what is skipped and why stays sharp's judgement.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import mozjpegFactory from '@jsquash/jpeg/codec/dec/mozjpeg_dec.js';
import { resampleWindow } from './resample.js';

/**
 * Where our resampling costs less than sharp's whole call (measured on 128 px JPEGs): an output
 * window of at most twice the source's pixels (at 252 px from 128 sharp is as fast), and a source
 * of at most 4 times the output's (beyond that sharp's shrink-on-load wins).
 */
const MAX_WINDOW_PER_SOURCE_PIXEL = 2;
const MAX_SOURCE_PER_OUTPUT_PIXEL = 4;
/**
 * Up to this many source pixels the fast path takes any shrink: decoding a 128 px JPEG costs little
 * whatever the output, and libvips's per-call cost dominates (CPU per image, 500 images each:
 * 64 px fixture photos to 16 px 0.15 ms against sharp's 1.0 ms; 128 px Amazon photos to 32 px 0.44
 * against 1.16). Past a 4x shrink sharp uses shrink-on-load and we a widened Lanczos-3, so the two
 * differ by one to two grey levels on average there (test/lib/jpeg-fast.test.ts).
 */
const SMALL_SOURCE_PIXELS = 128 * 128;

interface Mozjpeg {
  decode(data: Uint8Array, preserveOrientation: boolean): { data: Uint8ClampedArray; width: number; height: number } | null;
}

// The one decoder instance (a WASM module is costly to instantiate); its last message, if any,
// is the libjpeg warning of the image just decoded.
let decoder: Mozjpeg | undefined;
let message: string | undefined;

function mozjpeg(): Mozjpeg {
  if (decoder) return decoder;
  const wasm = new WebAssembly.Module(readFileSync(createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm')));
  let instance: Mozjpeg | undefined;
  // The factory instantiates synchronously when given the module; the promise only wraps it.
  void (mozjpegFactory as unknown as (options: Record<string, unknown>) => Promise<Mozjpeg>)({
    noInitialRun: true,
    instantiateWasm: (imports: WebAssembly.Imports, done: (i: WebAssembly.Instance) => void) => {
      const i = new WebAssembly.Instance(wasm, imports);
      done(i);
      return i.exports;
    },
    onRuntimeInitialized() {
      instance = this as unknown as Mozjpeg;
    },
    print: (text: string) => (message = text),
    printErr: (text: string) => (message = text),
  });
  if (!instance) throw new Error('the JPEG decoder did not initialise synchronously');
  decoder = instance;
  return decoder;
}

/** Width and height of a baseline or progressive 8-bit JPEG with 1 or 3 components and nothing that needs sharp; else null. */
export function plainJpegSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at++;
      continue;
    }
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    const body = at + 4;
    if (length < 2 || body + length - 2 > bytes.length) return null;
    if (marker === 0xda) return null; // scan before any frame header
    if (marker === 0xe1 && hasRotation(bytes, body, body + length - 2)) return null;
    if (marker === 0xe2 && ascii(bytes, body, 11) === 'ICC_PROFILE') return null;
    // SOF0-15 but DHT (c4), JPG (c8) and DAC (cc).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const precision = bytes[body];
      const height = (bytes[body + 1] << 8) | bytes[body + 2];
      const width = (bytes[body + 3] << 8) | bytes[body + 4];
      const components = bytes[body + 5];
      if (precision !== 8 || (components !== 1 && components !== 3) || width === 0 || height === 0) return null;
      // The frame comes before the scans; markers after it (APPn are before it in practice) are not read.
      return { width, height };
    }
    at = body + length - 2;
  }
  return null;
}

function ascii(bytes: Uint8Array, at: number, count: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + count));
}

/** True when an Exif segment carries an orientation other than 1 (normal). */
function hasRotation(bytes: Uint8Array, from: number, to: number): boolean {
  if (ascii(bytes, from, 6) !== 'Exif\0\0') return false;
  const tiff = from + 6;
  const little = bytes[tiff] === 0x49;
  const u16 = (at: number) => (little ? bytes[at] | (bytes[at + 1] << 8) : (bytes[at] << 8) | bytes[at + 1]);
  const u32 = (at: number) => (little ? u16(at) + u16(at + 2) * 65536 : u16(at) * 65536 + u16(at + 2));
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > to) return true; // unreadable: let sharp decide
  const entries = u16(ifd);
  for (let e = 0; e < entries; e++) {
    const entry = ifd + 2 + 12 * e;
    if (entry + 12 > to) return true;
    if (u16(entry) === 0x0112) return u16(entry + 8) !== 1;
  }
  return false;
}

/**
 * The cover fit of `bytes` (scaled so both sides reach width x height, cut at `offset`), as RGB
 * floats in [0, 1], or null when the image is not for the fast path (sharp decodes it instead).
 */
export function decodeSmallJpeg(
  bytes: Uint8Array,
  target: { width: number; height: number; zoom: number; offset: { x: number; y: number }; flip: boolean; pixelLimit: number },
): Float32Array | null {
  const size = plainJpegSize(bytes);
  if (!size) return null;
  const outWidth = Math.round(target.width * target.zoom);
  const outHeight = Math.round(target.height * target.zoom);
  const pixels = size.width * size.height;
  if (pixels > target.pixelLimit || (pixels > SMALL_SOURCE_PIXELS && pixels > MAX_SOURCE_PER_OUTPUT_PIXEL * outWidth * outHeight) || target.width * target.height > MAX_WINDOW_PER_SOURCE_PIXEL * pixels) return null;
  let decoded: ReturnType<Mozjpeg['decode']>;
  message = undefined;
  try {
    decoded = mozjpeg().decode(bytes, true);
  } catch {
    // A fatal libjpeg error ends the WASM program: start a fresh decoder next time.
    decoder = undefined;
    return null;
  }
  if (!decoded || message !== undefined || decoded.width !== size.width || decoded.height !== size.height) return null;
  // sharp's fit 'outside': one scale for both axes, the sides rounded.
  const scale = Math.max(outWidth / size.width, outHeight / size.height);
  const scaledWidth = Math.max(outWidth, Math.round(size.width * scale));
  const scaledHeight = Math.max(outHeight, Math.round(size.height * scale));
  const left = Math.round(((scaledWidth - target.width) * (target.offset.x + 1)) / 2);
  const top = Math.round(((scaledHeight - target.height) * (target.offset.y + 1)) / 2);
  const rgba = new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.length);
  const out = resampleWindow(rgba, size.width, size.height, 4, scaledWidth, scaledHeight, scale, { left, top, width: target.width, height: target.height });
  if (target.flip) mirrorRows(out, target.width, target.height);
  return out;
}

function mirrorRows(rgb: Float32Array, width: number, height: number): void {
  for (let y = 0; y < height; y++) {
    for (let a = y * width * 3, b = a + (width - 1) * 3; a < b; a += 3, b -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = rgb[a + c];
        rgb[a + c] = rgb[b + c];
        rgb[b + c] = t;
      }
    }
  }
}
