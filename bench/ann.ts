// On-disk ANN index benchmark (issue 21): `atelier knn index build` then `knn index query` (memory-mapped)
// against the exact search (`knn --kernel gemm`) and faiss IndexFlatIP, optionally faiss HNSW, on the
// same synthetic gallery: recall@k, queries/s, build time, peak RSS. Every atelier step runs as a
// process, as a user runs it.
//
//   node dist/bench/ann.js [--rows 1000000] [--dim 256] [--queries 10000] [--exact-queries 1000]
//     [--k 10] [--threads 2] [--connectivity 16] [--expansion-add 128] [--ef 64,128]
//     [--quantization f32|f16|i8] [--rescore <candidates>]
//     [--faiss-hnsw] [--skip-faiss] [--reuse] [--keep] [--out bench/out/ann.json] [--data-dir bench/out/ann]
//     [--data-only] [--index ivf --nprobe 16,32,64 [--lists N] [--train-rows N] [--iterations 10] [--memory 2G]]
//
// --index ivf builds and queries an IVF-flat index (`knn index build --index ivf`) instead, once per
// --nprobe value; the peer is then faiss IndexIVFFlat with the same lists, sample and iterations.
//
// Order: data, index build, index queries, then the exact search and the peers (the long build
// first, and the results file rewritten after each step). --reuse keeps data files of the right size.
//
// Data: 1,000 Gaussian cluster centres N(0, I) plus a within-cluster offset drawn from a shared
// 32-d subspace (U z, z ~ N(0, I_32), U fixed) and small isotropic noise (0.1): clustered with a
// low intrinsic dimension, as image embeddings are, not uniform noise.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { openNpyWriter, writeNpy } from '../src/lib/io/npy.js';
import { createRandom } from '../src/lib/random.js';
import { MiB, PYTHON, flag, hasFlag, loadAverage, machineInfo, outDir, repoRoot, writeResults } from './common.js';

const rows = Number(flag('rows', '1000000'));
const dim = Number(flag('dim', '256'));
const queryCount = Number(flag('queries', '10000'));
const exactQueries = Number(flag('exact-queries', '1000'));
const k = Number(flag('k', '10'));
const threads = Number(flag('threads', '2'));
const connectivity = Number(flag('connectivity', '16'));
const expansionAdd = Number(flag('expansion-add', '128'));
const efs = flag('ef', '64,128').split(',').map(Number);
const quantization = flag('quantization', 'f32');
const rescore = flag('rescore', '');
const indexKind = flag('index', 'hnsw');
const nprobes = flag('nprobe', '16,32,64').split(',').map(Number);
const lists = flag('lists', '');
const trainRows = flag('train-rows', '');
const iterations = flag('iterations', '10');
const memory = flag('memory', '2G');
const outFile = flag('out', join(outDir, indexKind === 'ivf' ? 'ann-ivf.json' : 'ann.json'));
// Data, index and ids: a small run given its own --data-dir leaves a big run's files alone.
const workDir = flag('data-dir', join(outDir, 'ann'));
const CENTRES = 1000;
const SUBSPACE = 32;

/**
 * Rows of the clustered data, `chunkRows` at a time into one reused buffer (await the use of a chunk
 * before asking for the next); one seed per set, so gallery and queries are independent draws. The
 * values depend on the seed and the row's index only, not on the chunk size: a 10M-row gallery is
 * written without holding it (5.1 GB at 128-d), and a 1M one is the same bytes as when it was
 * generated whole.
 */
function* clusteredChunks(count: number, seed: string, chunkRows = 65536): Generator<Float32Array> {
  const shared = createRandom('ann-bench-structure');
  const gauss = (random: { next(): number }) => Math.sqrt(-2 * Math.log(random.next() + 1e-300)) * Math.cos(2 * Math.PI * random.next());
  const centres = Float32Array.from({ length: CENTRES * dim }, () => gauss(shared));
  const basis = Float32Array.from({ length: SUBSPACE * dim }, () => gauss(shared) / Math.sqrt(SUBSPACE) * 3);
  const random = createRandom(seed);
  const buffer = new Float32Array(Math.min(chunkRows, count) * dim);
  const z = new Float32Array(SUBSPACE);
  for (let start = 0; start < count; start += chunkRows) {
    const n = Math.min(chunkRows, count - start);
    const out = buffer.subarray(0, n * dim);
    for (let r = 0; r < n; r++) {
      const c = Math.floor(random.next() * CENTRES) * dim;
      for (let s = 0; s < SUBSPACE; s++) z[s] = gauss(random);
      const row = out.subarray(r * dim, (r + 1) * dim);
      for (let d = 0; d < dim; d++) row[d] = centres[c + d] + 0.1 * gauss(random);
      for (let s = 0; s < SUBSPACE; s++) {
        const b = basis.subarray(s * dim, (s + 1) * dim);
        for (let d = 0; d < dim; d++) row[d] += z[s] * b[d];
      }
    }
    yield out;
  }
}

