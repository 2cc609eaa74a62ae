// k-NN benchmark (issue 7): exact cosine search through src/lib/knn against faiss IndexFlatIP on the
// same rows and thread count, with the neighbour agreement of the two; HNSW build time, queries/s and
// recall@k; and the peak RSS of `atelier knn` on a gallery larger than its --memory budget.
//
//   node dist/bench/knn.js [--rows 100000] [--dim 256] [--queries 1000] [--k 10] [--threads 2]
//     [--repeats 3] [--js-queries 100] [--hnsw-rows 100000] [--memory-gallery-mb 400] [--memory 256M]
//     [--skip-faiss] [--skip-hnsw] [--skip-memory] [--out bench/out/knn.json]
//
// Data: Gaussian clusters (1,000 centres N(0, I), unit noise scaled by 0.5), float32, seeded. faiss
// runs through Debian's /usr/bin/python3 (bench/knn_faiss.py) with omp_set_num_threads(--threads).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readNpy, writeNpy } from '../src/lib/io/npy.js';
import { createRandom } from '../src/lib/random.js';
import {
  DEFAULT_HNSW,
  arrayVectorSource,
  buildHnswIndex,
  exactNeighbors,
  hnswNeighbors,
  loadUsearch,
  type KernelName,
  type NeighborBlock,
} from '../src/lib/knn/index.js';
import { MiB, PYTHON, flag, hasFlag, loadAverage, machineInfo, outDir, repoRoot, sampleMemory, writeResults } from './common.js';

const rows = Number(flag('rows', '100000'));
const dim = Number(flag('dim', '256'));
const queryCount = Number(flag('queries', '1000'));
const k = Number(flag('k', '10'));
const threads = Number(flag('threads', '2'));
const repeats = Number(flag('repeats', '3'));
const jsQueries = Number(flag('js-queries', '100'));
const hnswRows = Number(flag('hnsw-rows', '100000'));
const memoryGalleryMb = Number(flag('memory-gallery-mb', '400'));
const memoryBudget = flag('memory', '256M');
const outFile = flag('out', join(outDir, 'knn.json'));
const workDir = join(outDir, 'knn');
const CENTRES = 1000;

/** `count` rows of clustered data; the same seed gives the same rows whatever the count. */
function clusteredRows(count: number, seed: string): Float32Array {
  const random = createRandom(seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(random.next() + 1e-300)) * Math.cos(2 * Math.PI * random.next());
  const centreRandom = createRandom('knn-bench-centres');
  const centres = new Float32Array(CENTRES * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = Math.sqrt(-2 * Math.log(centreRandom.next() + 1e-300)) * Math.cos(2 * Math.PI * centreRandom.next());
  const out = new Float32Array(count * dim);
  for (let r = 0; r < count; r++) {
    const c = Math.floor(random.next() * CENTRES) * dim;
    for (let d = 0; d < dim; d++) out[r * dim + d] = centres[c + d] + 0.5 * gaussian();
  }
  return out;
}

async function collect(blocks: AsyncGenerator<NeighborBlock>, queries: number): Promise<Int32Array> {
  const out = new Int32Array(queries * k).fill(-1);
  for await (const block of blocks) {
    for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
      for (let j = 0; j < block.counts[q]; j++) out[(block.queryStart + q) * k + j] = block.indices[q * block.k + j];
    }
  }
  return out;
}

/** Mean share of the reference top-k found in the other top-k. */
function overlap(found: ArrayLike<number>, reference: ArrayLike<number>, queries: number): number {
  let hits = 0;
  for (let q = 0; q < queries; q++) {
    const set = new Set<number>();
    for (let j = 0; j < k; j++) set.add(Number(found[q * k + j]));
    for (let j = 0; j < k; j++) if (set.has(Number(reference[q * k + j]))) hits++;
  }
  return hits / (queries * k);
}

