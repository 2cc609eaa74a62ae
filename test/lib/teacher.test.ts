// The SizeNet teacher: scores, the leave-one-out bucket-weighted expected rate on a hand-made table,
// per-article aggregation, and the calendar buckets it rests on.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { bucketOfDay, formatDay, parseDay, spreadOverBuckets } from '../../src/lib/sizenet/dates.js';
import {
  ArticleTallies,
  expectedReturnRate,
  scoreArticles,
  sizeIssueScore,
  sortedQuantile,
  summarizeScores,
  tallyCategories,
  type ArticleTally,
} from '../../src/lib/sizenet/teacher.js';

function close(actual: number, expected: number, tolerance = 1e-12, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected}`);
}

function day(text: string): number {
  const value = parseDay(text);
  assert.notEqual(value, null, text);
  return value!;
}

/** Articles from per-bucket sales: [id, category, {bucket: [n, k]}]. */
function table(rows: Array<[string, string, Record<string, [number, number]>]>): ArticleTally[] {
  const tallies = new ArticleTallies();
  for (const [id, category, buckets] of rows) {
    for (const [bucket, [n, k]] of Object.entries(buckets)) {
      for (let i = 0; i < n; i++) tallies.addSales(id, category, bucket, 1, i < k ? 1 : 0);
    }
  }
  return tallies.finish().articles;
}

const HAND_TABLE: Array<[string, string, Record<string, [number, number]>]> = [
  ['a1', 'A', { m1: [10, 2], m2: [30, 3] }],
  ['a2', 'A', { m1: [20, 8] }],
  ['a3', 'A', { m2: [50, 10] }],
  ['b1', 'B', { m1: [100, 5] }],
  ['b2', 'B', { m2: [100, 15] }],
];

test('sizeIssueScore: s = −ln L, w = ln(1 + s), label by k/n against p', () => {
  // C(10,3)·0.3³·0.7⁷ = 0.266827932 (worked by hand).
  const score = sizeIssueScore(10, 3, 0.3);
  close(score.s, -Math.log(120 * 0.027 * 0.0823543), 1e-14, 's');
  close(score.w, Math.log(1 + score.s), 1e-15, 'w');
  assert.equal(score.rate, 0.3);
  assert.equal(score.label, 'no size issue', 'k/n equal to p is not above it');
  assert.equal(sizeIssueScore(10, 4, 0.3).label, 'size issue');
  assert.equal(sizeIssueScore(10, 2, 0.3).label, 'no size issue');
  // The further k/n is from p, the surer the teacher: w grows on both sides.
  assert.ok(sizeIssueScore(100, 60, 0.3).w > sizeIssueScore(100, 40, 0.3).w);
  assert.ok(sizeIssueScore(100, 5, 0.3).w > sizeIssueScore(100, 20, 0.3).w);
  // Far into the tail s stays finite and exact (no p^k underflow): n ln(1−p) at k = 0.
  close(sizeIssueScore(5_000_000, 0, 0.3).s, -5_000_000 * Math.log(0.7), 1e-14, 'tail');
});

test('expectedReturnRate on a hand-made table: leave-one-out, bucket-weighted, smoothed', () => {
  const articles = table(HAND_TABLE);
  const tallies = tallyCategories(articles);
  assert.deepEqual(tallies.all, { n: 310, k: 43 });
  assert.deepEqual(tallies.categories.get('A')!.buckets.get('m1'), { n: 30, k: 10 });
  const a = 10;
  const byId = new Map(articles.map((article) => [article.id, article]));

  // a1: everything without a1's own 40 sales and 5 returns.
  const r1 = (43 - 5 + 1) / (310 - 40 + 2);
  const rA1 = (23 - 5 + a * r1) / (110 - 40 + a);
  const rAm1 = (10 - 2 + a * rA1) / (30 - 10 + a);
  const rAm2 = (13 - 3 + a * rA1) / (80 - 30 + a);
  close(expectedReturnRate(byId.get('a1')!, tallies, a), (10 * rAm1 + 30 * rAm2) / 40, 1e-14, 'p(a1)');

  // a2 sold only in m1: p is A's m1 rate without a2.
  const r2 = (43 - 8 + 1) / (310 - 20 + 2);
  const rA2 = (23 - 8 + a * r2) / (110 - 20 + a);
  close(expectedReturnRate(byId.get('a2')!, tallies, a), (10 - 8 + a * rA2) / (30 - 20 + a), 1e-14, 'p(a2)');

  // b2 sold only in m2, where without b2 category B has no sales: the bucket rate is B's own rate.
  const r3 = (43 - 15 + 1) / (310 - 100 + 2);
  const rB3 = (20 - 15 + a * r3) / (200 - 100 + a);
  close(expectedReturnRate(byId.get('b2')!, tallies, a), rB3, 1e-14, 'p(b2)');
});

test('an article never raises its own expectation: p ignores its own sales and returns', () => {
  const base = scoreArticles(table(HAND_TABLE), 10);
  const changed = scoreArticles(table(HAND_TABLE.map(([id, c, b]) => (id === 'a1' ? [id, c, { m1: [10, 10], m2: [30, 30] }] : [id, c, b]))), 10);
  const p = (scores: typeof base, id: string) => scores.find((s) => s.id === id)!.p;
  assert.equal(p(changed, 'a1'), p(base, 'a1'));
  assert.ok(p(changed, 'a2') > p(base, 'a2'), "a1's returns do raise its neighbours' expectation");
});

test('the sales period matters: the same category in a high-return bucket expects more', () => {
  const rows: Array<[string, string, Record<string, [number, number]>]> = [
    ['x', 'C', { dec: [50, 20], jun: [50, 2] }],
    ['y', 'C', { dec: [60, 24], jun: [60, 3] }],
    ['winter', 'C', { dec: [40, 10] }],
    ['summer', 'C', { jun: [40, 10] }],
  ];
  const scores = scoreArticles(table(rows), 5);
  const winter = scores.find((s) => s.id === 'winter')!;
  const summer = scores.find((s) => s.id === 'summer')!;
  assert.ok(winter.p > 0.3 && summer.p < 0.1, `p winter ${winter.p}, summer ${summer.p}`);
  assert.equal(winter.label, 'no size issue');
  assert.equal(summer.label, 'size issue', 'a 25% rate is a size issue in a 4% season');
  assert.ok(summer.w > winter.w);
});

test('a stronger prior pulls a thin category towards the overall rate', () => {
  const rows: Array<[string, string, Record<string, [number, number]>]> = [
    ['big1', 'big', { m: [500, 50] }],
    ['big2', 'big', { m: [500, 50] }],
    ['thin1', 'thin', { m: [4, 4] }],
    ['thin2', 'thin', { m: [4, 4] }],
  ];
  const pWith = (strength: number) => scoreArticles(table(rows), strength).find((s) => s.id === 'thin1')!.p;
  assert.ok(pWith(0.01) > 0.99, `weak prior: the other thin article's 100% (${pWith(0.01)})`);
  assert.ok(Math.abs(pWith(1e6) - 105 / 1006) < 1e-4, `strong prior: the overall rate without thin1 (${pWith(1e6)})`);
  assert.throws(() => scoreArticles(table(rows), 0), RangeError);
});