/** Writes `name`.npy and its ids (`prefix`0, `prefix`1, ...) chunk by chunk; returns the rows written. */
async function writeVectors(name: string, chunks: Iterable<Float32Array>, prefix: string): Promise<number> {
  const writer = await openNpyWriter(join(workDir, `${name}.npy`), { dtype: 'float32', rowShape: [dim], bufferBytes: 8 * 1024 * 1024 });
  const ids = openSync(join(workDir, `${name}.ids.ndjson`), 'w');
  try {
    for (const chunk of chunks) {
      const first = writer.rowCount;
      await writer.writeRows(chunk);
      const lines: string[] = [];
      for (let i = first; i < writer.rowCount; i++) lines.push(`{"id":"${prefix}${i}"}\n`);
      writeSync(ids, lines.join(''));
    }
    await writer.close();
    return writer.rowCount;
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    closeSync(ids);
  }
}

interface Run {
  command: string;
  exitCode: number | null;
  seconds: number;
  peakRssMiB: number;
  peakAnonMiB: number;
  peakFileMiB: number;
  /** user + system CPU seconds of all its threads, as last sampled before it exited. */
  cpuSeconds: number;
  stderrTail: string[];
}

/** VmHWM, and the peaks of anonymous and file-backed resident memory (mapped index pages are file-backed). */
function memoryOf(pid: number): { hwm: number; anon: number; file: number; cpu: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    const statLine = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const stat = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) in clock ticks of 1/100 s; `stat` starts at field 3.
    return { hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile'), cpu: (Number(stat[11]) + Number(stat[12])) / 100 };
  } catch {
    return null;
  }
}

async function runProcess(file: string, args: string[]): Promise<Run & { stderr: string; stdout: string }> {
  const started = performance.now();
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) } });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let hwm = 0, anon = 0, fileRss = 0, cpu = 0;
  const take = () => {
    const m = memoryOf(child.pid!);
    if (!m) return;
    hwm = Math.max(hwm, m.hwm);
    anon = Math.max(anon, m.anon);
    fileRss = Math.max(fileRss, m.file);
    cpu = Math.max(cpu, m.cpu);
  };
  const timer = setInterval(take, 100);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  const shown = [file === process.execPath ? 'node' : file, ...args].map((a) => (a.startsWith(repoRoot) ? relative(repoRoot, a) : a)).join(' ');
  return { command: shown, exitCode: code, seconds, peakRssMiB: MiB(hwm), peakAnonMiB: MiB(anon), peakFileMiB: MiB(fileRss), cpuSeconds: cpu, stderr, stdout, stderrTail: stderr.trim().split('\n').slice(-3) };
}

const atelier = (args: string[]) => runProcess(process.execPath, [join(repoRoot, 'bin', 'atelier'), ...args]);

/** Neighbour rows of each query from knn NDJSON (gallery ids are r<row>). */
function neighbourRows(path: string, queries: number): Int32Array {
  const out = new Int32Array(queries * k).fill(-1);
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  for (let q = 0; q < queries; q++) {
    const record = JSON.parse(lines[q]) as { neighbors: Array<{ id: string }> };
    record.neighbors.forEach((n, j) => (out[q * k + j] = Number(n.id.slice(1))));
  }
  return out;
}

function recall(found: Int32Array, exact: Int32Array, queries: number): number {
  let hits = 0;
  for (let q = 0; q < queries; q++) {
    const set = new Set(found.subarray(q * k, (q + 1) * k));
    for (let j = 0; j < k; j++) if (set.has(exact[q * k + j])) hits++;
  }
  return hits / (queries * k);
}

/** The JSON object a Python peer prints last on stdout. */
function peerJson(stdout: string): Record<string, unknown> {
  try {
    return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  } catch {
    return { error: 'no JSON on stdout' };
  }
}

