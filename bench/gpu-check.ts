// bench/gpu-check (`make gpu-check`): on each GPU backend that is installed here, and on WASM for
// comparison, in one process each: the backend's probe, a few training steps of a tower (ResNet-18
// at 128 px by default) and an embed (pooled features) of 1,000 images, as images/s beside WASM.
// The images are random tensors: this measures the compute backend, not decoding.
// Usage: node dist/bench/gpu-check.js [--backends webgpu,gpu,wasm] [--family resnet18] [--size 128]
//        [--batch 32] [--train-steps 5] [--images 1000] [--wasm-train-steps 2] [--wasm-images 64]
//        [--timeout 240] [--out bench/out/gpu-check.json]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { flag, loadAverage, machineInfo, outDir, writeResults } from './common.js';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { releaseAll } from '../src/lib/backend/release.js';
import { buildTower } from '../src/lib/models/towers/index.js';

interface Result {
  backend: string;
  ok: boolean;
  device?: string | null;
  probe?: unknown;
  why?: string;
  train?: { steps: number; batch: number; seconds: number; imagesPerSecond: number };
  embed?: { images: number; batch: number; seconds: number; imagesPerSecond: number };
  /** The child process from start to exit: probe, model build, timed work and release. */
  wallSeconds?: number;
}

const family = flag('family', 'resnet18');
const size = Number(flag('size', '128'));
const batch = Number(flag('batch', '32'));

/** Child: one backend, forced (so its probe must pass), then the timed work; one JSON line on stdout. */
async function runOne(backend: string): Promise<void> {
  const wasm = backend === 'wasm';
  const trainSteps = Number(flag(wasm ? 'wasm-train-steps' : 'train-steps', wasm ? '2' : '5'));
  const images = Number(flag(wasm ? 'wasm-images' : 'images', wasm ? '64' : '1000'));
  const out: Result = { backend, ok: false };
  try {
    const choice = await selectBackend({ requested: backend, env: process.env, quiet: true });
    out.device = choice.device ?? null;
    out.probe = choice.attempts[0]?.probe ?? null;
    const tower = buildTower({ family, input: { height: size, width: size }, params: {}, seed: 1 });
    const dim = tower.outputs[0].shape.at(-1) as number;
    const head = tf.variable(tf.randomNormal([dim, 10], 0, 0.05, 'float32', 2));
    const vars = [...tower.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val), head];
    const optimizer = tf.train.adam(1e-3);
    const x = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 3);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), 'int32'), 10);
    const step = async () => {
      const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, tf.matMul(tower.apply(x, { training: true }) as tf.Tensor2D, head)) as tf.Scalar, true, vars)!;
      await loss.data(); // wait for the device
      loss.dispose();
    };
    await step(); // warm-up: shader compilation, buffer pools
    let t = performance.now();
    for (let i = 0; i < trainSteps; i++) await step();
    let seconds = (performance.now() - t) / 1000;
    out.train = { steps: trainSteps, batch, seconds, imagesPerSecond: (trainSteps * batch) / seconds };
    const embedBatch = Math.min(batch * 2, images);
    const embedOnce = async (n: number) => {
      const f = tf.tidy(() => tower.predict(tf.slice(tf.concat(Array.from({ length: Math.ceil(n / batch) }, () => x)), 0, n)) as tf.Tensor);
      await f.data();
      f.dispose();
    };
    await embedOnce(embedBatch);
    t = performance.now();
    for (let done = 0; done < images; done += embedBatch) await embedOnce(Math.min(embedBatch, images - done));
    seconds = (performance.now() - t) / 1000;
    out.embed = { images, batch: embedBatch, seconds, imagesPerSecond: images / seconds };
    out.ok = true;
  } catch (err) {
    out.why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  await releaseAll();
}

function main(): void {
  const backends = flag('backends', 'webgpu,gpu,wasm').split(',').filter(Boolean);
  const timeout = Number(flag('timeout', '240')) * 1000;
  const results: Result[] = [];
  for (const backend of backends) {
    const started = performance.now();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', backend, ...process.argv.slice(2)], { encoding: 'utf8', timeout, env: { ...process.env, ATELIER_BACKEND: '' } });
    const line = child.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
    const result: Result = line ? (JSON.parse(line) as Result) : { backend, ok: false, why: child.error ? `${child.error.message} (still running after ${timeout / 1000} s: killed)` : child.stderr.trim().split('\n').at(-1) ?? 'no result' };
    result.wallSeconds = (performance.now() - started) / 1000;
    results.push(result);
  }
  const wasm = results.find((r) => r.backend === 'wasm' && r.ok);
  const rows = [`gpu-check: ${family} at ${size} px, batch ${batch}`, 'backend          device                         train img/s   x wasm   embed img/s   x wasm   note'];
  for (const r of results) {
    const ratio = (a?: number, b?: number) => (a && b ? (a / b).toFixed(1) : '-');
    rows.push(
      [
        r.backend.padEnd(16),
        String(r.device ?? '-').slice(0, 30).padEnd(30),
        (r.train ? r.train.imagesPerSecond.toFixed(1) : '-').padStart(11),
        ratio(r.train?.imagesPerSecond, wasm?.train?.imagesPerSecond).padStart(8),
        (r.embed ? r.embed.imagesPerSecond.toFixed(1) : '-').padStart(13),
        ratio(r.embed?.imagesPerSecond, wasm?.embed?.imagesPerSecond).padStart(8),
        r.ok ? '' : `  ${r.why}`,
      ].join(' '),
    );
  }
  process.stdout.write(rows.join('\n') + '\n');
  writeResults(flag('out', join(outDir, 'gpu-check.json')), { date: new Date().toISOString(), machine: machineInfo(), loadAverage: loadAverage(), family, size, batch, results });
}

const one = process.argv.indexOf('--one');
if (one >= 0) await runOne(process.argv[one + 1]);
else main();
