// The facet and similarity library pinned against values worked out by hand.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { tf } from '../../src/lib/backend/tf.js';
import { UsageError } from '../../src/lib/command.js';
import { balancedClassWeights, readJoinRecords, readLabelledRecords, readLabelsOrder } from '../../src/lib/facets/labels.js';
import { splitOf } from '../../src/lib/random.js';
import { weightedCrossEntropy } from '../../src/lib/facets/classifier-model.js';
import { confusionMatrixSvg, falseNegativesByClass, predictionLine } from '../../src/lib/facets/evaluation.js';
import { multiClassReport } from '../../src/lib/metrics/classification.js';
import { leaveOneOutTop1, mineSemiHardTriplets, pairwiseSquaredDistances } from '../../src/lib/similarity/triplet.js';

test('balanced weights are n / (K n_c): every class carries the same total weight', () => {
  const w = balancedClassWeights([90, 10, 0]);
  assert.ok(Math.abs(w[0] - 100 / (2 * 90)) < 1e-6);
  assert.ok(Math.abs(w[1] - 100 / (2 * 10)) < 1e-6);
  assert.equal(w[2], 0);
  assert.ok(Math.abs(90 * w[0] - 10 * w[1]) < 1e-4);
});

test('weighted cross-entropy is Σ w_y CE / Σ w_y', () => {
  const logits = tf.tensor2d([[2, 0], [0, 1]]);
  const labels = tf.tensor1d([0, 1], 'int32');
  const weights = tf.tensor1d([1, 3]);
  const ce0 = -Math.log(Math.exp(2) / (Math.exp(2) + 1));
  const ce1 = -Math.log(Math.exp(1) / (Math.exp(1) + 1));
  const got = weightedCrossEntropy(logits, labels, weights).dataSync()[0];
  assert.ok(Math.abs(got - (1 * ce0 + 3 * ce1) / 4) < 1e-6);
  tf.dispose([logits, labels, weights]);
});

test('the split depends on the group alone and has about the asked shares', () => {
  const ids = Array.from({ length: 4000 }, (_, i) => `p${i}`);
  const splits = ids.map((id) => splitOf(id, 0.2, 0.1));
  const share = (name: string) => splits.filter((s) => s === name).length / ids.length;
  assert.ok(Math.abs(share('test') - 0.2) < 0.03);
  assert.ok(Math.abs(share('val') - 0.1) < 0.03);
  assert.deepEqual(ids.slice(0, 100).map((id) => splitOf(id, 0.2, 0.1)), splits.slice(0, 100));
});

test('multiClassReport F1 from a hand-made confusion', () => {
  // truth\pred: a→a 2, a→b 1, b→b 1, b→a 0
  const r = multiClassReport([0, 0, 0, 1], [0, 0, 1, 1], ['a', 'b']);
  assert.deepEqual(r.confusion, [[2, 1], [0, 1]]);
  assert.ok(Math.abs(r.perClass[0].f1 - 0.8) < 1e-12); // P 1, R 2/3
  assert.ok(Math.abs(r.perClass[1].f1 - 2 / 3) < 1e-12); // P 1/2, R 1
  assert.ok(Math.abs(r.macroF1 - (0.8 + 2 / 3) / 2) < 1e-12);
  assert.ok(Math.abs(r.weightedF1 - (3 * 0.8 + 2 / 3) / 4) < 1e-12);
  const svg = confusionMatrixSvg(r, 'test');
  assert.ok(svg.indexOf('>a<') < svg.indexOf('>b<'));
  const fn = falseNegativesByClass([{ id: 'x', truth: 0, predicted: 1, probs: [0.3, 0.7] }], ['a', 'b']);
  assert.deepEqual(fn, [{ label: 'a', id: 'x', predicted: 'b', predictedProbability: 0.7, trueProbability: 0.3 }]);
});

test('predictionLine keeps the label order even for integer-like labels', () => {
  const line = predictionLine({ id: 'x', label: '10' }, ['10', '2', 'b'], [0.5, 0.25, 0.25]);
  assert.equal(line, '{"id":"x","label":"10","probs":{"10":0.5,"2":0.25,"b":0.25}}');
});

