// crawl-tokenize --import --shard (row partition): merged samples and vocabulary equal one run byte
// for byte for n = 1, 3 and 4 shard processes, the site-specific words decided over all shards'
// frequencies; the stats equal one run's but for the wall time.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAtelier, scratchDir } from '../helpers.js';
import { shardImages } from '../shard-runs.js';

const dir = scratchDir();
let catalogue: string;

beforeAll(async () => {
  const list = await shardImages(dir, 12);
  const images = readFileSync(list, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { image: string }).image);
  const shops = ['maison', 'bellamoda', 'urbanwear'];
  const words = ['red dress', 'blue shirt', 'striped skirt', 'cotton tee', 'wool coat', 'silk scarf'];
  const rows = Array.from({ length: 24 }, (_, i) => {
    const shop = shops[i % 3];
    // Row 5 has two images (two samples), row 9 a missing one; every title names its shop (a site word).
    const image = i === 5 ? [images[1], images[2]] : i === 9 ? join(dir, 'missing.png') : images[i % 12];
    return JSON.stringify({ id: `r${i}`, shop, title: `${words[i % 6]} ${shop} exclusive`, category: `women > ${words[(i + 1) % 6].split(' ')[1]}`, description: `made in ${i % 2 ? 'italy' : 'france'}`, image });
  });
  catalogue = join(dir, 'catalogue.ndjson');
  writeFileSync(catalogue, rows.join('\n') + '\n');
});

const args = (out: string) => ['crawl-tokenize', '--import', catalogue, '--image-field', 'image', '--id-field', 'id', '--site-field', 'shop', '--images', join(dir, 'store'), '--top-k', '8', '--min-site-products', '4', '-o', out, '--vocab', out.replace(/\.ndjson$/, '.vocab.ndjson'), '--stats', out.replace(/\.ndjson$/, '.stats.json')];

function statsWithoutTime(path: string): unknown {
  const stats = JSON.parse(readFileSync(path, 'utf8')) as { run: { seconds?: number } };
  delete stats.run.seconds;
  return stats;
}

test('crawl-tokenize --import --shard: merged samples, vocabulary and stats equal one run', async () => {
  const single = join(dir, 'single.ndjson');
  const r = await runAtelier(args(single));
  assert.equal(r.code, 0, r.stderr);
  const stats = statsWithoutTime(single.replace(/\.ndjson$/, '.stats.json')) as { siteWords: Record<string, string[]> };
  assert.deepEqual(stats.siteWords, { bellamoda: ['bellamoda'], maison: ['maison'], urbanwear: ['urbanwear'] });
  for (const n of [1, 3, 4]) {
    const out = join(dir, `n${n}.ndjson`);
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => runAtelier([...args(out), '--shard', `${i}/${n}`])));
    for (const [i, run] of runs.entries()) assert.equal(run.code, 0, `shard ${i}/${n}: ${run.stderr}`);
    const merged = await runAtelier(['merge', out]);
    assert.equal(merged.code, 0, merged.stderr);
    for (const suffix of ['.ndjson', '.vocab.ndjson']) {
      assert.ok(readFileSync(out.replace(/\.ndjson$/, suffix)).equals(readFileSync(single.replace(/\.ndjson$/, suffix))), `n=${n}: ${suffix} differs`);
    }
    assert.deepEqual(statsWithoutTime(out.replace(/\.ndjson$/, '.stats.json')), stats, `n=${n}: stats differ`);
  }
});

test('crawl-tokenize --shard on a crawl: one line, exit 2', async () => {
  const r = await runAtelier(['crawl-tokenize', 'http://127.0.0.1:9/', '--images', join(dir, 'crawl'), '-o', join(dir, 'crawl.ndjson'), '--shard', '0/2']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'atelier crawl-tokenize: --shard: a crawl follows links across whole sites; shard an --import (rows) instead\n');
});
