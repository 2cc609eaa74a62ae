// Decoding through sharp on images made here: orientation, colour spaces, alpha, bit depth, the
// cover/contain geometry pinned pixel by pixel, and every kind of bad file coming back as a typed skip.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, it } from 'vitest';
import { Writable } from 'node:stream';
import sharp from 'sharp';
import {
  DEFAULT_PIXEL_LIMIT,
  createSkipCounter,
  decodeImage,
  describeSkip,
  imageToTensor,
  imagesToTensor,
  prefetchImages,
  skipImage,
  stackImages,
  writeSkipSummary,
  type DecodeOptions,
  type DecodeResult,
  type DecodedImage,
} from '../../src/lib/image/index.js';
import { scratchDir } from '../helpers.js';

type RGB = [number, number, number];
const RED: RGB = [255, 0, 0];
const GREEN: RGB = [0, 255, 0];
const BLUE: RGB = [0, 0, 255];
const WHITE: RGB = [255, 255, 255];
// Inside the CMYK gamut, so a CMYK round trip keeps them close.
const BRICK: RGB = [200, 60, 50];
const DENIM: RGB = [60, 80, 170];

/** Raw RGB bytes where pixel (x, y) gets colourAt(x, y). */
function paint(width: number, height: number, colourAt: (x: number, y: number) => RGB): Buffer {
  const bytes = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) bytes.set(colourAt(x, y), (y * width + x) * 3);
  }
  return bytes;
}

function rawImage(width: number, height: number, colourAt: (x: number, y: number) => RGB): sharp.Sharp {
  return sharp(paint(width, height, colourAt), { raw: { width, height, channels: 3 } });
}

function pixel(image: DecodedImage, x: number, y: number): RGB {
  const i = (y * image.width + x) * 3;
  return [image.data[i], image.data[i + 1], image.data[i + 2]];
}

function unit(rgb: RGB): RGB {
  return [rgb[0] / 255, rgb[1] / 255, rgb[2] / 255];
}

function assertNear(actual: RGB, expected: RGB, tolerance: number, what: string): void {
  for (let c = 0; c < 3; c++) {
    assert.ok(
      Math.abs(actual[c] - expected[c]) <= tolerance,
      `${what}: got [${actual.map((v) => v.toFixed(3))}], expected [${expected.map((v) => v.toFixed(3))}] ±${tolerance}`,
    );
  }
}

async function decodeOk(input: string | Buffer, options: DecodeOptions): Promise<DecodedImage> {
  const result = await decodeImage(input, options);
  assert.ok(result.ok, `decode failed: ${result.ok ? '' : `${result.reason}: ${result.message}`}`);
  return result.image;
}

async function decodeFails(input: string | Buffer, options: DecodeOptions = { width: 8, height: 8 }) {
  const result: DecodeResult = await decodeImage(input, options);
  assert.equal(result.ok, false, 'expected a failure');
  return result as Extract<DecodeResult, { ok: false }>;
}

const dir = scratchDir('atelier-image-');
const file = (name: string): string => join(dir, name);

// Thirds of a 60x20 strip: red | green | blue, lossless so every value is exact.
const thirds = (x: number): RGB => (x < 20 ? RED : x < 40 ? GREEN : BLUE);
// Quadrants of a 40x20 image: red | green over blue | white.
const quadrants = (x: number, y: number, w: number, h: number): RGB =>
  y < h / 2 ? (x < w / 2 ? RED : GREEN) : x < w / 2 ? BLUE : WHITE;