/** Neighbour rows from the int64 .npy the faiss peer writes. */
function faissRows(path: string): Int32Array {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt16LE(8);
  const data = new BigInt64Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length));
  return Int32Array.from(data, (v) => Number(v));
}

/** The command's own queries/s (search phase: after start-up and reading the ids). */
function reportedRate(stderr: string): number | null {
  const m = /\((\d+) queries\/s\)/.exec(stderr);
  return m ? Number(m[1]) : null;
}

function sizeIs(path: string, bytes: number): boolean {
  try {
    return statSync(path).size === bytes;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = { startedAt: new Date().toISOString(), machine: machineInfo(), loadBefore: loadAverage() };
  // Written after every step: a run cut short by the clock still leaves what it measured.
  const save = (key: string, value: unknown) => {
    results[key] = value;
    writeResults(outFile, { ...results, loadNow: loadAverage() });
  };
  mkdirSync(workDir, { recursive: true });
  const galleryPath = join(workDir, 'gallery.npy');
  const queryPath = join(workDir, 'queries.npy');
  const exactQueryPath = join(workDir, 'queries-exact.npy');
  const npyBytes = (n: number) => 128 + n * dim * 4;
  const t0 = performance.now();
  if (!(hasFlag('reuse') && sizeIs(galleryPath, npyBytes(rows)) && sizeIs(queryPath, npyBytes(queryCount)) && sizeIs(exactQueryPath, npyBytes(exactQueries)))) {
    await writeVectors('gallery', clusteredChunks(rows, 'ann-bench-gallery'), 'r');
    await writeVectors('queries', clusteredChunks(queryCount, 'ann-bench-queries'), 'q');
    // The first --exact-queries of the same queries (chunks stop early; the values do not depend on the count).
    await writeVectors('queries-exact', clusteredChunks(exactQueries, 'ann-bench-queries'), 'q');
    rmSync(join(workDir, 'exact.ndjson'), { force: true });
  }
  save('data', { rows, dim, queries: queryCount, exactQueries, k, threads, centres: CENTRES, subspace: SUBSPACE, generateSeconds: (performance.now() - t0) / 1000 });
  console.error(`ann bench: data ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (hasFlag('data-only')) return;

  const ivf = indexKind === 'ivf';
  const indexDir = join(workDir, ivf ? 'gallery.ivf' : 'gallery.hnsw');
  rmSync(indexDir, { recursive: true, force: true });
  const buildArgs = ivf
    ? ['--index', 'ivf', '--iterations', iterations, '--memory', memory, ...(lists ? ['--lists', lists] : []), ...(trainRows ? ['--train-rows', trainRows] : [])]
    : ['--connectivity', String(connectivity), '--expansion-add', String(expansionAdd), '--quantization', quantization];
  const build = await atelier(['knn', 'index', 'build', '-g', galleryPath, '--index-dir', indexDir, '--threads', String(threads), ...buildArgs]);
  if (build.exitCode !== 0) throw new Error(`index build failed: ${build.stderr}`);
  const indexFile = join(indexDir, ivf ? 'vectors.npy' : 'index.usearch');
  const ivfMeta = ivf ? (JSON.parse(readFileSync(join(indexDir, 'meta.json'), 'utf8')) as { lists: number; train_rows: number; iterations: number }) : null;
  save('build', { ...build, stderr: undefined, stdout: undefined, ...(ivf ? { index: 'ivf', ...ivfMeta } : { connectivity, expansionAdd, quantization }), indexMiB: MiB(statSync(indexFile).size) });
  console.error(`ann bench: build ${build.seconds.toFixed(1)} s`);

  const queryRuns: Array<Record<string, unknown>> = [];
  for (const nprobe of ivf ? nprobes : []) {
    const out = join(workDir, `ivf-nprobe${nprobe}.ndjson`);
    const r = await atelier(['knn', 'index', 'query', '--index-dir', indexDir, '-q', queryPath, '--k', String(k), '--threads', String(threads), '--nprobe', String(nprobe), '--memory', memory, '-o', out]);
    if (r.exitCode !== 0) throw new Error(`index query failed: ${r.stderr}`);
    queryRuns.push({ nprobe, queries: queryCount, out, reportedQueriesPerSecond: reportedRate(r.stderr), processQueriesPerSecond: queryCount / r.seconds, ...r, stderr: undefined, stdout: undefined });
    save('queryRuns', queryRuns);
    console.error(`ann bench: query nprobe=${nprobe} ${r.seconds.toFixed(1)} s`);
  }
  for (const ef of ivf ? [] : efs) {
    // Recall is scored on the first --exact-queries of them, the ones the exact search answers.
    for (const [label, path, count] of [['all', queryPath, queryCount]] as const) {
      const out = join(workDir, `ann-ef${ef}-${label}.ndjson`);
      const r = await atelier(['knn', 'index', 'query', '--index-dir', indexDir, '-q', path, '--k', String(k), '--threads', String(threads), '--expansion-search', String(ef), ...(rescore ? ['--rescore', rescore] : []), '-o', out]);
      if (r.exitCode !== 0) throw new Error(`index query failed: ${r.stderr}`);
      queryRuns.push({ ef, rescore: rescore || null, queries: count, out, reportedQueriesPerSecond: reportedRate(r.stderr), processQueriesPerSecond: count / r.seconds, ...r, stderr: undefined, stdout: undefined });
      save('queryRuns', queryRuns);
      console.error(`ann bench: query ef=${ef} ${label} ${r.seconds.toFixed(1)} s`);
    }
  }

  const exactOut = join(workDir, 'exact.ndjson');
  const exact = await atelier(['knn', '-q', exactQueryPath, '-g', galleryPath, '--k', String(k), '--kernel', 'gemm', '--threads', String(threads), '--memory', '2G', '-o', exactOut]);
  if (exact.exitCode !== 0) throw new Error(`exact knn failed: ${exact.stderr}`);
  const exactRate = reportedRate(exact.stderr);
  const exactRows = neighbourRows(exactOut, exactQueries);
  const exactNpy = join(workDir, 'exact.npy');
  await writeNpy(exactNpy, Float32Array.from(exactRows), [exactQueries, k]);
  save('exact', { ...exact, stderr: undefined, stdout: undefined, reportedQueriesPerSecond: exactRate, processQueriesPerSecond: exactQueries / exact.seconds });
  save('queryRuns', queryRuns.map((q) => ({
    ...q,
    recall: recall(neighbourRows(q.out as string, exactQueries), exactRows, exactQueries),
    speedupReported: exactRate && q.reportedQueriesPerSecond ? (q.reportedQueriesPerSecond as number) / exactRate : null,
  })));
  console.error(`ann bench: exact ${exact.seconds.toFixed(1)} s`);

  if (ivf && ivfMeta && !hasFlag('skip-faiss')) {
    const r = await runProcess(PYTHON, [join(repoRoot, 'bench', 'ivf_faiss.py'), galleryPath, queryPath, exactNpy, '--k', String(k), '--threads', String(threads), '--lists', String(ivfMeta.lists), '--train-rows', String(ivfMeta.train_rows), '--iterations', String(ivfMeta.iterations), '--nprobe', nprobes.join(',')]);
    save('faissIvf', { ...peerJson(r.stdout), run: { ...r, stderr: undefined, stdout: undefined } });
    console.error(`ann bench: faiss IVF ${r.seconds.toFixed(1)} s`);
  }
  if (!hasFlag('skip-faiss') && !hasFlag('skip-faiss-flat')) {
    const out = join(workDir, 'faiss-flat.npy');
    const r = await runProcess(PYTHON, [join(repoRoot, 'bench', 'knn_faiss.py'), galleryPath, exactQueryPath, out, '--k', String(k), '--threads', String(threads), '--repeats', '1']);
    save('faissFlat', { ...peerJson(r.stdout), recall: r.exitCode === 0 ? recall(faissRows(out), exactRows, exactQueries) : null, run: { ...r, stderr: undefined, stdout: undefined } });
    console.error(`ann bench: faiss flat ${r.seconds.toFixed(1)} s`);
  }
  if (hasFlag('faiss-hnsw')) {
    const r = await runProcess(PYTHON, [join(repoRoot, 'bench', 'ann_faiss.py'), galleryPath, queryPath, exactNpy, '--k', String(k), '--threads', String(threads), '--m', String(connectivity), '--ef-construction', String(expansionAdd), '--ef', efs.join(',')]);
    save('faissHnsw', { ...peerJson(r.stdout), run: { ...r, stderr: undefined, stdout: undefined } });
  }
  save('loadAfter', loadAverage());
  if (!hasFlag('keep')) rmSync(galleryPath, { force: true });
  console.error(`ann bench: results in ${relative(repoRoot, outFile)}`);
}

await main();
