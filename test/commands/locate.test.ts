// train-locate, locate and embed --crop on the fixture scenes (garments at known boxes on varied
// backdrops), run as a user would: the located boxes overlap the true ones on held-out images, and
// retrieval on garment crops beats retrieval on the whole photos when garments are small and
// off-centre; bad boxes are one-line exit-2 errors.
import { beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { generateScenes } from '../../fixtures/lib/scenes.js';

let dir: string;
let training: string;
let unseen: string;
let small: string;

beforeAll(async () => {
  dir = scratchDir();
  await generateScenes({ out: join(dir, 'train'), seed: 3, products: 120, variant: 'varied' });
  await generateScenes({ out: join(dir, 'unseen'), seed: 4, products: 30, variant: 'varied' });
  await generateScenes({ out: join(dir, 'small'), seed: 5, products: 100, variant: 'small' });
  training = join(dir, 'train', 'scenes.ndjson');
  unseen = join(dir, 'unseen', 'scenes.ndjson');
  small = join(dir, 'small', 'scenes.ndjson');
});

function topOne(stdout: string): number {
  return topK(stdout, 1);
}

function topK(stdout: string, k: number): number {
  return (JSON.parse(stdout) as { topk: Record<string, number> }).topk[String(k)];
}

function boxIoU(a: { x: number; y: number; w: number; h: number }, b: { x: number; y: number; w: number; h: number }): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? (w * h) / (a.w * a.h + b.w * b.h - w * h) : 0;
}

/** The baseline a locator must beat: the best mean IoU of one centred square, its side chosen on the set itself. */
function centredBoxBaseline(file: string): number {
  const truth = parseNdjson(readFileSync(file, 'utf8')) as unknown as Array<{ x: number; y: number; w: number; h: number; width: number }>;
  let best = 0;
  for (let side = 0.1; side <= 1.001; side += 0.05) {
    const mean = truth.reduce((sum, t) => sum + boxIoU({ x: t.width * (1 - side) / 2, y: t.width * (1 - side) / 2, w: t.width * side, h: t.width * side }, t), 0) / truth.length;
    best = Math.max(best, mean);
  }
  return best;
}

function locatedIoU(stderr: string): number {
  return Number(/mean IoU ([\d.]+) with the records' boxes/.exec(stderr)?.[1]);
}

// The locator of both tests, as make demo trains it: 24-px patches of 96-px photos, a tower of two stages
// (a 6x6 map of the patch), the box fitted to the classifier's map (bench/RESULTS.md). Trained once, by
// whichever test needs it first.
const LOCATOR_FLAGS = ['--image-size', '96', '--input-size', '24', '--stages', '2', '--width', '8', '--lr', '0.01', '--batch', '4', '--epochs', '10', '--patience', '10', '--val-fraction', '0'];
let locator: Promise<{ model: string; report: { test: { images: number; meanIoU: number } } }> | undefined;
function trainedLocator() {
  locator ??= (async () => {
    const model = join(dir, 'locate.model');
    const trained = await runAtelier(['train-locate', '-i', training, ...LOCATOR_FLAGS, '-o', model], { timeoutMs: 220_000 });
    assert.equal(trained.code, 0, trained.stderr);
    return { model, report: JSON.parse(trained.stdout) };
  })();
  return locator;
}

// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  test('located boxes overlap the true ones on held-out scenes; locate writes one box per image in pixels', { timeout: 240_000 }, async () => {
    const { model, report } = await trainedLocator();
    assert.ok(report.test.images >= 30, `test images ${report.test.images}`);
    // Measured 0.71 (0.66 with --seed 2; 0.64 with three stages before the map's gain and offset were fitted;
    // the best centred square scores 0.35 on these scenes).
    assert.ok(report.test.meanIoU >= 0.62, `held-out mean IoU ${report.test.meanIoU}`);

    const located = await runAtelier(['locate', '-m', model, '-i', unseen]);
    assert.equal(located.code, 0, located.stderr);
    const boxes = parseNdjson(located.stdout);
    assert.equal(boxes.length, 60);
    for (const b of boxes) {
      for (const k of ['x', 'y', 'w', 'h', 'score']) assert.equal(typeof b[k], 'number', `${k} in ${JSON.stringify(b)}`);
      assert.ok((b.x as number) >= 0 && (b.x as number) + (b.w as number) <= 96.05, `box inside the 96-px image: ${JSON.stringify(b)}`);
    }
    // Measured 0.69 (0.66 with --seed 2), against 0.34 for the best centred square.
    const iou = locatedIoU(located.stderr);
    const baseline = centredBoxBaseline(unseen);
    assert.ok(iou >= 0.6, `mean IoU ${iou} on scenes of another seed`);
    assert.ok(iou >= baseline + 0.25, `mean IoU ${iou} vs ${baseline.toFixed(3)} for the best centred square: at least 0.25 better`);
    writeFileSync(join(dir, 'boxes.ndjson'), located.stdout);
    const crops = await runAtelier(['embed', '-m', 'pixels', '-i', unseen, '--crop', join(dir, 'boxes.ndjson'), '-o', join(dir, 'located.npy')]);
    assert.equal(crops.code, 0, crops.stderr);
    assert.match(crops.stderr, /60 images cropped to their box/);
  });
});

