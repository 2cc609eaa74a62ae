import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../src/lib/command.js';
import { writeNpy } from '../../src/lib/io/npy.js';
import {
  PartitionLookup,
  TopKHeaps,
  arrayVectorSource,
  buildHnswIndex,
  chooseExactKernel,
  distanceKindOf,
  dotTile,
  exactNeighbors,
  gatherRows,
  hnswNeighbors,
  labelVote,
  loadUsearch,
  openUsearchFile,
  openNpyVectorSource,
  parseByteSize,
  DEFAULT_TILE_ROWS,
  kernelScratchBytes,
  planExactSearch,
  readRetrievalPartition,
  scoreTile,
  searchWithKernel,
  squaredDistanceTile,
  usearchKernel,
  voteWeight,
  type Metric,
  type NeighborBlock,
} from '../../src/lib/knn/index.js';
import { createRandom } from '../../src/lib/random.js';
import { scratchDir } from '../helpers.js';

const usearchLoads = loadUsearch().usearch !== null;
const KERNELS = usearchLoads ? (['gemm', 'usearch', 'js'] as const) : (['gemm', 'js'] as const);

function randomMatrix(rows: number, dim: number, seed: number): Float32Array {
  const random = createRandom(seed);
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = random.next() * 2 - 1;
  return out;
}

/** Brute force in float64: every query's (index, score) sorted best first, ties by index. */
function bruteForce(q: Float32Array, g: Float32Array, dim: number, metric: Metric, k: number, excludeSelf: boolean) {
  const qRows = q.length / dim;
  const gRows = g.length / dim;
  const norm = (a: Float32Array, r: number) => Math.sqrt(Array.from(a.subarray(r * dim, (r + 1) * dim)).reduce((s, v) => s + v * v, 0));
  const out: Array<Array<{ index: number; score: number }>> = [];
  for (let i = 0; i < qRows; i++) {
    const scored: Array<{ index: number; score: number }> = [];
    for (let j = 0; j < gRows; j++) {
      if (excludeSelf && i === j) continue;
      let dot = 0;
      let sq = 0;
      for (let d = 0; d < dim; d++) {
        const a = q[i * dim + d];
        const b = g[j * dim + d];
        dot += a * b;
        sq += (a - b) * (a - b);
      }
      const score = metric === 'dot' ? dot : metric === 'euclidean' ? -Math.sqrt(sq) : dot / (norm(q, i) * norm(g, j));
      scored.push({ index: j, score });
    }
    scored.sort((a, b) => b.score - a.score || a.index - b.index);
    out.push(scored.slice(0, k));
  }
  return out;
}

async function collect(blocks: AsyncGenerator<NeighborBlock>) {
  const out: Array<Array<{ index: number; score: number }>> = [];
  let expectedStart = 0;
  for await (const b of blocks) {
    assert.equal(b.queryStart, expectedStart, 'blocks arrive in query order');
    expectedStart = b.queryEnd;
    for (let q = 0; q < b.queryEnd - b.queryStart; q++) {
      const row: Array<{ index: number; score: number }> = [];
      for (let j = 0; j < b.counts[q]; j++) row.push({ index: b.indices[q * b.k + j], score: b.scores[q * b.k + j] });
      out.push(row);
    }
  }
  return out;
}

