import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeNpy } from '../../src/lib/io/npy.js';
import { loadUsearch } from '../../src/lib/knn/kernel.js';
import { createRandom } from '../../src/lib/random.js';
import { atelierBin, parseNdjson, runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();
const usearchLoads = loadUsearch().usearch !== null;

function randomMatrix(rows: number, dim: number, seed: number): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: rows * dim }, () => random.next() * 2 - 1);
}

/** Writes name.npy and name.ids.ndjson ({id} per row). */
async function writeVectors(name: string, data: Float32Array, dim: number, ids: string[]): Promise<string> {
  const path = join(dir, `${name}.npy`);
  await writeNpy(path, data, [data.length / dim, dim]);
  writeFileSync(join(dir, `${name}.ids.ndjson`), ids.map((id) => JSON.stringify({ id }) + '\n').join(''));
  return path;
}

function cosineTopK(q: Float32Array, qi: number, g: Float32Array, dim: number, k: number, skip = -1): number[] {
  const norm = (a: Float32Array, r: number) => Math.hypot(...a.subarray(r * dim, (r + 1) * dim));
  const scored: Array<[number, number]> = [];
  for (let j = 0; j < g.length / dim; j++) {
    if (j === skip) continue;
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += q[qi * dim + d] * g[j * dim + d];
    scored.push([j, dot / (norm(q, qi) * norm(g, j))]);
  }
  return scored.sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k).map((s) => s[0]);
}

const dim = 12;
const gallery = randomMatrix(300, dim, 1);
const queries = randomMatrix(25, dim, 2);
const galleryIds = Array.from({ length: 300 }, (_, i) => `g${i}`);
const queryIds = Array.from({ length: 25 }, (_, i) => `q${i}`);

test('knn writes {id, neighbors: [{id, score}]} per query, best first, equal to brute force', async () => {
  const g = await writeVectors('g', gallery, dim, galleryIds);
  const q = await writeVectors('q', queries, dim, queryIds);
  const r = await runAtelier(['knn', '-q', q, '-g', g, '--k', '5']);
  assert.equal(r.code, 0, r.stderr);
  const lines = parseNdjson(r.stdout);
  assert.equal(lines.length, 25);
  lines.forEach((line, i) => {
    assert.equal(line.id, `q${i}`);
    const neighbors = line.neighbors as Array<{ id: string; score: number }>;
    assert.deepEqual(neighbors.map((n) => n.id), cosineTopK(queries, i, gallery, dim, 5).map((j) => `g${j}`));
    for (let j = 1; j < neighbors.length; j++) assert.ok(neighbors[j - 1].score >= neighbors[j].score, 'best first');
    assert.ok(neighbors[0].score <= 1 && neighbors[0].score >= -1, 'cosine scores');
  });
  assert.match(r.stderr, /25 queries x 300 gallery rows \(12-d, cosine\), exact search/);
});

test('without --gallery each query is searched against the rest of its own set', async () => {
  const g = await writeVectors('self', gallery, dim, galleryIds);
  const r = await runAtelier(['knn', '-q', g, '--k', '3', '--metric', 'euclidean']);
  assert.equal(r.code, 0, r.stderr);
  const lines = parseNdjson(r.stdout);
  assert.equal(lines.length, 300);
  for (const [i, line] of lines.entries()) {
    const neighbors = line.neighbors as Array<{ id: string; score: number }>;
    assert.ok(!neighbors.some((n) => n.id === line.id), 'never itself');
    assert.ok(neighbors.every((n) => n.score < 0), 'euclidean scores are minus distances');
    const nearest = Number(neighbors[0].id.slice(1));
    const distance = Math.hypot(...Array.from({ length: dim }, (_, d) => gallery[i * dim + d] - gallery[nearest * dim + d]));
    assert.ok(Math.abs(-neighbors[0].score - distance) < 1e-5);
  }
});

test('--memory below the gallery size streams it and gives the same answer', async () => {
  const rows = 200_000;
  const dim = 96;
  const big = randomMatrix(rows, dim, 3);
  const g = await writeVectors('big', big, dim, Array.from({ length: rows }, (_, i) => `b${i}`));
  const q = await writeVectors('bigq', big.slice(0, 40 * dim), dim, Array.from({ length: 40 }, (_, i) => `x${i}`));
  const whole = await runAtelier(['knn', '-q', q, '-g', g, '--k', '4']);
  assert.equal(whole.code, 0, whole.stderr);
  assert.match(whole.stderr, /gallery held in memory/);
  // 76.8 MB of float32 rows. A budget far too small says what the process holds before any data;
  // 60 MiB above that leaves (after knn's 24 MiB of runtime headroom) less than the gallery needs.
  // What a process holds varies by some 30 MiB from run to run, so the budget sits in the middle of
  // the window between 'no room for data' and 'the whole gallery fits'.
  const tooSmall = await runAtelier(['knn', '-q', q, '-g', g, '--k', '4', '--memory', '10M']);
  assert.equal(tooSmall.code, 2);
  const held = /already holds ([\d.]+) MiB/.exec(tooSmall.stderr);
  assert.ok(held, tooSmall.stderr);
  const streamed = await runAtelier(['knn', '-q', q, '-g', g, '--k', '4', '--memory', `${Math.ceil(Number(held[1]) + 60)}M`]);
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.match(streamed.stderr, /gallery streamed in slabs of \d+ rows/);
  assert.equal(streamed.stdout, whole.stdout);
  const first = parseNdjson(whole.stdout)[0].neighbors as Array<{ id: string }>;
  assert.equal(first[0].id, 'b0', 'a query equal to a gallery row finds it first');
});

