// bench/train-cnn: training and inference images/s of the small CNN (src/lib/models/small-cnn.ts,
// 64x64x3, batch 32, max-pool and stride-2 variants) on WASM in one process, on WASM through the
// worker pool, on the plain CPU backend and on PyTorch CPU with 2 threads, in one run, as ratios
// to PyTorch. Warm-up steps are not timed. A per-kernel profile of one WASM training step shows
// where the time goes. Results: a table on stdout, JSON in bench/out/train-cnn.json.
// Usage: node dist/bench/train-cnn.js [--seconds 5] [--variants maxpool,stride2] [--workers N]
//        [--cpu-train-steps 1] [--skip-cpu] [--skip-torch] [--out bench/out/train-cnn.json]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { createWorkerPool, tensorData, type TensorData, type WorkerPool } from '../src/lib/backend/pool.js';
import { BUILTIN_LOSSES } from '../src/lib/backend/pool-protocol.js';
import { buildSmallCnn, type SmallCnnVariant } from '../src/lib/models/small-cnn.js';
import { writeFileAtomic } from '../src/lib/io/atomic.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const PYTHON = '/usr/bin/python3';
const INPUT_SIZE = 64;
const CLASSES = 10;
const WARMUP_STEPS = 2;
const MIN_TIMED_STEPS = 3;
const LEARNING_RATE = 0.01;

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    variants: { type: 'string', default: 'maxpool,stride2' },
    batch: { type: 'string', default: '32' },
    workers: { type: 'string', default: String(cpus().length) },
    'cpu-train-steps': { type: 'string', default: '1' },
    'skip-cpu': { type: 'boolean', default: false },
    'skip-torch': { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    out: { type: 'string', default: join(repoRoot, 'bench', 'out', 'train-cnn.json') },
  },
});
const minSeconds = Number(flags.seconds);
const batchSize = Number(flags.batch);
const workerCount = Number(flags.workers);
const cpuTrainSteps = Number(flags['cpu-train-steps']);
const variants = flags.variants.split(',').map((v) => v.trim()) as SmallCnnVariant[];

interface Throughput {
  steps: number;
  seconds: number;
  imagesPerSecond: number;
}

interface Row {
  variant: SmallCnnVariant;
  engine: string;
  train?: Throughput;
  infer?: Throughput;
  note?: string;
}

function log(message: string): void {
  process.stderr.write(`train-cnn: ${message}\n`);
}

/** Runs `step` `warmup` times untimed, then until both `minSteps` steps and `seconds` have passed. */
async function timeSteps(step: () => Promise<void> | void, options: { warmup: number; minSteps: number; seconds: number; images: number }): Promise<Throughput> {
  for (let i = 0; i < options.warmup; i++) await step();
  let steps = 0;
  const started = performance.now();
  while (steps < options.minSteps || (performance.now() - started) / 1000 < options.seconds) {
    await step();
    steps++;
  }
  const seconds = (performance.now() - started) / 1000;
  return { steps, seconds, imagesPerSecond: (steps * options.images) / seconds };
}

function randomBatch(seed: number): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => ({
    x: tf.randomUniform([batchSize, INPUT_SIZE, INPUT_SIZE, 3], 0, 1, 'float32', seed),
    y: tf.oneHot(tf.randomUniform([batchSize], 0, CLASSES, 'int32', seed + 1), CLASSES).toFloat(),
  }));
}

const loss = BUILTIN_LOSSES.categoricalCrossentropy;

/** One SGD step of the model on the batch in this thread, with the loss read back (forces completion). */
function trainStepInThread(model: tf.LayersModel, optimizer: tf.Optimizer, x: tf.Tensor, y: tf.Tensor): void {
  const value = optimizer.minimize(() => loss(y, model.apply(x, { training: true }) as tf.Tensor), true);
  value?.dataSync();
  value?.dispose();
}

function inferInThread(model: tf.LayersModel, x: tf.Tensor): void {
  const out = model.predict(x) as tf.Tensor;
  out.dataSync();
  out.dispose();
}

