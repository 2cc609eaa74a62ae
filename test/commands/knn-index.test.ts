// `knn index build` / `knn index query`: the saved, memory-mapped HNSW index against exact search,
// and the refusals of an index that does not match its query, its gallery or its own meta.json.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { npyDataSha256 } from '../../src/lib/io/npy.js';
import { loadUsearch } from '../../src/lib/knn/kernel.js';
import { createRandom } from '../../src/lib/random.js';
import { spawnSync } from 'node:child_process';
import { oneLineExit2, parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { clustered, writeVectors } from '../knn-vectors.js';

const dir = scratchDir();
const usearchLoads = loadUsearch().usearch !== null;
const skip = !usearchLoads && 'usearch does not load here';

const dim = 16;
const rows = 3000;
const queryRows = 200;
const k = 10;

test('knn index build, then query memory-mapped: the exact top-k up to a stated recall, in the exact output format', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  const g = await writeVectors(dir, 'g', clustered(rows, dim, 1), dim, 'g');
  const q = await writeVectors(dir, 'q', clustered(queryRows, dim, 2), dim, 'q');
  const index = join(dir, 'g.hnsw');
  const built = await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', index]);
  assert.equal(built.code, 0, built.stderr);
  const meta = JSON.parse(readFileSync(join(index, 'meta.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(meta.dim, dim);
  assert.equal(meta.count, rows);
  assert.equal(meta.metric, 'cosine');
  assert.equal(meta.rows_sha256, await npyDataSha256(g));
  assert.equal(meta.index_sha256, createHash('sha256').update(readFileSync(join(index, 'index.usearch'))).digest('hex'));
  const savedIds = parseNdjson(readFileSync(join(index, 'ids.ndjson'), 'utf8'));
  assert.equal(savedIds.length, rows);
  assert.equal(savedIds.at(-1)!.rows_sha256, meta.rows_sha256, 'the saved ids name the rows they index, as embed does');

  const exact = await runAtelier(['knn', '-q', q, '-g', g, '--k', String(k)]);
  assert.equal(exact.code, 0, exact.stderr);
  const exactLines = parseNdjson(exact.stdout);
  for (const load of [false, true]) {
    const r = await runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, '--k', String(k), ...(load ? ['--load'] : [])]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, load ? /loaded, cosine, f32, ef=64; verified and opened in/ : /memory-mapped, cosine, f32, ef=64; verified and opened in/);
    const lines = parseNdjson(r.stdout);
    assert.equal(lines.length, queryRows);
    let hits = 0;
    lines.forEach((line, i) => {
      const want = exactLines[i];
      // The same record shape as exact search, so eval-retrieval, report and the label vote read it.
      assert.deepEqual(Object.keys(line), Object.keys(want));
      assert.equal(line.id, want.id);
      const got = line.neighbors as Array<{ id: string; score: number }>;
      const wanted = want.neighbors as Array<{ id: string; score: number }>;
      assert.equal(got.length, k);
      for (const n of got) assert.deepEqual(Object.keys(n), ['id', 'score']);
      for (let j = 1; j < got.length; j++) assert.ok(got[j - 1].score >= got[j].score, 'best first');
      const exactScore = new Map(wanted.map((n) => [n.id, n.score]));
      for (const n of got) {
        if (!exactScore.has(n.id)) continue;
        hits++;
        assert.ok(Math.abs(n.score - exactScore.get(n.id)!) < 1e-5, `score of ${n.id}`);
      }
    });
    // Measured: recall@10 = 1.0000 on these 200 queries (M=16, efConstruction=128, ef=64); the margin
    // leaves room for usearch's multi-threaded insertion order.
    const recall = hits / (queryRows * k);
    assert.ok(recall >= 0.98, `recall@10 ${recall}`);
  }

  // --recall checks the gallery it is given is the one indexed, then measures.
  const checked = await runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, '--k', String(k), '--recall', '-g', g, '--no-verify']);
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stderr, /memory-mapped, cosine, f32, ef=64; opened in/);
  assert.ok(Number(/recall@10 against exact search on 200 queries: ([\d.]+)/.exec(checked.stderr)?.[1]) >= 0.98, checked.stderr);
});

