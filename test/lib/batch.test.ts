// The inference batch cut straight from decoded floats equals the one cut from their bytes (the
// training path), bit for bit, for even and odd margins and non-square inputs.
import assert from 'node:assert/strict';
import { test } from 'vitest';
import { batchPixels, centreCropImages } from '../../src/lib/image/batch.js';
import { imageToBytes } from '../../src/lib/image/records.js';

test('centreCropImages equals batchPixels on the same images as bytes', () => {
  for (const [stored, storedWidth, input] of [[108, 108, 96], [27, 27, 24], [36, 45, { height: 32, width: 40 }], [9, 9, 8]] as const) {
    const images = Array.from({ length: 3 }, (_, n) => ({
      data: Float32Array.from({ length: stored * storedWidth * 3 }, (_, i) => ((i * 37 + n * 11) % 256) / 255),
      width: storedWidth,
      height: stored,
      channels: 3 as const,
    }));
    const fromBytes = batchPixels({ pixels: images.map(imageToBytes), storedSize: stored, storedWidth }, [0, 1, 2], input);
    assert.deepEqual(centreCropImages(images, input), fromBytes);
  }
});

test('with an even margin, decoding at the input size zoomed by the margin is the centre crop of the stored image, JPEG fast path and sharp alike', async () => {
  const { default: sharp } = await import('sharp');
  const { decodeImage } = await import('../../src/lib/image/decode.js');
  const { STORED_MARGIN, storedSizeFor } = await import('../../src/lib/models/image-features.js');
  for (const [w, h] of [[128, 128], [85, 128], [128, 97], [40, 33]]) {
    const raw = Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i * 7 + Math.floor(i / (w * 3)) * 13) % 256));
    const source = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
    for (const bytes of [await source.clone().jpeg().toBuffer(), await source.clone().png().toBuffer()]) {
      for (const input of [96, 32, 31, 224]) {
        assert.equal((storedSizeFor(input) - input) % 2, 0);
        const stored = await decodeImage(bytes, { width: storedSizeFor(input), height: storedSizeFor(input) });
        const zoomed = await decodeImage(bytes, { width: input, height: input, zoom: STORED_MARGIN });
        assert.ok(stored.ok && zoomed.ok);
        assert.deepEqual(zoomed.image.data, centreCropImages([stored.image], input), `${w}x${h} -> ${input}`);
      }
    }
  }
});