async function measureInThread(variant: SmallCnnVariant, backend: 'wasm' | 'cpu'): Promise<Row> {
  await selectBackend({ requested: backend, quiet: true });
  const model = buildSmallCnn({ variant, inputSize: INPUT_SIZE, classes: CLASSES, seed: 1 });
  const optimizer = tf.train.sgd(LEARNING_RATE);
  const { x, y } = randomBatch(7);
  const row: Row = { variant, engine: `${backend} (1 thread)` };
  const tensorsBefore = tf.memory().numTensors;
  if (backend === 'wasm') {
    row.train = await timeSteps(() => trainStepInThread(model, optimizer, x, y), { warmup: WARMUP_STEPS, minSteps: MIN_TIMED_STEPS, seconds: minSeconds, images: batchSize });
    row.infer = await timeSteps(() => inferInThread(model, x), { warmup: WARMUP_STEPS, minSteps: MIN_TIMED_STEPS, seconds: minSeconds, images: batchSize });
  } else {
    row.infer = await timeSteps(() => inferInThread(model, x), { warmup: 1, minSteps: 2, seconds: Math.min(minSeconds, 3), images: batchSize });
    if (cpuTrainSteps > 0) {
      // A CPU step takes minutes (its Conv2DBackpropFilter is a plain JS loop): warm up on 2 images only.
      const small = tf.tidy(() => ({ x: x.slice(0, 2), y: y.slice(0, 2) }));
      trainStepInThread(model, optimizer, small.x, small.y);
      tf.dispose([small.x, small.y]);
      row.train = await timeSteps(() => trainStepInThread(model, optimizer, x, y), { warmup: 0, minSteps: cpuTrainSteps, seconds: 0, images: batchSize });
      row.note = `training: ${cpuTrainSteps} timed step(s)`;
    }
  }
  if (tf.memory().numTensors !== tensorsBefore) log(`warning: ${tf.memory().numTensors - tensorsBefore} tensors leaked on ${backend}`);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  return row;
}

function copyOf(data: TensorData): TensorData {
  return { shape: data.shape, dtype: data.dtype, data: data.data.slice() };
}

async function measurePool(pool: WorkerPool, variant: SmallCnnVariant): Promise<Row> {
  const model = buildSmallCnn({ variant, inputSize: INPUT_SIZE, classes: CLASSES, seed: 1 });
  const { x, y } = randomBatch(7);
  const [xs, ys] = [await tensorData(x), await tensorData(y)];
  tf.dispose([x, y]);
  const row: Row = { variant, engine: `wasm pool (${pool.size} workers)` };
  await pool.startTraining({ model, loss: 'categoricalCrossentropy', optimizer: { name: 'sgd', learningRate: LEARNING_RATE } });
  row.train = await timeSteps(async () => void (await pool.trainStep(copyOf(xs), copyOf(ys))), { warmup: WARMUP_STEPS, minSteps: MIN_TIMED_STEPS, seconds: minSeconds, images: batchSize });
  await pool.loadModel(model);
  // Inference keeps two batches per worker in flight, as a command streaming images would.
  const inFlight = 2 * pool.size;
  const inferBatches = async (count: number) => {
    const batches = Array.from({ length: count }, () => copyOf(xs));
    for await (const out of pool.predictBatches(batches, inFlight)) void out;
  };
  await inferBatches(inFlight);
  let batches = 0;
  const started = performance.now();
  while (batches < MIN_TIMED_STEPS * pool.size || (performance.now() - started) / 1000 < minSeconds) {
    await inferBatches(inFlight * 2);
    batches += inFlight * 2;
  }
  const seconds = (performance.now() - started) / 1000;
  row.infer = { steps: batches, seconds, imagesPerSecond: (batches * batchSize) / seconds };
  model.dispose();
  return row;
}

interface TorchResult {
  torch: string;
  threads: number;
  train: { steps: number; seconds: number; images_per_s: number };
  infer: { steps: number; seconds: number; images_per_s: number };
}

function measureTorch(variant: SmallCnnVariant): Row | { skipped: string } {
  const script = join(repoRoot, 'bench', 'train_cnn_torch.py');
  const run = spawnSync(PYTHON, [script, '--variant', variant, '--batch', String(batchSize), '--threads', '2', '--warmup', String(WARMUP_STEPS), '--min-steps', String(MIN_TIMED_STEPS), '--min-seconds', String(minSeconds)], { encoding: 'utf8' });
  if (run.error) return { skipped: `${PYTHON}: ${run.error.message}` };
  if (run.status === 3) return { skipped: (JSON.parse(run.stdout) as { error: string }).error };
  if (run.status !== 0) return { skipped: `train_cnn_torch.py exited ${run.status}: ${run.stderr.trim().split('\n').pop()}` };
  const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as TorchResult;
  const convert = (t: TorchResult['train']): Throughput => ({ steps: t.steps, seconds: t.seconds, imagesPerSecond: t.images_per_s });
  return { variant, engine: `pytorch ${result.torch} (${result.threads} threads)`, train: convert(result.train), infer: convert(result.infer) };
}

interface KernelTime {
  kernel: string;
  ms: number;
  share: number;
}