test('knn index query refuses a query, metric or gallery the index was not built for: exit 2, one line', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  const g = await writeVectors(dir, 'm', clustered(500, dim, 3), dim, 'm');
  const index = join(dir, 'm.hnsw');
  assert.equal((await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', index])).code, 0);
  const narrow = await writeVectors(dir, 'narrow', clustered(5, 8, 4), 8, 'n');
  const q = await writeVectors(dir, 'mq', clustered(5, dim, 5), dim, 'mq');
  // Same shape and ids, other rows; and the same rows with one id changed.
  const otherRows = await writeVectors(dir, 'other', clustered(500, dim, 6), dim, 'm');
  cpSync(g, join(dir, 'renamed.npy'));
  const ids = readFileSync(join(dir, 'm.ids.ndjson'), 'utf8').split('\n');
  ids[41] = JSON.stringify({ id: 'someone-else' });
  writeFileSync(join(dir, 'renamed.ids.ndjson'), ids.join('\n'));
  const meta = join(index, 'meta.json');
  const cases: Array<[string[], RegExp]> = [
    [['-q', narrow], new RegExp(`^atelier knn: ${meta}: dim: .*narrow\\.npy has 8-d rows but the index holds 16-d vectors`)],
    [['-q', q, '--metric', 'euclidean'], new RegExp(`^atelier knn: ${meta}: metric: the index was built for cosine, not euclidean`)],
    [['-q', q, '--rescore', '20'], /^atelier knn: --rescore: an f32 index scores its candidates exactly already/],
    [['-q', q, '--recall', '-g', otherRows], /^atelier knn: .*other\.ids\.ndjson: rows_sha256: the gallery's rows differ from the ones the index was built from/],
    [['-q', q, '--recall', '-g', join(dir, 'renamed.npy')], /^atelier knn: .*renamed\.ids\.ndjson:42: id: id "someone-else" differs from the index's "m41"/],
  ];
  const runs = await Promise.all(cases.map(([args]) => runAtelier(['knn', 'index', 'query', '--index-dir', index, ...args])));
  runs.forEach((r, i) => oneLineExit2(r, cases[i][1]));
  // The index's own metric is used when --metric is left out, and may be repeated.
  assert.equal((await runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, '--metric', 'cosine'])).code, 0);
});

test('a damaged index directory is exit 2, one line, before the native search can crash on it', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  const g = await writeVectors(dir, 'd', clustered(400, dim, 7), dim, 'd');
  const q = await writeVectors(dir, 'dq', clustered(5, dim, 8), dim, 'dq');
  const good = join(dir, 'd.hnsw');
  assert.equal((await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', good])).code, 0);
  const copy = (name: string) => {
    const to = join(dir, name);
    cpSync(good, to, { recursive: true });
    return to;
  };
  const file = readFileSync(join(good, 'index.usearch'));
  const truncated = copy('truncated.hnsw');
  truncateSync(join(truncated, 'index.usearch'), file.length - 100);
  // Random bytes in the graph, past usearch's header: measured to segfault or abort a search unchecked.
  const garbled = copy('garbled.hnsw');
  const bytes = Buffer.from(file);
  const graph = bytes.indexOf('usearch') + 2000;
  const noise = createRandom(9);
  for (let i = graph; i < graph + 1000; i++) bytes[i] = Math.floor(noise.next() * 256);
  writeFileSync(join(garbled, 'index.usearch'), bytes);
  // usearch's magic overwritten, checked by usearch itself when --no-verify skips the checksum.
  const noMagic = copy('nomagic.hnsw');
  const magicless = Buffer.from(file);
  magicless.fill(0, magicless.indexOf('usearch'), magicless.indexOf('usearch') + 7);
  writeFileSync(join(noMagic, 'index.usearch'), magicless);
  const editedIds = copy('ids.hnsw');
  writeFileSync(join(editedIds, 'ids.ndjson'), readFileSync(join(good, 'ids.ndjson'), 'utf8').replace('"d3"', '"d3x"'));
  const badMeta = copy('meta.hnsw');
  writeFileSync(join(badMeta, 'meta.json'), readFileSync(join(good, 'meta.json'), 'utf8').replace(/"dim": \d+/, '"dim": "16"'));
  const oldMeta = copy('v1.hnsw');
  writeFileSync(join(oldMeta, 'meta.json'), readFileSync(join(good, 'meta.json'), 'utf8').replace('"version": 2', '"version": 1'));
  const cases: Array<[string, string[], RegExp]> = [
    [truncated, [], /truncated\.hnsw\/index\.usearch: index_bytes: \d+ bytes, but .* records \d+: the file was truncated or replaced/],
    [garbled, [], /garbled\.hnsw\/index\.usearch: index_sha256: differs from the index_sha256 in .*: the file is damaged/],
    [noMagic, ['--no-verify'], /nomagic\.hnsw\/index\.usearch: not a readable usearch index: Magic header mismatch/],
    [editedIds, [], /ids\.hnsw\/ids\.ndjson: ids_sha256: differs from the ids_sha256 in/],
    [badMeta, [], /meta\.hnsw\/meta\.json: dim: expected a positive integer/],
    [oldMeta, [], /v1\.hnsw\/meta\.json: version: version 1 is not 2/],
    [dir, [], /not an index directory made by 'atelier knn index build' \(no meta\.json\)/],
  ];
  const runs = await Promise.all(cases.map(([index, extra]) => runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, ...extra])));
  runs.forEach((r, i) => oneLineExit2(r, new RegExp(`^atelier knn: .*${cases[i][2].source}`)));
});