test('ArticleTallies: per-article rows spread over buckets; events add up; a mixed category goes to the majority', () => {
  const tallies = new ArticleTallies();
  tallies.addArticle('p', 'dress', 21, 7, spreadOverBuckets(day('2017-01-20'), day('2017-02-09'), 'month'));
  tallies.addSales('q', 'top', '2017-01', 1, 1);
  tallies.addSales('q', 'jacket', '2017-01', 1, 0);
  tallies.addSales('q', 'jacket', '2017-02', 1, 0);
  tallies.addSales('r', 'coat', '2017-01', 1, 0);
  tallies.addSales('r', 'skirt', '2017-01', 1, 0);
  assert.equal(tallies.size, 3);
  const { articles, mixedCategoryArticles } = tallies.finish();
  const [p, q, r] = articles;
  assert.equal(p!.n, 21);
  close(p!.buckets.get('2017-01')!.n, 12, 1e-14, 'January share of sales');
  close(p!.buckets.get('2017-02')!.k, 3, 1e-14, 'February share of returns');
  assert.equal(q!.category, 'jacket');
  assert.deepEqual([q!.n, q!.k], [3, 1]);
  assert.deepEqual(q!.buckets.get('2017-01'), { n: 2, k: 1 });
  assert.equal(r!.category, 'coat', 'a tie keeps the first category');
  assert.equal(mixedCategoryArticles, 2);
});

test('articles without sales are left out of the scores', () => {
  const tallies = new ArticleTallies();
  tallies.addArticle('none', 'A', 0, 0, [{ bucket: 'm', share: 1 }]);
  tallies.addArticle('some', 'A', 10, 1, [{ bucket: 'm', share: 1 }]);
  tallies.addArticle('other', 'A', 10, 5, [{ bucket: 'm', share: 1 }]);
  const scores = scoreArticles(tallies.finish().articles, 10);
  assert.deepEqual(scores.map((s) => s.id), ['some', 'other']);
});

