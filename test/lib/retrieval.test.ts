import { test } from 'vitest';
import assert from 'node:assert/strict';
import {
  averagePrecision,
  correctRanks,
  expectedRandomTopK,
  rankOfFirstCorrect,
  relevantRanks,
  sampleRandomRanks,
  summarizeRetrieval,
  topKRetrievalAccuracy,
} from '../../src/lib/metrics/retrieval.js';
import { createRandom } from '../../src/lib/random.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('a hand-made case: three queries, their neighbour items, top-k accuracy and AP', () => {
  // Query A finds its item at ranks 2 and 4; B at rank 1; C never in the list.
  const lists = {
    A: ['x', 'A', 'y', 'A', 'z'],
    B: ['B', 'q', 'r', 's', 't'],
    C: ['u', 'v', 'w', 'x', 'y'],
  };
  const first = Object.entries(lists).map(([item, l]) => rankOfFirstCorrect(l, item));
  assert.deepEqual(first, [2, 1, null]);
  assert.deepEqual(topKRetrievalAccuracy(first, [1, 2, 5]), { 1: 1 / 3, 2: 2 / 3, 5: 2 / 3 });
  assert.deepEqual(correctRanks(lists.A, 'A'), [2, 4]);
  // A has 2 relevant images: AP = (1/2 + 2/4) / 2 = 0.5.
  close(averagePrecision([2, 4], 2), 0.5);
  // B has 3 relevant images but only one was retrieved, at rank 1: AP = 1/3.
  close(averagePrecision([1], 3), 1 / 3);
  // Ranks 1, 3, 6 of R = 3: (1/1 + 2/3 + 3/6) / 3.
  close(averagePrecision([6, 1, 3], 3), (1 + 2 / 3 + 0.5) / 3);
  // Cut at depth 4: rank 6 is a miss and R becomes min(3, 4) = 3.
  close(averagePrecision([1, 3, 6], 3, 4), (1 + 2 / 3) / 3);
  // Cut at depth 2 with R = 3: normaliser min(3, 2) = 2, hits at rank 1 only.
  close(averagePrecision([1, 3, 6], 3, 2), 1 / 2);
  assert.equal(averagePrecision([], 0), 0);
  const summary = summarizeRetrieval(first, [0.5, 1 / 3, 0], [1, 5, 10], 5);
  assert.deepEqual(summary.topk, { 1: 1 / 3, 5: 2 / 3, 10: null }, 'k beyond the list depth is unknown');
  close(summary.map, (0.5 + 1 / 3) / 3);
  assert.equal(summary.medianFirstRank, 2);
  assert.equal(summarizeRetrieval([null, null, 4], [0, 0, 1], [1]).medianFirstRank, null);
});

test('relevantRanks ranks by score with ties to the earlier gallery row, and leaves the query itself out', () => {
  const scores = [0.9, 0.5, 0.7, 0.7, 0.1, 0.95];
  // Row 3 ties with row 2 (earlier, ranked first): order 5, 0, 2, 3, 1, 4.
  assert.deepEqual(relevantRanks(scores, [3, 1]), [4, 5]);
  assert.deepEqual(relevantRanks(scores, [2]), [3]);
  // Leave-one-out: row 5 is the query; without it everything moves up one.
  assert.deepEqual(relevantRanks(scores, [3, 1, 5], 5), [3, 4]);
  // Excluding a row ranked below does not move anything.
  assert.deepEqual(relevantRanks(scores, [0], 4), [2]);
  // Excluding the tied earlier row moves the later one up.
  assert.deepEqual(relevantRanks(scores, [3], 2), [3]);
});

test('relevantRanks agrees with sorting the whole row', () => {
  const random = createRandom(3);
  for (let trial = 0; trial < 30; trial++) {
    const n = 1 + random.int(60);
    const scores = Array.from({ length: n }, () => random.int(10) / 10);
    const relevant = [...new Set(Array.from({ length: 1 + random.int(5) }, () => random.int(n)))];
    const exclude = random.next() < 0.5 ? random.int(n) : -1;
    const order = scores.map((s, i) => ({ s, i })).filter((e) => e.i !== exclude).sort((a, b) => b.s - a.s || a.i - b.i).map((e) => e.i);
    const want = relevant.filter((r) => r !== exclude).map((r) => order.indexOf(r) + 1).sort((a, b) => a - b);
    assert.deepEqual(relevantRanks(scores, relevant, exclude), want);
  }
});

test('expected random top-k is 1 - C(N-R, k) / C(N, k), checked by enumeration', () => {
  // N = 6, R = 2, k = 2: of C(6,2) = 15 pairs, C(4,2) = 6 miss both.
  close(expectedRandomTopK(6, 2, 2), 1 - 6 / 15);
  close(expectedRandomTopK(10, 1, 3), 0.3);
  assert.equal(expectedRandomTopK(10, 3, 8), 1, 'k > N - R always hits');
  assert.equal(expectedRandomTopK(10, 0, 3), 0);
  // Enumerate all orderings of 5 items with R = 2 relevant for k = 1..5.
  const N = 5;
  for (let k = 1; k <= N; k++) {
    let hits = 0;
    let total = 0;
    for (let a = 1; a <= N; a++) for (let b = a + 1; b <= N; b++) {
      total++;
      if (Math.min(a, b) <= k) hits++;
    }
    close(expectedRandomTopK(N, 2, k), hits / total);
  }
});

test('sampleRandomRanks draws R distinct uniform positions whose top-k rate matches the expectation', () => {
  const random = createRandom(4);
  const N = 50;
  const R = 3;
  const trials = 20000;
  let hitsAt5 = 0;
  const counts = new Array(N + 1).fill(0);
  for (let t = 0; t < trials; t++) {
    const ranks = sampleRandomRanks(N, R, random.next);
    assert.equal(new Set(ranks).size, R);
    assert.ok(ranks.every((r) => r >= 1 && r <= N));
    assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b));
    if (ranks[0] <= 5) hitsAt5++;
    for (const r of ranks) counts[r]++;
  }
  const expected = expectedRandomTopK(N, R, 5);
  // Binomial standard error ~0.0027; allow 4 of them.
  assert.ok(Math.abs(hitsAt5 / trials - expected) < 0.011, `${hitsAt5 / trials} vs ${expected}`);
  // Every position is about equally likely (R/N of the draws each).
  const perPosition = (trials * R) / N;
  for (let r = 1; r <= N; r++) assert.ok(Math.abs(counts[r] - perPosition) < 0.12 * perPosition, `position ${r}: ${counts[r]}`);
  assert.deepEqual(sampleRandomRanks(4, 4, random.next), [1, 2, 3, 4]);
});
