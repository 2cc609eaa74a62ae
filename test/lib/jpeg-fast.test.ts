// The small-JPEG fast path (WASM mozjpeg + our resampling) against sharp, which it replaces for
// thumbnails: the same pixels within a grey level or two, and every unusual JPEG left to sharp.
import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import sharp from 'sharp';
import { decodeSmallJpeg, plainJpegSize } from '../../src/lib/image/jpeg-fast.js';
import { decodeImage } from '../../src/lib/image/decode.js';

/** A garment-like picture: a shaded ellipse with stripes on white, sharp edges and smooth parts. */
function garment(width: number, height: number): Buffer {
  const bytes = Buffer.alloc(width * height * 3, 255);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = (x - width / 2) / (width * 0.35);
      const dy = (y - height / 2) / (height * 0.42);
      if (dx * dx + dy * dy > 1) continue;
      const stripe = Math.floor(y / 6) % 2 === 0 ? 40 : 0;
      const i = (y * width + x) * 3;
      bytes[i] = 150 + stripe - Math.round(40 * dx);
      bytes[i + 1] = 60 + Math.round(50 * dy);
      bytes[i + 2] = 90 + stripe;
    }
  }
  return bytes;
}

const jpeg = (width: number, height: number) => sharp(garment(width, height), { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();

/** sharp's cover fit and centre crop of `bytes` to side x side, as bytes (embed's pipeline before the fast path). */
async function sharpCover(bytes: Buffer, side: number): Promise<Uint8Array> {
  const { data, info } = await sharp(bytes).resize(side, side, { fit: 'outside' }).raw().toBuffer({ resolveWithObject: true });
  const left = Math.round((info.width - side) / 2);
  const top = Math.round((info.height - side) / 2);
  const out = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) out.set(data.subarray(((top + y) * info.width + left) * 3, ((top + y) * info.width + left + side) * 3), y * side * 3);
  return out;
}

const target = (side: number) => ({ width: side, height: side, zoom: 1, offset: { x: 0, y: 0 }, flip: false, pixelLimit: 50_000_000 });

describe('small JPEG fast path', () => {
  it('gives sharp cover-fit pixels within a grey level or two, shrinking and enlarging', async () => {
    for (const [w, h, side] of [[128, 128, 108], [96, 128, 108], [128, 85, 108], [113, 128, 108], [100, 128, 120]]) {
      const bytes = await jpeg(w, h);
      const fast = decodeSmallJpeg(bytes, target(side));
      assert.ok(fast, `${w}x${h} -> ${side}: took the fast path`);
      const reference = await sharpCover(bytes, side);
      let sum = 0;
      let max = 0;
      let within1 = 0;
      for (let i = 0; i < reference.length; i++) {
        const d = Math.abs(Math.round(fast[i] * 255) - reference[i]);
        sum += d;
        max = Math.max(max, d);
        if (d <= 1) within1++;
      }
      const what = `${w}x${h} -> ${side}: mean ${(sum / reference.length).toFixed(3)}, max ${max}, within 1 level ${((100 * within1) / reference.length).toFixed(1)}%`;
      assert.ok(sum / reference.length < 0.6, what);
      // Mild shrinks (113 -> 108) differ most: libvips cuts the kernel to rint(6 x shrink) + 1 taps at quantised offsets.
      assert.ok(within1 / reference.length > 0.9, what);
      assert.ok(max <= 48, what);
    }
  });

  it('takes any shrink of a thumbnail (128 px or less); past a 4x shrink it stays within two grey levels of sharp on average', async () => {
    // Measured: 64x64 -> 16 mean 1.17, max 15; 60x80 -> 16 mean 2.04; 96x96 -> 24 mean 0.96; 128x128 -> 16 mean 0.81
    // (sharp shrinks on load through the JPEG's DCT there, we with a widened Lanczos-3).
    for (const [w, h, side] of [[64, 64, 16], [60, 80, 16], [96, 96, 24], [128, 128, 16]]) {
      const bytes = await jpeg(w, h);
      const fast = decodeSmallJpeg(bytes, target(side));
      assert.ok(fast, `${w}x${h} -> ${side}: took the fast path`);
      const reference = await sharpCover(bytes, side);
      let sum = 0;
      for (let i = 0; i < reference.length; i++) sum += Math.abs(Math.round(fast[i] * 255) - reference[i]);
      assert.ok(sum / reference.length < 2.5, `${w}x${h} -> ${side}: mean ${(sum / reference.length).toFixed(3)}`);
    }
  });

  it('is what decodeImage returns, mirrored for a flip', async () => {
    const bytes = await jpeg(128, 96);
    const fast = decodeSmallJpeg(bytes, target(108))!;
    const decoded = await decodeImage(bytes, { width: 108, height: 108 });
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.image.data, fast);
    const flipped = await decodeImage(bytes, { width: 108, height: 108, flipHorizontal: true });
    assert.ok(flipped.ok);
    for (const [x, y] of [[0, 0], [3, 50], [107, 107]]) {
      for (let c = 0; c < 3; c++) assert.equal(flipped.image.data[(y * 108 + 107 - x) * 3 + c], fast[(y * 108 + x) * 3 + c]);
    }
  });

  it('leaves rotated, ICC, CMYK, large, damaged and non-JPEG images to sharp', async () => {
    const raw = { raw: { width: 64, height: 48, channels: 3 as const } };
    const rotated = await sharp(garment(64, 48), raw).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const withExif = await sharp(garment(64, 48), raw).jpeg().withExif({ IFD0: { Copyright: 'atelier' } }).toBuffer();
    const icc = await sharp(garment(64, 48), raw).jpeg().withIccProfile('p3').toBuffer();
    const cmyk = await sharp(garment(64, 48), raw).jpeg().toColourspace('cmyk').toBuffer();
    const png = await sharp(garment(64, 48), raw).png().toBuffer();
    assert.ok(withExif.includes(Buffer.from('Exif')));
    assert.deepEqual(plainJpegSize(withExif), { width: 64, height: 48 });
    for (const [name, bytes] of Object.entries({ rotated, icc, cmyk, png })) assert.equal(plainJpegSize(bytes), null, name);

    const whole = await jpeg(128, 128);
    assert.equal(decodeSmallJpeg(await jpeg(160, 160), target(32)), null, 'over 128 x 128 and over 4 source pixels an output pixel');
    assert.equal(decodeSmallJpeg(whole, target(200)), null, 'a window over twice the source pixels');
    assert.equal(decodeSmallJpeg(whole.subarray(0, Math.floor(whole.length * 0.6)), target(108)), null, 'truncated');
    const damaged = Buffer.from(whole);
    damaged.fill(0xff, Math.floor(whole.length * 0.4), Math.floor(whole.length * 0.5));
    assert.equal(decodeSmallJpeg(damaged, target(108)), null, 'damaged (the decoder warns)');
    assert.equal((await decodeImage(damaged, { width: 108, height: 108 })).ok, false, 'sharp still refuses it');
  });

  it('decodes again after a JPEG that stops the decoder', async () => {
    const whole = await jpeg(128, 128);
    // The headers up to the frame, then the end marker: libjpeg's fatal "no image" error.
    const sos = whole.indexOf(Buffer.from([0xff, 0xda]));
    const headless = Buffer.concat([whole.subarray(0, sos), Buffer.from([0xff, 0xd9])]);
    assert.equal(decodeSmallJpeg(headless, target(108)), null);
    assert.ok(decodeSmallJpeg(whole, target(108)));
  });
});
