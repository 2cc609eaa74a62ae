// train-locate, locate and embed --crop on the fixture scenes (garments at known boxes on varied
// backdrops), run as a user would: the located boxes overlap the true ones on held-out images, and
// retrieval on the located crops beats retrieval on the whole photos when garments are small and
// off-centre; bad boxes are one-line exit-2 errors.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { generateScenes } from '../../fixtures/lib/scenes.js';

let dir: string;
let varied: string;
let small: string;

before(async () => {
  dir = scratchDir();
  await generateScenes({ out: join(dir, 'varied'), seed: 3, products: 120, variant: 'varied' });
  await generateScenes({ out: join(dir, 'small'), seed: 4, products: 100, variant: 'small' });
  varied = join(dir, 'varied', 'scenes.ndjson');
  small = join(dir, 'small', 'scenes.ndjson');
});

function topOne(stdout: string): number {
  return (JSON.parse(stdout) as { topk: Record<string, number> }).topk['1'];
}

test('located boxes overlap the true ones on held-out scenes; crops retrieve the same item far better than whole photos', { timeout: 240_000 }, async () => {
  const model = join(dir, 'locate.model');
  const trained = await runAtelier([
    'train-locate', '-i', varied, '--image-size', '64', '--input-size', '24', '--stages', '3', '--width', '8',
    '--lr', '0.005', '--box-weight', '4', '--epochs', '6', '--patience', '6', '--val-fraction', '0', '-o', model,
  ], { timeoutMs: 220_000 });
  assert.equal(trained.code, 0, trained.stderr);
  const report = JSON.parse(trained.stdout) as { test: { images: number; meanIoU: number } };
  assert.ok(report.test.images >= 30, `test images ${report.test.images}`);
  // A box at the centre of the frame covering a quarter of it scores mean IoU ~0.1 on these scenes.
  assert.ok(report.test.meanIoU >= 0.4, `held-out mean IoU ${report.test.meanIoU}`);

  const located = await runAtelier(['locate', '-m', model, '-i', small]);
  assert.equal(located.code, 0, located.stderr);
  const boxes = parseNdjson(located.stdout);
  assert.equal(boxes.length, 200);
  for (const b of boxes) for (const k of ['x', 'y', 'w', 'h', 'score']) assert.equal(typeof b[k], 'number', `${k} in ${JSON.stringify(b)}`);
  assert.match(located.stderr, /mean IoU [\d.]+ with the records' boxes/);
  const boxesFile = join(dir, 'boxes.ndjson');
  writeFileSync(boxesFile, located.stdout);

  // Same embedder (raw pixels) on the whole photo and on the located garment.
  const full = await runAtelier(['embed', '-m', 'pixels', '-i', small, '-o', join(dir, 'full.npy')]);
  assert.equal(full.code, 0, full.stderr);
  const crops = await runAtelier(['embed', '-m', 'pixels', '-i', small, '--crop', boxesFile, '-o', join(dir, 'crops.npy')]);
  assert.equal(crops.code, 0, crops.stderr);
  assert.match(crops.stderr, /200 images cropped to their box/);
  const onFull = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'full.npy')]);
  const onCrops = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'crops.npy')]);
  assert.equal(onCrops.code, 0, onCrops.stderr);
  const [a, b] = [topOne(onFull.stdout), topOne(onCrops.stdout)];
  // 100 items: chance top-1 is 0.01; whole photos are ranked by their backdrops.
  assert.ok(b >= a + 0.1, `top-1 on located crops ${b} vs whole photos ${a}: at least 0.1 better`);
});

test('boxes: a missing or non-positive side is a one-line exit-2 error naming the line and field', async () => {
  const bad = join(dir, 'bad-boxes.ndjson');
  writeFileSync(bad, '{"id":"p0001-1","x":1,"y":2,"w":3,"h":4}\n{"id":"p0001-2","x":1,"y":2,"w":0,"h":4}\n');
  const r = await runAtelier(['embed', '-m', 'pixels', '-i', small, '--crop', bad, '-o', join(dir, 'x.npy')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), `atelier embed: ${bad}:2: w: box side must be positive, got 0`);
  const records = join(dir, 'no-box.ndjson');
  writeFileSync(records, JSON.stringify({ id: 'a', image: 'p.jpg' }) + '\n');
  const t = await runAtelier(['train-locate', '-i', records, '-o', join(dir, 'y')]);
  assert.equal(t.code, 2);
  assert.equal(t.stderr.trim(), `atelier train-locate: ${records}:1: x: expected the garment box: x, y, w, h in pixels`);
});
