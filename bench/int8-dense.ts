// int8 dense layers (issue 16): rows per second of a model on feature rows in onnxruntime, float
// against int8 (src/lib/onnx/quantize.ts: QDQ dense layers that onnxruntime fuses into QGemm), the
// same sessions and threads, alternating in the same run; which kernels onnxruntime really runs (its
// optimised graph); how far int8 moves the outputs and decisions on all rows, past the calibration
// rows; then, with --e2e-rows, `atelier predict-sizenet` end to end, fp32 against int8. The peer,
// in each round after ours: PyTorch's float and dynamic-int8 Linear layers on the same shapes, rows,
// batch and threads (bench/dense_torch.py under Debian's /usr/bin/python3; skipped without torch).
//
//   node dist/bench/int8-dense.js [--dims 512,1280] [--models student,mlp] [--rows 8192] [--batch 4096]
//     [--seconds 3] [--rounds 3] [--e2e-rows 0] [--out bench/out/int8-dense.json]
//
// Models, untrained (speed does not depend on the weights): the SizeNet student (train-sizenet's
// default 256, 128, 64 hidden ReLU layers, sigmoid) and train-classifier's MLP head (256 hidden,
// 10 classes, softmax). Rows: ReLU of N(0.2, 1), shaped like pooled tower features.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { saveModel } from '../src/lib/backend/model-io.js';
import { writeNpy } from '../src/lib/io/npy.js';
import { buildFeatureClassifier } from '../src/lib/facets/classifier-model.js';
import { buildStudentModel, studentLayers } from '../src/lib/sizenet/student.js';
import { SIZENET_MODEL_KIND } from '../src/lib/sizenet/evaluation.js';
import { convertLayersModel, encodeConverted } from '../src/lib/onnx/export.js';
import { quantizedBytes } from '../src/lib/onnx/int8.js';
import { decodeModelSummary } from '../src/lib/onnx/proto.js';
import { loadOrt, ortThreads, sessionOptions } from '../src/lib/onnx/session.js';
import { flag, loadAverage, machineInfo, outDir, PYTHON, repoRoot, writeResults } from './common.js';

const dims = flag('dims', '512,1280').split(',').map(Number);
const models = flag('models', 'student,mlp').split(',');
const rows = Number(flag('rows', '8192'));
const batch = Number(flag('batch', '4096'));
const seconds = Number(flag('seconds', '3'));
const rounds = Number(flag('rounds', '3'));
const e2eRows = Number(flag('e2e-rows', '0'));
const out = flag('out', join(outDir, 'int8-dense.json'));

await tf.setBackend('cpu');
const loaded = await loadOrt();
if (loaded instanceof Error) throw loaded;
const ort = loaded;
const threads = ortThreads();
const work = join(outDir, 'int8-dense');
mkdirSync(work, { recursive: true });

function build(kind: string, dim: number): tf.LayersModel {
  if (kind === 'student') {
    const config = { inputDim: dim, hidden: [256, 128, 64], dropout: 0, seed: 1 };
    return buildStudentModel(config, studentLayers(config));
  }
  return buildFeatureClassifier(dim, 10, { kind: 'mlp', hidden: 256, dropout: 0, seed: 2 });
}

/** Rows per second of `session` over the whole matrix in batches, for at least `seconds`. */
async function rate(session: import('onnxruntime-node').InferenceSession, data: Float32Array, dim: number): Promise<number> {
  let done = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || done < rows) {
    for (let first = 0; first < rows; first += batch) {
      const n = Math.min(batch, rows - first);
      await session.run({ features: new ort.Tensor('float32', data.subarray(first * dim, (first + n) * dim), [n, dim]) });
      done += n;
    }
  }
  return Math.round(done / ((performance.now() - start) / 1000));
}

/** PyTorch's rows per second on the same model shape, float and int8 (null without torch). */
function torchRate(kind: string, dim: number): { float: number; int8: number } | null {
  const run = spawnSync(PYTHON, [join(repoRoot, 'bench', 'dense_torch.py'), '--model', kind, '--dim', String(dim), '--rows', String(rows), '--batch', String(batch), '--seconds', String(seconds), '--threads', String(threads)], { encoding: 'utf8' });
  if (run.status === 3) return null;
  if (run.status !== 0) throw new Error(`dense_torch.py: ${run.stderr}`);
  const r = JSON.parse(run.stdout) as { float: number; int8: number };
  return { float: r.float, int8: r.int8 };
}

async function outputs(session: import('onnxruntime-node').InferenceSession, data: Float32Array, dim: number): Promise<Float32Array> {
  const result = await session.run({ features: new ort.Tensor('float32', data, [rows, dim]) });
  return result.output.data as Float32Array;
}

