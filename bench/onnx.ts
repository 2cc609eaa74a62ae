// ONNX engine benchmark (issue 16): images per second of the embedding forward pass of the same
// model on tfjs WASM (one thread), on onnxruntime-node (the model converted in memory, intra-op
// threads = cores) and on PyTorch CPU (the same architecture, bench/infer_torch.py, threads =
// cores); then end to end (decode + resize + forward): `atelier embed --engine ort|tfjs` against
// infer_torch.py --images (PIL decode, resize, forward at the same batch), plus the decode + resize
// alone (embed's own pipeline without a model) to show how much of the time is not the model.
//
//   node dist/bench/onnx.js [--tower small|resnet18|mobilenetv2] [--input-size 64] [--width 16] [--batch 64]
//     [--seconds 8] [--forward-engines tfjs,ort,ort-int8,pytorch] [--embed-engines tfjs,ort,ort-int8,pytorch] [--images 1000] [--image-dir DIR]
//     [--embed-engines ort,tfjs,pytorch] [--tfjs-images N] [--out bench/out/onnx.json]
//
// The model is buildWeakModel (the small tower: 4 stages, one residual block each; or a registered
// tower family at width 1), untrained: speed does not depend on the weights. Images: the first
// --images JPEGs of --image-dir in name order (e.g. ../shared/data/amazon-tops-16k/images), else
// generated fixture images.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { saveModel } from '../src/lib/backend/model-io.js';
import { readNpy } from '../src/lib/io/npy.js';
import { buildWeakModel, featureModel, type WeakModelConfig } from '../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../src/lib/models/weak-files.js';
import { computeFeatures, openPredictor } from '../src/lib/models/image-features.js';
import { createSkipCounter } from '../src/lib/image/skips.js';
import { readImageRecords } from '../src/lib/image/records.js';
import { openOrtModel } from '../src/lib/onnx/runtime.js';
import { loadOrt } from '../src/lib/onnx/session.js';
import { generateFixtures } from '../fixtures/lib/catalogue.js';
import { PYTHON, flag, loadAverage, machineInfo, outDir, repoRoot, writeResults } from './common.js';

const tower = flag('tower', 'small');
const inputSize = Number(flag('input-size', '64'));
const width = Number(flag('width', '16'));
const batch = Number(flag('batch', '64'));
const seconds = Number(flag('seconds', '8'));
const imageCount = Number(flag('images', '1000'));
const imageDir = flag('image-dir', '');
const list = (text: string) => text.split(',').map((s) => s.trim()).filter((s) => s !== '');
const forwardEngines = list(flag('forward-engines', 'tfjs,ort,pytorch'));
const embedEngines = list(flag('embed-engines', 'tfjs,ort,pytorch'));
const tfjsImages = Number(flag('tfjs-images', String(imageCount)));
const outFile = flag('out', join(outDir, 'onnx.json'));
const cores = cpus().length;
const workDir = join(outDir, 'onnx');
const torchPeer = join(repoRoot, 'bench', 'infer_torch.py');
const round2 = (x: number) => Math.round(x * 100) / 100;

/** Runs `step` (one batch) for at least `seconds` after one warm-up call; images per second. */
async function throughput(name: string, step: () => Promise<void>, perStep: number): Promise<{ imagesPerSecond: number; steps: number; seconds: number }> {
  process.stderr.write(`bench/onnx: ${name}\n`);
  await step();
  let steps = 0;
  const start = performance.now();
  while (steps < 3 || performance.now() - start < seconds * 1000) {
    await step();
    steps++;
  }
  const elapsed = (performance.now() - start) / 1000;
  return { imagesPerSecond: Math.round((steps * perStep) / elapsed), steps, seconds: round2(elapsed) };
}

/**
 * CPU seconds of the children this process has waited for (/proc/self/stat cutime + cstime, at
 * 100 ticks a second): on a shared machine, a figure that other jobs disturb less than wall time.
 */
function childrenCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
}

/** `atelier embed` as a user runs it; wall and CPU seconds. */
function timedEmbed(model: string, images: string, engine: string): Promise<{ seconds: number; cpuSeconds: number; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const cpu = childrenCpuSeconds();
    const engineArgs = engine === 'ort-int8' ? ['--engine', 'ort', '--precision', 'int8'] : ['--engine', engine];
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'atelier'), 'embed', '-m', model, '-i', images, '-o', join(workDir, `embed-${engine}.npy`), ...engineArgs, '--batch', String(batch)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ seconds: round2((performance.now() - start) / 1000), cpuSeconds: round2(childrenCpuSeconds() - cpu), stderr, code }));
  });
}

