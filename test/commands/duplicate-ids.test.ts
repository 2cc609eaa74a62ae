// What each command does with a repeated id (run as processes): an error at the second line naming
// the first where two rows would be counted twice or contradict each other, or a counted warning
// where the repeat says the same thing (labelled training records).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeNpy } from '../../src/lib/io/npy.js';
import { runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();

function ndjson(rows: object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** The error line (the backend line may come first until the input checks move before it). */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('atelier: backend '));
  assert.equal(lines.length, 1, stderr);
  return lines[0]!;
}

async function vectors(name: string, ids: object[]): Promise<string> {
  const path = join(dir, `${name}.npy`);
  const rows = ids.map((_, i) => [Math.cos(i), Math.sin(i)]);
  await writeNpy(path, Float32Array.from(rows.flat()), [rows.length, 2]);
  writeFileSync(join(dir, `${name}.ids.ndjson`), ndjson(ids));
  return path;
}

test('knn: a repeated id in an ids file is exit 2 at its second line; --labels may repeat an id only with the same label', async () => {
  const q = await vectors('q', [{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'b' }]);
  const r = await runAtelier(['knn', '-q', q, '--k', '2']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLine(r.stderr), /q\.ids\.ndjson:4: id: id "b" is already on line 2; every row needs its own id/);

  const g = await vectors('g', [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
  const labels = join(dir, 'labels.ndjson');
  writeFileSync(labels, ndjson([{ id: 'a', colour: 'red' }, { id: 'b', colour: 'blue' }, { id: 'a', colour: 'red' }, { id: 'c', colour: 'red' }]));
  const same = await runAtelier(['knn', '-q', g, '--k', '1', '--labels', labels, '--label-field', 'colour']);
  assert.equal(same.code, 0, same.stderr);
  writeFileSync(labels, ndjson([{ id: 'a', colour: 'red' }, { id: 'b', colour: 'blue' }, { id: 'a', colour: 'green' }]));
  const conflict = await runAtelier(['knn', '-q', g, '--k', '1', '--labels', labels, '--label-field', 'colour']);
  assert.equal(conflict.code, 2, conflict.stderr);
  assert.match(errorLine(conflict.stderr), /labels\.ndjson:3: colour: id "a" already has the label "red"/);
});

test('embed: a repeated image id is exit 2 at its second line', async () => {
  const image = join(dir, 'one.png');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 10, g: 120, b: 200 } } }).png().toFile(image);
  const list = join(dir, 'images.ndjson');
  writeFileSync(list, ndjson([{ id: 'x', image }, { id: 'y', image }, { id: 'x', image }]));
  const out = join(dir, 'emb.npy');
  const r = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', list, '-o', out]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLine(r.stderr), /images\.ndjson:3: id: id "x" is already on line 1; every image needs its own id/);
});

test('crawl-tokenize --import --id-field: a repeated product id is exit 2 at its second row (file and stdin)', async () => {
  const rows = ndjson([
    { sku: 'p1', title: 'red dress', category: 'dress', description: 'cotton' },
    { sku: 'p2', title: 'blue shirt', category: 'shirt', description: 'linen' },
    { sku: 'p1', title: 'green dress', category: 'dress', description: 'silk' },
  ]);
  const input = join(dir, 'catalogue.ndjson');
  writeFileSync(input, rows);
  const fromFile = await runAtelier(['crawl-tokenize', '--import', input, '--id-field', 'sku', '-o', join(dir, 'samples.ndjson')]);
  assert.equal(fromFile.code, 2, fromFile.stderr);
  assert.match(errorLine(fromFile.stderr), /catalogue\.ndjson:3: sku: id "p1" is already on line 1; every row needs its own id/);
  const fromStdin = await runAtelier(['crawl-tokenize', '--import', '-', '--id-field', 'sku', '-o', join(dir, 'samples2.ndjson')], { input: rows });
  assert.equal(fromStdin.code, 2, fromStdin.stderr);
  assert.match(errorLine(fromStdin.stderr), /^atelier crawl-tokenize: stdin:3: sku: id "p1" is already on line 1/);
});

