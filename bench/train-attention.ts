// bench/train-attention: seconds per training step (forward, the deck's loss, backward, Adam) of
// the Stitch Fix model (src/lib/models/attention/) on WASM in one thread, at the deck's 384x256
// input divided by each --scales entry, against PyTorch on the same architecture when it imports
// (bench/train_attention_torch.py, 2 threads). Random data; warm-up steps are not timed.
// Usage: node dist/bench/train-attention.js [--scales 8,4,2] [--width 64] [--batch 8] [--seconds 5]
//        [--skip-torch] [--out bench/out/train-attention.json]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { attentionLoss, buildAttentionModel } from '../src/lib/models/attention/model.js';
import { PYTHON, flag, hasFlag, machineInfo, outDir, repoRoot, writeResults } from './common.js';

const scales = flag('scales', '8,4,2').split(',').map(Number);
const width = Number(flag('width', '64'));
const batch = Number(flag('batch', '8'));
const seconds = Number(flag('seconds', '5'));
const out = flag('out', join(outDir, 'train-attention.json'));
const CLASSES = 59; // the deck's Fashion144k item labels
const weights = { diversity: 0.01, localisation: 0.1, anchor: 0.01, positive: 0.1, alpha: 0.5, beta: 0.1, evidence: 1 };

interface Row { scale: number; input: string; engine: string; secondsPerStep?: number; steps?: number; note?: string }

async function tfjsStep(scale: number): Promise<Row> {
  const height = 384 / scale;
  const w = 256 / scale;
  const nets = buildAttentionModel({ height, width: w, filters: width, dropout: 0.25, classes: CLASSES, steps: 3, glimpse: 8, codewords: 8, textureDim: 32, hidden: 64, seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const variables = nets.training.trainableWeights.map((v) => v.read() as tf.Variable);
  const x = tf.randomUniform([batch, height, w, 3]);
  const y = tf.cast(tf.greater(tf.randomUniform([batch, CLASSES]), 0.9), 'float32') as tf.Tensor2D;
  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const [logits, maps, theta, evidence] = nets.training.apply(x, { training: true }) as tf.Tensor[];
      return attentionLoss(logits as tf.Tensor2D, y, maps as tf.Tensor3D, theta as tf.Tensor3D, evidence as tf.Tensor2D, weights).total;
    }, variables);
    (optimizer as tf.Optimizer).applyGradients(grads);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  let steps = 0;
  const started = performance.now();
  while (steps < 2 || performance.now() - started < seconds * 1000) {
    step();
    steps++;
  }
  const elapsed = (performance.now() - started) / 1000;
  tf.dispose([x, y]);
  nets.training.dispose();
  return { scale, input: `${height}x${w}`, engine: 'tfjs wasm (1 thread)', secondsPerStep: elapsed / steps, steps };
}

function torchStep(scale: number): Row {
  const input = `${384 / scale}x${256 / scale}`;
  const run = spawnSync(PYTHON, [join(repoRoot, 'bench', 'train_attention_torch.py'), '--scale', String(scale), '--width', String(width), '--batch', String(batch), '--seconds', String(seconds)], { encoding: 'utf8' });
  if (run.error || run.status !== 0) return { scale, input, engine: 'pytorch', note: `skipped: ${(run.stderr || String(run.error)).trim().split('\n').pop()}` };
  const result = JSON.parse(run.stdout) as { secondsPerStep: number; steps: number; torch: string };
  return { scale, input, engine: `pytorch ${result.torch} (2 threads)`, secondsPerStep: result.secondsPerStep, steps: result.steps };
}

await selectBackend({ requested: 'wasm', quiet: true });
const rows: Row[] = [];
for (const scale of scales) {
  rows.push(await tfjsStep(scale));
  if (!hasFlag('skip-torch')) rows.push(torchStep(scale));
  for (const r of rows.slice(-2)) process.stdout.write(`${r.input}\twidth ${width}\tbatch ${batch}\t${r.engine}\t${r.secondsPerStep === undefined ? r.note : `${r.secondsPerStep.toFixed(3)} s/step (${r.steps} steps)`}\n`);
}
writeResults(out, { bench: 'train-attention', machine: machineInfo(), width, batch, rows });
