// train-attention on the fixture catalogue, run as a user would: multi-label training beats chance,
// the saved network runs in embed (with its custom attention layer) and its embeddings give a kNN
// label vote well above the majority class; bad input gives one-line exit-2 errors.
import { beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

let dir: string;
let records: string;
let rows: Array<Record<string, unknown>>;

beforeAll(async () => {
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  // The first view of each product: 800 images, each with a silhouette, a pattern and maybe the slim-cut mark.
  rows = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8'))
    .filter((r) => r.view === 1)
    .map((r) => ({ ...r, image: join(catalogue, String(r.image)) }));
  records = join(dir, 'first-views.ndjson');
  writeFileSync(records, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

interface SplitReport { images: number; macroAuc: number; microF1: number; perLabel: Array<{ label: string; auc: number | null }> }

// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  test('multi-label training beats chance, embed runs the saved model, the kNN label vote beats the majority class', { timeout: 300_000 }, async () => {
    const model = join(dir, 'attention.model');
    const predictions = join(dir, 'predictions.ndjson');
    const trained = await runAtelier([
      'train-attention', '-i', records, '-l', 'silhouette,pattern,slim_cut', '--input-shape', '64x64', '--scale', '2', '--width', '8',
      '--texture-dim', '16', '--hidden', '32', '--glimpse', '6', '--epochs', '6', '--lr', '0.003', '--batch', '32', '-o', model, '--predictions', predictions,
    ], { timeoutMs: 280_000 });
    assert.equal(trained.code, 0, trained.stderr);
    const report = JSON.parse(trained.stdout) as { labels: string[]; embeddingDim: number; test: SplitReport };
    assert.equal(report.labels.length, 6 + 4 + 1, 'silhouettes, patterns and slim_cut');
    // Chance is a macro AUC of 0.5 over the 11 labels.
    assert.ok(report.test.images >= 100, `test images ${report.test.images}`);
    assert.ok(report.test.macroAuc >= 0.7, `test macro AUC ${report.test.macroAuc} at least 0.2 above chance`);
    // Global pooled (4 x 8) ++ 3 steps x 8 codewords x 16 texture channels.
    assert.equal(report.embeddingDim, 32 + 3 * 8 * 16);
    assert.match(trained.stderr, /L_cls [\d.]+, L_div [\d.]+, L_loc [\d.]+/);

    const predicted = parseNdjson(readFileSync(predictions, 'utf8'));
    assert.equal(predicted.length, rows.length);
    for (const p of predicted.slice(0, 50)) {
      const boxes = p.boxes as Array<{ x: number; y: number; w: number; h: number }>;
      assert.equal(boxes.length, 3, 'one crop per attention step');
      for (const b of boxes) assert.ok(b.w > 0 && b.h > 0 && b.x + b.w / 2 > 0 && b.x + b.w / 2 < 1, `crop ${JSON.stringify(b)} centred inside the image`);
    }

    const embedded = join(dir, 'attention.npy');
    const embed = await runAtelier(['embed', '-m', model, '-i', records, '-o', embedded]);
    assert.equal(embed.code, 0, embed.stderr);
    const knn = await runAtelier(['knn', '-q', embedded, '-k', '10', '--metric', 'euclidean', '--labels', records, '--label-field', 'silhouette']);
    assert.equal(knn.code, 0, knn.stderr);
    const truth = new Map(rows.map((r) => [r.id, r.silhouette]));
    const votes = parseNdjson(knn.stdout);
    assert.equal(votes.length, rows.length);
    const accuracy = votes.filter((v) => v.label === truth.get(v.id)).length / votes.length;
    // The commonest silhouette (dress) is 23% of the catalogue.
    assert.ok(accuracy >= 0.6, `kNN vote accuracy ${accuracy.toFixed(3)} vs 0.23 for the majority class`);

    const pooled = join(dir, 'pooled.npy');
    const global = await runAtelier(['embed', '-m', model, '-i', records, '--layer', 'pooled', '-o', pooled, '--workers', '1']);
    assert.equal(global.code, 0, global.stderr);
    assert.match(global.stderr, /800 rows/);
    const header = readFileSync(pooled).subarray(0, 128).toString('latin1');
    assert.match(header, /'shape': \(800, 32\)/, 'the global branch alone');
  });
});

