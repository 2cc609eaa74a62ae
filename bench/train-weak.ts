// bench/train-weak: training images/s of the weak model (src/lib/models/weak-model.ts) on WASM with the
// step train-weak runs (src/lib/train/weak-trainer.ts trainStep: word sampling, random crop/flip,
// dropout, softmax over the words, SGD with momentum) against the same architecture in PyTorch CPU with
// 2 threads, in one run; embedding (forward) images/s of the tower in process; and `atelier embed`
// images/s end to end (process start, decode, forward, .npy write) on the fixture images.
// Settings: the demo's tower (32 px, width 8, full softmax) and a 64 px width 16 tower (50 sampled negatives).
// PyTorch runs with 2 threads and again with 1: on a busy 2-core machine its 2 threads wait on each
// other, so ratios are against the faster of the two.
// Usage: node dist/bench/train-weak.js [--seconds 5] [--settings demo,64px] [--words 500] [--torch-threads 2,1] [--skip-torch]
//        [--skip-embed] [--images fixtures/out/images.ndjson] [--out bench/out/train-weak.json]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { saveModel } from '../src/lib/backend/model-io.js';
import { buildWeakModel, type WeakModelConfig } from '../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND, type WeakModelMetadata } from '../src/lib/models/weak-files.js';
import { trainStep, weakModels, type StepOptions } from '../src/lib/train/weak-trainer.js';
import type { ImageStore } from '../src/lib/image/batch.js';
import { buildWordIndex } from '../src/lib/train/word-sampler.js';
import { createRandom } from '../src/lib/random.js';
import { writeFileAtomic } from '../src/lib/io/atomic.js';
import { PYTHON, loadAverage, machineInfo, pickSettings, repoRoot } from './common.js';

const WARMUP_STEPS = 2;
const MIN_TIMED_STEPS = 3;
const LEARNING_RATE = 0.05;
const EMBED_BATCH = 64;

interface Setting {
  name: string;
  inputSize: number;
  width: number;
  loss: 'full' | 'sampled';
  negatives: number;
}

const SETTINGS: Record<string, Setting> = {
  demo: { name: 'demo', inputSize: 32, width: 8, loss: 'full', negatives: 20 },
  '64px': { name: '64px', inputSize: 64, width: 16, loss: 'sampled', negatives: 50 },
};

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    settings: { type: 'string', default: 'demo,64px' },
    words: { type: 'string', default: '500' },
    batch: { type: 'string', default: '32' },
    images: { type: 'string', default: join(repoRoot, 'fixtures', 'out', 'images.ndjson') },
    'torch-threads': { type: 'string', default: '2,1' },
    'skip-torch': { type: 'boolean', default: false },
    'skip-embed': { type: 'boolean', default: false },
    out: { type: 'string', default: join(repoRoot, 'bench', 'out', 'train-weak.json') },
  },
});
const minSeconds = Number(flags.seconds);
const words = Number(flags.words);
const batchSize = Number(flags.batch);
const settings = pickSettings(flags.settings, SETTINGS);

interface Throughput {
  steps: number;
  seconds: number;
  imagesPerSecond: number;
}

interface Row {
  setting: string;
  engine: string;
  train?: Throughput;
  embed?: Throughput;
  note?: string;
}

function log(message: string): void {
  process.stderr.write(`train-weak: ${message}\n`);
}

async function timeSteps(step: () => unknown, options: { warmup: number; minSteps: number; seconds: number; images: number }): Promise<Throughput> {
  // Awaited: a training step is async (it draws its batch from the image store first).
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

function modelConfig(setting: Setting): WeakModelConfig {
  return { inputSize: setting.inputSize, width: setting.width, blocksPerStage: 1, stages: 4, projection: 0, vocabularySize: words, seed: 1 };
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
    bags.push(Int32Array.from(new Set(Array.from({ length: 6 }, () => random.int(words)))));
  }
  return { store: { pixels, storedSize }, bags };
}