test('bad labelled records are UsageErrors at their file, line and field', async () => {
  const dir = scratchDir();
  const path = join(dir, 'l.ndjson');
  writeFileSync(path, '{"id":"a","f":"x"}\n{"id":"b","f":""}\n');
  await assert.rejects(readLabelledRecords(path, { labelField: 'f', idField: 'id' }), (e: unknown) => e instanceof UsageError && e.place.line === 2 && e.place.field === 'f');
  const order = join(dir, 'order.txt');
  writeFileSync(order, 'x\ny\nx\n');
  await assert.rejects(readLabelsOrder(order), (e: unknown) => e instanceof UsageError && e.place.line === 3);
  writeFileSync(order, '["y", "x"]');
  assert.deepEqual(await readLabelsOrder(order), ['y', 'x']);
  writeFileSync(path, '{"id":"a","f":"x"}\n{"id":"b","f":"y"}\n');
  const set = await readLabelledRecords(path, { labelField: 'f', idField: 'id', labelsOrder: ['y', 'x'] });
  assert.deepEqual(set.records.map((r) => r.classIndex), [1, 0]);
});

test('semi-hard mining picks the closest negative farther than the positive, else the farthest', () => {
  // Rows 0,1 in group 0; rows 2,3 in group 1.
  const d = [
    0, 0.5, 0.55, 0.9,
    0.5, 0, 0.2, 0.3,
    0.55, 0.2, 0, 0.4,
    0.9, 0.3, 0.4, 0,
  ];
  const t = mineSemiHardTriplets(d, [0, 0, 1, 1], 0.1);
  const pick = (a: number, p: number) => t.negatives[[...t.anchors].findIndex((x, i) => x === a && t.positives[i] === p)];
  assert.equal(pick(0, 1), 2); // d_ap 0.5: 0.55 is the closest beyond it (semi-hard)
  assert.equal(pick(1, 0), 3); // d_ap 0.5: both negatives closer, the farthest (0.3) is taken
  assert.equal(pick(2, 3), 0); // d_ap 0.4: 0.55 is the only one beyond it, outside the margin (easy, not semi-hard)
  assert.equal(t.anchors.length, 4);
  assert.equal(t.semiHard, 1);
  const x = tf.tensor2d([[1, 0], [0, 1]]);
  assert.deepEqual(Array.from(pairwiseSquaredDistances(x).dataSync()).map((v) => Math.round(v * 1e6) / 1e6), [0, 2, 2, 0]);
  x.dispose();
  assert.equal(leaveOneOutTop1(Float32Array.from([1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9]), 2, [0, 0, 1, 1]), 1);
});

test('weightedCrossEntropy with per-sample weights (SizeNet w) equals the hand computation', () => {
  const logits = tf.tensor2d([[2, 0], [0, 1], [1, 1]]);
  const labels = tf.tensor1d([0, 1, 0], 'int32');
  const classWeights = tf.tensor1d([1, 3]);
  const sampleWeights = tf.tensor1d([0.5, 2, 0]);
  const nll = (row: number[], c: number) => Math.log(row.reduce((s, x) => s + Math.exp(x), 0)) - row[c];
  // Weights: 1*0.5, 3*2, 1*0 -> the third sample does not count at all.
  const expected = (0.5 * nll([2, 0], 0) + 6 * nll([0, 1], 1)) / 6.5;
  const loss = weightedCrossEntropy(logits, labels, classWeights, sampleWeights);
  assert.ok(Math.abs(loss.dataSync()[0] - expected) < 1e-5, `${loss.dataSync()[0]} vs ${expected}`);
  tf.dispose([logits, labels, classWeights, sampleWeights, loss]);
});

test('join: records take label and weight from the joined file by key; unmatched ones are left out and counted', async () => {
  const dir = scratchDir();
  writeFileSync(join(dir, 'teacher.ndjson'), '{"id":"p1","label":"size issue","w":1.5}\n{"id":"p2","label":"no size issue","w":0.2}\n');
  writeFileSync(join(dir, 'images.ndjson'), ['{"id":"p1-1","product":"p1"}', '{"id":"p1-2","product":"p1"}', '{"id":"p2-1","product":"p2"}', '{"id":"p3-1","product":"p3"}'].join('\n') + '\n');
  const set = await readLabelledRecords(join(dir, 'images.ndjson'), {
    labelField: 'label', idField: 'id', groupField: 'product', join: { records: await readJoinRecords(join(dir, 'teacher.ndjson'), 'id'), key: 'product' },
  });
  assert.equal(set.unjoined, 1);
  assert.deepEqual(set.records.map((r) => [r.id, r.label, r.record.w]), [['p1-1', 'size issue', 1.5], ['p1-2', 'size issue', 1.5], ['p2-1', 'no size issue', 0.2]]);
});