test('eval-classifier: a prediction id repeated is exit 2; a truth id may repeat with its label, not with another', async () => {
  const predictions = join(dir, 'pred.ndjson');
  writeFileSync(predictions, ndjson([{ id: 'a', label: 'dress' }, { id: 'b', label: 'shirt' }, { id: 'a', label: 'dress' }]));
  const truth = join(dir, 'truth.ndjson');
  writeFileSync(truth, ndjson([{ id: 'a', label: 'dress' }, { id: 'b', label: 'shirt' }]));
  const twice = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth]);
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(errorLine(twice.stderr), /pred\.ndjson:3: id: id 'a' was already predicted on line 1/);

  writeFileSync(predictions, ndjson([{ id: 'a', label: 'dress' }, { id: 'b', label: 'shirt' }]));
  writeFileSync(truth, ndjson([{ id: 'a', label: 'dress' }, { id: 'b', label: 'shirt' }, { id: 'a', label: 'dress' }]));
  const same = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth]);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(JSON.parse(same.stdout).scored, 2);
  writeFileSync(truth, ndjson([{ id: 'a', label: 'dress' }, { id: 'b', label: 'shirt' }, { id: 'a', label: 'shirt' }]));
  const conflict = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth]);
  assert.equal(conflict.code, 2, conflict.stderr);
  assert.match(errorLine(conflict.stderr), /truth\.ndjson:3: label: id 'a' is labelled 'dress' on line 1 and 'shirt' here/);
});

test('train-classifier: an id with two labels is exit 2 naming both lines; the same label twice is used once, with a warning', async () => {
  const ids = Array.from({ length: 12 }, (_, i) => ({ id: `r${i}` }));
  const features = await vectors('train', ids);
  const records = ids.map((r, i) => ({ ...r, label: i % 2 === 0 ? 'dress' : 'shirt' }));
  const input = join(dir, 'labelled.ndjson');
  writeFileSync(input, ndjson([...records, { id: 'r0', label: 'shirt' }]));
  const conflict = await runAtelier(['train-classifier', '-f', features, '-i', input, '-l', 'label', '-o', join(dir, 'c.model'), '--epochs', '1']);
  assert.equal(conflict.code, 2, conflict.stderr);
  assert.match(errorLine(conflict.stderr), /labelled\.ndjson:13: label: id 'r0' is labelled 'dress' on line 1 and 'shirt' here/);

  writeFileSync(input, ndjson([...records, { id: 'r0', label: 'dress' }, { id: 'r1', label: 'shirt' }]));
  const repeated = await runAtelier(['train-classifier', '-f', features, '-i', input, '-l', 'label', '-o', join(dir, 'c.model'), '--epochs', '1']);
  assert.equal(repeated.code, 0, repeated.stderr);
  assert.match(repeated.stderr, /warning: 2 records repeat an earlier id with the same label; each id is used once/);
});

test('train-sizenet: an article scored twice in the teacher file is exit 2 naming both lines', async () => {
  const ids = Array.from({ length: 8 }, (_, i) => ({ id: `s${i}` }));
  const features = await vectors('sizenet', ids);
  const teacher = join(dir, 'teacher.ndjson');
  writeFileSync(teacher, ndjson([...ids.map((r, i) => ({ ...r, label: i % 2 ? 'size issue' : 'no size issue', w: 1 })), { id: 's3', label: 'no size issue', w: 2 }]));
  const r = await runAtelier(['train-sizenet', '-f', features, '-t', teacher, '-o', join(dir, 's.model'), '--epochs', '1']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLine(r.stderr), /teacher\.ndjson:9: id: article "s3" is already scored on line 4/);
});

test('train-triplet: an id in two positive groups is exit 2 naming both lines', async () => {
  const input = join(dir, 'triplets.ndjson');
  writeFileSync(input, ndjson([{ id: 'i1', item: 'A', image: 'a.jpg' }, { id: 'i2', item: 'A', image: 'b.jpg' }, { id: 'i3', item: 'B', image: 'c.jpg' }, { id: 'i1', item: 'B', image: 'a.jpg' }]));
  const r = await runAtelier(['train-triplet', '-i', input, '-o', join(dir, 't.model')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLine(r.stderr), /triplets\.ndjson:4: item: id 'i1' is labelled 'A' on line 1 and 'B' here/);
});