/** Runs atelier, polling its peak resident set (VmHWM of /proc/<pid>/status) until it exits. */
async function runWithPeakRss(args: string[]): Promise<{ code: number | null; stderr: string; peakBytes: number }> {
  const child = spawn(process.execPath, [atelierBin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let peakBytes = 0;
  const poll = setInterval(() => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) peakBytes = Math.max(peakBytes, Number(match[1]) * 1024);
    } catch {
      // The process has just exited.
    }
  }, 10);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  clearInterval(poll);
  return { code, stderr, peakBytes };
}

test('the peak RSS stays under --memory while a gallery bigger than the data budget streams', async (ctx) => {
  if (!existsSync('/proc/self/status')) ctx.skip('needs /proc');
  // 110 MiB of float32 rows against a 240 MiB budget, most of which the runtime, onnxruntime (the GEMM kernel, ~36 MiB) and the ids already hold.
  const rows = 112_640;
  const dim = 256;
  const big = randomMatrix(rows, dim, 9);
  const g = await writeVectors('rss', big, dim, Array.from({ length: rows }, (_, i) => `r${i}`));
  const q = await writeVectors('rssq', big.slice(0, 64 * dim), dim, Array.from({ length: 64 }, (_, i) => `q${i}`));
  const budget = 240 * 1024 * 1024;
  const run = await runWithPeakRss(['knn', '-q', q, '-g', g, '--k', '5', '--memory', '240M', '-o', join(dir, 'rss-knn.ndjson')]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /gallery streamed in slabs of \d+ rows/);
  assert.ok(run.peakBytes > 0, 'VmHWM was read');
  assert.ok(run.peakBytes < budget, `peak RSS ${(run.peakBytes / 2 ** 20).toFixed(1)} MiB is under --memory 240M`);
});

test('label vote: {label, probs} from the neighbours, probs summing to 1, weighted on request', async () => {
  const g = await writeVectors('lab', gallery, dim, galleryIds);
  const labels = join(dir, 'labels.ndjson');
  writeFileSync(labels, galleryIds.map((id, i) => JSON.stringify({ id, category: i % 3 === 0 ? 'dress' : i % 3 === 1 ? 'shoe' : null }) + '\n').join(''));
  const variants = [[], ['--weighted']];
  const runs = await Promise.all(variants.map((extra) => runAtelier(['knn', '-q', g, '--k', '7', '--labels', labels, '--label-field', 'category', ...extra])));
  for (const [i, extra] of variants.entries()) {
    const r = runs[i];
    assert.equal(r.code, 0, r.stderr);
    for (const line of parseNdjson(r.stdout)) {
      const probs = line.probs as Record<string, number>;
      const sum = Object.values(probs).reduce((s, p) => s + p, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `sum ${sum}`);
      const best = Object.entries(probs).sort((a, b) => b[1] - a[1])[0];
      assert.equal(probs[line.label as string], best[1], 'the label is the most probable');
      if (extra.length === 0) {
        const neighbors = line.neighbors as Array<{ id: string }>;
        const dresses = neighbors.filter((n) => Number(n.id.slice(1)) % 3 === 0).length;
        const labelled = neighbors.filter((n) => Number(n.id.slice(1)) % 3 !== 2).length;
        if (dresses > 0) assert.ok(Math.abs(probs.dress - dresses / labelled) < 1e-5, 'P(dress) = dresses / labelled neighbours');
      }
    }
  }
  const missing = await runAtelier(['knn', '-q', g, '--labels', labels]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--label-field/);
});

