// RISE benchmark (issues 8, 16): seconds per image of `atelier rise` at N masks on a 64x64 image
// model, against the time of N plain forward passes of the same model in the same batches (the
// floor RISE cannot beat) on tfjs, on onnxruntime-node and in PyTorch CPU (bench/infer_torch.py,
// the same architecture, threads = cores), and the command's RSS per image over a longer run (it
// should stay flat).
//
//   node dist/bench/rise.js [--n 4000] [--batch 100] [--timing-images 4] [--memory-images 50]
//     [--memory-n 500] [--width 16] [--backend auto] [--engine auto|ort|tfjs] [--skip-torch]
//     [--out bench/out/rise.json]
//
// The model is buildWeakModel (src/lib/models/weak-model.ts) at 64x64 input, width 16, 4 stages,
// 20 words, untrained (speed does not depend on the weights), saved with saveModel. Images are the
// first JPEGs of ../shared/data/fashion-product-images-small/images when present, else generated.
import { spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { loadModel, saveModel } from '../src/lib/backend/model-io.js';
import { buildWeakModel } from '../src/lib/models/weak-model.js';
import { createRandom } from '../src/lib/random.js';
import { openOrtModel } from '../src/lib/onnx/runtime.js';
import { loadOrt } from '../src/lib/onnx/session.js';
import { MiB, PYTHON, flag, hasFlag, loadAverage, machineInfo, outDir, processMemory, repoRoot, writeResults } from './common.js';

const n = Number(flag('n', '4000'));
const batch = Number(flag('batch', '100'));
const timingImages = Number(flag('timing-images', '4'));
const memoryImages = Number(flag('memory-images', '50'));
const memoryN = Number(flag('memory-n', '500'));
const width = Number(flag('width', '16'));
const backend = flag('backend', 'auto');
const engine = flag('engine', 'auto');
const skipTorch = hasFlag('skip-torch');
const outFile = flag('out', join(outDir, 'rise.json'));
const workDir = join(outDir, 'rise');
const SIZE = 64;
const REAL_IMAGES = join(repoRoot, '..', 'shared', 'data', 'fashion-product-images-small', 'images');

async function imagePaths(count: number): Promise<{ paths: string[]; source: string }> {
  if (existsSync(REAL_IMAGES)) {
    const names = readdirSync(REAL_IMAGES).filter((f) => f.endsWith('.jpg')).sort().slice(0, count);
    if (names.length === count) return { paths: names.map((f) => join(REAL_IMAGES, f)), source: 'fashion-product-images-small' };
  }
  const dir = join(workDir, 'images');
  mkdirSync(dir, { recursive: true });
  const random = createRandom('rise-bench-images');
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const pixels = Buffer.alloc(80 * 60 * 3);
    for (let p = 0; p < pixels.length; p++) pixels[p] = Math.floor(random.next() * 256);
    const path = join(dir, `image-${i}.png`);
    await sharp(pixels, { raw: { width: 60, height: 80, channels: 3 } }).png().toFile(path);
    paths.push(path);
  }
  return { paths, source: 'generated noise 60x80' };
}

interface CommandRun {
  seconds: number;
  /** Seconds from start to each image's output line. */
  lineTimes: number[];
  /** RSS (bytes) when each line arrived. */
  rssAtLine: number[];
  peakRss: number;
  exitCode: number | null;
  stderrTail: string[];
  /** The command's line saying which engine it ran on. */
  engineLine: string | null;
}

/**
 * Runs `atelier rise` with --maps-dir and polls that directory: a map file (under its temp name
 * until the run ends) appears as each image is done (stdout is buffered until the end), so its
 * arrival time and the process's RSS then are taken.
 */
