// The pieces of the weak-supervision trainer checked against hand computations: P@k and R@k, word
// sampling (uniform vs frequency), the sampled and full softmax losses, dropout, feature matrices.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/lib/backend/tf.js';
import { precisionRecallAtK, topKIndices } from '../../src/lib/metrics/ranking.js';
import { buildWordIndex, sampleBatch } from '../../src/lib/train/word-sampler.js';
import { validationSubset } from '../../src/lib/train/weak-trainer.js';
import { applyDropout, fullSoftmaxLoss, sampledSoftmaxLoss } from '../../src/lib/models/word-losses.js';
import { readFeatureMatrix } from '../../src/lib/io/features.js';
import { writeNpy } from '../../src/lib/io/npy.js';
import { createRandom } from '../../src/lib/random.js';
import { UsageError } from '../../src/lib/command.js';
import { scratchDir } from '../helpers.js';

test('topKIndices: best first, ties by lower index, k larger than n', () => {
  assert.deepEqual([...topKIndices([0.1, 0.9, 0.5, 0.9, 0.2], 3)], [1, 3, 2]);
  assert.deepEqual([...topKIndices([3, 1], 5)], [0, 1]);
});

test('precisionRecallAtK matches a hand count; empty bags are skipped', () => {
  // Two images, vocabulary of 4. Image 0 ranks words 2,0,1,3 and holds {0,3}; image 1 ranks 3,2,1,0 and holds {3}.
  const scores = Float32Array.from([0.5, 0.2, 0.9, 0.1, /**/ 0.0, 0.1, 0.2, 0.3, /**/ 1, 1, 1, 1]);
  const r = precisionRecallAtK(scores, 4, [Int32Array.from([0, 3]), Int32Array.from([3]), new Int32Array(0)], [1, 2, 4]);
  assert.equal(r.images, 2);
  // P@1: image 0 top word 2 miss (0), image 1 top word 3 hit (1) -> 0.5. R@1: 0 and 1 -> 0.5.
  assert.equal(r.precision[1], 0.5);
  assert.equal(r.recall[1], 0.5);
  // P@2: image 0 {2,0} one hit -> 1/2; image 1 {3,2} one hit -> 1/2. R@2: 1/2 and 1 -> 0.75.
  assert.equal(r.precision[2], 0.5);
  assert.equal(r.recall[2], 0.75);
  // P@4: 2/4 and 1/4; R@4 = 1.
  assert.equal(r.precision[4], 0.375);
  assert.equal(r.recall[4], 1);
});

test('uniform sampling draws every word equally often; frequency sampling follows the bags', () => {
  // Word 0 is in every bag, word 1 in one of ten, word 2 in none.
  const bags = Array.from({ length: 10 }, (_, i) => Int32Array.from(i === 0 ? [0, 1] : [0]));
  const index = buildWordIndex(bags, 3);
  assert.deepEqual([...index.wordsWithImages], [0, 1]);
  const count = (sampling: 'uniform' | 'frequency') => {
    const random = createRandom(5);
    const counts = [0, 0, 0];
    for (let i = 0; i < 50; i++) {
      const batch = sampleBatch(index, random, { batchSize: 40, negatives: 1, sampling });
      for (let row = 0; row < 40; row++) {
        const word = batch.positives[row];
        counts[word]++;
        assert.ok(bags[batch.images[row]].includes(word), 'the positive is in the image bag');
        assert.equal(batch.candidates[row * 2], word, 'the positive comes first');
        const negative = batch.candidates[row * 2 + 1];
        assert.ok(!bags[batch.images[row]].includes(negative), 'a negative is never in the image bag');
      }
    }
    return counts.map((c) => c / 2000);
  };
  const uniform = count('uniform');
  assert.ok(Math.abs(uniform[1] - 0.5) < 0.05, `uniform: word 1 drawn ${uniform[1]}`);
  assert.equal(uniform[2], 0);
  const frequency = count('frequency');
  // Frequency: pick an image (1/10 holds word 1), then a word of its bag (1/2) -> 0.05.
  assert.ok(Math.abs(frequency[1] - 0.05) < 0.03, `frequency: word 1 drawn ${frequency[1]}`);
});

test('sampled and full softmax losses equal the hand-computed cross-entropy', () => {
  const z = tf.tensor2d([[1, 0], [0, 2]]);
  const kernel = tf.tensor2d([[1, 0, -1], [0, 1, 1]]); // [d=2, K=3]
  // Scores: row 0 -> [1, 0, -1]; row 1 -> [0, 2, 2].
  const ce = (scores: number[], positive: number) => Math.log(scores.reduce((s, x) => s + Math.exp(x), 0)) - scores[positive];
  const full = fullSoftmaxLoss(z, kernel, tf.tensor1d([0, 1], 'int32'));
  assert.ok(Math.abs(full.dataSync()[0] - (ce([1, 0, -1], 0) + ce([0, 2, 2], 1)) / 2) < 1e-5);
  // Sampled over [positive, one negative]: row 0 [0, 2] -> scores [1, -1]; row 1 [1, 0] -> [2, 0].
  const sampled = sampledSoftmaxLoss(z, kernel, tf.tensor2d([[0, 2], [1, 0]], [2, 2], 'int32'));
  assert.ok(Math.abs(sampled.dataSync()[0] - (ce([1, -1], 0) + ce([2, 0], 0)) / 2) < 1e-5);
  tf.dispose([z, kernel, full, sampled]);
});

test('applyDropout zeroes the dropped units and scales the kept ones by 1/(1-rate)', () => {
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const y = applyDropout(x, Float32Array.from([1, 0, 0, 1]), 0.5);
  assert.deepEqual([...y.dataSync()], [2, 0, 0, 8]);
  tf.dispose([x, y]);
});

test('readFeatureMatrix: rows with ids; a count mismatch or a NaN is an input error naming the file', async () => {
  const dir = scratchDir();
  const npy = join(dir, 'f.npy');
  await writeNpy(npy, Float32Array.from([1, 2, 3, 4]), [2, 2]);
  writeFileSync(join(dir, 'f.ids.ndjson'), '{"id":"a"}\n{"id":7}\n');
  const m = await readFeatureMatrix(npy);
  assert.deepEqual(m.ids, ['a', '7']);
  assert.equal(m.dim, 2);
  writeFileSync(join(dir, 'f.ids.ndjson'), '{"id":"a"}\n');
  await assert.rejects(readFeatureMatrix(npy), (e: unknown) => e instanceof UsageError && /1 ids for 2 rows/.test(e.message));
  await writeNpy(npy, Float32Array.from([1, NaN, 3, 4]), [2, 2]);
  writeFileSync(join(dir, 'f.ids.ndjson'), '{"id":"a"}\n{"id":"b"}\n');
  await assert.rejects(readFeatureMatrix(npy), (e: unknown) => e instanceof UsageError && /non-finite/.test(e.message));
});

test('validationSubset: all held-out images for 0 or a cap at or over their count; else evenly spread, first included, in order', () => {
  const held = { pixels: Array.from({ length: 10 }, (_, i) => `img${i}`), bags: Array.from({ length: 10 }, (_, i) => Int32Array.of(i)) };
  assert.equal(validationSubset(held, 0), held);
  assert.equal(validationSubset(held, 10), held);
  assert.equal(validationSubset(held, 25), held);
  const four = validationSubset(held, 4);
  assert.deepEqual(four.pixels, ['img0', 'img2', 'img5', 'img7']);
  assert.deepEqual(four.bags.map((b) => b[0]), [0, 2, 5, 7]);
  assert.deepEqual(validationSubset(held, 1).pixels, ['img0']);
});