/** Time per kernel of one WASM training step (tf.profile; totals include the profiler's syncs). */
async function profileTrainStep(variant: SmallCnnVariant): Promise<KernelTime[]> {
  await selectBackend({ requested: 'wasm', quiet: true });
  const model = buildSmallCnn({ variant, inputSize: INPUT_SIZE, classes: CLASSES, seed: 1 });
  const optimizer = tf.train.sgd(LEARNING_RATE);
  const { x, y } = randomBatch(7);
  trainStepInThread(model, optimizer, x, y);
  const info = await tf.profile(() => trainStepInThread(model, optimizer, x, y));
  const totals = new Map<string, number>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    totals.set(k.name, (totals.get(k.name) ?? 0) + ms);
  }
  const all = [...totals.values()].reduce((a, b) => a + b, 0);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  return [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([kernel, ms]) => ({ kernel, ms: Math.round(ms), share: ms / all }));
}

function machine(): Record<string, unknown> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: cpus().length,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cpuFlags: ['avx2', 'avx512f', 'fma'].filter((flag) => new RegExp(`\\b${flag}\\b`).test(cpuinfo)),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    tfjs: tf.version.tfjs,
  };
}

function formatTable(rows: Row[]): string {
  const fmt = (v: number | undefined, digits = 1) => (v === undefined ? '-' : v.toFixed(digits));
  const header = ['variant', 'engine', 'train img/s', 'vs torch', 'infer img/s', 'vs torch'];
  const lines = rows.map((row) => {
    const torch = rows.find((r) => r.variant === row.variant && r.engine.startsWith('pytorch'));
    const ratio = (a?: Throughput, b?: Throughput) => (a && b ? `${(a.imagesPerSecond / b.imagesPerSecond).toFixed(2)}x` : '-');
    return [row.variant, row.engine, fmt(row.train?.imagesPerSecond, row.train && row.train.imagesPerSecond < 1 ? 3 : 1), ratio(row.train, torch?.train), fmt(row.infer?.imagesPerSecond), ratio(row.infer, torch?.infer)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  return [header, ...lines].map((cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const command = `node ${relative(repoRoot, fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim();
  const loadBefore = loadavg();
  const rows: Row[] = [];
  const skipped: string[] = [];
  const profiles: Record<string, KernelTime[]> = {};

  log(`starting a pool of ${workerCount} WASM workers`);
  const pool = await createWorkerPool({ workers: workerCount, backend: 'wasm' });
  try {
    for (const variant of variants) {
      log(`${variant}: wasm in one thread`);
      rows.push(await measureInThread(variant, 'wasm'));
      log(`${variant}: wasm pool`);
      rows.push(await measurePool(pool, variant));
      if (!flags['skip-cpu']) {
        log(`${variant}: plain cpu backend (slow)`);
        rows.push(await measureInThread(variant, 'cpu'));
      }
      if (!flags['skip-torch']) {
        log(`${variant}: pytorch`);
        const torch = measureTorch(variant);
        if ('skipped' in torch) skipped.push(`pytorch ${variant}: ${torch.skipped}`);
        else rows.push(torch);
      }
      if (!flags['no-profile']) profiles[variant] = await profileTrainStep(variant);
    }
  } finally {
    await pool.close();
  }

  const report = {
    bench: 'train-cnn',
    date: new Date().toISOString(),
    command,
    machine: { ...machine(), loadAverageBefore: loadBefore, loadAverageAfter: loadavg() },
    settings: { batchSize, inputSize: INPUT_SIZE, classes: CLASSES, warmupSteps: WARMUP_STEPS, minSeconds, workers: workerCount, optimizer: `sgd(${LEARNING_RATE})` },
    rows,
    skipped,
    wasmTrainStepProfile: profiles,
  };
  mkdirSync(dirname(resolve(flags.out)), { recursive: true });
  await writeFileAtomic(resolve(flags.out), `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(`${formatTable(rows)}\n`);
  for (const line of skipped) process.stdout.write(`skipped ${line}\n`);
  for (const [variant, kernels] of Object.entries(profiles)) {
    process.stdout.write(`\nwasm training step, ${variant}, time per kernel (tf.profile):\n`);
    for (const k of kernels) process.stdout.write(`  ${k.kernel.padEnd(24)} ${String(k.ms).padStart(6)} ms  ${(100 * k.share).toFixed(0).padStart(3)}%\n`);
  }
  process.stdout.write(`\nload average before/after: ${loadBefore.map((l) => l.toFixed(2)).join(' ')} / ${loadavg().map((l) => l.toFixed(2)).join(' ')}; JSON: ${relative(process.cwd(), resolve(flags.out))}\n`);
}

await main();