async function timeExact(gallery: Float32Array, queries: Float32Array, kernel: KernelName, times: number): Promise<{ seconds: number; cpuSeconds: number; neighbours: Int32Array }> {
  let best = Infinity;
  let bestCpu = Infinity;
  let neighbours: Int32Array = new Int32Array(0);
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    neighbours = await collect(
      exactNeighbors(arrayVectorSource(queries, dim, 'queries'), arrayVectorSource(gallery, dim, 'gallery'), { k, metric: 'cosine', threads, kernel, memoryBytes: 4 * 2 ** 30 }),
      queries.length / dim,
    );
    best = Math.min(best, (performance.now() - started) / 1000);
    const cpu = process.cpuUsage(cpuStarted);
    bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1e6);
  }
  return { seconds: best, cpuSeconds: bestCpu, neighbours };
}

async function writeIds(path: string, count: number): Promise<void> {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`{"id":"r${i}"}`);
  writeFileSync(path, lines.join('\n') + '\n');
}

/** Runs `atelier knn` on a gallery file larger than --memory and samples its RSS from /proc. */
async function memoryRun(queries: Float32Array): Promise<Record<string, unknown>> {
  const galleryRows = Math.floor((memoryGalleryMb * 2 ** 20) / (dim * 4));
  const galleryPath = join(workDir, 'big-gallery.npy');
  const queryPath = join(workDir, 'big-queries.npy');
  const chunk = clusteredRows(galleryRows, 'knn-bench-big');
  await writeNpy(galleryPath, chunk, [galleryRows, dim]);
  await writeIds(join(workDir, 'big-gallery.ids.ndjson'), galleryRows);
  await writeNpy(queryPath, queries, [queries.length / dim, dim]);
  await writeIds(join(workDir, 'big-queries.ids.ndjson'), queries.length / dim);
  const args = [join(repoRoot, 'bin', 'atelier'), 'knn', '-q', queryPath, '-g', galleryPath, '--k', String(k), '--memory', memoryBudget, '--threads', String(threads), '-o', join(workDir, 'big-knn.ndjson')];
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const sampler = sampleMemory(child.pid!, 50);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  const { samples, peak } = sampler.stop();
  const seconds = (performance.now() - started) / 1000;
  const maxSampled = Math.max(0, ...samples.map((s) => s.rss));
  // faiss on the same file, memory-mapped and searched in slabs of the size atelier's plan chose.
  const slab = /slabs of (\d+) rows/.exec(stderr)?.[1] ?? '262144';
  const faissOut = join(workDir, 'big-faiss.npy');
  const peer = hasFlag('skip-faiss')
    ? null
    : spawnSync(PYTHON, [join(repoRoot, 'bench', 'knn_faiss.py'), galleryPath, queryPath, faissOut, '--k', String(k), '--threads', String(threads), '--stream-rows', slab], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
      });
  const faiss = peer ? (peer.status === 0 ? (JSON.parse(peer.stdout.trim().split('\n').pop()!) as Record<string, unknown>) : { error: peer.stderr.trim().split('\n').pop() }) : null;
  rmSync(galleryPath, { force: true });
  return {
    command: `node bin/atelier ${args.slice(1).map((a) => (a.startsWith(repoRoot) ? relative(repoRoot, a) : a)).join(' ')}`,
    exitCode: code,
    galleryRows,
    galleryMiB: MiB(galleryRows * dim * 4),
    memoryBudget,
    seconds,
    peakRssMiB: MiB(peak),
    maxSampledRssMiB: MiB(maxSampled),
    samples: samples.length,
    faissStreamed: faiss,
    ratioVsFaiss: faiss && typeof faiss.seconds === 'number' ? faiss.seconds / seconds : null,
    stderrTail: stderr.trim().split('\n').slice(-2),
  };
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  mkdirSync(workDir, { recursive: true });
  const usearch = loadUsearch();
  const results: Record<string, unknown> = { settings: { rows, dim, queries: queryCount, k, threads, repeats, metric: 'cosine', hnswRows, memoryGalleryMb, memoryBudget }, usearch: usearch.reason };
  console.log(`usearch: ${usearch.reason}`);

  const t0 = performance.now();
  const gallery = clusteredRows(rows, 'knn-bench-gallery');
  const queries = clusteredRows(queryCount, 'knn-bench-queries');
  console.log(`data: ${rows} x ${dim} gallery, ${queryCount} queries (${((performance.now() - t0) / 1000).toFixed(1)} s to generate)`);

  // Exact search, ours: the GEMM kernel (auto for cosine) and usearch's pairwise kernel; the faster is compared.
  const gemm = await timeExact(gallery, queries, 'gemm', repeats);
  console.log(`exact, atelier GEMM kernel (onnxruntime, ${threads} threads): ${gemm.seconds.toFixed(3)} s, ${Math.round(queryCount / gemm.seconds)} queries/s`);
  const pairwise = usearch.usearch ? await timeExact(gallery, queries, 'usearch', repeats) : null;
  if (pairwise) console.log(`exact, atelier usearch kernel (${threads} threads): ${pairwise.seconds.toFixed(3)} s, ${Math.round(queryCount / pairwise.seconds)} queries/s`);
  const ours = pairwise && pairwise.seconds < gemm.seconds ? pairwise : gemm;
  const oursKernel = ours === gemm ? 'gemm' : 'usearch';
  const oursQps = queryCount / ours.seconds;
  const jsSlice = queries.subarray(0, Math.min(jsQueries, queryCount) * dim);
  const js = jsQueries > 0 ? await timeExact(gallery, jsSlice, 'js', 1) : null;
  if (js) console.log(`exact, atelier typed-array kernel (1 thread, ${jsSlice.length / dim} queries): ${js.seconds.toFixed(3)} s, ${Math.round(jsSlice.length / dim / js.seconds)} queries/s`);
  const exact: Record<string, unknown> = {
    atelier: { kernel: oursKernel, seconds: ours.seconds, cpuSeconds: ours.cpuSeconds, queriesPerSecond: oursQps },
    atelierGemm: { seconds: gemm.seconds, cpuSeconds: gemm.cpuSeconds, queriesPerSecond: queryCount / gemm.seconds },
    atelierUsearch: pairwise ? { seconds: pairwise.seconds, cpuSeconds: pairwise.cpuSeconds, queriesPerSecond: queryCount / pairwise.seconds } : null,
    atelierTypedArray: js ? { queries: jsSlice.length / dim, seconds: js.seconds, queriesPerSecond: jsSlice.length / dim / js.seconds } : null,
  };
  if (js) exact.typedArrayAgreement = overlap(js.neighbours, ours.neighbours, jsSlice.length / dim);
  if (pairwise) exact.gemmVsUsearchIdentical = gemm.neighbours.every((v, i) => v === pairwise.neighbours[i]);

  // Exact search, faiss.
  if (!hasFlag('skip-faiss')) {
    const galleryPath = join(workDir, 'gallery.npy');
    const queryPath = join(workDir, 'queries.npy');
    const faissOut = join(workDir, 'faiss-neighbours.npy');
    await writeNpy(galleryPath, gallery, [rows, dim]);
    await writeNpy(queryPath, queries, [queryCount, dim]);
    const peer = spawnSync(PYTHON, [join(repoRoot, 'bench', 'knn_faiss.py'), galleryPath, queryPath, faissOut, '--k', String(k), '--threads', String(threads), '--repeats', String(repeats)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
    });
    const info = peer.status === 0 && peer.stdout.trim() ? (JSON.parse(peer.stdout.trim().split('\n').pop()!) as Record<string, unknown>) : { error: peer.error?.message || peer.stderr.trim().split('\n').pop() || 'no output' };
    if (info.error === undefined) {
      const faissNeighbours = (await readNpy(faissOut)).data as BigInt64Array;
      const reference = Array.from(faissNeighbours, Number);
      const agreement = overlap(ours.neighbours, reference, queryCount);
      const ratio = (info.seconds as number) / ours.seconds;
      exact.faiss = info;
      exact.ratioVsFaiss = ratio;
      exact.recallVsFaiss = agreement;
      console.log(`exact, faiss ${info.faiss} IndexFlatIP (${info.threads} threads): ${(info.seconds as number).toFixed(3)} s (search alone ${(info.searchSeconds as number).toFixed(3)} s), ${Math.round(info.queriesPerSecond as number)} queries/s`);
      console.log(`atelier / faiss speed: ${ratio.toFixed(2)}x (target >= 1.0x); our top-${k} vs faiss's: ${agreement.toFixed(4)}`);
      // On a shared machine wall time follows the neighbours; CPU seconds (faiss's include OpenMP spin-waits) vary less.
      if (typeof info.cpuSeconds === 'number') {
        exact.cpuRatioVsFaiss = info.cpuSeconds / ours.cpuSeconds;
        console.log(`CPU seconds, atelier ${ours.cpuSeconds.toFixed(2)} vs faiss ${info.cpuSeconds.toFixed(2)}: ${(info.cpuSeconds / ours.cpuSeconds).toFixed(2)}x`);
      }
    } else {
      exact.faiss = info;
      console.log(`faiss skipped: ${String(info.error)}`);
    }
    rmSync(galleryPath, { force: true });
  }
  results.exact = exact;

  // HNSW.
  if (!hasFlag('skip-hnsw')) {
    if (!usearch.usearch) {
      results.hnsw = { error: `usearch does not load: ${usearch.reason}` };
      console.log(`hnsw skipped: usearch does not load (${usearch.reason})`);
    } else {
      const data = hnswRows <= rows ? gallery.subarray(0, hnswRows * dim) : clusteredRows(hnswRows, 'knn-bench-gallery');
      const params = { metric: 'cosine' as const, ...DEFAULT_HNSW };
      let started = performance.now();
      const index = await buildHnswIndex(arrayVectorSource(data, dim, 'gallery'), params, { threads });
      const buildSeconds = (performance.now() - started) / 1000;
      started = performance.now();
      const approximate = await collect(hnswNeighbors(index, arrayVectorSource(queries, dim, 'queries'), { k, threads }), queryCount);
      const searchSeconds = (performance.now() - started) / 1000;
      const truth = data === gallery ? ours : await timeExact(data, queries, 'auto', 1);
      const recall = overlap(approximate, truth.neighbours, queryCount);
      results.hnsw = {
        rows: hnswRows,
        ...params,
        buildSeconds,
        rowsPerSecond: hnswRows / buildSeconds,
        searchSeconds,
        queriesPerSecond: queryCount / searchSeconds,
        recallAtK: recall,
        exactSeconds: truth.seconds,
      };
      console.log(`hnsw ${hnswRows} x ${dim} (M=${params.connectivity}, efConstruction=${params.expansionAdd}, ef=${params.expansionSearch}, ${threads} threads): build ${buildSeconds.toFixed(1)} s (${Math.round(hnswRows / buildSeconds)} rows/s), ${Math.round(queryCount / searchSeconds)} queries/s, recall@${k} ${recall.toFixed(4)} (exact: ${Math.round(queryCount / truth.seconds)} queries/s)`);
    }
  }

  // Memory: a gallery bigger than --memory.
  if (!hasFlag('skip-memory')) {
    const memory = await memoryRun(queries);
    results.memory = memory;
    console.log(`memory: ${memory.galleryMiB} MiB gallery, --memory ${memoryBudget}: peak RSS ${memory.peakRssMiB} MiB (exit ${String(memory.exitCode)}, ${(memory.seconds as number).toFixed(1)} s)`);
    const peer = memory.faissStreamed as Record<string, unknown> | null;
    if (peer) console.log(`memory: faiss on the same file memory-mapped in slabs: ${typeof peer.seconds === 'number' ? `${peer.seconds.toFixed(1)} s; atelier / faiss ${(memory.ratioVsFaiss as number).toFixed(2)}x` : String(peer.error)}`);
  }

  const loadAfter = loadAverage();
  writeResults(outFile, { machine: { ...machineInfo(), loadAverageBefore: loadBefore, loadAverageAfter: loadAfter }, command: `node dist/bench/knn.js ${process.argv.slice(2).join(' ')}`.trim(), ...results });
  console.log(`load average before/after: ${loadBefore.join(' ')} / ${loadAfter.join(' ')}; JSON: ${relative(process.cwd(), outFile)}`);
}

await main();