beforeAll(async () => {
  await rawImage(60, 20, thirds).png().toFile(file('thirds.png'));
  await rawImage(40, 20, () => RED).png().toFile(file('red-40x20.png'));
  await rawImage(20, 20, (x, y) => quadrants(x, y, 20, 20)).png().toFile(file('quadrants-20.png'));
  await rawImage(40, 20, (x, y) => quadrants(x, y, 40, 20))
    .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
    .withMetadata({ orientation: 6 })
    .toFile(file('oriented-6.jpg'));
  await rawImage(40, 20, (x) => (x < 20 ? BRICK : DENIM))
    .jpeg({ quality: 100 })
    .toColourspace('cmyk')
    .toFile(file('cmyk.jpg'));
  await rawImage(16, 16, (x) => (x < 8 ? [64, 64, 64] : [200, 200, 200]))
    .toColourspace('b-w')
    .jpeg({ quality: 100 })
    .toFile(file('grey.jpg'));
  await rawImage(20, 10, (x) => (x < 10 ? RED : BLUE))
    .toColourspace('rgb16')
    .png()
    .toFile(file('deep.png'));
  // RGBA: left half transparent black, right half opaque blue, one column of half-transparent black.
  const rgba = Buffer.alloc(20 * 20 * 4);
  for (let y = 0; y < 20; y++) {
    for (let x = 0; x < 20; x++) {
      const i = (y * 20 + x) * 4;
      if (x < 10) rgba.set([0, 0, 0, x === 5 ? 128 : 0], i);
      else rgba.set([0, 0, 255, 255], i);
    }
  }
  await sharp(rgba, { raw: { width: 20, height: 20, channels: 4 } }).png().toFile(file('alpha.png'));

  const noise = Buffer.alloc(200 * 200 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
  const jpeg = await sharp(noise, { raw: { width: 200, height: 200, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  writeFileSync(file('whole.jpg'), jpeg);
  writeFileSync(file('truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  // Complete file (ends with its marker) whose entropy-coded data is overwritten in the middle.
  const damaged = Buffer.from(jpeg);
  damaged.fill(0xff, Math.floor(jpeg.length * 0.4), Math.floor(jpeg.length * 0.5));
  writeFileSync(file('damaged.jpg'), damaged);
  const png = await sharp(noise, { raw: { width: 200, height: 200, channels: 3 } }).png().toBuffer();
  writeFileSync(file('truncated.png'), png.subarray(0, Math.floor(png.length * 0.7)));
  writeFileSync(file('empty.jpg'), '');
  writeFileSync(file('text.jpg'), 'this is not a picture, just words\n');
  await rawImage(100, 100, () => GREEN).png().toFile(file('100x100.png'));
  // 8000 x 6500 = 52 MP, over the default limit; solid colour so the file is small and quick to make.
  await sharp({ create: { width: 8000, height: 6500, channels: 3, background: { r: 9, g: 9, b: 9 } } })
    .png({ compressionLevel: 1 })
    .toFile(file('huge.png'));
});

describe('decodeImage geometry', () => {
  it('cover centres the crop by default and the offset moves it to either edge', async () => {
    const centre = await decodeOk(file('thirds.png'), { width: 20, height: 20 });
    assert.equal(centre.data.length, 20 * 20 * 3);
    for (const [x, y] of [[0, 0], [19, 19], [10, 10]]) assert.deepEqual(pixel(centre, x, y), unit(GREEN));
    const left = await decodeOk(file('thirds.png'), { width: 20, height: 20, cropOffset: { x: -1, y: 0 } });
    for (const [x, y] of [[0, 0], [19, 19]]) assert.deepEqual(pixel(left, x, y), unit(RED));
    const right = await decodeOk(file('thirds.png'), { width: 20, height: 20, cropOffset: { x: 1, y: 0 } });
    for (const [x, y] of [[0, 0], [19, 19]]) assert.deepEqual(pixel(right, x, y), unit(BLUE));
  });

  it('cover scales down so the short side fills the frame', async () => {
    // 60x20 -> 30x10 keeps all three stripes' proportions; a centred 10x10 crop is the green third.
    const image = await decodeOk(file('thirds.png'), { width: 10, height: 10 });
    assertNear(pixel(image, 5, 5), unit(GREEN), 0.02, 'centre');
    // A 30x10 frame holds the whole strip: red, green, blue from left to right.
    const whole = await decodeOk(file('thirds.png'), { width: 30, height: 10 });
    assertNear(pixel(whole, 3, 5), unit(RED), 0.02, 'left');
    assertNear(pixel(whole, 15, 5), unit(GREEN), 0.02, 'middle');
    assertNear(pixel(whole, 26, 5), unit(BLUE), 0.02, 'right');
  });

  it('zoom with an offset crops one quadrant; zoom alone keeps all four around the centre', async () => {
    const corner = await decodeOk(file('quadrants-20.png'), { width: 20, height: 20, zoom: 2, cropOffset: { x: -1, y: -1 } });
    for (const [x, y] of [[0, 0], [19, 0], [0, 19], [19, 19]]) assertNear(pixel(corner, x, y), unit(RED), 0.02, `(${x},${y})`);
    const centre = await decodeOk(file('quadrants-20.png'), { width: 20, height: 20, zoom: 2 });
    assertNear(pixel(centre, 2, 2), unit(RED), 0.02, 'top left');
    assertNear(pixel(centre, 17, 2), unit(GREEN), 0.02, 'top right');
    assertNear(pixel(centre, 2, 17), unit(BLUE), 0.02, 'bottom left');
    assertNear(pixel(centre, 17, 17), unit(WHITE), 0.02, 'bottom right');
  });

  it('contain keeps the whole image and pads with white = 1.0', async () => {
    const image = await decodeOk(file('red-40x20.png'), { width: 20, height: 20, fit: 'contain' });
    // 40x20 -> 20x10 in the middle rows 5..14; rows 0..4 and 15..19 are padding.
    for (let x = 0; x < 20; x++) {
      for (const y of [0, 4, 15, 19]) assert.deepEqual(pixel(image, x, y), [1, 1, 1], `padding at (${x},${y})`);
      for (const y of [5, 10, 14]) assert.deepEqual(pixel(image, x, y), [1, 0, 0], `image at (${x},${y})`);
    }
  });

  it('flipHorizontal mirrors left and right', async () => {
    const image = await decodeOk(file('thirds.png'), { width: 60, height: 20, flipHorizontal: true });
    assert.deepEqual(pixel(image, 0, 0), unit(BLUE));
    assert.deepEqual(pixel(image, 30, 10), unit(GREEN));
    assert.deepEqual(pixel(image, 59, 19), unit(RED));
    const cropped = await decodeOk(file('thirds.png'), { width: 20, height: 20, cropOffset: { x: -1, y: 0 }, flipHorizontal: true });
    assert.deepEqual(pixel(cropped, 0, 0), unit(RED), 'the crop is taken first, then mirrored');
  });

  it('gives the same floats for a path and for the same bytes in a buffer', async () => {
    const options = { width: 16, height: 16 };
    const fromPath = await decodeOk(file('whole.jpg'), options);
    const fromBuffer = await decodeOk(readFileSync(file('whole.jpg')), options);
    assert.deepEqual(fromBuffer.data, fromPath.data);
    for (const v of fromPath.data) assert.ok(v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4, `${v} is not k/255`);
  });
});

describe('decodeImage colour handling', () => {
  it('applies the EXIF orientation (6: rotate 90° clockwise)', async () => {
    const meta = await sharp(file('oriented-6.jpg')).metadata();
    assert.equal(meta.orientation, 6);
    assert.equal(meta.width, 40);
    // Stored 40x20 as red|green over blue|white; shown upright it is 20x40 with blue|red over white|green.
    const image = await decodeOk(file('oriented-6.jpg'), { width: 20, height: 40 });
    assertNear(pixel(image, 4, 8), unit(BLUE), 0.08, 'top left');
    assertNear(pixel(image, 15, 8), unit(RED), 0.08, 'top right');
    assertNear(pixel(image, 4, 31), unit(WHITE), 0.08, 'bottom left');
    assertNear(pixel(image, 15, 31), unit(GREEN), 0.08, 'bottom right');
  });

  it('flattens alpha onto white', async () => {
    const image = await decodeOk(file('alpha.png'), { width: 20, height: 20 });
    assert.deepEqual(pixel(image, 0, 0), [1, 1, 1], 'transparent -> white');
    assert.deepEqual(pixel(image, 15, 15), [0, 0, 1], 'opaque blue stays blue');
    // Black at alpha 128/255 over white: 1 - 128/255.
    assertNear(pixel(image, 5, 10), [127 / 255, 127 / 255, 127 / 255], 1.5 / 255, 'half-transparent black');
  });

  it('expands a one-channel greyscale JPEG to three equal channels', async () => {
    const meta = await sharp(file('grey.jpg')).metadata();
    assert.equal(meta.channels, 1);
    const image = await decodeOk(file('grey.jpg'), { width: 16, height: 16 });
    const dark = pixel(image, 2, 8);
    const light = pixel(image, 13, 8);
    assert.equal(dark[0], dark[1]);
    assert.equal(dark[1], dark[2]);
    assertNear(dark, unit([64, 64, 64]), 0.03, 'dark half');
    assertNear(light, unit([200, 200, 200]), 0.03, 'light half');
  });

  it('converts a CMYK JPEG to RGB', async () => {
    const meta = await sharp(file('cmyk.jpg')).metadata();
    assert.equal(meta.space, 'cmyk');
    const image = await decodeOk(file('cmyk.jpg'), { width: 40, height: 20 });
    // CMYK round trips through an ICC profile, so colours come back close, not exact.
    assertNear(pixel(image, 5, 10), unit(BRICK), 0.1, 'left half');
    assertNear(pixel(image, 35, 10), unit(DENIM), 0.1, 'right half');
  });

  it('reduces a 16-bit PNG to the same [0, 1] scale', async () => {
    const meta = await sharp(file('deep.png')).metadata();
    assert.equal(meta.depth, 'ushort');
    const image = await decodeOk(file('deep.png'), { width: 20, height: 10 });
    assert.deepEqual(pixel(image, 2, 5), [1, 0, 0]);
    assert.deepEqual(pixel(image, 17, 5), [0, 0, 1]);
  });
});

describe('decodeImage bad input', () => {
  it('reports a truncated JPEG as truncated', async () => {
    const failure = await decodeFails(file('truncated.jpg'));
    assert.equal(failure.reason, 'truncated');
    assert.match(failure.message, /JPEG data ends before its end marker/);
    assert.equal((await decodeFails(readFileSync(file('truncated.jpg')))).reason, 'truncated');
  });

  it('reports a cut-off PNG as truncated and damaged JPEG data that ends properly as corrupt', async () => {
    assert.equal((await decodeFails(file('truncated.png'))).reason, 'truncated');
    const damaged = await decodeFails(file('damaged.jpg'));
    assert.equal(damaged.reason, 'corrupt');
  });

  it('names the same reasons when many bad files decode at once', async () => {
    // libvips shares one error buffer between threads; the reasons must not depend on it.
    const names = Array.from({ length: 48 }, (_, i) => ['truncated.jpg', 'damaged.jpg', 'whole.jpg', 'truncated.png'][i % 4]);
    const results = await Promise.all(names.map((name) => decodeImage(file(name), { width: 8, height: 8 })));
    const expected: Record<string, string> = { 'truncated.jpg': 'truncated', 'damaged.jpg': 'corrupt', 'whole.jpg': 'ok', 'truncated.png': 'truncated' };
    results.forEach((result, i) => assert.equal(result.ok ? 'ok' : result.reason, expected[names[i]], `${names[i]} (#${i})`));
  });

  it('reports zero bytes as empty, from a file or a buffer', async () => {
    assert.equal((await decodeFails(file('empty.jpg'))).reason, 'empty');
    assert.equal((await decodeFails(Buffer.alloc(0))).reason, 'empty');
  });

  it('reports a text file named .jpg as not an image', async () => {
    assert.equal((await decodeFails(file('text.jpg'))).reason, 'not-an-image');
    assert.equal((await decodeFails(readFileSync(file('text.jpg')))).reason, 'not-an-image');
  });

  it('reports a missing file or a directory as unreadable', async () => {
    const failure = await decodeFails(file('nowhere.jpg'));
    assert.equal(failure.reason, 'unreadable');
    const directory = await decodeFails(dir);
    assert.equal(directory.reason, 'unreadable');
    assert.match(directory.message, /EISDIR/);
  });

  it('refuses images over the pixel limit, the default one included', async () => {
    await decodeOk(file('100x100.png'), { width: 8, height: 8, pixelLimit: 10_000 });
    assert.equal((await decodeFails(file('100x100.png'), { width: 8, height: 8, pixelLimit: 9_999 })).reason, 'too-large');
    assert.ok(8000 * 6500 > DEFAULT_PIXEL_LIMIT);
    const started = Date.now();
    assert.equal((await decodeFails(file('huge.png'))).reason, 'too-large');
    assert.ok(Date.now() - started < 2000, 'refused from the header, without decoding 52 MP');
    await decodeOk(file('huge.png'), { width: 8, height: 8, pixelLimit: 60_000_000 });
  });

  it('keeps every failure message on one line', async () => {
    for (const name of ['truncated.jpg', 'empty.jpg', 'text.jpg', 'nowhere.jpg']) {
      assert.doesNotMatch((await decodeFails(file(name))).message, /\n/);
    }
  });

  it('throws for programming errors, not for image data', async () => {
    const path = file('thirds.png');
    await assert.rejects(decodeImage(path, { width: 0, height: 8 }), RangeError);
    await assert.rejects(decodeImage(path, { width: 8.5, height: 8 }), RangeError);
    await assert.rejects(decodeImage(path, { width: 8, height: 8, fit: 'stretch' as 'cover' }), RangeError);
    // A region wholly outside the image is a bad image for this record (skipped), not a programming error.
    const outside = await decodeImage(path, { width: 8, height: 8, region: { left: 10_000, top: 0, width: 5, height: 5 } });
    assert.equal(outside.ok, false);
    await assert.rejects(decodeImage(path, { width: 8, height: 8, cropOffset: { x: 1.5, y: 0 } }), RangeError);
    await assert.rejects(decodeImage(path, { width: 8, height: 8, zoom: 0.5 }), RangeError);
    await assert.rejects(decodeImage(path, { width: 8, height: 8, pixelLimit: 0 }), RangeError);
    await assert.rejects(decodeImage(42 as unknown as string, { width: 8, height: 8 }), TypeError);
    await assert.rejects(decodeImage('', { width: 8, height: 8 }), TypeError);
  });
});

describe('skip accounting', () => {
  const sink = () => {
    const lines: string[] = [];
    const stderr = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
        done();
      },
    });
    return { lines, io: { stderr } };
  };

  it('writes one warning per skipped file and the summary names each reason with its count', async () => {
    const { lines, io } = sink();
    const counter = createSkipCounter();
    for (const name of ['truncated.jpg', 'text.jpg', 'whole.jpg', 'truncated.jpg']) {
      const result = await decodeImage(file(name), { width: 8, height: 8 });
      if (!result.ok) skipImage(counter, io, 'embed', name, result);
    }
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^atelier embed: warning: truncated\.jpg: skipped, truncated \(JPEG data ends before its end marker\)$/);
    assert.match(lines[1], /^atelier embed: warning: text\.jpg: skipped, not an image/);
    assert.equal(counter.total, 3);
    assert.deepEqual(counter.skipped.map((s) => s.source), ['truncated.jpg', 'text.jpg', 'truncated.jpg']);
    assert.deepEqual([...counter.countsByReason()].sort(), [['not-an-image', 1], ['truncated', 2]]);
    assert.equal(counter.summary(), 'skipped 3 corrupt images: 2 truncated, 1 not an image');
    writeSkipSummary(counter, io, 'embed');
    assert.equal(lines[3], 'atelier embed: warning: skipped 3 corrupt images: 2 truncated, 1 not an image');
  });

  it('says nothing at the end when nothing was skipped, and singular for one', () => {
    const { lines, io } = sink();
    const counter = createSkipCounter();
    writeSkipSummary(counter, io, 'tag');
    assert.deepEqual(lines, []);
    assert.equal(counter.summary(), undefined);
    counter.record('a.png', { reason: 'empty', message: 'no bytes' });
    assert.equal(counter.summary(), 'skipped 1 corrupt image: 1 empty file');
  });

  it('keeps a multi-line decoder message on one warning line', () => {
    assert.equal(
      describeSkip('x.jpg', { reason: 'corrupt', message: 'VipsJpeg: bad\n  huffman\n' }),
      'x.jpg: skipped, corrupt (VipsJpeg: bad huffman)',
    );
  });
});

describe('prefetched decoding and tensors', () => {
  it('decodes a mixed directory through the pool in order, skipping the bad files', async () => {
    const names = ['thirds.png', 'empty.jpg', 'whole.jpg', 'text.jpg', 'grey.jpg', 'truncated.jpg', 'alpha.png'];
    const counter = createSkipCounter();
    const decoded: string[] = [];
    const results = prefetchImages(names, async (name) => ({ name, result: await decodeImage(file(name), { width: 8, height: 8 }) }), {
      concurrency: 3,
      ahead: 4,
    });
    for await (const { name, result } of results) {
      if (result.ok) decoded.push(name);
      else counter.record(name, result);
    }
    assert.deepEqual(decoded, ['thirds.png', 'whole.jpg', 'grey.jpg', 'alpha.png']);
    assert.equal(counter.summary(), 'skipped 3 corrupt images: 1 empty file, 1 not an image, 1 truncated');
  });

  it('stacks images NHWC and makes tensors of the right shape and values', async () => {
    const a = await decodeOk(file('thirds.png'), { width: 6, height: 2 });
    const b = await decodeOk(file('quadrants-20.png'), { width: 6, height: 2, fit: 'contain' });
    const stacked = stackImages([a, b]);
    assert.equal(stacked.length, 2 * 6 * 2 * 3);
    assert.deepEqual(stacked.subarray(0, a.data.length), a.data);
    assert.deepEqual(stacked.subarray(a.data.length), b.data);
    assert.throws(() => stackImages([a, { ...a, width: 3 }]), RangeError);

    const one = await imageToTensor(a);
    const batch = await imagesToTensor([a, b]);
    try {
      assert.deepEqual(one.shape, [2, 6, 3]);
      assert.equal(one.dtype, 'float32');
      assert.deepEqual(batch.shape, [2, 2, 6, 3]);
      assert.deepEqual(Float32Array.from(await batch.data()), stacked);
    } finally {
      one.dispose();
      batch.dispose();
    }
  });
});
