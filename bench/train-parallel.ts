// bench/train-parallel: training images/s of the weak model with the step train-weak runs, in this
// thread (--workers 1) and data-parallel on N WASM workers (src/lib/train/parallel-gradients.ts),
// beside the same architecture in PyTorch CPU with all cores and with 1 thread, in one run.
// Settings: the small tower at 64 px width 16, ResNet-18 at 64 and 96 px, MobileNetV2 at 96 px; batch 32,
// 50 sampled negatives.
// Also: CPU seconds per image (the whole process, workers included), peak RSS, and the tensors alive
// in this thread and in every worker before and after the timed steps (memory must stay flat).
// Usage: node dist/bench/train-parallel.js [--seconds 10] [--settings small64,resnet18-64,resnet18-96,mobilenetv2-96] [--workers 1,2]
//        [--torch-threads 2,1] [--skip-torch] [--out bench/out/train-parallel.json]
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { buildWeakModel, type WeakModelConfig } from '../src/lib/models/weak-model.js';
import { openWeakParallel, trainStep, trainStepParallel, weakModels, type StepOptions } from '../src/lib/train/weak-trainer.js';
import type { ImageStore } from '../src/lib/image/batch.js';
import { buildWordIndex } from '../src/lib/train/word-sampler.js';
import { createRandom } from '../src/lib/random.js';
import { writeFileAtomic } from '../src/lib/io/atomic.js';
import { PYTHON, loadAverage, machineInfo, pickSettings, processMemory, repoRoot } from './common.js';

const WARMUP_STEPS = 2;
const MIN_TIMED_STEPS = 3;
const LEARNING_RATE = 0.05;
const WORDS = 500;
const NEGATIVES = 50;

interface Setting {
  name: string;
  inputSize: number;
  tower: 'small' | 'resnet18' | 'mobilenetv2';
  width: number;
}

const SETTINGS: Record<string, Setting> = {
  small64: { name: 'small64', inputSize: 64, tower: 'small', width: 16 },
  'resnet18-64': { name: 'resnet18-64', inputSize: 64, tower: 'resnet18', width: 64 },
  'resnet18-96': { name: 'resnet18-96', inputSize: 96, tower: 'resnet18', width: 64 },
  'mobilenetv2-96': { name: 'mobilenetv2-96', inputSize: 96, tower: 'mobilenetv2', width: 32 },
};

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    settings: { type: 'string', default: 'small64,resnet18-64' },
    workers: { type: 'string', default: `1,${cpus().length}` },
    batch: { type: 'string', default: '32' },
    'torch-threads': { type: 'string', default: `${cpus().length},1` },
    'skip-torch': { type: 'boolean', default: false },
    out: { type: 'string', default: join(repoRoot, 'bench', 'out', 'train-parallel.json') },
  },
});
const minSeconds = Number(flags.seconds);
const batchSize = Number(flags.batch);
const settings = pickSettings(flags.settings, SETTINGS);

interface Row {
  setting: string;
  engine: string;
  imagesPerSecond: number;
  cpuSecondsPerImage: number;
  steps: number;
  seconds: number;
  tensors?: { before: number[]; after: number[] };
}

function log(message: string): void {
  process.stderr.write(`train-parallel: ${message}\n`);
}

function modelConfig(setting: Setting): WeakModelConfig {
  const config: WeakModelConfig = { inputSize: setting.inputSize, width: setting.width, blocksPerStage: 1, stages: 4, projection: 0, vocabularySize: WORDS, seed: 1 };
  if (setting.tower !== 'small') config.tower = { family: setting.tower, input: { height: setting.inputSize, width: setting.inputSize }, params: {}, seed: 1 };
  return config;
}

/** 2,000 random images with 6-word bags: enough for the sampler; speed does not depend on the values. */
function syntheticData(setting: Setting): { store: ImageStore; bags: Int32Array[] } {
  const random = createRandom(5);
  const storedSize = Math.round(setting.inputSize * 1.125);
  const pixels: Uint8Array[] = [];
  const bags: Int32Array[] = [];
  for (let i = 0; i < 2000; i++) {
    const image = new Uint8Array(storedSize * storedSize * 3);
    for (let j = 0; j < image.length; j++) image[j] = random.int(256);
    pixels.push(image);
    bags.push(Int32Array.from(new Set(Array.from({ length: 6 }, () => random.int(WORDS)))));
  }
  return { store: { pixels, storedSize }, bags };
}

