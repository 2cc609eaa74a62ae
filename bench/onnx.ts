// ONNX engine benchmark (issue 16): images per second of the embedding forward pass of the same
// model on tfjs WASM (one thread), on onnxruntime-node
// (the model converted in memory, intra-op threads = cores) and on PyTorch CPU (the same
// architecture, bench/train_weak_torch.py --infer-only, threads = cores); then `atelier embed`
// end to end (decode + resize + forward) on the fixture images with each engine (tfjs: embed's
// pool of one WASM worker per core).
//
//   node dist/bench/onnx.js [--input-size 64] [--width 16] [--batch 64] [--seconds 8] [--images 1000]
//     [--out bench/out/onnx.json]
//
// The model is buildWeakModel at the demo/bench tower shape (4 stages, one residual block each),
// untrained: speed does not depend on the weights.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { saveModel } from '../src/lib/backend/model-io.js';
import { buildWeakModel, featureModel } from '../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../src/lib/models/weak-files.js';
import { openPredictor } from '../src/lib/models/image-features.js';
import { loadOrt, openOrtModel } from '../src/lib/onnx/runtime.js';
import { generateFixtures } from '../fixtures/lib/catalogue.js';
import { PYTHON, flag, loadAverage, machineInfo, outDir, repoRoot, writeResults } from './common.js';

const inputSize = Number(flag('input-size', '64'));
const width = Number(flag('width', '16'));
const batch = Number(flag('batch', '64'));
const seconds = Number(flag('seconds', '8'));
const imageCount = Number(flag('images', '1000'));
const outFile = flag('out', join(outDir, 'onnx.json'));
const cores = cpus().length;
const workDir = join(outDir, 'onnx');

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
  return { imagesPerSecond: Math.round((steps * perStep) / elapsed), steps, seconds: Math.round(elapsed * 100) / 100 };
}

/** `atelier embed` as a user runs it; wall seconds. */
function timedEmbed(model: string, images: string, engine: string): Promise<{ seconds: number; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'atelier'), 'embed', '-m', model, '-i', images, '-o', join(workDir, `embed-${engine}.npy`), '--engine', engine], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ seconds: Math.round((performance.now() - start) / 10) / 100, stderr, code }));
  });
}

const before = loadAverage();
const backend = await selectBackend({ requested: 'wasm', quiet: true });
const config = { inputSize, width, blocksPerStage: 1, stages: 4, projection: 0, vocabularySize: 500, seed: 1 };
const weak = buildWeakModel(config);
const tower = featureModel(weak, 'embedding');
const pixels = tf.randomUniform([batch, inputSize, inputSize, 3], 0, 1, 'float32', 1).dataSync() as Float32Array;
const results: Record<string, unknown> = {};

const single = await openPredictor(tower, inputSize, backend, 1);
results['tfjs-wasm (1 thread)'] = await throughput('tfjs-wasm', async () => void (await single.predictor.predict(pixels, batch)), batch);

const ort = await loadOrt();
if (ort instanceof Error) results.ort = { error: ort.message.split('\n')[0] };
else {
  const session = await openOrtModel(ort, tower);
  results[`onnxruntime-node ${ort.env.versions.node} (${cores} threads)`] = await throughput('onnxruntime', async () => void (await session.run(pixels, [batch, inputSize, inputSize, 3])), batch);
  await session.release();
}

const torchArgs = [join(repoRoot, 'bench', 'train_weak_torch.py'), '--infer-only', '--input-size', String(inputSize), '--width', String(width), '--stages', '4', '--blocks', '1', '--batch', String(batch), '--threads', String(cores), '--min-seconds', String(seconds)];
process.stderr.write('bench/onnx: pytorch\n');
const torch = spawnSync(PYTHON, torchArgs, { encoding: 'utf8' });
if (torch.status === 0) {
  const parsed = JSON.parse(torch.stdout) as { torch: string; threads: number; infer: { images_per_s: number; steps: number; seconds: number } };
  results[`pytorch ${parsed.torch} (${parsed.threads} threads)`] = { imagesPerSecond: Math.round(parsed.infer.images_per_s), steps: parsed.infer.steps, seconds: Math.round(parsed.infer.seconds * 100) / 100 };
} else results.pytorch = { error: (torch.stdout || torch.stderr).trim().split('\n').pop() };

process.stderr.write('bench/onnx: embed end to end\n');
// End to end: decode + resize + forward through the command, on the fixture catalogue's images.
mkdirSync(workDir, { recursive: true });
const fixtures = join(workDir, 'fixtures');
await generateFixtures({ seed: 1, out: fixtures, products: Math.ceil(imageCount / 3) });
const records = readFileSync(join(fixtures, 'images.ndjson'), 'utf8').trim().split('\n').slice(0, imageCount).map((l) => JSON.parse(l) as { id: string; image: string });
const list = join(workDir, 'images.ndjson');
writeFileSync(list, records.map((r) => JSON.stringify({ id: r.id, image: join(fixtures, r.image) })).join('\n') + '\n');
const modelDir = join(workDir, 'weak.model');
await saveModel(weak, modelDir, { metadata: { kind: WEAK_MODEL_KIND, vocabulary: Array.from({ length: 500 }, (_, i) => `w${i}`), config, backend: 'wasm', log: [] } });
const endToEnd: Record<string, unknown> = {};
for (const engine of ['tfjs', 'ort']) {
  const run = await timedEmbed(modelDir, list, engine);
  endToEnd[engine] = run.code === 0 ? { seconds: run.seconds, imagesPerSecond: Math.round(records.length / run.seconds) } : { error: run.stderr.trim().split('\n').pop() };
}

const report = {
  benchmark: 'onnx',
  date: new Date().toISOString(),
  command: `node dist/bench/onnx.js ${process.argv.slice(2).join(' ')}`.trim(),
  machine: machineInfo(),
  loadAverage: { before, after: loadAverage() },
  model: { ...config, batch, output: 'pooled embedding' },
  forward: results,
  embedEndToEnd: { images: records.length, ...endToEnd },
};
writeResults(outFile, report);
console.log(JSON.stringify(report, null, 2));
process.exit(0);