test('bad input shapes, label fields and a negative --evidence-weight are one-line exit-2 errors', async () => {
  const shape = await runAtelier(['train-attention', '-i', records, '-l', 'pattern', '--input-shape', '64x64', '--scale', '3', '-o', join(dir, 'x')]);
  assert.equal(shape.code, 2);
  assert.equal(shape.stderr.trim(), 'atelier train-attention: --scale: 64x64 / 3 gives 21.33x21.33; both sides must be whole multiples of 16 (two 4x4 poolings)');
  const field = await runAtelier(['train-attention', '-i', records, '-l', 'pattern,colr', '-o', join(dir, 'y')]);
  assert.equal(field.code, 2);
  assert.equal(field.stderr.trim(), `atelier train-attention: ${records}:1: colr: expected a label, a list of labels or a boolean, got nothing (field missing)`);
  const evidence = await runAtelier(['train-attention', '-i', records, '-l', 'pattern', '--evidence-weight', '-1', '-o', join(dir, 'z')]);
  assert.equal(evidence.code, 2);
  assert.equal(evidence.stderr.trim(), "atelier train-attention: --evidence-weight: '-1' is not a number >= 0");
});

test('the deck\'s 384x256 input scaled by 8 trains, and embed runs the rectangular model in this thread and in the worker pool alike', { timeout: 120_000 }, async () => {
  const few = join(dir, 'few.ndjson');
  writeFileSync(few, rows.slice(0, 120).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const model = join(dir, 'rect.model');
  const trained = await runAtelier(['train-attention', '-i', few, '-l', 'pattern,slim_cut', '--scale', '8', '--width', '4', '--texture-dim', '8', '--hidden', '16', '--glimpse', '4', '--epochs', '1', '-o', model]);
  assert.equal(trained.code, 0, trained.stderr);
  assert.match(trained.stderr, /48x32 input/);
  const meta = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).atelier.metadata;
  assert.deepEqual(meta.input, { height: 48, width: 32 });
  const here = await runAtelier(['embed', '-m', model, '-i', few, '-o', join(dir, 'rect1.npy'), '--workers', '1']);
  assert.equal(here.code, 0, here.stderr);
  const pool = await runAtelier(['embed', '-m', model, '-i', few, '-o', join(dir, 'rect2.npy'), '--workers', '2']);
  assert.equal(pool.code, 0, pool.stderr);
  const a = readFileSync(join(dir, 'rect1.npy'));
  const b = readFileSync(join(dir, 'rect2.npy'));
  assert.match(a.subarray(0, 128).toString('latin1'), /'shape': \(120, 208\)/, '16 global + 3 steps x 8 codewords x 8 channels');
  assert.ok(a.equals(b), 'the same rows from the pool');
});

test('--workers 2: a run stopped after one epoch and resumed writes the uninterrupted run\'s model, byte for byte', { timeout: 180_000 }, async () => {
  const few = join(dir, 'resume.ndjson');
  writeFileSync(few, rows.slice(0, 96).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const common = ['train-attention', '-i', few, '-l', 'pattern,slim_cut', '--input-shape', '32x32', '--width', '4', '--texture-dim', '8', '--hidden', '16', '--glimpse', '4', '--epochs', '2', '--patience', '5', '--workers', '2'];
  // Two separate executions: equal weights show that the seed fixes the run and that --resume is bit-exact.
  const [whole, first] = await Promise.all([
    runAtelier([...common, '-o', join(dir, 'whole.model')]),
    runAtelier([...common, '-o', join(dir, 'staged.model'), '--stop-after', '1']),
  ]);
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(first.code, 0, first.stderr);
  const rest = await runAtelier([...common, '-o', join(dir, 'staged.model'), '--resume']);
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stderr, /resuming after epoch 1/);
  assert.ok(readFileSync(join(dir, 'whole.model', 'weights.bin')).equals(readFileSync(join(dir, 'staged.model', 'weights.bin'))), 'same weights');
  assert.deepEqual(JSON.parse(rest.stdout).test, JSON.parse(whole.stdout).test);
  const other = await runAtelier([...common, '-o', join(dir, 'staged.model'), '--resume', '--lr', '0.01']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /checkpoint was made with other data or settings/);
});