test('small off-centre garments: retrieval on the garment crops beats the whole photos by 0.3 top-1', async () => {
  // Same embedder (raw pixels) on the whole photo and on the garment's box (the scenes carry it).
  const full = await runAtelier(['embed', '-m', 'pixels', '-i', small, '-o', join(dir, 'full.npy')]);
  assert.equal(full.code, 0, full.stderr);
  const crops = await runAtelier(['embed', '-m', 'pixels', '-i', small, '--crop', small, '-o', join(dir, 'crops.npy')]);
  assert.equal(crops.code, 0, crops.stderr);
  assert.match(crops.stderr, /200 images cropped to their box/);
  const onFull = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'full.npy')]);
  const onCrops = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'crops.npy')]);
  assert.equal(onCrops.code, 0, onCrops.stderr);
  const [a, b] = [topOne(onFull.stdout), topOne(onCrops.stdout)];
  // 100 items: chance top-1 is 0.01; whole photos are ranked by their backdrops.
  assert.ok(b >= a + 0.3, `top-1 on garment crops ${b} vs whole photos ${a}: at least 0.3 better`);
});
// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  test('small off-centre garments: retrieval on the crops locate finds beats the whole photos by 0.25 top-5', { timeout: 240_000 }, async () => {
    // The locator of the test above, trained on larger garments (40-80 % of the frame) of other products,
    // finds these (28-40 %, off-centre): measured mean IoU 0.62, against 0.06 for the best centred square.
    const { model } = await trainedLocator();
    const boxes = join(dir, 'small-boxes.ndjson');
    const located = await runAtelier(['locate', '-m', model, '-i', small, '-o', boxes]);
    assert.equal(located.code, 0, located.stderr);
    const iou = locatedIoU(located.stderr);
    assert.ok(iou >= centredBoxBaseline(small) + 0.35, `mean IoU ${iou} on small garments vs ${centredBoxBaseline(small).toFixed(3)} for the best centred square: at least 0.35 better`);
    const crops = await runAtelier(['embed', '-m', 'pixels', '-i', small, '--crop', boxes, '-o', join(dir, 'located-crops.npy')]);
    assert.equal(crops.code, 0, crops.stderr);
    const full = await runAtelier(['embed', '-m', 'pixels', '-i', small, '-o', join(dir, 'whole.npy')]);
    assert.equal(full.code, 0, full.stderr);
    const onFull = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'whole.npy')]);
    const onCrops = await runAtelier(['eval-retrieval', '-p', small, '-e', join(dir, 'located-crops.npy')]);
    assert.equal(onCrops.code, 0, onCrops.stderr);
    for (const k of [1, 10, 20]) assert.ok(topK(onCrops.stdout, k) >= topK(onFull.stdout, k), `top-${k} on located crops ${topK(onCrops.stdout, k)} vs whole photos ${topK(onFull.stdout, k)}`);
    // 100 items: chance top-5 is 0.05; measured 0.40 on located crops vs 0.02 on the whole photos.
    const [a, b] = [topK(onFull.stdout, 5), topK(onCrops.stdout, 5)];
    assert.ok(b >= a + 0.25, `top-5 on located crops ${b} vs whole photos ${a}: at least 0.25 better (${located.stderr.trim().split('\n').pop()})`);
  });
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