async function runRise(modelDir: string, images: string[], masks: number, mapsDir: string): Promise<CommandRun> {
  rmSync(mapsDir, { recursive: true, force: true });
  const args = [join(repoRoot, 'bin', 'atelier'), 'rise', '-m', modelDir, '--n', String(masks), '--batch', String(batch), '--backend', backend, '--engine', engine, '--maps-dir', mapsDir, '-o', `${mapsDir}-summary.ndjson`, ...images];
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lineTimes: number[] = [];
  const rssAtLine: number[] = [];
  let peakRss = 0;
  const poll = () => {
    const memory = processMemory(child.pid!);
    if (memory) peakRss = Math.max(peakRss, memory.peak);
    let done = 0;
    try {
      // A map is written under a hidden temp name (renamed when the run ends): count either.
      done = readdirSync(mapsDir).filter((f) => f.endsWith('.npy') || f.includes('.npy.tmp-')).length;
    } catch {
      // Not created yet.
    }
    while (lineTimes.length < done) {
      lineTimes.push((performance.now() - started) / 1000);
      rssAtLine.push(memory?.rss ?? NaN);
    }
  };
  const timer = setInterval(poll, 25);
  const exitCode = await new Promise<number | null>((done) => child.on('close', done));
  clearInterval(timer);
  poll();
  return { seconds: (performance.now() - started) / 1000, lineTimes, rssAtLine, peakRss, exitCode, stderrTail: stderr.trim().split('\n').slice(-3), engineLine: stderr.split('\n').find((l) => l.includes(': engine ')) ?? null };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seconds per image after the first (which also pays for loading and the masks). */
function perImage(run: CommandRun): number[] {
  return run.lineTimes.slice(1).map((t, i) => t - run.lineTimes[i]);
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  mkdirSync(workDir, { recursive: true });
  const choice = await selectBackend({ requested: backend, stderr: process.stderr });
  const modelDir = join(workDir, 'weak-64.model');
  const vocabulary = Array.from({ length: 20 }, (_, i) => `word${i}`);
  const built = buildWeakModel({ inputSize: SIZE, width, blocksPerStage: 1, stages: 4, projection: 0, vocabularySize: vocabulary.length, seed: 1 });
  await saveModel(built, modelDir, { metadata: { vocabulary } });
  built.dispose();

  // The floor: N forward passes of the same saved model in batches of --batch.
  const { model } = await loadModel(modelDir);
  const random = createRandom('rise-bench-input');
  const input = tf.tidy(() => tf.tensor4d(Float32Array.from({ length: batch * SIZE * SIZE * 3 }, () => random.next()), [batch, SIZE, SIZE, 3]));
  tf.tidy(() => (model.predict(input) as tf.Tensor).dataSync());
  let started = performance.now();
  for (let done = 0; done < n; done += batch) {
    const size = Math.min(batch, n - done);
    tf.tidy(() => (model.predict(size === batch ? input : input.slice(0, size)) as tf.Tensor).dataSync());
  }
  const forwardSeconds = (performance.now() - started) / 1000;
  console.log(`backend ${choice.name}; ${n} forward passes (batches of ${batch}): ${forwardSeconds.toFixed(2)} s (${Math.round(n / forwardSeconds)} images/s)`);

  // The same floor on onnxruntime (the model converted in memory, as rise --engine ort runs it).
  let ortForwardSeconds: number | null = null;
  const ort = await loadOrt();
  if (!(ort instanceof Error)) {
    const session = await openOrtModel(ort, model);
    const data = (await input.data()) as Float32Array;
    await session.run(data, input.shape);
    started = performance.now();
    for (let done = 0; done < n; done += batch) {
      const size = Math.min(batch, n - done);
      await session.run(size === batch ? data : data.subarray(0, size * SIZE * SIZE * 3), [size, SIZE, SIZE, 3]);
    }
    ortForwardSeconds = (performance.now() - started) / 1000;
    await session.release();
    console.log(`onnxruntime-node ${ort.env.versions.node} (${cpus().length} threads); ${n} forward passes: ${ortForwardSeconds.toFixed(2)} s (${Math.round(n / ortForwardSeconds)} images/s)`);
  }
  input.dispose();
  model.dispose();

  // The same floor in PyTorch: the architecture of train_weak_torch.py with its 20-word matrix.
  let torchForward: Record<string, unknown> | null = null;
  if (!skipTorch) {
    const run = spawnSync(PYTHON, [join(repoRoot, 'bench', 'infer_torch.py'), '--tower', 'small', '--input-size', String(SIZE), '--width', String(width), '--words', String(vocabulary.length), '--output', 'scores', '--batch', String(batch), '--passes', String(n), '--threads', String(cpus().length)], { encoding: 'utf8' });
    torchForward = run.status === 0 ? (JSON.parse(run.stdout) as Record<string, unknown>) : { error: (run.stdout || run.stderr).trim().split('\n').pop() };
    if (typeof torchForward.seconds === 'number') console.log(`pytorch ${String(torchForward.torch)} (${String(torchForward.threads)} threads); ${n} forward passes: ${torchForward.seconds.toFixed(2)} s (${Math.round(n / torchForward.seconds)} images/s)`);
    else console.log(`pytorch: ${String(torchForward.error)}`);
  }

  const { paths, source } = await imagePaths(Math.max(timingImages, memoryImages));
  started = performance.now();
  const timing = await runRise(modelDir, paths.slice(0, timingImages), n, join(workDir, 'maps-timing'));
  const intervals = perImage(timing);
  const riseSeconds = median(intervals);
  const ratio = riseSeconds / forwardSeconds;
  console.log(`atelier rise, N=${n}, ${timingImages} images (${source}): ${riseSeconds.toFixed(2)} s/image (median of ${intervals.length}; each ${intervals.map((s) => s.toFixed(2)).join(', ')}), exit ${String(timing.exitCode)}; ${timing.engineLine ?? 'no engine line'}`);
  console.log(`rise / forward passes: ${ratio.toFixed(2)}x (target <= 2x)`);
  const torchSeconds = typeof torchForward?.seconds === 'number' ? torchForward.seconds : null;
  if (torchSeconds) console.log(`rise / PyTorch forward passes: ${(riseSeconds / torchSeconds).toFixed(2)}x (issue 16 target <= 1x)`);
  if (ortForwardSeconds) console.log(`rise / onnxruntime forward passes: ${(riseSeconds / ortForwardSeconds).toFixed(2)}x`);

  const memory = memoryImages > 0 ? await runRise(modelDir, paths.slice(0, memoryImages), memoryN, join(workDir, 'maps-memory')) : null;
  let memoryResult: Record<string, unknown> | null = null;
  if (memory) {
    const rss = memory.rssAtLine.filter(Number.isFinite);
    const firstRss = rss[0];
    const lastRss = rss[rss.length - 1];
    memoryResult = {
      images: memoryImages,
      masks: memoryN,
      exitCode: memory.exitCode,
      lines: memory.lineTimes.length,
      secondsPerImage: median(perImage(memory)),
      rssFirstMiB: MiB(firstRss),
      rssLastMiB: MiB(lastRss),
      rssMaxMiB: MiB(Math.max(...rss)),
      peakRssMiB: MiB(memory.peakRss),
      rssPerImageMiB: rss.map(MiB),
      stderrTail: memory.stderrTail,
    };
    console.log(`memory over ${memory.lineTimes.length} images (N=${memoryN}): RSS first ${MiB(firstRss)} MiB, last ${MiB(lastRss)} MiB, max ${MiB(Math.max(...rss))} MiB, peak ${MiB(memory.peakRss)} MiB, exit ${String(memory.exitCode)}`);
  }

  const loadAfter = loadAverage();
  writeResults(outFile, {
    machine: { ...machineInfo(), tfjs: tf.version.tfjs, backend: choice.name, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter },
    command: `node dist/bench/rise.js ${process.argv.slice(2).join(' ')}`.trim(),
    settings: { n, batch, engine, size: SIZE, width, model: 'buildWeakModel 64x64, width 16, 4 stages, 20 words', images: source },
    forward: { passes: n, batch, seconds: forwardSeconds, imagesPerSecond: n / forwardSeconds },
    ortForward: ortForwardSeconds === null ? null : { passes: n, batch, seconds: ortForwardSeconds, imagesPerSecond: n / ortForwardSeconds },
    torchForward,
    ratioToTorch: torchSeconds ? riseSeconds / torchSeconds : null,
    rise: { images: timingImages, secondsPerImage: riseSeconds, intervals, exitCode: timing.exitCode, totalSeconds: timing.seconds, peakRssMiB: MiB(timing.peakRss), stderrTail: timing.stderrTail, engineLine: timing.engineLine },
    ratio,
    memory: memoryResult,
  });
  console.log(`load average before/after: ${loadBefore.join(' ')} / ${loadAfter.join(' ')}; JSON: ${relative(process.cwd(), outFile)}`);
}

await main();