test('summarizeScores: label balance, w quantiles, per-category mean p', () => {
  const scores = scoreArticles(table(HAND_TABLE), 10);
  const summary = summarizeScores(scores);
  assert.equal(summary.articles, 5);
  assert.equal(summary.sales, 310);
  assert.equal(summary.sizeIssues, scores.filter((s) => s.label === 'size issue').length);
  const ws = scores.map((s) => s.w).sort((x, y) => x - y);
  assert.equal(summary.wQuantiles[0]!.w, ws[0]);
  assert.equal(summary.wQuantiles.at(-1)!.w, ws[4]);
  assert.equal(summary.wQuantiles.find((q) => q.q === 0.5)!.w, ws[2]);
  assert.deepEqual(summary.categories.map((c) => c.category), ['B', 'A'], 'most sales first');
  close(summary.categories[0]!.meanP, (scores[3]!.p + scores[4]!.p) / 2, 1e-15, 'mean p of B');
  assert.equal(sortedQuantile([1, 2, 3, 4], 0.5), 2.5);
  assert.ok(Number.isNaN(sortedQuantile([], 0.5)));
});

test('parseDay: real calendar dates and ISO timestamps only', () => {
  assert.equal(parseDay('1970-01-01'), 0);
  assert.equal(parseDay('2016-02-29'), day('2016-03-01') - 1);
  assert.equal(formatDay(day('2017-12-31')), '2017-12-31');
  assert.equal(parseDay(' 2017-05-06 '), day('2017-05-06'));
  assert.equal(parseDay('2017-05-06T23:30:00Z'), day('2017-05-06'));
  assert.equal(parseDay('2017-05-06T23:30:00-02:00'), day('2017-05-07'), 'the zone moves it past midnight UTC');
  assert.equal(parseDay('2017-05-06T00:30+01:00'), day('2017-05-05'));
  assert.equal(parseDay('2017-05-06 12:00:00.250'), day('2017-05-06'));
  for (const bad of ['2017-02-29', '2017-13-01', '2017-00-10', '2017-04-31', '17-01-01', '2017/01/01', '20170101', '', 'soon', '2017-01-01T25:00Z', '2017-01-01T10:00+25:00']) {
    assert.equal(parseDay(bad), null, bad);
  }
});

test('bucketOfDay: months, ISO weeks across year ends, meteorological seasons', () => {
  assert.equal(bucketOfDay(day('2017-03-31'), 'month'), '2017-03');
  assert.equal(bucketOfDay(day('2021-01-03'), 'week'), '2020-W53');
  assert.equal(bucketOfDay(day('2021-01-04'), 'week'), '2021-W01');
  assert.equal(bucketOfDay(day('2018-12-31'), 'week'), '2019-W01');
  assert.equal(bucketOfDay(day('2017-06-15'), 'week'), '2017-W24');
  assert.equal(bucketOfDay(day('1969-12-31'), 'week'), '1970-W01');
  assert.equal(bucketOfDay(day('2016-12-01'), 'season'), '2017-winter');
  assert.equal(bucketOfDay(day('2017-02-28'), 'season'), '2017-winter');
  assert.equal(bucketOfDay(day('2017-03-01'), 'season'), '2017-spring');
  assert.equal(bucketOfDay(day('2017-08-31'), 'season'), '2017-summer');
  assert.equal(bucketOfDay(day('2017-11-30'), 'season'), '2017-autumn');
});

test('spreadOverBuckets: shares of days per bucket, summing to one', () => {
  assert.deepEqual(spreadOverBuckets(day('2017-01-05'), day('2017-01-05'), 'month'), [{ bucket: '2017-01', share: 1 }]);
  const seasons = spreadOverBuckets(day('2016-11-21'), day('2017-03-10'), 'season');
  assert.deepEqual(seasons.map((s) => s.bucket), ['2016-autumn', '2017-winter', '2017-spring']);
  const total = day('2017-03-10') - day('2016-11-21') + 1;
  assert.deepEqual(seasons.map((s) => s.share * total), [10, 90, 10]);
  const weeks = spreadOverBuckets(day('2020-12-30'), day('2021-01-12'), 'week');
  assert.deepEqual(weeks.map((w) => [w.bucket, w.share * 14]), [['2020-W53', 5], ['2021-W01', 7], ['2021-W02', 2]]);
  const months = spreadOverBuckets(day('2015-06-10'), day('2017-06-09'), 'month');
  assert.equal(months.length, 25);
  close(months.reduce((sum, m) => sum + m.share, 0), 1, 1e-14, 'shares sum to 1');
  assert.throws(() => spreadOverBuckets(day('2017-01-02'), day('2017-01-01'), 'month'), RangeError);
});
