// The linear probe against the Bayes classifier of a generated problem and against scikit-learn.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { createRandom } from '../../src/lib/random.js';
import { balancedClassWeights } from '../../src/lib/facets/labels.js';
import { chooseLinearProbe, fitLinearProbe, probePredict, type ProbeData } from '../../src/lib/facets/linear-probe.js';

const K = 6;
const DIM = 30;

/**
 * Gaussian classes with one shared isotropic covariance (so the Bayes classifier is linear), unequal
 * priors, overlapping means, and each feature then scaled by 0.01-100 (a probe that does not
 * standardise sees a badly conditioned problem). Returns the data and the Bayes rule's predictions.
 */
function generate(n: number, seed: number): { data: ProbeData; bayes: Int32Array } {
  const means = generateMeans();
  const scales = Float64Array.from({ length: DIM }, (_, j) => 10 ** (-2 + (4 * j) / (DIM - 1)));
  const priors = [0.35, 0.25, 0.15, 0.1, 0.1, 0.05];
  const random = createRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  const x = new Float32Array(n * DIM);
  const labels = new Int32Array(n);
  const bayes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let u = random.next();
    let c = 0;
    while (c < K - 1 && u >= priors[c]) u -= priors[c++];
    labels[i] = c;
    const z = Array.from({ length: DIM }, (_, j) => means[c][j] + gauss());
    z.forEach((v, j) => (x[i * DIM + j] = v * scales[j]));
    // Bayes: argmax log prior - |z - mean|^2 / 2 on the unscaled point.
    let best = -Infinity;
    for (let k = 0; k < K; k++) {
      const score = Math.log(priors[k]) - z.reduce((s, v, j) => s + (v - means[k][j]) ** 2, 0) / 2;
      if (score > best) [best, bayes[i]] = [score, k];
    }
  }
  return { data: { x, labels, dim: DIM }, bayes };
}

function generateMeans(): number[][] {
  const random = createRandom('probe-means');
  return Array.from({ length: K }, () => Array.from({ length: DIM }, () => (random.next() - 0.5) * 1.2));
}

const accuracy = (predicted: ArrayLike<number>, truth: ArrayLike<number>) => Array.from(predicted).filter((p, i) => p === truth[i]).length / predicted.length;

test('the probe converges and comes within 0.03 of the Bayes classifier on badly scaled features', async () => {
  const train = generate(1500, 1).data;
  const { data: testSet, bayes } = generate(1000, 2);
  const fit = await fitLinearProbe(train, { classes: K, l2: 1e-3 });
  assert.ok(fit.gradientMax < 1e-3, `gradient ${fit.gradientMax} after ${fit.iterations} iterations`);
  const ours = accuracy(await probePredict(fit, testSet.x), testSet.labels);
  const best = accuracy(bayes, testSet.labels);
  assert.ok(best > 0.5 && best < 0.95, `the problem should be hard but learnable (Bayes ${best})`);
  assert.ok(ours >= best - 0.03, `probe ${ours} vs Bayes ${best}`);
});

test('the penalty sweep keeps the best validation accuracy and warm starts converge to the same fit', async () => {
  const train = generate(600, 3).data;
  const val = generate(400, 4).data;
  const { fit, sweep } = await chooseLinearProbe(train, val, { classes: K, l2s: [1, 1e-2, 1e-4] });
  assert.deepEqual(sweep.map((s) => s.l2), [1, 1e-2, 1e-4]);
  assert.equal(Math.max(...sweep.map((s) => s.valAccuracy)), sweep.find((s) => s.l2 === fit.l2)!.valAccuracy);
  const cold = await fitLinearProbe(train, { classes: K, l2: 1e-2 });
  const warm = await fitLinearProbe(train, { classes: K, l2: 1e-2, start: await fitLinearProbe(train, { classes: K, l2: 1 }) });
  assert.ok(Math.abs(cold.loss - warm.loss) < 1e-4 * Math.max(1, cold.loss), `${cold.loss} vs ${warm.loss}`);
});

// scikit-learn minimises C·Σ w_i CE_i + ½‖W‖²; ours is Σ w_i CE_i / Σ w_i + (λ/2)‖W‖², so λ = 1 / (C Σ w_i).
test('the probe matches scikit-learn LogisticRegression (balanced weights, same C) within 0.01 accuracy', async (ctx) => {
  const python = '/usr/bin/python3';
  const has = spawnSync(python, ['-c', 'import sklearn'], { encoding: 'utf8' });
  if (has.status !== 0) ctx.skip();
  const train = generate(1500, 5).data;
  const testSet = generate(1000, 6).data;
  const counts = Array.from({ length: K }, (_, c) => Array.from(train.labels).filter((l) => l === c).length);
  const classWeights = balancedClassWeights(counts);
  const totalWeight = Array.from(train.labels).reduce((s, l) => s + classWeights[l], 0);
  const C = 0.05;
  const fit = await fitLinearProbe(train, { classes: K, classWeights, l2: 1 / (C * totalWeight) });
  const ours = await probePredict(fit, testSet.x);
  const dir = scratchDir();
  const file = join(dir, 'problem.json');
  writeFileSync(file, JSON.stringify({ dim: DIM, train: [Array.from(train.x), Array.from(train.labels)], test: [Array.from(testSet.x), Array.from(testSet.labels)] }));
  const script = `
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
p = json.load(open(sys.argv[1]))
x, y = np.array(p['train'][0]).reshape(-1, p['dim']), np.array(p['train'][1])
t = np.array(p['test'][0]).reshape(-1, p['dim'])
mean, std = x.mean(0), x.std(0)
m = LogisticRegression(C=${C}, class_weight='balanced', max_iter=5000, tol=1e-8).fit((x - mean) / std, y)
print(json.dumps(m.predict((t - mean) / std).tolist()))
`;
  const run = spawnSync(python, ['-c', script, file], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const theirs = JSON.parse(run.stdout) as number[];
  const ourAccuracy = accuracy(ours, testSet.labels);
  const theirAccuracy = accuracy(theirs, testSet.labels);
  assert.ok(Math.abs(ourAccuracy - theirAccuracy) <= 0.01, `ours ${ourAccuracy} vs scikit-learn ${theirAccuracy}`);
  assert.ok(accuracy(ours, theirs) >= 0.98, `the two agree on ${accuracy(ours, theirs)} of the test points`);
});
