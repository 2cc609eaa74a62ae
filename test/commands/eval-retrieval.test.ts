import { test } from 'vitest';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeNpy } from '../../src/lib/io/npy.js';
import { createRandom } from '../../src/lib/random.js';
import { parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();

async function writeVectors(name: string, rows: number[][], ids: Array<Record<string, string>>): Promise<string> {
  const path = join(dir, `${name}.npy`);
  await writeNpy(path, Float32Array.from(rows.flat()), [rows.length, rows[0].length]);
  writeFileSync(join(dir, `${name}.ids.ndjson`), ids.map((r) => JSON.stringify(r) + '\n').join(''));
  return path;
}

test('a hand-made case: top-k accuracy, mAP and first-correct ranks computed by hand', async () => {
  // cosine ranks, worked out by hand:
  //   qA (1,0):    gB1 .9988, gA1 .9939, gB2 .110, gA2 0, gC1 -1   -> A at ranks 2, 4: first 2, AP (1/2 + 2/4)/2 = .5
  //   qB (0,1):    gA2 1, gB2 .9939, gA1 .110, gB1 .050, gC1 0     -> B at ranks 2, 4: first 2, AP .5
  //   qC (-1,.2):  gC1 .981 first                                   -> first 1, AP 1
  // tA (train, equal to qA) must not enter the gallery (it would take rank 1 for qA).
  const records = [
    { id: 'qA', item: 'A', split: 'query', v: [1, 0] },
    { id: 'qB', item: 'B', split: 'query', v: [0, 1] },
    { id: 'qC', item: 'C', split: 'query', v: [-1, 0.2] },
    { id: 'gA1', item: 'A', split: 'gallery', v: [0.9, 0.1] },
    { id: 'gA2', item: 'A', split: 'gallery', v: [0, 1] },
    { id: 'gB1', item: 'B', split: 'gallery', v: [1, 0.05] },
    { id: 'gB2', item: 'B', split: 'gallery', v: [0.1, 0.9] },
    { id: 'gC1', item: 'C', split: 'gallery', v: [-1, 0] },
    { id: 'tA', item: 'A', split: 'train', v: [1, 0] },
  ];
  const partition = join(dir, 'hand.ndjson');
  writeFileSync(partition, records.map(({ id, item, split }) => JSON.stringify({ id, item, split }) + '\n').join(''));
  // Embedding rows in another order than the partition, to show matching is by id.
  const shuffled = [...records].reverse();
  const emb = await writeVectors('hand', shuffled.map((r) => r.v), shuffled.map((r) => ({ id: r.id })));
  const perQuery = join(dir, 'hand-per-query.ndjson');
  const r = await runAtelier(['eval-retrieval', '-p', partition, '-e', emb, '--k', '1,2,5', '--per-query', perQuery]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.topk, { 1: 0.333333, 2: 1, 5: 1 });
  assert.equal(out.map, 0.666667);
  assert.equal(out.medianFirstRank, 2);
  assert.equal(out.queries, 3);
  assert.equal(out.gallery, 5);
  assert.equal(out.protocol, 'query-gallery');
  assert.deepEqual(
    parseNdjson(readFileSync(perQuery, 'utf8')).map((q) => [q.id, q.rank, q.ap, q.relevant]),
    [['qA', 2, 0.5, 2], ['qB', 2, 0.5, 2], ['qC', 1, 1, 1]],
  );

  // The same ranking through knn output: knn of the queries against the gallery rows.
  const queries = await writeVectors('hq', records.slice(0, 3).map((x) => x.v), records.slice(0, 3).map((x) => ({ id: x.id })));
  const gallery = await writeVectors('hg', records.slice(3, 8).map((x) => x.v), records.slice(3, 8).map((x) => ({ id: x.id })));
  const knn = await runAtelier(['knn', '-q', queries, '-g', gallery, '--k', '3']);
  assert.equal(knn.code, 0, knn.stderr);
  const fromKnn = await runAtelier(['eval-retrieval', '-p', partition, '--knn=-', '--k', '1,2,5'], { input: knn.stdout });
  assert.equal(fromKnn.code, 0, fromKnn.stderr);
  const k3 = JSON.parse(fromKnn.stdout);
  assert.deepEqual(k3.topk, { 1: 0.333333, 2: 1, 5: null }, 'k beyond the lists is unknown');
  assert.equal(k3.mapCutoff, 3);
  // AP at depth 3: qA hits rank 2 of R = 2 -> (1/2)/2; qB the same; qC 1.
  assert.equal(k3.map, 0.5);
});

const generator = join(repoRoot, 'dist', 'fixtures', 'generate.js');

test('fixture In-Shop split: planted item vectors give top-1 = 1 and mAP = 1; every other query shuffled to a decoy gives top-1 = 0.5', async (ctx) => {
  if (!existsSync(generator)) ctx.skip('fixture generator not built');
  const fx = join(dir, 'fx');
  execFileSync(process.execPath, [generator, '--seed', '1', '--out', fx, '--products', '60'], { stdio: 'pipe' });
  const lines = readFileSync(join(fx, 'list_eval_partition.txt'), 'utf8').trim().split('\n').slice(2).map((l) => l.trim().split(/\s+/));
  const items = [...new Set(lines.map((l) => l[1]))];
  const testItems = [...new Set(lines.filter((l) => l[2] !== 'train').map((l) => l[1]))];
  const random = createRandom(9);
  // One dimension per item: the item's axis plus a little noise.
  const vector = (item: string) => items.map((it) => (it === item ? 1 : 0) + 0.02 * (random.next() - 0.5));
  const ids = lines.map((l, i) => ({ id: `view-${i}`, image: join('/somewhere/catalogue', l[0]) }));
  const planted = await writeVectors('planted', lines.map((l) => vector(l[1])), ids);
  const queryOrder = lines.map((l, i) => [l, i] as const).filter(([l]) => l[2] === 'query');
  const decoy = new Set(queryOrder.filter((_, n) => n % 2 === 1).map(([, i]) => i));
  const shuffledRows = lines.map((l, i) => (decoy.has(i) ? vector(testItems[(testItems.indexOf(l[1]) + 1) % testItems.length]) : vector(l[1])));
  const shuffled = await writeVectors('shuffled', shuffledRows, ids);

  const plot = join(dir, 'topk.png');
  const good = await runAtelier(['eval-retrieval', '-p', join(fx, 'list_eval_partition.txt'), '-e', planted, '--name', 'planted', '--baseline', 'random']);
  assert.equal(good.code, 0, good.stderr);
  const g = JSON.parse(good.stdout);
  assert.equal(g.queries, queryOrder.length);
  assert.equal(g.gallery, lines.filter((l) => l[2] === 'gallery').length);
  assert.equal(g.items, testItems.length);
  assert.ok(Object.values(g.topk).every((v) => v === 1), JSON.stringify(g.topk));
  assert.equal(g.map, 1);
  // The trained-like features must beat chance by a wide margin at every k below the gallery size.
  assert.ok(g.baselines.random.topk['1'] < 0.3);
  assert.ok(Math.abs(g.baselines.random.topkExpected['1'] - g.baselines.random.topk['1']) < 0.15);
  writeFileSync(join(dir, 'planted.json'), good.stdout);

  const bad = await runAtelier(['eval-retrieval', '-p', join(fx, 'list_eval_partition.txt'), '-e', shuffled, '--name', 'shuffled', '--plot', plot, '--compare', join(dir, 'planted.json'), '--per-query', join(dir, 'pq.ndjson')]);
  assert.equal(bad.code, 0, bad.stderr);
  const b = JSON.parse(bad.stdout);
  assert.equal(b.topk['1'], (queryOrder.length - decoy.size) / queryOrder.length);
  const perQuery = parseNdjson(readFileSync(join(dir, 'pq.ndjson'), 'utf8'));
  perQuery.forEach((q, n) => assert.equal(q.rank === 1, n % 2 === 0, `query ${n}`));
  const meta = await sharp(plot).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 800);

  // The NDJSON form of the same split, matched on view ids.
  const nd = readFileSync(join(fx, 'list_eval_partition.ndjson'), 'utf8');
  const ndIds = parseNdjson(nd).map((r) => ({ id: r.id as string }));
  const byId = await writeVectors('byid', lines.map((l) => vector(l[1])), ndIds);
  const viaNdjson = await runAtelier(['eval-retrieval', '-p', join(fx, 'list_eval_partition.ndjson'), '-e', byId]);
  assert.equal(viaNdjson.code, 0, viaNdjson.stderr);
  assert.equal(JSON.parse(viaNdjson.stdout).map, 1);
});