const results: Array<Record<string, unknown>> = [];
for (const dim of dims) {
  const data = tf.tidy(() => tf.relu(tf.randomNormal([rows, dim], 0.2, 1, 'float32', 7)).dataSync() as Float32Array);
  for (const kind of models) {
    const model = build(kind, dim);
    const converted = await convertLayersModel(model, {}, { name: 'output', tensor: model.outputs[0] });
    // Calibrated as the commands do: the first 256 rows.
    const calibration = [{ data: data.slice(0, 256 * dim), shape: [256, dim] }];
    const { bytes, agreement } = await quantizedBytes(ort, converted, calibration);
    const optimized = join(work, `${kind}-${dim}.int8.optimized.onnx`);
    const float = await ort.InferenceSession.create(encodeConverted(converted), sessionOptions(threads));
    const int8 = await ort.InferenceSession.create(bytes, { ...sessionOptions(threads), optimizedModelFilePath: optimized, logSeverityLevel: 3 });
    const kernels = decodeModelSummary(readFileSync(optimized)).nodes;
    const [f, q] = [await outputs(float, data, dim), await outputs(int8, data, dim)];
    const classes = f.length / rows;
    let worst = 0;
    let sum = 0;
    let same = 0;
    for (let i = 0; i < rows; i++) {
      let moved = 0;
      let bf = 0;
      let bq = 0;
      for (let c = 0; c < classes; c++) {
        const k = i * classes + c;
        moved = Math.max(moved, Math.abs(f[k] - q[k]));
        if (f[k] > f[i * classes + bf]) bf = c;
        if (q[k] > q[i * classes + bq]) bq = c;
      }
      // One probability (the student): the decision is the side of 0.5.
      if (classes === 1 ? f[i] >= 0.5 === q[i] >= 0.5 : bf === bq) same++;
      worst = Math.max(worst, moved);
      sum += moved;
    }
    const timings: Array<{ float: number; int8: number; torch: { float: number; int8: number } | null; load: number[] }> = [];
    await rate(float, data, dim);
    await rate(int8, data, dim);
    for (let r = 0; r < rounds; r++) timings.push({ load: loadAverage(), float: await rate(float, data, dim), int8: await rate(int8, data, dim), torch: torchRate(kind, dim) });
    await float.release();
    await int8.release();
    model.dispose();
    const row = {
      model: kind,
      dim,
      rows,
      batch,
      threads,
      int8Kernels: [...new Set(kernels)].join(','),
      floatDenseLeft: kernels.filter((k) => k === 'Gemm' || k === 'FusedGemm' || k === 'MatMul').length,
      calibrationAgreement: agreement,
      allRows: { sameDecision: same, meanMove: Math.round((sum / rows) * 1e5) / 1e5, worstMove: Math.round(worst * 1e5) / 1e5 },
      rowsPerSecond: timings,
      speedup: timings.map((t) => Math.round((t.int8 / t.float) * 100) / 100),
      // Ours over PyTorch's, precision for precision (null without torch).
      overTorch: timings.map((t) => (t.torch ? { float: Math.round((t.float / t.torch.float) * 100) / 100, int8: Math.round((t.int8 / t.torch.int8) * 100) / 100 } : null)),
    };
    console.log(JSON.stringify(row));
    results.push(row);
  }
}

// End to end: predict-sizenet on a .npy of --e2e-rows rows of the last dim, fp32 and int8 alternating.
const e2e: Array<Record<string, unknown>> = [];
if (e2eRows > 0) {
  const dim = dims[dims.length - 1];
  const config = { inputDim: dim, hidden: [256, 128, 64], dropout: 0, seed: 1 };
  const student = join(work, `student-${dim}.model`);
  await saveModel(buildStudentModel(config, studentLayers(config)), student, { metadata: { kind: SIZENET_MODEL_KIND, config } });
  const features = join(work, `rows-${e2eRows}x${dim}.npy`);
  const matrix = new Float32Array(e2eRows * dim);
  for (let first = 0; first < e2eRows; first += 8192) {
    const n = Math.min(8192, e2eRows - first);
    matrix.set(tf.tidy(() => tf.relu(tf.randomNormal([n, dim], 0.2, 1, 'float32', first + 1)).dataSync() as Float32Array), first * dim);
  }
  await writeNpy(features, matrix, [e2eRows, dim]);
  writeFileSync(features.replace(/\.npy$/, '.ids.ndjson'), Array.from({ length: e2eRows }, (_, i) => `{"id":"a${i}"}`).join('\n') + '\n');
  for (let r = 0; r < rounds; r++) {
    for (const precision of ['fp32', 'int8']) {
      const load = loadAverage();
      const run = spawnSync('/usr/bin/time', ['-f', '%e %U %S', join(repoRoot, 'bin', 'atelier'), 'predict-sizenet', '-m', student, '-f', features, '-o', join(work, `p-${precision}.ndjson`), '--engine', 'ort', '--precision', precision], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(run.stderr);
      const [wall, user, sys] = run.stderr.trim().split('\n').pop()!.split(' ').map(Number);
      const row = { precision, rows: e2eRows, dim, load, wallSeconds: wall, cpuSeconds: Math.round((user + sys) * 100) / 100, stderr: run.stderr.split('\n').filter((l) => /int8|engine/.test(l)) };
      console.log(JSON.stringify(row));
      e2e.push(row);
    }
  }
}

writeResults(out, { machine: machineInfo(), date: new Date().toISOString(), onnxruntime: ort.env.versions.node, results, e2e });
console.log(`wrote ${out}`);
