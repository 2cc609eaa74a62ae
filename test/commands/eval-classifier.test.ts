// eval-classifier against a confusion matrix made by hand.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';

let dir: string;
let predictions: string;
let truth: string;

// truth \ predicted   cat dog bird
//   cat                 3   1   0
//   dog                 2   2   0
//   bird                0   1   1
const confusion = [[3, 1, 0], [2, 2, 0], [0, 1, 1]];
const labels = ['cat', 'dog', 'bird'];

beforeAll(() => {
  dir = scratchDir();
  const preds: string[] = [];
  const truthRows: string[] = ['id,animal'];
  let n = 0;
  confusion.forEach((row, t) => row.forEach((count, p) => {
    for (let k = 0; k < count; k++) {
      const id = `x${n++}`;
      const probs: Record<string, number> = { cat: 0.1, dog: 0.1, bird: 0.1 };
      probs[labels[p]] = 0.5 + k / 10;
      probs[labels[t]] = t === p ? probs[labels[t]] : 0.3;
      preds.push(JSON.stringify({ id, label: labels[p], probs, split: n % 2 ? 'test' : 'train' }));
      truthRows.push(`${id},${labels[t]}`);
    }
  }));
  preds.push(JSON.stringify({ id: 'broken', image: 'broken.jpg', error: 'truncated' }));
  predictions = join(dir, 'predictions.ndjson');
  truth = join(dir, 'truth.csv');
  writeFileSync(predictions, preds.join('\n') + '\n');
  writeFileSync(truth, truthRows.join('\n') + '\n');
});

test('per-class precision, recall, F1, macro and weighted F1 match the hand-made confusion', async () => {
  const orderFile = join(dir, 'order.txt');
  writeFileSync(orderFile, 'cat\ndog\nbird\n');
  const plot = join(dir, 'confusion.png');
  const fn = join(dir, 'fn.ndjson');
  const r = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth, '-l', 'animal', '--labels-order', orderFile, '--plot', plot, '--false-negatives', fn]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.labels, labels);
  assert.deepEqual(report.confusion, confusion);
  assert.equal(report.errors, 1);
  assert.equal(report.scored, 10);
  // cat: P 3/5, R 3/4; dog: P 2/4, R 2/4; bird: P 1/1, R 1/2.
  const f1 = (p: number, r: number) => (2 * p * r) / (p + r);
  const expected = [
    { label: 'cat', precision: 3 / 5, recall: 3 / 4, support: 4 },
    { label: 'dog', precision: 2 / 4, recall: 2 / 4, support: 4 },
    { label: 'bird', precision: 1, recall: 1 / 2, support: 2 },
  ];
  expected.forEach((e, c) => {
    const got = report.perClass[c];
    assert.equal(got.label, e.label);
    assert.equal(got.support, e.support);
    assert.ok(Math.abs(got.precision - e.precision) < 1e-12);
    assert.ok(Math.abs(got.recall - e.recall) < 1e-12);
    assert.ok(Math.abs(got.f1 - f1(e.precision, e.recall)) < 1e-12);
  });
  const f1s = expected.map((e) => f1(e.precision, e.recall)); // 0.6667, 0.5, 0.6667
  assert.ok(Math.abs(report.macroF1 - (f1s[0] + f1s[1] + f1s[2]) / 3) < 1e-12);
  assert.ok(Math.abs(report.weightedF1 - (4 * f1s[0] + 4 * f1s[1] + 2 * f1s[2]) / 10) < 1e-12);
  assert.equal(report.accuracy, 6 / 10);

  const png = readFileSync(plot);
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const missed = parseNdjson(readFileSync(fn, 'utf8'));
  assert.deepEqual(missed.map((m) => m.label), ['cat', 'dog', 'dog', 'bird'], 'false negatives by class, in label order');
  assert.deepEqual(missed.map((m) => m.predicted), ['dog', 'cat', 'cat', 'dog']);
  assert.ok((missed[1].predictedProbability as number) >= (missed[2].predictedProbability as number), 'most confident mistake first');
});

test('the label order decides rows and columns; --split keeps one split', async () => {
  const orderFile = join(dir, 'reverse.txt');
  writeFileSync(orderFile, 'bird\ndog\ncat\n');
  const r = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth, '-l', 'animal', '--labels-order', orderFile]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.labels, ['bird', 'dog', 'cat']);
  assert.deepEqual(report.confusion, [[1, 1, 0], [0, 2, 2], [0, 1, 3]]);
  const test = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth, '-l', 'animal', '--split', 'test']);
  assert.equal(test.code, 0, test.stderr);
  assert.equal(JSON.parse(test.stdout).scored, 5);
});

test('a label outside --labels-order or a truth line without the field exits 2 naming file, line and field', async () => {
  const orderFile = join(dir, 'short.txt');
  writeFileSync(orderFile, 'cat\ndog\n');
  let r = await runAtelier(['eval-classifier', '-p', predictions, '-t', truth, '-l', 'animal', '--labels-order', orderFile]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /predictions\.ndjson:\d+: label: predicted label 'bird'/);
  const badTruth = join(dir, 'bad-truth.ndjson');
  writeFileSync(badTruth, '{"id":"x0","animal":"cat"}\n{"id":"x1"}\n');
  r = await runAtelier(['eval-classifier', '-p', predictions, '-t', badTruth, '-l', 'animal']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /bad-truth\.ndjson:2: animal: /);
});