test('--compare with --plot alone overlays saved runs', async () => {
  const a = join(dir, 'a.json');
  const b = join(dir, 'b.json');
  writeFileSync(a, JSON.stringify({ name: 'raw pixels', topk: { 1: 0.1, 5: 0.2, 20: 0.4 } }));
  writeFileSync(b, JSON.stringify({ name: 'trained', topk: { 1: 0.3, 5: 0.5, 20: 0.78 } }));
  const out = join(dir, 'overlay.svg');
  const r = await runAtelier(['eval-retrieval', '--compare', a, b, '--plot', out]);
  assert.equal(r.code, 0, r.stderr);
  const svg = readFileSync(out, 'utf8');
  assert.match(svg, /raw pixels \[40\.0%\]/);
  assert.match(svg, /trained \[78\.0%\]/);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
});

const OFFICIAL = join(repoRoot, '..', 'shared', 'data', 'deepfashion-inshop-lists');

test('the official In-Shop lists: the random baseline over 14,218 queries matches its expectation', async (ctx) => {
  if (!existsSync(join(OFFICIAL, 'query.txt'))) ctx.skip('official lists absent');
  const r = await runAtelier(['eval-retrieval', '-p', OFFICIAL, '--baseline', 'random']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.queries, 14218);
  assert.equal(out.gallery, 12612);
  assert.equal(out.items, 3985);
  for (const k of ['1', '10', '50']) assert.ok(Math.abs(out.topk[k] - out.topkExpected[k]) < 0.006, `top-${k}: ${out.topk[k]} vs ${out.topkExpected[k]}`);
});

test('bad input exits 2 with one line', async () => {
  const partition = join(dir, 'p.ndjson');
  writeFileSync(partition, '{"id":"a","item":"x","split":"query"}\n{"id":"b","item":"x","split":"gallery"}\n');
  const strangers = await writeVectors('strangers', [[1, 0], [0, 1]], [{ id: 'u' }, { id: 'v' }]);
  const cases: Array<[string[], RegExp]> = [
    [['-e', strangers], /--partition/],
    [['-p', partition, '-e', strangers], /none of the 2 ids/],
    [['-p', partition, '-e', strangers, '--k', '1,0'], /--k: '1,0' is not a comma-separated list of positive integers/],
    [['-p', join(dir, 'absent.txt'), '--baseline', 'random'], /absent\.txt: no such file/],
    [['-p', partition], /nothing to evaluate/],
  ];
  const runs = await Promise.all(cases.map(([args]) => runAtelier(['eval-retrieval', ...args])));
  for (const [i, [args, message]] of cases.entries()) {
    assert.equal(runs[i].code, 2, `${args.join(' ')}: ${runs[i].stderr}`);
    assert.equal(runs[i].stderr.trim().split('\n').length, 1, runs[i].stderr);
    assert.match(runs[i].stderr, message);
  }
});
