// What lets crawl-tokenize keep memory flat: the journal gives entries back by location (so products
// need not stay in memory), images already stored are not decoded again, and the per-run caches are bounded.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openJournal } from '../../src/lib/http/journal.js';
import { imagePathFor, recentStoredHashes, sha256Hex, verifyAndStoreImage } from '../../src/lib/http/image-store.js';
import { createImageDownloader } from '../../src/lib/http/crawl.js';
import type { Fetcher } from '../../src/lib/http/fetch.js';
import type { RobotsPolicy } from '../../src/lib/http/robots.js';
import { scratchDir } from '../helpers.js';

interface Entry {
  kind: 'page';
  n: number;
  text: string;
}

test('journal: append gives a location that read returns the entry from; a reopened journal gives the same locations', () => {
  const path = join(scratchDir(), 'run.state');
  const journal = openJournal<Entry>(path, 'fp', false);
  const entries = [0, 1, 2].map((n) => ({ kind: 'page' as const, n, text: `écru ${'x'.repeat(n * 50)} "quoted"\n` }));
  const places = entries.map((e) => journal.append(e));
  assert.deepEqual(places.map((at) => journal.read(at)), entries);
  assert.deepEqual(journal.read(places[1]!), entries[1]);
  journal.close();

  appendFileSync(path, '{"kind":"page","n":3,"te'); // a torn last line, as a kill leaves it
  const reopened = openJournal<Entry>(path, 'fp', false);
  assert.deepEqual(reopened.replayed, entries);
  assert.deepEqual(reopened.replayedAt, places);
  const more = { kind: 'page' as const, n: 4, text: 'after the resume' };
  const at = reopened.append(more);
  assert.deepEqual(reopened.read(at), more);
  assert.deepEqual(reopened.replayedAt.map((p) => reopened.read(p)), entries);
  reopened.remove();
  assert.ok(!existsSync(path));
});

test('verifyAndStoreImage: new content decoded and stored once; stored content not decoded again; truncated and empty refused', async () => {
  const dir = scratchDir();
  const jpeg = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 10, b: 10 } } }).jpeg().toBuffer();
  const first = await verifyAndStoreImage(jpeg, dir);
  assert.ok(first.ok && !first.alreadyStored);
  assert.equal(first.ok && first.path, imagePathFor(dir, sha256Hex(jpeg), 'jpg'));
  const again = await verifyAndStoreImage(jpeg, dir);
  assert.ok(again.ok && again.alreadyStored);

  // A stored file is trusted as it is: neither read back nor rewritten.
  const path = imagePathFor(dir, sha256Hex(jpeg), 'jpg');
  writeFileSync(path, 'not the image');
  const trusted = await verifyAndStoreImage(jpeg, dir);
  assert.ok(trusted.ok && trusted.alreadyStored);
  assert.equal(readFileSync(path, 'utf8'), 'not the image');

  const truncated = await verifyAndStoreImage(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), dir);
  assert.deepEqual(truncated.ok ? null : truncated.reason, 'truncated');
  const text = await verifyAndStoreImage(Buffer.from('<html>no image here</html>'), dir);
  assert.deepEqual(text.ok ? null : text.reason, 'not-an-image');
  const empty = await verifyAndStoreImage(Buffer.alloc(0), dir);
  assert.deepEqual(empty.ok ? null : empty.reason, 'empty');
  assert.equal(readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.jpg')).length, 1);
});

test('a large image is verified through shrink-on-load and still refused when truncated', async () => {
  const dir = scratchDir();
  const noise = Buffer.alloc(600 * 500 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
  const big = await sharp(noise, { raw: { width: 600, height: 500, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  assert.ok(big.length > 64 * 1024, `${big.length} bytes`);
  const stored = await verifyAndStoreImage(big, dir);
  assert.ok(stored.ok);
  const cut = await verifyAndStoreImage(big.subarray(0, big.length - 4096), dir);
  assert.deepEqual(cut.ok ? null : cut.reason, 'truncated');
});

test('recentStoredHashes remembers the most recently added hashes only', () => {
  const hashes = recentStoredHashes(2);
  hashes.add('a');
  hashes.add('b');
  hashes.add('a'); // 'a' is now the most recent
  hashes.add('c');
  assert.ok(hashes.has('a') && hashes.has('c'));
  assert.ok(!hashes.has('b'));
});

test('createImageDownloader: one download per URL while remembered, a bounded number remembered', async () => {
  const dir = scratchDir();
  const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 0, g: 0, b: 255 } } }).jpeg().toBuffer();
  const requested: string[] = [];
  const fetcher = {
    async fetch({ url }: { url: string }) {
      requested.push(url);
      return { ok: true, requestedUrl: url, url, status: 200, contentType: 'image/jpeg', headers: {}, body: jpeg, redirects: [], attempts: 1 };
    },
  } as unknown as Fetcher;
  const robots = { check: async () => null } as unknown as RobotsPolicy;
  const download = createImageDownloader({ fetcher, robots, robotsToken: 'atelier-crawler', imagesDir: dir, remember: 2 });
  const [a1, a2] = await Promise.all([download('http://x/a.jpg'), download('http://x/a.jpg')]);
  assert.deepEqual(a1, a2);
  assert.ok(a1.ok);
  await download('http://x/b.jpg');
  await download('http://x/a.jpg');
  assert.deepEqual(requested, ['http://x/a.jpg', 'http://x/b.jpg']);
  await download('http://x/c.jpg'); // pushes out the oldest, a
  await download('http://x/a.jpg');
  assert.deepEqual(requested, ['http://x/a.jpg', 'http://x/b.jpg', 'http://x/c.jpg', 'http://x/a.jpg']);
});
