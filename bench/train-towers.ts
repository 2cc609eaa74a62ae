// bench/train-towers: train and inference images/s of the tower families (src/lib/models/towers/)
// on WASM in one thread, against the same architecture in PyTorch CPU (bench/train_towers_torch.py)
// with 1 thread (the per-thread comparison) and with every core, in one run; plus a tf.profile of
// one WASM training step per tower (time per kernel).
// Model: tower -> global average pooling -> 10-way dense head, softmax cross-entropy, plain SGD,
// random data (speed does not depend on the values).
// Usage: node dist/bench/train-towers.js [--towers resnet18,mobilenetv2] [--sizes 64,96,128] [--batch 32]
//        [--steps 2] [--warmup 1] [--torch-threads 1,0] [--skip-torch] [--profile small,resnet18,mobilenetv2]
//        [--profile-size 64] [--out bench/out/train-towers.json]
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { buildTowerGraph } from '../src/lib/models/towers/index.js';
import { PYTHON, MiB, machineInfo, repoRoot, writeResults } from './common.js';

const CLASSES = 10;
const LEARNING_RATE = 0.01;

const { values: flags } = parseArgs({
  options: {
    towers: { type: 'string', default: 'resnet18,mobilenetv2' },
    sizes: { type: 'string', default: '64,96,128' },
    batch: { type: 'string', default: '32' },
    steps: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    'torch-threads': { type: 'string', default: '1,0' },
    'skip-torch': { type: 'boolean', default: false },
    profile: { type: 'string', default: 'small,resnet18,mobilenetv2' },
    'profile-size': { type: 'string', default: '64' },
    out: { type: 'string', default: join(repoRoot, 'bench', 'out', 'train-towers.json') },
    cell: { type: 'string' },
  },
});
const batchSize = Number(flags.batch);
const steps = Number(flags.steps);
const warmup = Number(flags.warmup);
const list = (text: string) => text.split(',').map((s) => s.trim()).filter((s) => s !== '');

interface Throughput {
  steps: number;
  seconds: number;
  imagesPerSecond: number;
  cpuSecondsPerImage: number;
}

interface Row {
  tower: string;
  size: number;
  engine: string;
  train: Throughput;
  infer: Throughput;
  peakRssMiB: number;
}

function log(message: string): void {
  process.stderr.write(`train-towers: ${message}\n`);
}

function timeSteps(step: () => void, images: number): Throughput {
  for (let i = 0; i < warmup; i++) step();
  const wall = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < steps; i++) step();
  const seconds = (performance.now() - wall) / 1000;
  const used = process.cpuUsage(cpu);
  return { steps, seconds, imagesPerSecond: (steps * images) / seconds, cpuSecondsPerImage: (used.user + used.system) / 1e6 / (steps * images) };
}

function buildClassifier(family: string, size: number): tf.LayersModel {
  const { input, pooled } = buildTowerGraph({ family, input: { height: size, width: size }, params: {}, seed: 1 });
  const logits = tf.layers.dense({ units: CLASSES, name: 'head' }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

function randomBatch(size: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = tf.randomUniform([batchSize, size, size, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % CLASSES), 'int32'), CLASSES).toFloat() as tf.Tensor2D);
  return { x, y };
}

/** One SGD step in training mode (BatchNorm on batch statistics); reads the loss so the work is done. */
function trainStep(model: tf.LayersModel, optimizer: tf.Optimizer, x: tf.Tensor, y: tf.Tensor): void {
  const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, true);
  loss!.dataSync();
  loss!.dispose();
}

function measureWasm(family: string, size: number): Row {
  const before = tf.memory().numTensors;
  const model = buildClassifier(family, size);
  const optimizer = tf.train.sgd(LEARNING_RATE);
  const { x, y } = randomBatch(size);
  const train = timeSteps(() => trainStep(model, optimizer, x, y), batchSize);
  const infer = timeSteps(() => {
    const out = model.predict(x) as tf.Tensor;
    out.dataSync();
    out.dispose();
  }, batchSize);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  if (tf.memory().numTensors !== before) log(`warning: ${tf.memory().numTensors - before} tensors leaked`);
  return { tower: family, size, engine: 'wasm (1 thread)', train, infer, peakRssMiB: MiB(process.resourceUsage().maxRSS * 1024) };
}

