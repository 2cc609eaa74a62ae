// bench/fashion-mnist: the Fashion-MNIST sanity run of train-classifier (issue 9), used by real-fashion-mnist in bench/real.mk.
//   convert --data D --out O [--train N --test N --test-fraction F --val-fraction F]
//       a class-balanced subset of the gzipped idx files in D -> O/images/*.png and O/records.ndjson
//   summary --dir O
//       the train-classifier reports and eval-classifier output in O -> O/../fashion-mnist-results.{json,md}
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { splitOf } from '../src/lib/random.js';

// Label k of the idx files is CLASS_NAMES[k] (Xiao, Rasul and Vollgraf 2017, table 1).
const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const IDX_IMAGES = 0x803;
const IDX_LABELS = 0x801;

function option(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : undefined;
  if (value !== undefined) return value;
  if (fallback === undefined) throw new Error(`fashion-mnist: --${name} is required`);
  return fallback;
}

function numberOption(name: string, fallback: string): number {
  const value = Number(option(name, fallback));
  if (!Number.isFinite(value) || value < 0) throw new Error(`fashion-mnist: --${name} must be a number >= 0`);
  return value;
}

interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Buffer;
}

function readIdxImages(path: string): IdxImages {
  const bytes = gunzipSync(readFileSync(path));
  if (bytes.readUInt32BE(0) !== IDX_IMAGES) throw new Error(`fashion-mnist: ${path}: not an idx3 image file`);
  const count = bytes.readUInt32BE(4);
  const rows = bytes.readUInt32BE(8);
  const cols = bytes.readUInt32BE(12);
  const pixels = bytes.subarray(16);
  if (pixels.length !== count * rows * cols) throw new Error(`fashion-mnist: ${path}: ${pixels.length} pixel bytes, expected ${count * rows * cols}`);
  return { count, rows, cols, pixels };
}

function readIdxLabels(path: string): Uint8Array {
  const bytes = gunzipSync(readFileSync(path));
  if (bytes.readUInt32BE(0) !== IDX_LABELS) throw new Error(`fashion-mnist: ${path}: not an idx1 label file`);
  const labels = bytes.subarray(8);
  if (labels.length !== bytes.readUInt32BE(4)) throw new Error(`fashion-mnist: ${path}: truncated labels`);
  return labels;
}

/** The first `perClass` indices of each class, in file order: the same subset on every run. */
function balancedIndices(labels: Uint8Array, perClass: number): number[] {
  const taken = new Array<number>(CLASS_NAMES.length).fill(0);
  const picked: number[] = [];
  labels.forEach((label, index) => {
    if (taken[label]! < perClass) {
      taken[label]!++;
      picked.push(index);
    }
  });
  const short = taken.findIndex((n) => n < perClass);
  if (short >= 0) throw new Error(`fashion-mnist: only ${taken[short]} images of ${CLASS_NAMES[short]}, ${perClass} wanted`);
  return picked.sort((a, b) => a - b);
}

/**
 * A group value whose hash puts the record where Fashion-MNIST does: its test images in
 * train-classifier's test split, its training images in train or validation (the hash decides which).
 */
function groupFor(id: string, source: 'train' | 'test', testFraction: number, valFraction: number): string {
  for (let k = 0; ; k++) {
    const group = `${id}.${k}`;
    if ((splitOf(group, testFraction, valFraction) === 'test') === (source === 'test')) return group;
  }
}

interface FashionRecord {
  id: string;
  image: string;
  label: string;
  source: 'train' | 'test';
  group: string;
}

async function convert(): Promise<void> {
  const data = option('data');
  const out = option('out');
  const sizes = { train: numberOption('train', '6000'), test: numberOption('test', '1000') };
  const testFraction = numberOption('test-fraction', '0.2');
  const valFraction = numberOption('val-fraction', '0.1');
  mkdirSync(join(out, 'images'), { recursive: true });
  const records: FashionRecord[] = [];
  for (const source of ['train', 'test'] as const) {
    const prefix = source === 'train' ? 'train' : 't10k';
    const images = readIdxImages(join(data, `${prefix}-images-idx3-ubyte.gz`));
    const labels = readIdxLabels(join(data, `${prefix}-labels-idx1-ubyte.gz`));
    if (labels.length !== images.count) throw new Error(`fashion-mnist: ${prefix}: ${images.count} images but ${labels.length} labels`);
    const size = images.rows * images.cols;
    const indices = balancedIndices(labels, Math.floor(sizes[source] / CLASS_NAMES.length));
    const pending: Array<Promise<unknown>> = [];
    for (const index of indices) {
      const id = `${source}-${String(index).padStart(5, '0')}`;
      const image = `images/${id}.png`;
      const pixels = images.pixels.subarray(index * size, (index + 1) * size);
      pending.push(sharp(pixels, { raw: { width: images.cols, height: images.rows, channels: 1 } }).toColourspace('b-w').png().toFile(join(out, image)));
      records.push({ id, image, label: CLASS_NAMES[labels[index]!]!, source, group: groupFor(id, source, testFraction, valFraction) });
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  }
  writeFileSync(join(out, 'records.ndjson'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(out, 'labels-order.txt'), CLASS_NAMES.join('\n') + '\n');
  const count = (s: string) => records.filter((r) => r.source === s).length;
  process.stderr.write(`fashion-mnist: ${count('train')} training and ${count('test')} test images (balanced) -> ${join(out, 'records.ndjson')}\n`);
}

interface ClassScores {
  label: string;
  f1: number;
  support: number;
}

interface Scores {
  accuracy: number;
  macroF1: number;
  support?: number;
  perClass?: ClassScores[] | Record<string, { f1: number; support: number }>;
}

interface Report {
  labels: string[];
  samples: Record<string, number>;
  epochs: number;
  bestEpoch: number;
  train: Scores;
  val?: Scores;
  test: Scores;
}

function readJson<T>(path: string): T | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : null;
}

function round(x: number | null | undefined, digits = 3): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits));
}