/** Same neighbours at every rank (within `tol`; near-ties may swap) and the same scores. */
function assertSameNeighbours(got: Array<Array<{ index: number; score: number }>>, want: Array<Array<{ index: number; score: number }>>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: query count`);
  for (let q = 0; q < want.length; q++) {
    assert.equal(got[q].length, want[q].length, `${what}: neighbours of query ${q}`);
    for (let j = 0; j < want[q].length; j++) {
      const w = want[q][j];
      assert.ok(Math.abs(got[q][j].score - w.score) <= tol * Math.max(1, Math.abs(w.score)), `${what}: query ${q} rank ${j}: score ${got[q][j].score} vs ${w.score}`);
      const nearTie = (j > 0 && Math.abs(want[q][j - 1].score - w.score) <= 2 * tol) || (j + 1 < want[q].length && Math.abs(want[q][j + 1].score - w.score) <= 2 * tol);
      if (!nearTie) assert.equal(got[q][j].index, w.index, `${what}: query ${q} rank ${j}`);
    }
  }
}

test('exact search agrees with brute force: every metric, kernel, self-exclusion, and blocks that do not divide the data', async () => {
  const dim = 24;
  const q = randomMatrix(53, dim, 1);
  const g = randomMatrix(389, dim, 2);
  const k = 7;
  for (const metric of ['cosine', 'euclidean', 'dot'] as const) {
    for (const kernelName of KERNELS) {
      // The GEMM kernel scores inner products only.
      if (kernelName === 'gemm' && metric === 'euclidean') continue;
      const { kernel } = await chooseExactKernel(kernelName, distanceKindOf(metric), 2);
      const tol = kernelName === 'js' ? 1e-6 : 2e-5;
      // Streamed: query blocks of 10, gallery slabs of 150 rows cut into tiles of 64 (none divides).
      const streamed = { queryBlockRows: 10, gallerySlabRows: 150, galleryResident: false, tileRows: 64 };
      const got = await collect(searchWithKernel(arrayVectorSource(q, dim), arrayVectorSource(g, dim), { k, metric }, streamed, kernel));
      assertSameNeighbours(got, bruteForce(q, g, dim, metric, k, false), tol, `${metric}/${kernelName}/streamed`);
      // A set against itself, leaving each query out, with the gallery resident.
      const resident = { queryBlockRows: 17, gallerySlabRows: g.length / dim, galleryResident: true, tileRows: 50 };
      const self = await collect(searchWithKernel(arrayVectorSource(g, dim), arrayVectorSource(g, dim), { k, metric, excludeSelf: true }, resident, kernel));
      assertSameNeighbours(self, bruteForce(g, g, dim, metric, k, true), tol, `${metric}/${kernelName}/self`);
      for (let i = 0; i < self.length; i++) assert.ok(!self[i].some((n) => n.index === i), 'a query never finds itself');
      // Self-excluded and streamed.
      const selfStreamed = await collect(searchWithKernel(arrayVectorSource(g, dim), arrayVectorSource(g, dim), { k, metric, excludeSelf: true }, streamed, kernel));
      assertSameNeighbours(selfStreamed, bruteForce(g, g, dim, metric, k, true), tol, `${metric}/${kernelName}/self-streamed`);
    }
  }
});

test('exactNeighbors plans blocks from a small memory budget and still returns the exact answer', async () => {
  const dim = 16;
  const q = randomMatrix(40, dim, 3);
  const g = randomMatrix(10_000, dim, 4);
  // 10000 x 16 x 4 bytes = 640 kB of gallery: what 1.2 MB leaves after the kernels' scratch forces slabs.
  const plan = planExactSearch(40, 10_000, dim, 5, 1_200_000, 256);
  assert.equal(plan.galleryResident, false);
  assert.ok(plan.gallerySlabRows < 10_000);
  const got = await collect(exactNeighbors(arrayVectorSource(q, dim), arrayVectorSource(g, dim), { k: 5, metric: 'cosine', memoryBytes: 1_200_000, tileRows: 256 }));
  assertSameNeighbours(got, bruteForce(q, g, dim, 'cosine', 5, false), 2e-5, 'budgeted');
});

test('planExactSearch keeps within the budget, counting read scratch and kernel scratch, and refuses one too small', () => {
  for (const [queries, gallery, dim, k, budget, scratch] of [
    [1000, 100_000, 256, 10, 64 * 1024 * 1024, 0],
    [1000, 100_000, 256, 10, 64 * 1024 * 1024, 8],
    [100_000, 1000, 64, 50, 16 * 1024 * 1024, 0],
    [10, 10, 8, 3, 1024 * 1024, 2],
  ]) {
    const plan = planExactSearch(queries, gallery, dim, k, budget, DEFAULT_TILE_ROWS, { galleryScratchBytesPerValue: scratch, queryScratchBytesPerValue: scratch });
    const galleryBytes = (plan.galleryResident ? gallery : plan.gallerySlabRows) * dim * (4 + scratch);
    const queryBytes = plan.queryBlockRows * (dim * (8 + scratch) + k * 16 + 4 + (k + 2) * 20 + k * 16 + 4);
    const kernelBytes = kernelScratchBytes(dim, Math.min(DEFAULT_TILE_ROWS, gallery));
    assert.ok(galleryBytes + queryBytes + kernelBytes <= budget, `plan ${JSON.stringify(plan)} fits ${budget}`);
    assert.ok(plan.queryBlockRows >= 1 && plan.queryBlockRows <= queries);
  }
  // float64 rows read through an 8-byte scratch leave room for fewer rows than float32 ones.
  const f32 = planExactSearch(1000, 100_000, 256, 10, 64 * 1024 * 1024);
  const f64 = planExactSearch(1000, 100_000, 256, 10, 64 * 1024 * 1024, DEFAULT_TILE_ROWS, { galleryScratchBytesPerValue: 8 });
  assert.ok(f64.gallerySlabRows < f32.gallerySlabRows);
  assert.throws(() => planExactSearch(10, 10_000, 512, 10, 10_000), (err: unknown) => err instanceof UsageError && /memory budget/.test(err.message));
});

test('ties are broken by gallery order, also when duplicates overflow a tile', async () => {
  const dim = 8;
  const rows = 300;
  const g = randomMatrix(rows, dim, 5);
  const dup = g.slice(0, dim);
  // Rows 40..139 are 100 copies of row 0: a query equal to them ties 101 ways.
  for (let r = 40; r < 140; r++) g.set(dup, r * dim);
  for (const kernelName of KERNELS) {
    // (Not dot: there a longer vector may outscore the copies.)
    for (const metric of ['cosine', 'euclidean'] as const) {
      if (kernelName === 'gemm' && metric === 'euclidean') continue;
      const { kernel } = await chooseExactKernel(kernelName, distanceKindOf(metric), 1);
      const plan = { queryBlockRows: 4, gallerySlabRows: rows, galleryResident: true, tileRows: 64 };
      const got = await collect(searchWithKernel(arrayVectorSource(dup, dim), arrayVectorSource(g, dim), { k: 12, metric }, plan, kernel));
      assert.deepEqual(got[0].map((n) => n.index), [0, ...Array.from({ length: 11 }, (_, i) => 40 + i)], `${kernelName}/${metric}`);
      const self = await collect(searchWithKernel(arrayVectorSource(g, dim), arrayVectorSource(g, dim), { k: 5, metric, excludeSelf: true }, plan, kernel));
      assert.deepEqual(self[0].map((n) => n.index), [40, 41, 42, 43, 44], `${kernelName}/${metric} self row 0`);
      assert.deepEqual(self[41].map((n) => n.index), [0, 40, 42, 43, 44], `${kernelName}/${metric} self row 41`);
    }
  }
});

test('the GEMM kernel returns exactly what the typed-array kernel returns (neighbours, order, scores), ties and near-ties included', async () => {
  const dim = 32;
  const random = createRandom(21);
  // Entries in {-2..2}/8 make many exact ties; a 1e-7 jitter on some rows makes near-ties a float32 GEMM would misorder.
  const rows = (n: number) => Float32Array.from({ length: n * dim }, (_, i) => (Math.floor(random.next() * 5) - 2) / 8 + (i % 7 === 0 ? 1e-7 * random.next() : 0));
  const g = rows(700);
  const q = rows(45);
  const plan = { queryBlockRows: 20, gallerySlabRows: 300, galleryResident: false, tileRows: 128 };
  for (const metric of ['cosine', 'dot'] as const) {
    const { kernel: gemm } = await chooseExactKernel('gemm', 'ip', 2);
    const { kernel: js } = await chooseExactKernel('js', 'ip', 1);
    for (const k of [1, 9, 40]) {
      assert.deepEqual(await collect(searchWithKernel(arrayVectorSource(q, dim), arrayVectorSource(g, dim), { k, metric }, plan, gemm)), await collect(searchWithKernel(arrayVectorSource(q, dim), arrayVectorSource(g, dim), { k, metric }, plan, js)), `${metric} k=${k}`);
      const self = { k, metric, excludeSelf: true };
      assert.deepEqual(await collect(searchWithKernel(arrayVectorSource(g, dim), arrayVectorSource(g, dim), self, plan, gemm)), await collect(searchWithKernel(arrayVectorSource(g, dim), arrayVectorSource(g, dim), self, plan, js)), `${metric} k=${k} self`);
    }
  }
});

test('the usearch kernel rescans a tile when its candidate list ends in a tie (a library that breaks ties the other way)', async () => {
  // A stand-in for usearch's exactSearch that is exact but returns equal distances latest row first.
  const contrary = {
    exactSearch(dataset: Float32Array, queries: Float32Array, dim: number, count: number) {
      const rows = dataset.length / dim;
      const qRows = queries.length / dim;
      const keys = new BigUint64Array(qRows * count);
      const distances = new Float32Array(qRows * count);
      for (let q = 0; q < qRows; q++) {
        const scored = Array.from({ length: rows }, (_, j) => {
          let dot = 0;
          for (let d = 0; d < dim; d++) dot += queries[q * dim + d] * dataset[j * dim + d];
          return { j, distance: Math.fround(1 - dot) };
        }).sort((a, b) => a.distance - b.distance || b.j - a.j);
        scored.slice(0, count).forEach((c, t) => {
          keys[q * count + t] = BigInt(c.j);
          distances[q * count + t] = c.distance;
        });
      }
      if (qRows === 1) return { keys, distances };
      return { keys, distances, counts: new BigUint64Array(qRows).fill(BigInt(count)) };
    },
  };
  const kernel = usearchKernel(contrary as never, 'ip', 1);
  const dim = 4;
  const g = randomMatrix(100, dim, 21);
  for (let r = 10; r < 60; r++) g.set(g.subarray(0, dim), r * dim);
  const plan = { queryBlockRows: 8, gallerySlabRows: 100, galleryResident: true, tileRows: 32 };
  const got = await collect(searchWithKernel(arrayVectorSource(g.slice(0, 2 * dim), dim), arrayVectorSource(g, dim), { k: 6, metric: 'dot' }, plan, kernel));
  assert.deepEqual(got[0].map((n) => n.index), [0, 10, 11, 12, 13, 14]);
});

test('k larger than the gallery returns the whole gallery, ranked', async () => {
  const dim = 4;
  const g = randomMatrix(6, dim, 6);
  const got = await collect(exactNeighbors(arrayVectorSource(g, dim), arrayVectorSource(g, dim), { k: 50, metric: 'euclidean', excludeSelf: true }));
  assert.ok(got.every((row) => row.length === 5));
  assertSameNeighbours(got, bruteForce(g, g, dim, 'euclidean', 5, true), 2e-5, 'k > n');
});

test('bad input: dimension mismatch, non-finite rows and k <= 0 are UsageErrors naming the file and row', async () => {
  const a = arrayVectorSource(randomMatrix(5, 4, 7), 4, 'a.npy');
  const b = arrayVectorSource(randomMatrix(5, 3, 8), 3, 'b.npy');
  await assert.rejects(collect(exactNeighbors(a, b, { k: 2, metric: 'cosine' })), (err: unknown) => err instanceof UsageError && err.place.file === 'b.npy' && /3 columns/.test(err.message));
  await assert.rejects(collect(exactNeighbors(a, a, { k: 0, metric: 'cosine' })), (err: unknown) => err instanceof UsageError && /positive integer/.test(err.message));
  const withNaN = randomMatrix(5, 4, 9);
  withNaN[3 * 4 + 2] = NaN;
  await assert.rejects(collect(exactNeighbors(a, arrayVectorSource(withNaN, 4, 'nan.npy'), { k: 2, metric: 'dot' })), (err: unknown) => err instanceof UsageError && err.place.file === 'nan.npy' && err.place.field === 'row 3' && /NaN/.test(err.message));
});

test('a .npy source reads row ranges of any float dtype as float32 and names a non-finite row', async () => {
  const dir = scratchDir();
  const values = Float64Array.from({ length: 30 }, (_, i) => i / 7);
  await writeNpy(join(dir, 'm.npy'), values, [10, 3]);
  const source = await openNpyVectorSource(join(dir, 'm.npy'));
  assert.equal(source.rows, 10);
  assert.equal(source.dim, 3);
  const rows = await source.read(4, 6);
  assert.deepEqual(Array.from(rows), Array.from(values.subarray(12, 18), (v) => Math.fround(v)));
  assert.deepEqual(Array.from(await gatherRows(source, [9, 0, 4], 2)), [27, 28, 29, 0, 1, 2, 12, 13, 14].map((i) => Math.fround(values[i])));
  // readInto fills the front of one reused buffer, through an 8-byte scratch for float64 rows.
  assert.equal(source.readScratchBytesPerValue, 8);
  const buffer = new Float32Array(12).fill(-1);
  const view = await source.readInto(7, 20, buffer);
  assert.equal(view.buffer, buffer.buffer);
  assert.deepEqual(Array.from(view), Array.from(values.subarray(21, 30), (v) => Math.fround(v)));
  assert.deepEqual(Array.from(buffer.subarray(9)), [-1, -1, -1]);
  await assert.rejects(source.readInto(0, 5, buffer), RangeError);
  await source.close();
  await writeNpy(join(dir, 'f32.npy'), Float32Array.from(values), [10, 3]);
  await writeNpy(join(dir, 'i64.npy'), BigInt64Array.from({ length: 30 }, (_, i) => BigInt(i - 15)), [10, 3]);
  const f32 = await openNpyVectorSource(join(dir, 'f32.npy'));
  const i64 = await openNpyVectorSource(join(dir, 'i64.npy'));
  assert.equal(f32.readScratchBytesPerValue, 0);
  assert.deepEqual(Array.from(await f32.readInto(2, 4, buffer)), Array.from(values.subarray(6, 12), (v) => Math.fround(v)));
  assert.deepEqual(Array.from(await i64.readInto(0, 2, buffer)), [-15, -14, -13, -12, -11, -10]);
  await f32.close();
  await i64.close();
  values[25] = Infinity;
  await writeNpy(join(dir, 'inf.npy'), values, [10, 3]);
  const bad = await openNpyVectorSource(join(dir, 'inf.npy'));
  await assert.rejects(bad.read(0, 10), (err: unknown) => err instanceof UsageError && err.place.field === 'row 8' && /Infinity/.test(err.message));
  await bad.close();
  await writeNpy(join(dir, 'flat.npy'), new Float32Array(4));
  await assert.rejects(openNpyVectorSource(join(dir, 'flat.npy')), (err: unknown) => err instanceof UsageError && /2-D/.test(err.message));
});

test('tile kernels match a direct computation, including ragged edges', () => {
  const dim = 13;
  const a = randomMatrix(7, dim, 10);
  const b = randomMatrix(10, dim, 11);
  const dots = new Float32Array(70);
  const squares = new Float32Array(70);
  dotTile(a, 7, b, 10, dim, dots);
  squaredDistanceTile(a, 7, b, 10, dim, squares);
  for (let i = 0; i < 7; i++) {
    for (let j = 0; j < 10; j++) {
      let dot = 0;
      let sq = 0;
      for (let d = 0; d < dim; d++) {
        dot += a[i * dim + d] * b[j * dim + d];
        sq += (a[i * dim + d] - b[j * dim + d]) ** 2;
      }
      assert.ok(Math.abs(dots[i * 10 + j] - dot) < 1e-5);
      assert.ok(Math.abs(squares[i * 10 + j] - sq) < 1e-5);
    }
  }
  const scores = new Float32Array(70);
  scoreTile('l2sq', a, 7, b, 10, dim, scores);
  assert.deepEqual(Array.from(scores), Array.from(squares, (v) => -v));
});

test('TopKHeaps keeps the k smallest distances, ties to the lower index, like a full sort', () => {
  const random = createRandom(12);
  const k = 9;
  const heaps = new TopKHeaps(3, k);
  const offered: Array<Array<[number, number]>> = [[], [], []];
  for (let i = 0; i < 500; i++) {
    const q = random.int(3);
    const distance = random.int(40) / 4; // many ties
    heaps.push(q, distance, i);
    offered[q].push([distance, i]);
  }
  for (let q = 0; q < 3; q++) {
    const indices = new Float64Array(k);
    const distances = new Float64Array(k);
    assert.equal(heaps.sortedInto(q, indices, distances, 0), k);
    const want = offered[q].sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, k);
    assert.deepEqual(Array.from(indices), want.map((w) => w[1]));
    assert.deepEqual(Array.from(distances), want.map((w) => w[0]));
  }
});

test('HNSW: recall@10 >= 0.95 on 20k random vectors, and a saved index answers the same memory-mapped and loaded', async (ctx) => {
  if (!usearchLoads) ctx.skip('usearch does not load here');
  const dim = 32;
  const rows = 20_000;
  const gallery = arrayVectorSource(randomMatrix(rows, dim, 13), dim, 'g');
  const queries = arrayVectorSource(randomMatrix(300, dim, 14), dim, 'q');
  const params = { metric: 'cosine' as const, quantization: 'f32' as const, connectivity: 16, expansionAdd: 64, expansionSearch: 128 };
  const index = await buildHnswIndex(gallery, params, { threads: 2 });
  assert.equal(index.size(), rows);
  const approximate = await collect(hnswNeighbors(index, queries, { k: 10, threads: 2 }));
  const exact = await collect(exactNeighbors(queries, gallery, { k: 10, metric: 'cosine', threads: 2 }));
  let hits = 0;
  for (let q = 0; q < exact.length; q++) {
    const found = new Set(approximate[q].map((n) => n.index));
    hits += exact[q].filter((n) => found.has(n.index)).length;
    for (const n of approximate[q]) {
      const same = exact[q].find((e) => e.index === n.index);
      if (same) assert.ok(Math.abs(n.score - same.score) < 1e-4, 'HNSW and exact give a neighbour the same score');
    }
  }
  const recall = hits / (exact.length * 10);
  assert.ok(recall >= 0.95, `recall@10 ${recall}`);

  const dir = join(scratchDir(), 'idx');
  mkdirSync(dir);
  index.save(join(dir, 'index.usearch'));
  for (const memoryMap of [true, false]) {
    const reopened = openUsearchFile(join(dir, 'index.usearch'), dim, params, memoryMap);
    assert.equal(reopened.size(), rows);
    assert.equal(reopened.dim, dim);
    const again = await collect(hnswNeighbors(reopened, queries, { k: 10 }));
    assert.deepEqual(again.map((r) => r.map((n) => n.index)), approximate.map((r) => r.map((n) => n.index)));
  }
});

test('HNSW leaves a query out of its own neighbours when searching the indexed set', async (ctx) => {
  if (!usearchLoads) ctx.skip('usearch does not load here');
  const dim = 8;
  const g = arrayVectorSource(randomMatrix(200, dim, 15), dim);
  const index = await buildHnswIndex(g, { metric: 'euclidean', quantization: 'f32', connectivity: 16, expansionAdd: 64, expansionSearch: 64 });
  const got = await collect(hnswNeighbors(index, g, { k: 5, excludeSelf: true }));
  const want = bruteForce(await g.read(0, 200), await g.read(0, 200), dim, 'euclidean', 5, true);
  assertSameNeighbours(got, want, 1e-4, 'hnsw self');
});

test('label vote: P(y=j|x) = 1/K Σ I(y_i = j) over labelled neighbours; weighted by similarity; ties to the nearer label', () => {
  const vote = labelVote(['dress', 'skirt', 'dress', null, 'shoe']);
  assert.equal(vote.label, 'dress');
  assert.deepEqual(vote.probs, { dress: 0.5, skirt: 0.25, shoe: 0.25 });
  const tie = labelVote(['skirt', 'dress', 'dress', 'skirt']);
  assert.equal(tie.label, 'skirt', 'the nearest neighbour breaks a tie');
  const weighted = labelVote(['a', 'b', 'b'], [0.9, 0.2, 0.1]);
  assert.equal(weighted.label, 'a');
  assert.ok(Math.abs(weighted.probs.a - 0.9 / 1.2) < 1e-12);
  assert.deepEqual(labelVote([null, null]), { label: null, probs: {} });
  assert.deepEqual(labelVote(['a', 'b'], [0, 0]).probs, { a: 0.5, b: 0.5 }, 'all-zero weights fall back to counts');
  const random = createRandom(16);
  for (let t = 0; t < 50; t++) {
    const labels = Array.from({ length: 1 + random.int(20) }, () => (random.next() < 0.2 ? null : `c${random.int(5)}`));
    const weights = labels.map(() => random.next());
    for (const v of [labelVote(labels), labelVote(labels, weights)]) {
      const sum = Object.values(v.probs).reduce((s, p) => s + p, 0);
      if (labels.some((l) => l !== null)) assert.ok(Math.abs(sum - 1) < 1e-12, `probs sum to 1 (${sum})`);
    }
  }
  assert.equal(voteWeight(-0.3, 'cosine'), 0);
  assert.equal(voteWeight(0.7, 'dot'), 0.7);
  assert.ok(voteWeight(-0.5, 'euclidean') > voteWeight(-2, 'euclidean'));
});

test('partitions: In-Shop list, NDJSON, lookup by trailing path, and errors at their line', async () => {
  const dir = scratchDir();
  const list = join(dir, 'list_eval_partition.txt');
  writeFileSync(list, ['4', 'image_name item_id evaluation_status', 'img/A/id_1/01.jpg   id_1 query', 'img/A/id_1/02.jpg   id_1 gallery', 'img/B/id_2/01.jpg id_2 gallery\r', 'img/B/id_2/02.jpg id_2 train', ''].join('\n'));
  const p = await readRetrievalPartition(list);
  assert.equal(p.format, 'inshop-list');
  assert.deepEqual(p.entries.map((e) => [e.key, e.item, e.split]), [
    ['img/A/id_1/01.jpg', 'id_1', 'query'],
    ['img/A/id_1/02.jpg', 'id_1', 'gallery'],
    ['img/B/id_2/01.jpg', 'id_2', 'gallery'],
    ['img/B/id_2/02.jpg', 'id_2', 'train'],
  ]);
  const fromDir = await readRetrievalPartition(dir);
  assert.equal(fromDir.entries.length, 4);
  const lookup = new PartitionLookup(p);
  assert.equal(lookup.find('img/B/id_2/01.jpg'), 2);
  assert.equal(lookup.find('/data/inshop/img/B/id_2/01.jpg'), 2);
  assert.equal(lookup.find('B/id_2/01.jpg'), -1);

  writeFileSync(join(dir, 'bad-count.txt'), ['3', 'image_name item_id evaluation_status', 'a.jpg id_1 query', ''].join('\n'));
  await assert.rejects(readRetrievalPartition(join(dir, 'bad-count.txt')), (err: unknown) => err instanceof UsageError && err.place.line === 1 && /declares 3/.test(err.message));
  writeFileSync(join(dir, 'bad-split.txt'), ['1', 'image_name item_id evaluation_status', 'a.jpg id_1 test', ''].join('\n'));
  await assert.rejects(readRetrievalPartition(join(dir, 'bad-split.txt')), (err: unknown) => err instanceof UsageError && err.place.line === 3 && err.place.field === 'evaluation_status');

  const nd = join(dir, 'split.ndjson');
  writeFileSync(nd, '{"id":"v1","item":7,"split":"query","image":"x/1.jpg"}\n{"id":"v2","item":7,"split":"gallery"}\n');
  const q = await readRetrievalPartition(nd);
  assert.deepEqual(q.entries.map((e) => [e.key, e.item, e.split]), [['v1', '7', 'query'], ['v2', '7', 'gallery']]);
  assert.equal(new PartitionLookup(q).find('x/1.jpg'), 0, 'found by its image alias');
  writeFileSync(join(dir, 'loo.ndjson'), '{"id":"v1","item":"a"}\n{"id":"v2","item":"a"}\n');
  assert.ok((await readRetrievalPartition(join(dir, 'loo.ndjson'))).entries.every((e) => e.split === null));
  writeFileSync(join(dir, 'mixed.ndjson'), '{"id":"v1","item":"a","split":"query"}\n{"id":"v2","item":"a"}\n');
  await assert.rejects(readRetrievalPartition(join(dir, 'mixed.ndjson')), UsageError);
});

const OFFICIAL = join(process.cwd(), '..', 'shared', 'data', 'deepfashion-inshop-lists');

test('the official In-Shop lists: 14,218 queries and 12,612 gallery images of 3,985 items', async (ctx) => {
  if (!existsSync(join(OFFICIAL, 'query.txt'))) ctx.skip('official lists absent');
  const p = await readRetrievalPartition(OFFICIAL);
  assert.equal(p.format, 'inshop-files');
  const queries = p.entries.filter((e) => e.split === 'query');
  const gallery = p.entries.filter((e) => e.split === 'gallery');
  assert.equal(queries.length, 14218);
  assert.equal(gallery.length, 12612);
  assert.equal(new Set(gallery.map((e) => e.item)).size, 3985);
  assert.match(queries[0].item, /^id_\d{8}$/);
  // Written back in list_eval_partition.txt format, the same partition reads again.
  const dir = scratchDir();
  const lines = p.entries.map((e) => `${e.key} ${e.item} ${e.split}`);
  writeFileSync(join(dir, 'list_eval_partition.txt'), [String(lines.length), 'image_name item_id evaluation_status', ...lines].join('\n') + '\n');
  const again = await readRetrievalPartition(join(dir, 'list_eval_partition.txt'));
  // The same entries; only where each is listed (file, line) differs.
  const content = (e: (typeof p.entries)[number]) => [e.key, e.item, e.split, e.alias];
  assert.deepEqual(again.entries.map(content), p.entries.map(content));
});

test('parseByteSize reads binary units', () => {
  assert.equal(parseByteSize('512M'), 512 * 1024 * 1024);
  assert.equal(parseByteSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseByteSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseByteSize('1000'), 1000);
  assert.equal(parseByteSize('lots'), null);
  assert.equal(parseByteSize('0'), null);
});