async function measureWasm(setting: Setting, workers: number): Promise<Row> {
  await selectBackend({ requested: 'wasm', quiet: true });
  const model = buildWeakModel(modelConfig(setting));
  const models = weakModels(model);
  const optimizer = tf.train.momentum(LEARNING_RATE, 0.9);
  const { store, bags } = syntheticData(setting);
  const index = buildWordIndex(bags, WORDS);
  const random = createRandom(9);
  const options: StepOptions = {
    batchSize, inputSize: setting.inputSize, negatives: NEGATIVES, loss: 'sampled', sampling: 'uniform', dropout: 0.2, headOnly: false, closeShare: 0, closeCount: 20,
  };
  const parallel = workers > 1 ? await openWeakParallel(model, store, workers) : null;
  // trainStep hands back its loss as a tensor (the loop reads losses in batches); the bench drops it.
  const step = async () => {
    if (parallel) await trainStepParallel(parallel, models, optimizer, store, index, random, options);
    else (await trainStep(models, optimizer, store, index, random, options)).dispose();
  };
  const tensors = async () => [tf.memory().numTensors, ...(parallel ? await parallel.memory() : [])];
  for (let i = 0; i < WARMUP_STEPS; i++) await step();
  const before = await tensors();
  let steps = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  while (steps < MIN_TIMED_STEPS || (performance.now() - started) / 1000 < minSeconds) {
    await step();
    steps++;
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const after = await tensors();
  await parallel?.close();
  optimizer.dispose();
  model.dispose();
  return {
    setting: setting.name, engine: workers > 1 ? `wasm, ${workers} workers` : 'wasm, this thread', imagesPerSecond: (steps * batchSize) / seconds,
    cpuSecondsPerImage: (used.user + used.system) / 1e6 / (steps * batchSize), steps, seconds, tensors: { before, after },
  };
}

function measureTorch(setting: Setting, threads: number): Row | { skipped: string } {
  const args = [
    join(repoRoot, 'bench', 'train_weak_torch.py'), '--tower', setting.tower, '--input-size', String(setting.inputSize), '--width', String(setting.width), '--words', String(WORDS),
    '--loss', 'sampled', '--negatives', String(NEGATIVES), '--batch', String(batchSize), '--lr', String(LEARNING_RATE), '--threads', String(threads),
    '--warmup', String(WARMUP_STEPS), '--min-steps', String(MIN_TIMED_STEPS), '--min-seconds', String(minSeconds),
  ];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.error) return { skipped: `${PYTHON}: ${run.error.message}` };
  if (run.status === 3) return { skipped: (JSON.parse(run.stdout) as { error: string }).error };
  if (run.status !== 0) return { skipped: `train_weak_torch.py exited ${run.status}: ${run.stderr.trim().split('\n').pop()}` };
  const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; train: { steps: number; seconds: number; images_per_s: number; cpu_s_per_image: number } };
  return {
    setting: setting.name, engine: `pytorch ${result.torch}, ${result.threads} threads`, imagesPerSecond: result.train.images_per_s,
    cpuSecondsPerImage: result.train.cpu_s_per_image, steps: result.train.steps, seconds: result.train.seconds,
  };
}

/** Ratios against PyTorch with all cores (the reference) and against the faster PyTorch row (a loaded machine starves its threads). */
function formatTable(rows: Row[]): string {
  const torchAll = (setting: string) => rows.find((r) => r.setting === setting && r.engine.startsWith('pytorch') && r.engine.endsWith(`${cpus().length} threads`))?.imagesPerSecond ?? 0;
  const torchBest = (setting: string) => Math.max(0, ...rows.filter((r) => r.setting === setting && r.engine.startsWith('pytorch')).map((r) => r.imagesPerSecond));
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');
  const header = ['setting', 'engine', 'train img/s', 'vs torch all cores', 'vs best torch', 'CPU s/img', 'tensors before -> after'];
  const lines = rows.map((r) => [
    r.setting, r.engine, r.imagesPerSecond.toFixed(1), ratio(r.imagesPerSecond, torchAll(r.setting)), ratio(r.imagesPerSecond, torchBest(r.setting)), r.cpuSecondsPerImage.toFixed(3),
    r.tensors ? `${r.tensors.before.join('/')} -> ${r.tensors.after.join('/')}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  return [header, ...lines].map((cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const command = `node ${relative(repoRoot, fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim();
  const loadBefore = loadAverage();
  const rows: Row[] = [];
  const skipped: string[] = [];
  for (const setting of settings) {
    for (const workers of flags.workers.split(',').map(Number)) {
      log(`${setting.name}: wasm, ${workers} worker(s)`);
      rows.push(await measureWasm(setting, workers));
    }
    if (!flags['skip-torch']) {
      for (const threads of flags['torch-threads'].split(',').map(Number)) {
        log(`${setting.name}: pytorch, ${threads} thread(s)`);
        const torch = measureTorch(setting, threads);
        if ('skipped' in torch) skipped.push(`pytorch ${setting.name} (${threads} threads): ${torch.skipped}`);
        else rows.push(torch);
      }
    }
  }
  const peakRss = processMemory(process.pid)?.peak ?? NaN;
  const report = {
    bench: 'train-parallel', date: new Date().toISOString(), command,
    machine: { ...machineInfo(), tfjs: tf.version.tfjs, loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
    settings: { batchSize, words: WORDS, negatives: NEGATIVES, learningRate: LEARNING_RATE, momentum: 0.9, dropout: 0.2, warmupSteps: WARMUP_STEPS, minSeconds, towers: settings },
    peakRssMiB: Math.round(peakRss / 2 ** 20), rows, skipped,
  };
  mkdirSync(dirname(resolve(flags.out)), { recursive: true });
  await writeFileAtomic(resolve(flags.out), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${formatTable(rows)}\n`);
  for (const line of skipped) process.stdout.write(`skipped ${line}\n`);
  process.stdout.write(`\npeak RSS of this process (all WASM rows): ${report.peakRssMiB} MiB; load average before/after: ${loadBefore.join(' ')} / ${loadAverage().join(' ')}; JSON: ${relative(process.cwd(), resolve(flags.out))}\n`);
}

await main();