test('word vectors are just another .npy: nearest words', async () => {
  const words = ['red', 'rouge', 'rosso', 'blue', 'bleu', 'dress', 'robe'];
  const base: Record<string, number[]> = { red: [1, 0, 0, 0], blue: [0, 1, 0, 0], dress: [0, 0, 1, 0.2] };
  const vectorOf = (w: string) => (['red', 'rouge', 'rosso'].includes(w) ? base.red : ['blue', 'bleu'].includes(w) ? base.blue : base.dress);
  const random = createRandom(4);
  const data = Float32Array.from(words.flatMap((w) => vectorOf(w).map((v) => v + 0.05 * random.next())));
  const path = join(dir, 'words.npy');
  await writeNpy(path, data, [words.length, 4]);
  writeFileSync(join(dir, 'words.ids.ndjson'), words.map((w) => JSON.stringify(w) + '\n').join(''));
  const r = await runAtelier(['knn', '-q', path, '--k', '2']);
  assert.equal(r.code, 0, r.stderr);
  const nearest = Object.fromEntries(parseNdjson(r.stdout).map((l) => [l.id, (l.neighbors as Array<{ id: string }>).map((n) => n.id)]));
  assert.deepEqual(new Set(nearest.red), new Set(['rouge', 'rosso']));
  assert.equal(nearest.bleu[0], 'blue');
  assert.equal(nearest.robe[0], 'dress');
});

test('bad input exits 2 with one line naming the file and row', async () => {
  const q = await writeVectors('bq', queries, dim, queryIds);
  const narrow = await writeVectors('narrow', randomMatrix(10, 5, 5), 5, galleryIds.slice(0, 10));
  const withNaN = randomMatrix(10, dim, 6);
  withNaN[7 * dim + 3] = NaN;
  const nan = await writeVectors('nan', withNaN, dim, galleryIds.slice(0, 10));
  const shortIds = await writeVectors('short', randomMatrix(10, dim, 7), dim, galleryIds.slice(0, 9));
  const cases: Array<[string[], RegExp]> = [
    [['-q', q, '-g', narrow], /narrow\.npy: rows have 5 columns but .*bq\.npy has 12/],
    [['-q', q, '-g', nan], /nan\.npy: row 7: holds NaN at column 3/],
    [['-q', nan], /nan\.npy: row 7: holds NaN/],
    [['-q', q, '-g', shortIds], /short\.ids\.ndjson: has 9 ids but .*short\.npy has 10 rows/],
    [['-q', q, '--k', '0'], /--k: '0' is not a positive integer/],
    [['-q', join(dir, 'absent.npy')], /absent\.npy: no such file/],
    [['-g', q], /--query/],
  ];
  const runs = await Promise.all(cases.map(([args]) => runAtelier(['knn', ...args])));
  for (const [i, [args, message]] of cases.entries()) {
    const r = runs[i];
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^atelier knn: /);
    assert.match(lines[0], message);
  }
});

test('HNSW: --index hnsw with --recall, and knn index build then query (memory-mapped and loaded)', async (ctx) => {
  if (!usearchLoads) ctx.skip('usearch does not load here');
  const g = await writeVectors('hg', gallery, dim, galleryIds);
  const q = await writeVectors('hq', queries, dim, queryIds);
  const exact = parseNdjson((await runAtelier(['knn', '-q', q, '-g', g, '--k', '5'])).stdout);
  const direct = await runAtelier(['knn', '-q', q, '-g', g, '--k', '5', '--index', 'hnsw', '--recall']);
  assert.equal(direct.code, 0, direct.stderr);
  const recall = Number(/recall@5 against exact search on 25 queries: ([\d.]+)/.exec(direct.stderr)?.[1]);
  assert.ok(recall >= 0.95, direct.stderr);

  const indexDir = join(dir, 'gallery.hnsw');
  const built = await runAtelier(['knn', 'index', 'build', '-g', g, '--index-dir', indexDir]);
  assert.equal(built.code, 0, built.stderr);
  for (const file of ['index.usearch', 'ids.ndjson', 'meta.json']) assert.ok(existsSync(join(indexDir, file)), file);
  for (const extra of [[], ['--load']]) {
    const r = await runAtelier(['knn', 'index', 'query', '--index-dir', indexDir, '-q', q, '--k', '5', '--recall', '-g', g, ...extra]);
    assert.equal(r.code, 0, r.stderr);
    const lines = parseNdjson(r.stdout);
    let hits = 0;
    lines.forEach((line, i) => {
      const want = new Set((exact[i].neighbors as Array<{ id: string }>).map((n) => n.id));
      hits += (line.neighbors as Array<{ id: string }>).filter((n) => want.has(n.id)).length;
    });
    assert.ok(hits / (25 * 5) >= 0.95);
    assert.match(r.stderr, extra.length ? /loaded/ : /memory-mapped/);
    assert.match(r.stderr, /recall@5 against exact search/);
  }
  const notAnIndex = await runAtelier(['knn', 'index', 'query', '--index-dir', dir, '-q', q]);
  assert.equal(notAnIndex.code, 2);
  assert.match(notAnIndex.stderr, /not an index directory/);
});