/**
 * Each WASM cell runs in a child process of this script: its peak RSS is its own, and a cell that
 * exhausts the WASM heap (which never shrinks) aborts only itself.
 */
function measureWasmInChild(family: string, size: number): Row | { skipped: string } {
  const args = [fileURLToPath(import.meta.url), '--cell', `${family}:${size}`, '--batch', String(batchSize), '--steps', String(steps), '--warmup', String(warmup)];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (run.status !== 0) {
    const why = run.stderr.split('\n').find((line) => /Error|Aborted|memory/i.test(line)) ?? `exit ${run.status ?? run.signal}`;
    return { skipped: `wasm child exited ${run.status ?? run.signal}: ${why.trim()}` };
  }
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Row;
}

interface TorchResult {
  torch: string;
  threads: number;
  train: { steps: number; seconds: number; images_per_s: number; cpu_s_per_image: number };
  infer: { steps: number; seconds: number; images_per_s: number; cpu_s_per_image: number };
  peak_rss_bytes: number;
}

function measureTorch(family: string, size: number, threads: number): Row | { skipped: string } {
  const args = [join(repoRoot, 'bench', 'train_towers_torch.py'), '--tower', family, '--input-size', String(size), '--batch', String(batchSize),
    '--lr', String(LEARNING_RATE), '--threads', String(threads), '--warmup', String(warmup), '--steps', String(steps)];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.error) return { skipped: `${PYTHON}: ${run.error.message}` };
  if (run.status === 3) return { skipped: (JSON.parse(run.stdout) as { error: string }).error };
  if (run.status !== 0) return { skipped: `train_towers_torch.py exited ${run.status}: ${run.stderr.trim().split('\n').pop()}` };
  const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as TorchResult;
  const convert = (t: TorchResult['train']): Throughput => ({ steps: t.steps, seconds: t.seconds, imagesPerSecond: t.images_per_s, cpuSecondsPerImage: t.cpu_s_per_image });
  return { tower: family, size, engine: `pytorch ${r.torch} (${r.threads} thread${r.threads === 1 ? '' : 's'})`, train: convert(r.train), infer: convert(r.infer), peakRssMiB: MiB(r.peak_rss_bytes) };
}

interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
  share: number;
}

/** Time per kernel of one WASM training step (tf.profile syncs after each kernel: shares matter, not totals). */
async function profileStep(family: string, size: number): Promise<{ stepMs: number; kernels: KernelTime[] }> {
  const model = buildClassifier(family, size);
  const optimizer = tf.train.sgd(LEARNING_RATE);
  const { x, y } = randomBatch(size);
  trainStep(model, optimizer, x, y);
  const started = performance.now();
  trainStep(model, optimizer, x, y);
  const stepMs = performance.now() - started;
  const info = await tf.profile(() => trainStep(model, optimizer, x, y));
  const totals = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const t = totals.get(k.name) ?? { ms: 0, calls: 0 };
    t.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    t.calls++;
    totals.set(k.name, t);
  }
  const all = [...totals.values()].reduce((a, b) => a + b.ms, 0);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  const kernels = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms).map(([kernel, t]) => ({ kernel, ms: Math.round(t.ms), calls: t.calls, share: t.ms / all }));
  return { stepMs: Math.round(stepMs), kernels };
}

