// train-weak with word vectors: --init-words (report 4.1) and --close-words (report 4.2), on a slice
// of the fixture catalogue so each run takes seconds.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { crawlFixtureCatalogue } from '../fixture-catalogue.js';
import { readNpy } from '../../src/lib/io/npy.js';

let dir: string;
let items: string;
let vocab: string;
let w2v: string;
const TINY = ['--input-size', '16', '--width', '4', '--stages', '2', '--batch', '8', '--epoch-size', '16', '--epochs', '1', '--negatives', '5'];

beforeAll(async () => {
  dir = scratchDir();
  const crawled = await crawlFixtureCatalogue();
  const all = crawled.items;
  vocab = crawled.vocab;
  items = join(dir, 'head.ndjson');
  writeFileSync(items, readFileSync(all, 'utf8').split('\n').slice(0, 240).join('\n') + '\n');
  w2v = join(dir, 'w2v.npy');
  const r = await runAtelier(['train-word2vec', '-i', all, '--vocab', vocab, '-o', w2v, '--dim', '24', '--epochs', '5']);
  assert.equal(r.code, 0, r.stderr);
});

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return d / Math.sqrt(na * nb);
}

test('train-weak --init-words: the word matrix starts as the word2vec rows (scaled), the projection as wide', async () => {
  const model = join(dir, 'init.model');
  // A learning rate so small that one epoch leaves the start in place.
  const r = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', model, ...TINY, '--lr', '1e-9', '--init-words', w2v]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /word matrix started from 237 of 237 word vectors/);
  const words = join(dir, 'words.npy');
  assert.equal((await runAtelier(['embed', '-m', model, '--words', '-o', words])).code, 0);
  const learned = await readNpy(words);
  const start = await readNpy(w2v);
  assert.deepEqual(learned.header.shape, [237, 24], 'the projection took the vectors\' width');
  const a = learned.data as Float32Array;
  const b = start.data as Float32Array;
  let worst = 1;
  for (let k = 0; k < 237; k++) worst = Math.min(worst, cosine(a.subarray(k * 24, k * 24 + 24), b.subarray(k * 24, k * 24 + 24)));
  assert.ok(worst > 0.999, `every word keeps its word2vec direction (worst cosine ${worst})`);
  const rms = Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0) / a.length);
  assert.ok(rms > 0.005 && rms < 0.02, `scaled to the random start's size (RMS ${rms}, start std 0.01)`);
  // And the same words score the same triplets as word2vec's own vectors.
  const fromModel = JSON.parse((await runAtelier(['eval-words', '-m', model])).stdout);
  const fromW2v = JSON.parse((await runAtelier(['eval-words', '--words', w2v])).stdout);
  assert.equal(fromModel.triplets, fromW2v.triplets);
  assert.ok(Math.abs(fromModel.accuracy - fromW2v.accuracy) < 0.01, `${fromModel.accuracy} vs ${fromW2v.accuracy}`);
});

test('train-weak --close-words trains with word2vec close negatives; mistakes are one line, exit 2', async () => {
  const model = join(dir, 'close.model');
  const r = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', model, ...TINY, '--close-words', w2v, '--close-negatives', '0.6', '--close-pool', '10']);
  assert.equal(r.code, 0, r.stderr);
  const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ loss: number }>;
  assert.ok(Number.isFinite(log[0].loss));
  const noShare = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'x.model'), ...TINY, '--close-words', w2v]);
  assert.equal(noShare.code, 2);
  assert.equal(noShare.stderr, 'atelier train-weak: --close-words: needs --close-negatives above 0 (the share of negatives taken from the near words)\n');
  const width = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'y.model'), ...TINY, '--init-words', w2v, '--projection', '32']);
  assert.equal(width.code, 2);
  assert.equal(width.stderr, 'atelier train-weak: --projection: the word vectors are 24-d: use --projection 24 (or 0)\n');
  const ids = parseNdjson(readFileSync(join(dir, 'w2v.ids.ndjson'), 'utf8'));
  writeFileSync(join(dir, 'bad.ids.ndjson'), ids.slice(1).map((x) => JSON.stringify(x)).join('\n') + '\n');
  writeFileSync(join(dir, 'bad.npy'), readFileSync(w2v));
  const bad = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'z.model'), ...TINY, '--init-words', join(dir, 'bad.npy')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^atelier train-weak: .*bad\.ids\.ndjson: 236 ids for 237 rows/);
});