function perClassF1(scores: Scores | null): Array<{ label: string; f1: number | null; support: number | null }> {
  const perClass = scores?.perClass;
  if (!perClass) return [];
  if (Array.isArray(perClass)) return perClass.map((c) => ({ label: c.label, f1: round(c.f1), support: c.support }));
  return Object.entries(perClass).map(([label, c]) => ({ label, f1: round(c.f1), support: c.support }));
}

function summary(): void {
  const dir = option('dir');
  const settings = option('settings', '');
  const finetune = readJson<Report>(join(dir, 'finetune.json'));
  const pixels = readJson<Report>(join(dir, 'pixels.json'));
  const evaluated = readJson<Scores>(join(dir, 'finetune-eval.json'));
  const seconds = (name: string) => round(readJson<{ seconds: number }>(join(dir, `${name}.time`))?.seconds, 1);
  const row = (name: string, r: Report | null, time: number | null) => ({
    model: name,
    accuracy: round(r?.test.accuracy),
    macroF1: round(r?.test.macroF1),
    trainAccuracy: round(r?.train.accuracy),
    epochs: r?.epochs ?? null,
    bestEpoch: r?.bestEpoch ?? null,
    samples: r?.samples ?? null,
    seconds: time,
  });
  const rows = [row('raw pixels, linear head (baseline)', pixels, seconds('pixels.json')), row('CNN fine-tuned from scratch', finetune, seconds('finetune.json'))];
  const perClass = perClassF1(evaluated);
  const loadPath = join(dir, 'finetune.json.load');
  const loadAfterFinetune = existsSync(loadPath) ? readFileSync(loadPath, 'utf8').trim() : null;
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadavg: loadavg().map((x) => Number(x.toFixed(2))) };
  const json = { data: 'Fashion-MNIST (Debian dataset-fashion-mnist)', settings, results: rows, loadAfterFinetune, finetuneEval: { accuracy: round(evaluated?.accuracy), macroF1: round(evaluated?.macroF1), perClass }, machine };
  const n = finetune?.samples ?? pixels?.samples;
  const md = [
    `### real-fashion-mnist: Fashion-MNIST sanity run of train-classifier (${n ? `${n.train ?? '?'} train / ${n.val ?? '?'} validation / ${n.test ?? '?'} test images` : 'sizes unknown'}; test = Fashion-MNIST's own t10k images)`,
    '',
    `Settings: ${settings}`,
    '',
    '| model | test accuracy | test macro-F1 | train accuracy | epochs (best) | wall s |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.model} | ${r.accuracy ?? '-'} | ${r.macroF1 ?? '-'} | ${r.trainAccuracy ?? '-'} | ${r.epochs ?? '-'} (${r.bestEpoch ?? '-'}) | ${r.seconds ?? '-'} |`),
    '',
    `Fine-tuned, test split by eval-classifier: accuracy ${json.finetuneEval.accuracy ?? '-'}, macro-F1 ${json.finetuneEval.macroF1 ?? '-'}; F1 per class:`,
    '',
    `| ${perClass.map((c) => c.label).join(' | ')} |`,
    `|${perClass.map(() => '---|').join('')}`,
    `| ${perClass.map((c) => c.f1 ?? '-').join(' | ')} |`,
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load average ${loadAfterFinetune ?? '?'} right after the fine-tune, ${machine.loadavg.join(' ')} when this summary was written.`,
  ];
  const target = dirname(resolve(dir));
  writeFileSync(join(target, 'fashion-mnist-results.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(target, 'fashion-mnist-results.md'), md.join('\n') + '\n');
  process.stdout.write(md.join('\n') + '\n');
}

const sub = process.argv[2];
if (sub === 'convert') await convert();
else if (sub === 'summary') summary();
else {
  process.stderr.write('usage: fashion-mnist convert --data D --out O [--train N --test N] | summary --dir O\n');
  process.exit(2);
}