/** Cosine of each int8 row with its fp32 row (mean, min), and how often a row's nearest other row is the same (first 1,000 rows). */
async function rowAgreement(fp32Path: string, int8Path: string): Promise<Record<string, number>> {
  const [a, b] = await Promise.all([readNpy(fp32Path), readNpy(int8Path)]);
  const [rows, dim] = a.header.shape;
  const unit = (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < rows; i++) {
      let norm = 0;
      for (let k = 0; k < dim; k++) norm += x[i * dim + k] ** 2;
      const scale = 1 / (Math.sqrt(norm) || 1);
      for (let k = 0; k < dim; k++) out[i * dim + k] = x[i * dim + k] * scale;
    }
    return out;
  };
  const ua = unit(a.data as Float32Array);
  const ub = unit(b.data as Float32Array);
  const dot = (x: Float32Array, i: number, y: Float32Array, j: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += x[i * dim + k] * y[j * dim + k];
    return s;
  };
  const cosines = Array.from({ length: rows }, (_, i) => dot(ua, i, ub, i));
  const n = Math.min(rows, 1000);
  const nearest = (u: Float32Array, i: number) => {
    let best = -1;
    let bestScore = -Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const s = dot(u, i, u, j);
      if (s > bestScore) [best, bestScore] = [j, s];
    }
    return best;
  };
  let same = 0;
  for (let i = 0; i < n; i++) if (nearest(ua, i) === nearest(ub, i)) same++;
  return { rows, meanCosine: round4(cosines.reduce((s, c) => s + c, 0) / rows), minCosine: round4(Math.min(...cosines)), nearestNeighbourSame: round4(same / n) };
}
const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** infer_torch.py with `args`; its JSON, or the error line. */
function pytorch(args: string[]): Record<string, unknown> {
  const run = spawnSync(PYTHON, [torchPeer, '--tower', tower, '--input-size', String(inputSize), '--width', String(width), '--batch', String(batch), '--threads', String(cores), ...args], { encoding: 'utf8' });
  if (run.status === 0) return JSON.parse(run.stdout) as Record<string, unknown>;
  return { error: (run.stdout || run.stderr).trim().split('\n').pop() };
}

/** The image list (NDJSON {id, image}): the first `count` JPEGs of --image-dir, else fixture images. */
async function imageList(count: number, file: string): Promise<{ source: string; count: number }> {
  let records: Array<{ id: string; image: string }>;
  let source: string;
  if (imageDir) {
    const dir = resolve(imageDir);
    records = readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, count).map((f) => ({ id: f, image: join(dir, f) }));
    source = dir;
  } else {
    const fixtures = join(workDir, 'fixtures');
    await generateFixtures({ seed: 1, out: fixtures, products: Math.max(20, Math.ceil(count / 3)) });
    records = readFileSync(join(fixtures, 'images.ndjson'), 'utf8').trim().split('\n').slice(0, count).map((l) => JSON.parse(l) as { id: string; image: string }).map((r) => ({ id: r.id, image: join(fixtures, r.image) }));
    source = 'generated fixture images';
  }
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { source, count: records.length };
}

/** Decode + resize + centre crop alone, through embed's own pipeline (no model); wall seconds. */
async function decodeOnly(file: string): Promise<{ seconds: number; cpuSeconds: number; images: number }> {
  const start = performance.now();
  const cpu = process.cpuUsage();
  let images = 0;
  for await (const b of computeFeatures(null, readImageRecords(file, 'image', 'id'), inputSize, batch, createSkipCounter(), { stderr: process.stderr }, 'bench')) images += b.records.length;
  const used = process.cpuUsage(cpu);
  return { seconds: round2((performance.now() - start) / 1000), cpuSeconds: round2((used.user + used.system) / 1e6), images };
}

const before = loadAverage();
const started = new Date().toISOString();
const backend = await selectBackend({ requested: 'wasm', quiet: true });
const config: WeakModelConfig = {
  inputSize, width, blocksPerStage: 1, stages: 4, projection: 0, vocabularySize: 500, seed: 1,
  ...(tower === 'small' ? {} : { tower: { family: tower, input: { height: inputSize, width: inputSize }, params: {}, seed: 1 } }),
};
const weak = buildWeakModel(config);
const embedding = featureModel(weak, 'embedding');
const pixels = tf.randomUniform([batch, inputSize, inputSize, 3], 0, 1, 'float32', 1).dataSync() as Float32Array;
const forward: Record<string, unknown> = {};

