import { test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { readNpy } from '../../src/lib/io/npy.js';
import { neighborLabelAgreement } from '../../src/lib/tsne/index.js';
import { catalogueSlice } from './report-fixture.js';

const dir = scratchDir('atelier-tsne-cmd-');
const COUNT = 720;

/** Share of points whose label is `label`'s most common value: the agreement a map without structure would get. */
function chanceAgreement(labels: string[]): number {
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts.values()].reduce((a, c) => a + (c / labels.length) ** 2, 0);
}

let embeddings = '';
let records: Array<Record<string, unknown>> = [];
let imagesPath = '';

test('setup: raw-pixel embeddings of fixture images', async () => {
  const slice = catalogueSlice(dir, COUNT);
  records = slice.records;
  imagesPath = slice.path;
  embeddings = join(dir, 'pixels.npy');
  const result = await runAtelier(['embed', '-m', 'pixels', '-i', imagesPath, '-o', embeddings]);
  assert.equal(result.code, 0, result.stderr);
});

test('tsne maps fixture embeddings so that the fixture factors form clusters, and writes .npy, NDJSON and PNG', async () => {
  const out = join(dir, 'map.ndjson');
  const npy = join(dir, 'xy.npy');
  const png = join(dir, 'silhouette.png');
  const result = await runAtelier(['tsne', embeddings, '--labels', imagesPath, '--label-field', 'silhouette', '--style', 'points', '--png', png, '--size', '600', '--npy', npy, '-o', out, '--seed', '3']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, '');
  const lines = parseNdjson(readFileSync(out, 'utf8'));
  assert.equal(lines.length, COUNT);
  assert.deepEqual(lines.map((l) => l.id), records.map((r) => r.id));
  assert.deepEqual(lines.map((l) => l.label), records.map((r) => r.silhouette));
  assert.ok(lines.every((l) => typeof l.image === 'string' && (l.image as string).endsWith('.jpg')));

  const coordinates = Float64Array.from(lines.flatMap((l) => [l.x as number, l.y as number]));
  // The raw-pixel features of the fixtures separate silhouettes and colours (drawn shapes on flat colours);
  // the map must keep that: 5-nearest-neighbour agreement far above chance (0.19 and 0.13 here).
  for (const [factor, required] of [['silhouette', 0.75], ['colour', 0.6]] as const) {
    const labels = records.map((r) => String(r[factor]));
    const agreement = neighborLabelAgreement(coordinates, labels, 5);
    const chance = chanceAgreement(labels);
    assert.ok(agreement > required, `${factor}: agreement ${agreement.toFixed(3)} (chance ${chance.toFixed(3)})`);
    assert.ok(agreement > 3 * chance);
  }

  const saved = await readNpy(npy);
  assert.deepEqual(saved.header.shape, [COUNT, 2]);
  for (let i = 0; i < COUNT; i++) assert.ok(Math.abs((saved.data[2 * i] as number) - coordinates[2 * i]) < 1e-3);
  const ids = parseNdjson(readFileSync(join(dir, 'xy.ids.ndjson'), 'utf8'));
  assert.deepEqual(ids.map((r) => r.id), records.map((r) => r.id));
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 600);

  // KL reported on stderr falls after early exaggeration.
  const kls = [...result.stderr.matchAll(/iteration (\d+): KL ([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(kls.map(([it]) => it), [250, 500, 750, 1000]);
  for (let i = 2; i < kls.length; i++) assert.ok(kls[i][1] <= kls[i - 1][1] + 1e-3, `KL ${kls[i - 1][1]} -> ${kls[i][1]}`);
  assert.ok(kls[3][1] < kls[0][1]);
});

test('tsne is deterministic with a seed, and --sample picks a seeded subset', async () => {
  const args = ['tsne', embeddings, '--iterations', '300', '--sample', '200', '--seed', '5'];
  const a = await runAtelier(args);
  const b = await runAtelier(args);
  const c = await runAtelier([...args.slice(0, -1), '6']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.notEqual(a.stdout, c.stdout);
  const lines = parseNdjson(a.stdout);
  assert.equal(lines.length, 200);
  // Rows keep the input order.
  const order = lines.map((l) => records.findIndex((r) => r.id === l.id));
  assert.deepEqual(order, [...order].sort((x, y) => x - y));
});

test('tsne draws thumbnails at their coordinates (image paths from the embeddings ids)', async () => {
  const png = join(dir, 'thumbs.png');
  const result = await runAtelier(['tsne', embeddings, '--sample', '150', '--iterations', '250', '--png', png, '--size', '500', '--thumbnail', '24', '-o', join(dir, 'thumbs.ndjson')]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /150 thumbnails -> /);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 500);
  // Photos cover part of the white canvas.
  let nonWhite = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) nonWhite++;
  assert.ok(nonWhite > 0.02 * info.width * info.height, `${nonWhite} non-white pixels`);
});

test('tsne --exact works on a small set; bad input is one line and exit 2', async () => {
  const exact = await runAtelier(['tsne', embeddings, '--exact', '--sample', '60', '--iterations', '200', '--perplexity', '10']);
  assert.equal(exact.code, 0, exact.stderr);
  assert.match(exact.stderr, /mapped in .* \(exact\)/);
  assert.equal(parseNdjson(exact.stdout).length, 60);

  const bad = await runAtelier(['tsne', embeddings, '--perplexity', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^atelier tsne: --perplexity: '0' is not a positive number/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);

  const shortIds = join(dir, 'short.ids.ndjson');
  writeFileSync(shortIds, '{"id":"a"}\n');
  const mismatch = await runAtelier(['tsne', embeddings, '--ids', shortIds]);
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stderr, /short\.ids\.ndjson.*1 ids but/);

  const missing = await runAtelier(['tsne', join(dir, 'nope.npy')]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
});
