// classify on images: a fine-tuned model and a raw-pixel head; corrupt images are warned about,
// counted and answered with an error line in place, never fatal, in training or in inference.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

let dir: string;
let catalogue: string;
let good: Array<Record<string, unknown>>;
let corrupt: string[];
let mixed: string;

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  good = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 400);
  corrupt = parseNdjson(readFileSync(join(catalogue, 'corrupt.ndjson'), 'utf8')).map((r) => String(r.path));
  // Good and corrupt images interleaved, with absolute paths so the list can live anywhere.
  const lines: string[] = [];
  good.forEach((r, i) => {
    lines.push(JSON.stringify({ ...r, image: join(catalogue, String(r.image)) }));
    if (i % 50 === 7 && corrupt[Math.floor(i / 50)]) lines.push(JSON.stringify({ id: `bad-${Math.floor(i / 50)}`, product: 'bad', silhouette: 'dress', image: join(catalogue, corrupt[Math.floor(i / 50)]) }));
  });
  mixed = join(dir, 'mixed.ndjson');
  writeFileSync(mixed, lines.join('\n') + '\n');
});

test('train-classifier --mode finetune skips corrupt training images, counts them, and classify labels new images', async () => {
  const model = join(dir, 'finetuned.model');
  const r = await runAtelier(['train-classifier', '-i', mixed, '-l', 'silhouette', '--mode', 'finetune', '--input-size', '32', '--width', '8', '--epochs', '2', '-o', model]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const expectedCorrupt = mixed ? readFileSync(mixed, 'utf8').split('\n').filter((l) => l.includes('"bad-')).length : 0;
  assert.equal(report.samples.corruptImages, expectedCorrupt);
  assert.match(r.stderr, new RegExp(`skipped ${expectedCorrupt} corrupt images`));
  assert.equal(report.samples.train + report.samples.val + report.samples.test, good.length);

  const classified = await runAtelier(['classify', '-m', model, ...good.slice(0, 3).map((g) => join(catalogue, String(g.image)))]);
  assert.equal(classified.code, 0, classified.stderr);
  const lines = parseNdjson(classified.stdout);
  assert.equal(lines.length, 3);
  for (const l of lines) assert.ok(report.labels.includes(l.label), `label ${String(l.label)} is a class`);
});

test('classify: a corrupt image gives a warning and an error line in its place, the run goes on and counts it', async () => {
  const model = join(dir, 'pixels.model');
  const trained = await runAtelier(['train-classifier', '-i', mixed, '-l', 'silhouette', '--tower', 'pixels', '--pixels-size', '8', '--epochs', '15', '-o', model]);
  assert.equal(trained.code, 0, trained.stderr);
  const r = await runAtelier(['classify', '-m', model, '-i', mixed]);
  assert.equal(r.code, 0, r.stderr);
  const input = parseNdjson(readFileSync(mixed, 'utf8'));
  const out = parseNdjson(r.stdout);
  assert.deepEqual(out.map((o) => o.id), input.map((i) => i.id), 'one line per input line, in order');
  const errors = out.filter((o) => o.error !== undefined);
  const bad = input.filter((i) => String(i.id).startsWith('bad-'));
  assert.ok(bad.length >= 5);
  assert.deepEqual(errors.map((e) => e.id), bad.map((b) => b.id));
  for (const e of errors) assert.equal(e.label, undefined);
  assert.equal((r.stderr.match(/warning: .*skipped/g) ?? []).length, bad.length + 1, 'one warning per image plus the summary');
  assert.match(r.stderr, new RegExp(`${good.length} images classified, ${bad.length} could not be read`));
  // The raw-pixel head still tells silhouettes apart on the images it read (6 classes: chance ~1/6).
  const truth = new Map(input.map((i) => [i.id, i.silhouette]));
  const read = out.filter((o) => o.error === undefined);
  const accuracy = read.filter((o) => o.label === truth.get(o.id)).length / read.length;
  assert.ok(accuracy > 0.6, `accuracy ${accuracy.toFixed(3)} on the images read`);
  const evaluated = await runAtelier(['eval-classifier', '-t', mixed, '-l', 'silhouette'], { input: r.stdout });
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).errors, bad.length);

  // --rank/--top: the same probabilities, sorted by one label's, the best N; unreadable images left out.
  const ranked = await runAtelier(['classify', '-m', model, '-i', mixed, '--rank', 'dress', '--top', '5']);
  assert.equal(ranked.code, 0, ranked.stderr);
  const best = parseNdjson(ranked.stdout);
  const dressProbability = (o: Record<string, unknown>) => (o.probs as Record<string, number>).dress;
  const expected = read.map(dressProbability).sort((a, b) => b - a).slice(0, 5);
  assert.deepEqual(best.map(dressProbability), expected);
  const unknown = await runAtelier(['classify', '-m', model, '-i', mixed, '--rank', 'spaceship']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--rank: 'spaceship' is not one of the model's labels/);
});

test('classify refuses a model that is not a classifier, with exit 2', async () => {
  const r = await runAtelier(['classify', '-m', join(dir, 'nowhere.model'), join(catalogue, String(good[0].image))]);
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim().split('\n').pop()!, /^atelier classify: .*nowhere\.model.*not a model directory/);
});