test('an i8 index keeps the exact rows and re-ranks its candidates on them: exact scores, stated recall, its refusals', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  const g = await writeVectors(dir, 'i8', clustered(rows, dim, 11), dim, 'g');
  const q = await writeVectors(dir, 'i8q', clustered(queryRows, dim, 12), dim, 'q');
  const index = join(dir, 'i8.hnsw');
  const built = await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', index, '--quantization', 'i8', '--threads', '2']);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stderr, /indexed 3000 16-d rows \(cosine, i8, M=16\)/);
  const meta = JSON.parse(readFileSync(join(index, 'meta.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(meta.quantization, 'i8');
  // rows.npy holds the gallery's float32 rows as they were: the same data digest.
  assert.equal(meta.exact_rows_sha256, await npyDataSha256(g));
  assert.equal(await npyDataSha256(join(index, 'rows.npy')), meta.rows_sha256);
  // A quarter of the bytes per row in the graph file (16 instead of 64, plus the same graph).
  const f32 = join(dir, 'i8-as-f32.hnsw');
  assert.equal((await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', f32])).code, 0);
  assert.ok(statSync(join(index, 'index.usearch')).size < statSync(join(f32, 'index.usearch')).size - rows * 40);

  const exact = parseNdjson((await runAtelier(['knn', '-q', q, '-g', g, '--k', String(k)])).stdout);
  const scoreOf = (line: Record<string, unknown>) => new Map((line.neighbors as Array<{ id: string; score: number }>).map((n) => [n.id, n.score]));
  const recallOf = (stdout: string) => {
    let hits = 0;
    parseNdjson(stdout).forEach((line, i) => {
      const want = scoreOf(exact[i]);
      const got = line.neighbors as Array<{ id: string; score: number }>;
      for (let j = 1; j < got.length; j++) assert.ok(got[j - 1].score >= got[j].score, 'best first');
      for (const n of got) {
        if (!want.has(n.id)) continue;
        hits++;
        // Re-ranked on the exact rows: the exact search's score, not the int8 one.
        assert.ok(Math.abs(n.score - want.get(n.id)!) < 1e-5, `score of ${n.id}: ${n.score} vs ${want.get(n.id)}`);
      }
    });
    return hits / (queryRows * k);
  };
  const r = await runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, '--k', String(k)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /memory-mapped, cosine, i8, ef=64, 40 candidates re-ranked on exact rows; verified and opened in/);
  // Measured: recall@10 = 1.0000 with 40 candidates re-ranked, 0.9615 with only the 10 it returns (--rescore 10).
  assert.ok(recallOf(r.stdout) >= 0.98, `recall@10 ${recallOf(r.stdout)}`);
  const fewer = await runAtelier(['knn', 'index', 'query', '--index-dir', index, '-q', q, '--k', String(k), '--rescore', '10', '--no-verify']);
  assert.equal(fewer.code, 0, fewer.stderr);
  assert.match(fewer.stderr, /i8, ef=64, 10 candidates re-ranked on exact rows; opened in/);
  assert.ok(recallOf(fewer.stdout) <= recallOf(r.stdout));

  const truncated = join(dir, 'i8-truncated.hnsw');
  cpSync(index, truncated, { recursive: true });
  truncateSync(join(truncated, 'rows.npy'), statSync(join(index, 'rows.npy')).size - 64);
  const garbled = join(dir, 'i8-garbled.hnsw');
  cpSync(index, garbled, { recursive: true });
  const rowBytes = readFileSync(join(index, 'rows.npy'));
  rowBytes[rowBytes.length - 3] ^= 0x40;
  writeFileSync(join(garbled, 'rows.npy'), rowBytes);
  const cases: Array<[string[], RegExp]> = [
    [['knn', 'index', 'query', '--index-dir', truncated, '-q', q], /^atelier knn: .*i8-truncated\.hnsw\/rows\.npy: file is truncated: shape \(3000, 16\) of <f4 needs 192000 data bytes, the file has 191936$/],
    [['knn', 'index', 'query', '--index-dir', garbled, '-q', q], /^atelier knn: .*i8-garbled\.hnsw\/rows\.npy: exact_rows_sha256: differs from the exact_rows_sha256 in/],
    [['knn', 'index', 'build', '-g', g, '--index-dir', join(dir, 'l2.hnsw'), '--quantization', 'i8', '--metric', 'euclidean'], /^atelier knn: --quantization: i8 keeps only cosine .*, not euclidean; use f16 or f32$/],
    [['knn', '-q', q, '-g', g, '--index', 'hnsw', '--quantization', 'f16'], /^atelier knn: --quantization: is for 'knn index build'/],
    [['knn', 'index', 'build', '-g', g, '--index-dir', join(dir, 'q4.hnsw'), '--quantization', 'i4'], /quantization/],
  ];
  const runs = await Promise.all(cases.map(([args]) => runAtelier(args)));
  runs.forEach((run, i) => oneLineExit2(run, cases[i][1]));
});

test('without the optional usearch package, HNSW is one line (exit 1) and exact search still runs', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  // A copy of the install whose node_modules holds every package but usearch, as when its native part failed.
  const root = join(dir, 'no-usearch');
  mkdirSync(join(root, 'node_modules'), { recursive: true });
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(repoRoot, part), join(root, part), { recursive: true });
  for (const name of readdirSync(join(repoRoot, 'node_modules'))) {
    if (name !== 'usearch') symlinkSync(join(repoRoot, 'node_modules', name), join(root, 'node_modules', name));
  }
  const g = await writeVectors(dir, 'nu', clustered(50, dim, 10), dim, 'nu');
  const index = join(dir, 'nu.hnsw');
  assert.equal((await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', index])).code, 0);
  const run = (args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'atelier'), 'knn', ...args], { encoding: 'utf8' });
  for (const args of [['index', 'query', '--index-dir', index, '-q', g], ['-q', g, '--index', 'hnsw']]) {
    const r = run(args);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, "atelier knn: HNSW search needs usearch, an optional dependency that did not load (Cannot find module 'usearch'); exact search works without it\n");
  }
  const exact = run(['-q', g, '--k', '3']);
  assert.equal(exact.status, 0, exact.stderr);
  assert.equal(parseNdjson(exact.stdout).length, 50);
});