function formatTable(rows: Row[]): string {
  const header = ['tower', 'px', 'engine', 'train img/s', 'vs torch 1t', 'vs torch all', 'train cpu s/img', 'infer img/s', 'vs torch 1t', 'vs torch all', 'peak RSS MiB'];
  const lines = rows.map((row) => {
    const peers = rows.filter((r) => r.tower === row.tower && r.size === row.size && r.engine.startsWith('pytorch'));
    const one = peers.find((r) => r.engine.endsWith('(1 thread)'));
    const all = peers.find((r) => !r.engine.endsWith('(1 thread)'));
    const ratio = (a: number, b?: number) => (b ? `${(a / b).toFixed(2)}x` : '-');
    return [row.tower, String(row.size), row.engine, row.train.imagesPerSecond.toFixed(1), ratio(row.train.imagesPerSecond, one?.train.imagesPerSecond),
      ratio(row.train.imagesPerSecond, all?.train.imagesPerSecond), row.train.cpuSecondsPerImage.toFixed(3), row.infer.imagesPerSecond.toFixed(1),
      ratio(row.infer.imagesPerSecond, one?.infer.imagesPerSecond), ratio(row.infer.imagesPerSecond, all?.infer.imagesPerSecond), row.peakRssMiB.toFixed(0)];
  });
  return ['| ' + header.join(' | ') + ' |', '|' + header.map(() => '---').join('|') + '|', ...lines.map((l) => '| ' + l.join(' | ') + ' |')].join('\n');
}

async function main(): Promise<void> {
  if (flags.cell) {
    const [family, size] = flags.cell.split(':');
    await selectBackend({ requested: 'wasm', quiet: true });
    process.stdout.write(`${JSON.stringify(measureWasm(family, Number(size)))}\n`);
    return;
  }
  const command = `node ${relative(repoRoot, fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim();
  const loadBefore = loadavg();
  await selectBackend({ requested: 'wasm', quiet: true });
  const rows: Row[] = [];
  const skipped: string[] = [];
  const profiles: Record<string, { stepMs: number; kernels: KernelTime[] }> = {};
  const profileSize = Number(flags['profile-size']);
  const save = () => writeResults(resolve(flags.out), {
    bench: 'train-towers', date: new Date().toISOString(), command,
    machine: { ...machineInfo(), tfjs: tf.version.tfjs, loadAverageBefore: loadBefore, loadAverageNow: loadavg() },
    settings: { batchSize, steps, warmup, classes: CLASSES, optimizer: `sgd(${LEARNING_RATE})`, profileSize },
    rows, skipped, wasmTrainStepProfile: profiles,
  });
  for (const family of list(flags.profile)) {
    log(`profile ${family} ${profileSize} px`);
    profiles[family] = await profileStep(family, profileSize);
    save();
  }
  for (const size of list(flags.sizes).map(Number)) {
    for (const family of list(flags.towers)) {
      log(`${family} ${size} px: wasm`);
      const wasm = measureWasmInChild(family, size);
      if ('skipped' in wasm) skipped.push(`wasm ${family} ${size}: ${wasm.skipped}`);
      else rows.push(wasm);
      save();
      if (flags['skip-torch']) continue;
      for (const threads of list(flags['torch-threads']).map(Number)) {
        log(`${family} ${size} px: pytorch ${threads || cpus().length} threads`);
        const torch = measureTorch(family, size, threads);
        if ('skipped' in torch) skipped.push(`pytorch ${family} ${size}: ${torch.skipped}`);
        else rows.push(torch);
        save();
      }
    }
  }
  const loadAfter = loadavg();
  save();
  process.stdout.write(`${formatTable(rows)}\n`);
  for (const line of skipped) process.stdout.write(`skipped ${line}\n`);
  for (const [family, p] of Object.entries(profiles)) {
    process.stdout.write(`\nwasm training step, ${family} ${profileSize} px, batch ${batchSize}: ${p.stepMs} ms unprofiled; time per kernel (tf.profile):\n`);
    for (const k of p.kernels.slice(0, 12)) process.stdout.write(`  ${k.kernel.padEnd(34)} ${String(k.ms).padStart(7)} ms ${String(k.calls).padStart(5)} calls ${(100 * k.share).toFixed(1).padStart(5)}%\n`);
  }
  process.stdout.write(`\nload average before/after: ${loadBefore.map((l) => l.toFixed(2)).join(' ')} / ${loadAfter.map((l) => l.toFixed(2)).join(' ')}; JSON: ${relative(process.cwd(), resolve(flags.out))}\n`);
}

await main();
