// bench/probe: the linear probe of bench/real.mk (src/lib/facets/linear-probe.ts: standardised features,
// full-batch L-BFGS, L2 penalty chosen on the validation split) on precomputed features, with
// train-classifier's records, labels, hash split, balanced class weights and report layout, so
// real-summary reads its report as it reads train-classifier's.
//
// usage: node dist/bench/probe.js -i products.csv --id-field id -l articleType -f X.npy --report R.json
//          [--l2 1e-1,1e-2,1e-3,1e-4] [--class-weight balanced|none] [--max-iterations 300]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/lib/backend/select.js';
import { readFeatureMatrix, idsPathFor } from '../src/lib/io/features.js';
import { classCounts, classWeightsFor, readLabelledRecords } from '../src/lib/facets/labels.js';
import { chooseLinearProbe, probePredict, type ProbeData } from '../src/lib/facets/linear-probe.js';
import { reportJson } from '../src/lib/facets/evaluation.js';
import { multiClassReport } from '../src/lib/metrics/classification.js';
import { splitOf } from '../src/lib/random.js';
import { loadAverage } from './common.js';

const { values: a } = parseArgs({
  options: {
    input: { type: 'string', short: 'i' },
    'id-field': { type: 'string', default: 'id' },
    'group-field': { type: 'string', default: 'product' },
    'label-field': { type: 'string', short: 'l' },
    features: { type: 'string', short: 'f' },
    report: { type: 'string' },
    l2: { type: 'string', default: '1e-1,1e-2,1e-3,1e-4' },
    'class-weight': { type: 'string', default: 'balanced' },
    'max-iterations': { type: 'string', default: '300' },
    'test-fraction': { type: 'string', default: '0.2' },
    'val-fraction': { type: 'string', default: '0.1' },
  },
});
if (!a.input || !a['label-field'] || !a.features || !a.report) {
  process.stderr.write('usage: node dist/bench/probe.js -i RECORDS -l FIELD -f FEATURES.npy --report OUT.json [--l2 LIST]\n');
  process.exit(2);
}

await selectBackend({ requested: 'wasm', quiet: true });
const started = performance.now();
const set = await readLabelledRecords(a.input, { labelField: a['label-field'], idField: a['id-field'], groupField: a['group-field'] });
const matrix = await readFeatureMatrix(a.features, idsPathFor(a.features));
const rowOf = new Map(matrix.ids.map((id, row) => [id, row]));
const parts = { train: [] as number[], val: [] as number[], test: [] as number[] };
const records = set.records.filter((r) => rowOf.has(r.id));
records.forEach((r, i) => parts[splitOf(r.group, Number(a['test-fraction']), Number(a['val-fraction']))].push(i));
const dataOf = (indices: number[]): ProbeData => {
  const x = new Float32Array(indices.length * matrix.dim);
  indices.forEach((i, k) => x.set(matrix.rows.subarray(rowOf.get(records[i].id)! * matrix.dim, (rowOf.get(records[i].id)! + 1) * matrix.dim), k * matrix.dim));
  return { x, labels: Int32Array.from(indices, (i) => records[i].classIndex), dim: matrix.dim };
};
const data = { train: dataOf(parts.train), val: dataOf(parts.val), test: dataOf(parts.test) };
const classWeights = await classWeightsFor(a['class-weight'], classCounts(data.train.labels, set.labels.length), set.labels);
const { fit, sweep } = await chooseLinearProbe(data.train, data.val, {
  classes: set.labels.length, classWeights, l2s: a.l2.split(',').map(Number), maxIterations: Number(a['max-iterations']),
});
const reports: Record<string, unknown> = {};
for (const split of ['train', 'val', 'test'] as const) reports[split] = reportJson(multiClassReport(Array.from(data[split].labels), Array.from(await probePredict(fit, data[split].x)), set.labels));
const report = {
  labelField: a['label-field'], labels: set.labels, mode: 'head', input: 'features', head: 'linear',
  probe: { solver: 'lbfgs', standardised: true, classWeight: a['class-weight'], l2: fit.l2, sweep, iterations: fit.iterations, gradientMax: fit.gradientMax, seconds: Math.round((performance.now() - started) / 100) / 10, load: loadAverage() },
  samples: { train: parts.train.length, val: parts.val.length, test: parts.test.length, withoutFeatures: set.records.length - records.length },
  // real-summary's column "epochs": L-BFGS iterations of the chosen fit.
  epochs: fit.iterations,
  ...reports,
};
writeFileSync(a.report, JSON.stringify(report, null, 2) + '\n');
process.stderr.write(`probe ${a['label-field']}: l2 ${fit.l2} (${sweep.map((s) => `${s.l2}: val ${s.valAccuracy.toFixed(3)} in ${s.iterations} it`).join(', ')}), test accuracy ${(reports.test as { accuracy: number }).accuracy.toFixed(3)} macro-F1 ${(reports.test as { macroF1: number }).macroF1.toFixed(3)}, ${report.probe.seconds} s\n`);