async function measureWasm(setting: Setting): Promise<Row> {
  await selectBackend({ requested: 'wasm', quiet: true });
  const tensorsBefore = tf.memory().numTensors;
  const model = buildWeakModel(modelConfig(setting));
  const models = weakModels(model);
  const optimizer = tf.train.momentum(LEARNING_RATE, 0.9);
  const { store, bags } = syntheticData(setting);
  const index = buildWordIndex(bags, words);
  const random = createRandom(9);
  const options: StepOptions = {
    batchSize, inputSize: setting.inputSize, negatives: setting.negatives, loss: setting.loss, sampling: 'uniform',
    dropout: 0.2, headOnly: false, closeShare: 0, closeCount: 20,
  };
  const row: Row = { setting: setting.name, engine: 'wasm (1 thread)' };
  row.train = await timeSteps(async () => (await trainStep(models, optimizer, store, index, random, options)).dispose(), { warmup: WARMUP_STEPS, minSteps: MIN_TIMED_STEPS, seconds: minSeconds, images: batchSize });
  const x = tf.randomUniform([EMBED_BATCH, setting.inputSize, setting.inputSize, 3], 0, 1, 'float32', 3);
  row.embed = await timeSteps(
    () => {
      const out = models.embedding.predict(x) as tf.Tensor;
      out.dataSync();
      out.dispose();
    },
    { warmup: WARMUP_STEPS, minSteps: MIN_TIMED_STEPS, seconds: minSeconds, images: EMBED_BATCH },
  );
  x.dispose();
  optimizer.dispose();
  model.dispose();
  if (tf.memory().numTensors !== tensorsBefore) log(`warning: ${tf.memory().numTensors - tensorsBefore} tensors leaked`);
  return row;
}

interface TorchResult {
  torch: string;
  threads: number;
  train: { steps: number; seconds: number; images_per_s: number };
  infer: { steps: number; seconds: number; images_per_s: number };
}

function measureTorch(setting: Setting, threads: number): Row | { skipped: string } {
  const script = join(repoRoot, 'bench', 'train_weak_torch.py');
  const args = [
    script, '--input-size', String(setting.inputSize), '--width', String(setting.width), '--words', String(words), '--loss', setting.loss,
    '--negatives', String(setting.negatives), '--batch', String(batchSize), '--lr', String(LEARNING_RATE), '--threads', String(threads),
    '--warmup', String(WARMUP_STEPS), '--min-steps', String(MIN_TIMED_STEPS), '--min-seconds', String(minSeconds),
  ];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.error) return { skipped: `${PYTHON}: ${run.error.message}` };
  if (run.status === 3) return { skipped: (JSON.parse(run.stdout) as { error: string }).error };
  if (run.status !== 0) return { skipped: `train_weak_torch.py exited ${run.status}: ${run.stderr.trim().split('\n').pop()}` };
  const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as TorchResult;
  const convert = (t: TorchResult['train']): Throughput => ({ steps: t.steps, seconds: t.seconds, imagesPerSecond: t.images_per_s });
  return { setting: setting.name, engine: `pytorch ${result.torch} (${result.threads} threads)`, train: convert(result.train), embed: convert(result.infer) };
}

interface EmbedRun {
  setting: string;
  images: number;
  rows: number;
  seconds: number;
  imagesPerSecond: number;
  startupSeconds: number;
  imagesPerSecondWithoutStartup: number;
  command: string;
}

function wallSeconds(args: string[]): { seconds: number; status: number | null; stderr: string } {
  const started = performance.now();
  const run = spawnSync(process.execPath, [join(repoRoot, 'bin', 'atelier'), ...args], { encoding: 'utf8', env: { ...process.env, ATELIER_BACKEND: 'wasm' } });
  return { seconds: (performance.now() - started) / 1000, status: run.status, stderr: run.stderr };
}

