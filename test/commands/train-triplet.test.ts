// train-triplet improves same-item retrieval over the tower it starts from, measured as a user
// would: embed -> eval-retrieval on the In-Shop style query/gallery split of the fixtures.
import { beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

let dir: string;
let catalogue: string;
let trainList: string;
let tower: string;

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  // Triplets only from the 'train' items: query and gallery items stay unseen.
  const images = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8'));
  trainList = join(dir, 'train.ndjson');
  writeFileSync(trainList, images.filter((r) => r.split === 'train').map((r) => JSON.stringify({ ...r, image: join(catalogue, String(r.image)) })).join('\n') + '\n');
});

async function top1(model: string, name: string): Promise<number> {
  const out = join(dir, `${name}.npy`);
  const e = await runAtelier(['embed', '-m', model, '-i', join(catalogue, 'images.ndjson'), '--normalize', '-o', out]);
  assert.equal(e.code, 0, e.stderr);
  const r = await runAtelier(['eval-retrieval', '-p', join(catalogue, 'list_eval_partition.ndjson'), '-e', out, '-k', '1,5']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).topk['1'] as number;
}

// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  beforeAll(async () => {
    // The starting tower: a silhouette classifier fine-tuned briefly from scratch (32 px, width 8).
    tower = join(dir, 'silhouette.model');
    const r = await runAtelier(['train-classifier', '-i', join(catalogue, 'images.ndjson'), '-l', 'silhouette', '--mode', 'finetune', '--input-size', '32', '--width', '8', '--epochs', '2', '-o', tower]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('triplet training raises eval-retrieval top-1 over its starting tower by at least 0.03', async () => {
    const model = join(dir, 'similarity.model');
    // On two training workers, as a user's default run on a multi-core machine (train-parallel.test.ts pins their determinism).
    const r = await runAtelier(['train-triplet', '-i', trainList, '-t', tower, '-o', model, '--epochs', '3', '--workers', '2']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.ok(summary.bestEpoch >= 1, 'an epoch beat the starting tower on validation');
    assert.match(r.stderr, /semi-hard/);
    const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ epoch: number; loss: number; valTop1: number }>;
    assert.equal(log.length, 3);
    assert.ok(log[2].loss < log[0].loss, `hinge loss falls (${log[0].loss} -> ${log[2].loss})`);
    const before = await top1(tower, 'tower');
    const after = await top1(model, 'similarity');
    assert.ok(after >= before + 0.03, `top-1 ${before.toFixed(3)} -> ${after.toFixed(3)}`);
  });
});

test('train-triplet needs groups with positives: one image per item exits 2', async () => {
  const single = join(dir, 'single.ndjson');
  const images = parseNdjson(readFileSync(trainList, 'utf8'));
  const seen = new Set<unknown>();
  writeFileSync(single, images.filter((r) => (seen.has(r.item) ? false : (seen.add(r.item), true))).slice(0, 40).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const r = await runAtelier(['train-triplet', '-i', single, '--input-size', '32', '--width', '8', '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /item: only 0 item group\(s\) with two or more training images/);
});
