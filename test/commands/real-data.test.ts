// Real fashion data (../shared/data beside the repository, or ATELIER_REAL_DATA): the Myntra catalogue
// through crawl-tokenize's import and the RentTheRunway rentals through teacher-score. Every test
// skips with a line saying so when the data is absent; together they take well under a minute.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';

const DATA = process.env.ATELIER_REAL_DATA ?? join(repoRoot, '..', 'shared', 'data');
const MYNTRA = join(DATA, 'fashion-product-images-small');
const STYLES_FULL = join(MYNTRA, 'styles_full.csv');
const STYLES = join(MYNTRA, 'styles.csv');
const FIT = join(DATA, 'fit', 'renttherunway_fit.csv.gz');
const dir = scratchDir('atelier-real-');

function absent(path: string): string | false {
  return existsSync(path) ? false : `real data absent: no ${path}`;
}

const TITLE_ONLY = ['--id-field', 'id', '--title-field', 'productDisplayName', '--category-field', '', '--description-field', '', '--fields', 'title'];

test('crawl-tokenize imports the titles of all 44,446 Myntra products and reports the vocabulary it writes', async (ctx) => {
  const skipReason = absent(STYLES_FULL);
  if (skipReason) ctx.skip(String(skipReason));
  const out = join(dir, 'full.ndjson');
  const vocab = join(dir, 'full-vocab.ndjson');
  const result = await runAtelier(['crawl-tokenize', '--import', STYLES_FULL, ...TITLE_ONLY, '-o', out, '--vocab', vocab]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /rows: 44446 read, 44446 products/);
  const reported = Number(/vocabulary (\d+) words/.exec(result.stderr)?.[1]);
  const words = parseNdjson(readFileSync(vocab, 'utf8'));
  assert.equal(words.length, reported);
  assert.ok(reported > 3000 && reported < 30000, `vocabulary ${reported}`);

  const records = parseNdjson(readFileSync(out, 'utf8'));
  assert.equal(records.length, 44446);
  assert.equal(records[0]!.id, '15970');
  assert.deepEqual(records[0]!.tokens, ['turtle', 'check', 'men', 'navy', 'blue', 'shirt']);
  assert.equal(records[0]!.image, null);
  // The vocabulary is sorted by frequency and its df agrees with the records written.
  assert.equal(words[0]!.word, 'men');
  for (const entry of words.slice(0, 3)) {
    const df = records.filter((r) => (r.tokens as string[]).includes(entry.word as string)).length;
    assert.equal(entry.df, df, `df of ${entry.word}`);
  }
  for (let i = 1; i < words.length; i++) assert.ok((words[i - 1]!.count as number) >= (words[i]!.count as number));
  // Words with digits never enter a bag, though titles hold sizes and model numbers.
  assert.ok(!words.some((w) => /\d/.test(w.word as string)));
});

test('crawl-tokenize imports Myntra rows with their JPEGs: each image stored once under its SHA-256', async (ctx) => {
  const skipReason = absent(STYLES);
  if (skipReason) ctx.skip(String(skipReason));
  const lines = readFileSync(STYLES, 'utf8').split('\n');
  const subset = join(dir, 'styles-100.csv');
  writeFileSync(subset, lines.slice(0, 101).join('\n') + '\n');
  const out = join(dir, 'images.ndjson');
  const result = await runAtelier([
    'crawl-tokenize', '--import', subset, ...TITLE_ONLY, '--image-field', 'image', '--image-base', join(MYNTRA, 'images'),
    '--images', join(dir, 'img'), '-o', out, '--vocab', join(dir, 'vocab-100.ndjson'),
  ]);
  assert.equal(result.code, 0, result.stderr);
  const records = parseNdjson(readFileSync(out, 'utf8'));
  assert.equal(records.length, 100);
  for (const record of records.slice(0, 10)) {
    const source = join(MYNTRA, 'images', `${record.id as string}.jpg`);
    const digest = createHash('sha256').update(readFileSync(source)).digest('hex');
    assert.equal(record.sha256, digest);
    assert.ok((record.image as string).endsWith(`${digest}.jpg`));
    assert.deepEqual(readFileSync(record.image as string), readFileSync(source));
  }
  const unique = new Set(records.map((r) => r.sha256)).size;
  assert.match(result.stderr, new RegExp(`images: 100 referenced, ${unique} saved, ${100 - unique} duplicates`));
});

test('teacher-score on all RentTheRunway rentals by season: counts, label shares, and --tau keeps exactly the confident ones', async (ctx) => {
  const skipReason = absent(FIT);
  if (skipReason) ctx.skip(String(skipReason));
  const args = ['teacher-score', '--id-col', 'item_id', '--date-col', 'review_date', '--returned-col', 'fit', '--returned-values', 'small,large', '--kept-values', 'fit', '--bucket', 'season', FIT];
  const [all, confident] = await Promise.all([runAtelier(args), runAtelier([...args, '--tau', '1.5'])]);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(confident.code, 0, confident.stderr);
  const rows = parseNdjson(all.stdout);
  const text = gunzipSync(readFileSync(FIT)).toString('utf8');
  const header = text.slice(0, text.indexOf('\n')).split(',');
  const fitColumn = header.indexOf('fit');
  const dataRows = text.split('\n').slice(1).filter((l) => l !== '');
  const sizeReturns = dataRows.filter((l) => ['small', 'large'].includes(l.split(',')[fitColumn]!)).length;
  assert.equal(rows.length, 5850);
  assert.equal(rows.reduce((sum, r) => sum + (r.n as number), 0), dataRows.length);
  assert.equal(rows.reduce((sum, r) => sum + (r.k as number), 0), sizeReturns);
  const issues = rows.filter((r) => r.label === 'size issue');
  const share = issues.length / rows.length;
  assert.ok(share > 0.35 && share < 0.55, `size-issue share ${share}`);
  for (const r of rows) assert.equal(r.label === 'size issue', (r.rate as number) > (r.p as number), `label of ${r.id as string}`);
  assert.match(all.stderr, new RegExp(`labels: size issue ${issues.length} \\(`));

  const kept = parseNdjson(confident.stdout);
  assert.ok(kept.every((r) => (r.w as number) >= 1.5));
  assert.equal(kept.length, rows.filter((r) => (r.w as number) >= 1.5).length);
  assert.ok(kept.length > 0 && kept.length < rows.length);
});