/** `atelier embed` as a user runs it, on an untrained model of the setting (speed does not depend on weights). */
async function measureEmbedCommand(setting: Setting, workDir: string, imagesFile: string, startupSeconds: number): Promise<EmbedRun> {
  await selectBackend({ requested: 'wasm', quiet: true });
  const config = modelConfig(setting);
  const model = buildWeakModel(config);
  const modelDir = join(workDir, `model-${setting.name}`);
  const metadata: WeakModelMetadata = { kind: WEAK_MODEL_KIND, vocabulary: Array.from({ length: words }, (_, i) => `w${i}`), config, backend: 'wasm', log: [] };
  await saveModel(model, modelDir, { metadata: metadata as unknown as Record<string, unknown> });
  model.dispose();
  const npy = join(workDir, `embed-${setting.name}.npy`);
  const args = ['embed', '-m', modelDir, '-i', imagesFile, '-o', npy, '--batch', String(EMBED_BATCH)];
  const run = wallSeconds(args);
  if (run.status !== 0) throw new Error(`atelier embed exited ${run.status}: ${run.stderr.trim().split('\n').pop()}`);
  const rows = readFileSync(`${npy.slice(0, -4)}.ids.ndjson`, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
  const images = readFileSync(imagesFile, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
  return {
    setting: setting.name, images, rows, seconds: run.seconds, imagesPerSecond: rows / run.seconds, startupSeconds,
    imagesPerSecondWithoutStartup: rows / Math.max(1e-9, run.seconds - startupSeconds),
    command: `atelier ${args.map((a) => (a.startsWith('/') ? relative(repoRoot, a) : a)).join(' ')}`,
  };
}

/** Ratios are against the faster PyTorch row of the setting: on a busy machine its 2 threads can be far slower than 1. */
function formatTable(rows: Row[]): string {
  const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const header = ['setting', 'engine', 'train img/s', 'vs best torch', 'embed img/s', 'vs best torch'];
  const best = (setting: string, key: 'train' | 'embed') =>
    Math.max(0, ...rows.filter((r) => r.setting === setting && r.engine.startsWith('pytorch')).map((r) => r[key]?.imagesPerSecond ?? 0));
  const lines = rows.map((row) => {
    const ratio = (a: Throughput | undefined, b: number) => (a && b > 0 ? `${(a.imagesPerSecond / b).toFixed(2)}x` : '-');
    return [row.setting, row.engine, fmt(row.train?.imagesPerSecond), ratio(row.train, best(row.setting, 'train')), fmt(row.embed?.imagesPerSecond), ratio(row.embed, best(row.setting, 'embed'))];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const command = `node ${relative(repoRoot, fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim();
  const loadBefore = loadAverage();
  const rows: Row[] = [];
  const skipped: string[] = [];
  const embedRuns: EmbedRun[] = [];
  for (const setting of settings) {
    log(`${setting.name}: wasm training step and tower forward`);
    rows.push(await measureWasm(setting));
    if (!flags['skip-torch']) {
      for (const threads of flags['torch-threads'].split(',').map(Number)) {
        log(`${setting.name}: pytorch, ${threads} thread(s)`);
        const torch = measureTorch(setting, threads);
        if ('skipped' in torch) skipped.push(`pytorch ${setting.name} (${threads} threads): ${torch.skipped}`);
        else rows.push(torch);
      }
    }
  }
  const imagesFile = resolve(flags.images);
  if (!flags['skip-embed']) {
    if (!existsSync(imagesFile)) {
      skipped.push(`atelier embed: no ${imagesFile} (run make fixtures)`);
    } else {
      const workDir = join(repoRoot, 'bench', 'out', 'train-weak');
      rmSync(workDir, { recursive: true, force: true });
      mkdirSync(workDir, { recursive: true });
      const startup = Math.min(...[0, 1, 2].map(() => wallSeconds(['embed', '--help']).seconds));
      for (const setting of settings) {
        log(`${setting.name}: atelier embed on ${relative(repoRoot, imagesFile)}`);
        embedRuns.push(await measureEmbedCommand(setting, workDir, imagesFile, startup));
      }
    }
  }

  const report = {
    bench: 'train-weak',
    date: new Date().toISOString(),
    command,
    machine: { ...machineInfo(), tfjs: tf.version.tfjs, loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
    settings: { batchSize, words, learningRate: LEARNING_RATE, momentum: 0.9, dropout: 0.2, embedBatch: EMBED_BATCH, warmupSteps: WARMUP_STEPS, minSeconds, towers: settings },
    rows,
    embedCommand: embedRuns,
    skipped,
  };
  await writeFileAtomic(resolve(flags.out), `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(`${formatTable(rows)}\n`);
  for (const e of embedRuns) {
    process.stdout.write(`atelier embed, ${e.setting}: ${e.rows}/${e.images} images in ${e.seconds.toFixed(2)} s = ${e.imagesPerSecond.toFixed(1)} images/s end to end (${e.imagesPerSecondWithoutStartup.toFixed(1)} without the ${e.startupSeconds.toFixed(2)} s start-up)\n`);
  }
  for (const line of skipped) process.stdout.write(`skipped ${line}\n`);
  process.stdout.write(`\nload average before/after: ${loadBefore.join(' ')} / ${loadAverage().join(' ')}; JSON: ${relative(process.cwd(), resolve(flags.out))}\n`);
}

await main();
