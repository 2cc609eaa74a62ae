// bench/train-locate: seconds per training step of the GILT/TiefVision locator (src/lib/models/locate.ts)
// as train-locate runs it (draw patches labelled with their share inside the box, crop and resize them from
// the photos, tower + head, the cross-entropy, backward, Adam; the default --box-weight 0) on WASM in one thread, against the same
// architecture in PyTorch with 2 and 1 threads (bench/train_locate_torch.py: the weak bench's small tower, windows cut
// with affine_grid/grid_sample) in the same run. Random photos and boxes; warm-up steps are not timed.
// Settings: test (the test's and the demo's before they went to 2 stages: 96-px photos, 24-px patches, width 8, 3 stages, 4 photos
// x 8 windows) and large (96-px photos, 48-px patches, width 16, 4 stages, 16 x 8).
// Usage: node dist/bench/train-locate.js [--settings test,large] [--seconds 5] [--torch-threads 2,1] [--skip-torch] [--out bench/out/train-locate.json]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { buildTower } from '../src/lib/models/towers/index.js';
import { buildLocateModel, cropPatches, locateLoss, mapPatchSide, sampleMapPatches, type Box } from '../src/lib/models/locate.js';
import { createRandom } from '../src/lib/random.js';
import { PYTHON, flag, hasFlag, loadAverage, machineInfo, outDir, pickSettings, repoRoot, writeResults } from './common.js';

interface Setting { name: string; image: number; patch: number; width: number; stages: number; photos: number; windows: number }
const SETTINGS: Record<string, Setting> = {
  test: { name: 'test', image: 96, patch: 24, width: 8, stages: 3, photos: 4, windows: 8 },
  large: { name: 'large', image: 96, patch: 48, width: 16, stages: 4, photos: 16, windows: 8 },
};
const settings = pickSettings(flag('settings', 'test,large'), SETTINGS);
const seconds = Number(flag('seconds', '5'));
// On a busy 2-core machine PyTorch's 2 threads wait on each other: it runs with each count listed.
const torchThreads = flag('torch-threads', '2,1').split(',').map(Number);
const out = flag('out', join(outDir, 'train-locate.json'));

interface Row { setting: string; engine: string; secondsPerStep?: number; steps?: number; note?: string }

async function tfjsStep(s: Setting): Promise<Row> {
  const model = buildLocateModel(buildTower({ family: 'small', input: { height: s.patch, width: s.patch }, params: { width: s.width, blocks: 1, stages: s.stages }, seed: 1 }), 12);
  const optimizer: tf.Optimizer = tf.train.adam(0.01);
  const variables = model.trainableWeights.map((v) => v.read() as tf.Variable);
  const images = tf.randomUniform([s.photos, s.image, s.image, 3]) as tf.Tensor4D;
  const random = createRandom(1);
  const boxes: Box[] = Array.from({ length: s.photos }, () => ({ x: 0.1 + 0.3 * random.next(), y: 0.1 + 0.3 * random.next(), w: 0.5, h: 0.5 }));
  const step = async () => {
    const side = mapPatchSide(s.patch, s.image);
    const drawn = boxes.flatMap((box, i) => sampleMapPatches(box, s.windows, side, random).map((p) => ({ ...p, image: i })));
    const x = cropPatches(images, drawn.map((p) => p.window), drawn.map((p) => p.image), s.patch, s.patch);
    const shares = tf.tensor1d(drawn.map((p) => p.share));
    const ones = tf.onesLike(shares);
    const zeros = tf.zerosLike(shares);
    const edges = tf.zeros([drawn.length, 4]) as tf.Tensor2D;
    const { value, grads } = tf.variableGrads(() => locateLoss(model.apply(x, { training: true }) as tf.Tensor2D, shares, ones, zeros, edges, 0), variables);
    optimizer.applyGradients(grads);
    await value.data();
    tf.dispose([x, shares, ones, zeros, edges, value, ...Object.values(grads)]);
  };
  await step();
  await step();
  let steps = 0;
  const started = performance.now();
  while (steps < 3 || performance.now() - started < seconds * 1000) {
    await step();
    steps++;
  }
  const elapsed = (performance.now() - started) / 1000;
  images.dispose();
  model.dispose();
  return { setting: s.name, engine: 'tfjs wasm (1 thread)', secondsPerStep: elapsed / steps, steps };
}

function torchStep(s: Setting, threads: number): Row {
  const args = ['--threads', threads, '--image', s.image, '--patch', s.patch, '--width', s.width, '--stages', s.stages, '--photos', s.photos, '--windows', s.windows, '--seconds', seconds].map(String);
  const run = spawnSync(PYTHON, [join(repoRoot, 'bench', 'train_locate_torch.py'), ...args], { encoding: 'utf8' });
  if (run.error || run.status !== 0) return { setting: s.name, engine: 'pytorch', note: `skipped: ${(run.stderr || run.stdout || String(run.error)).trim().split('\n').pop()}` };
  const result = JSON.parse(run.stdout) as { secondsPerStep: number; steps: number; torch: string; threads: number };
  return { setting: s.name, engine: `pytorch ${result.torch} (${result.threads} threads)`, secondsPerStep: result.secondsPerStep, steps: result.steps };
}

await selectBackend({ requested: 'wasm', quiet: true });
const before = loadAverage();
const rows: Row[] = [];
for (const s of settings) {
  rows.push(await tfjsStep(s));
  if (!hasFlag('skip-torch')) for (const threads of torchThreads) rows.push(torchStep(s, threads));
  const windows = s.photos * s.windows;
  for (const r of rows.filter((row) => row.setting === s.name)) {
    process.stdout.write(`${s.name}\t${s.image}px photos, ${s.patch}px patches, width ${s.width}, ${s.stages} stages, ${windows} windows\t${r.engine}\t${r.secondsPerStep === undefined ? r.note : `${(1000 * r.secondsPerStep).toFixed(1)} ms/step, ${(windows / r.secondsPerStep).toFixed(0)} windows/s (${r.steps} steps)`}\n`);
  }
}
writeResults(out, { bench: 'train-locate', machine: machineInfo(), loadAverage: { before, after: loadAverage() }, settings, rows });