if (forwardEngines.includes('tfjs')) {
  const single = await openPredictor(embedding, inputSize, backend, 1);
  forward['tfjs-wasm (1 thread)'] = await throughput('tfjs-wasm', async () => void (await single.predictor.predict(pixels, batch)), batch);
}
const ort = await loadOrt();
if (forwardEngines.includes('ort')) {
  if (ort instanceof Error) forward.ort = { error: ort.message.split('\n')[0] };
  else {
    const session = await openOrtModel(ort, embedding);
    forward[`onnxruntime-node ${ort.env.versions.node} (${cores} threads)`] = await throughput('onnxruntime', async () => void (await session.run(pixels, [batch, inputSize, inputSize, 3])), batch);
    await session.release();
  }
}
if (forwardEngines.includes('ort-int8') && !(ort instanceof Error)) {
  // Calibrated on the timed batch itself: only the speed is read here; embed's rows below say how far int8 moves the output.
  const session = await openOrtModel(ort, embedding, undefined, [{ data: pixels, shape: [batch, inputSize, inputSize, 3] }]);
  forward[`onnxruntime-node ${ort.env.versions.node} int8 (${cores} threads)`] = await throughput('onnxruntime int8', async () => void (await session.run(pixels, [batch, inputSize, inputSize, 3])), batch);
  await session.release();
}
if (forwardEngines.includes('pytorch')) {
  process.stderr.write('bench/onnx: pytorch\n');
  const parsed = pytorch(['--passes', String(3 * batch), '--min-seconds', String(seconds)]);
  forward[parsed.error ? 'pytorch' : `pytorch ${String(parsed.torch)} (${String(parsed.threads)} threads)`] = parsed.error ? parsed : { imagesPerSecond: Math.round(parsed.images_per_s as number), passes: parsed.passes, seconds: round2(parsed.seconds as number) };
}

// End to end: decode + resize + forward, through the command and through the PyTorch script.
mkdirSync(workDir, { recursive: true });
const listFile = join(workDir, 'images.ndjson');
const images = await imageList(imageCount, listFile);
const tfjsList = join(workDir, 'images-tfjs.ndjson');
writeFileSync(tfjsList, readFileSync(listFile, 'utf8').split('\n').slice(0, Math.min(tfjsImages, images.count)).join('\n') + '\n');
const modelDir = join(workDir, `weak-${tower}-${inputSize}.model`);
await saveModel(weak, modelDir, { metadata: { kind: WEAK_MODEL_KIND, vocabulary: Array.from({ length: 500 }, (_, i) => `w${i}`), config, backend: 'wasm', log: [] } });
const endToEnd: Record<string, unknown> = {};
process.stderr.write('bench/onnx: decode + resize only\n');
const decode = await decodeOnly(listFile);
endToEnd['decode + resize only (embed pipeline, no model)'] = { ...decode, imagesPerSecond: Math.round(decode.images / decode.seconds) };
for (const engine of embedEngines) {
  process.stderr.write(`bench/onnx: embed end to end, ${engine}\n`);
  if (engine === 'pytorch') {
    const parsed = pytorch(['--images', listFile]);
    endToEnd[engine] = parsed.error ? parsed : { images: parsed.images, seconds: round2(parsed.seconds as number), imagesPerSecond: Math.round(parsed.images_per_s as number), decodeSeconds: round2(parsed.decode_seconds as number), forwardSeconds: round2(parsed.forward_seconds as number), cpuSeconds: round2(parsed.cpu_seconds as number), torch: parsed.torch, threads: parsed.threads };
    continue;
  }
  const count = engine === 'tfjs' ? Math.min(tfjsImages, images.count) : images.count;
  const run = await timedEmbed(modelDir, engine === 'tfjs' ? tfjsList : listFile, engine);
  const label = engine === 'ort-int8' ? 'atelier embed --engine ort --precision int8' : `atelier embed --engine ${engine}`;
  endToEnd[label] = run.code === 0 ? { images: count, seconds: run.seconds, imagesPerSecond: Math.round(count / run.seconds), cpuSeconds: run.cpuSeconds } : { error: run.stderr.trim().split('\n').pop() };
}
if (embedEngines.includes('ort') && embedEngines.includes('ort-int8')) endToEnd['int8 rows against fp32 rows'] = await rowAgreement(join(workDir, 'embed-ort.npy'), join(workDir, 'embed-ort-int8.npy'));

const report = {
  benchmark: 'onnx',
  date: started,
  finished: new Date().toISOString(),
  command: `node dist/bench/onnx.js ${process.argv.slice(2).join(' ')}`.trim(),
  machine: machineInfo(),
  loadAverage: { before, after: loadAverage() },
  model: { tower, ...config, batch, output: 'pooled embedding' },
  forward,
  embedEndToEnd: { images: images.count, source: images.source, ...endToEnd },
};
writeResults(outFile, report);
console.log(JSON.stringify(report, null, 2));
process.exit(0);
