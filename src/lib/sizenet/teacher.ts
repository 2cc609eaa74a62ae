// SizeNet's teacher (Karessli, Guigourès, Shirvany 2019): confidence-weighted size-issue labels from
// sales and size returns. For an article with n sales, k size returns and expected size-return rate p,
// L = C(n,k) p^k (1−p)^(n−k), s = −ln L, w = ln(1 + s); the label is "size issue" when k/n > p.
import { binomialLogLikelihood } from '../metrics/special.js';

/** Sales and size returns; fractional where an article's period is spread over several buckets. */
export interface SalesCounts {
  n: number;
  k: number;
}

/** One article's totals and how they fall into time buckets (the bucket counts add up to n and k). */
export interface ArticleTally {
  id: string;
  category: string;
  n: number;
  k: number;
  buckets: Map<string, SalesCounts>;
}

export type TeacherLabel = 'size issue' | 'no size issue';

export interface TeacherScore {
  id: string;
  category: string;
  n: number;
  k: number;
  /** k / n. */
  rate: number;
  /** Expected size-return rate: the article's category over its own sales period, without the article. */
  p: number;
  /** −ln L. */
  s: number;
  /** ln(1 + s), the teacher's confidence. */
  w: number;
  label: TeacherLabel;
}

/** The score of one article given its expected rate p (SizeNet: s = −ln L, w = ln(1 + s)). */
export function sizeIssueScore(n: number, k: number, p: number): { rate: number; s: number; w: number; label: TeacherLabel } {
  // 0 − ln L rather than −ln L: a certain outcome (L = 1) scores +0, not −0.
  const s = 0 - binomialLogLikelihood(n, k, p);
  const rate = k / n;
  return { rate, s, w: Math.log1p(s), label: rate > p ? 'size issue' : 'no size issue' };
}

/**
 * Collects sales into per-article tallies, one sale or one article row at a time, so memory grows with
 * the number of articles and buckets, not with the number of sales. An article seen under several
 * categories gets the one most of its rows name (the first named among equals).
 */
export class ArticleTallies {
  private readonly byId = new Map<string, { tally: ArticleTally; rows: number; categoryRows: Map<string, number> | null }>();

  /** Adds `sales` sales with `sizeReturns` size returns of article `id` in `bucket`. */
  addSales(id: string, category: string, bucket: string, sales: number, sizeReturns: number): void {
    const tally = this.articleFor(id, category);
    tally.n += sales;
    tally.k += sizeReturns;
    const counts = tally.buckets.get(bucket);
    if (counts) {
      counts.n += sales;
      counts.k += sizeReturns;
    } else tally.buckets.set(bucket, { n: sales, k: sizeReturns });
  }

  /** Adds an article row: n sales and k size returns spread over buckets by the given shares (summing to 1). */
  addArticle(id: string, category: string, n: number, k: number, spread: ReadonlyArray<{ bucket: string; share: number }>): void {
    const tally = this.articleFor(id, category);
    tally.n += n;
    tally.k += k;
    for (const { bucket, share } of spread) {
      const counts = tally.buckets.get(bucket);
      if (counts) {
        counts.n += n * share;
        counts.k += k * share;
      } else tally.buckets.set(bucket, { n: n * share, k: k * share });
    }
  }

  /** Articles seen so far. */
  get size(): number {
    return this.byId.size;
  }

  /** The tallies in first-seen order, and how many articles were seen under more than one category. */
  finish(): { articles: ArticleTally[]; mixedCategoryArticles: number } {
    const articles: ArticleTally[] = [];
    let mixedCategoryArticles = 0;
    for (const { tally, categoryRows } of this.byId.values()) {
      if (categoryRows) {
        mixedCategoryArticles += 1;
        let best = tally.category;
        for (const [category, rows] of categoryRows) if (rows > categoryRows.get(best)!) best = category;
        tally.category = best;
      }
      articles.push(tally);
    }
    return { articles, mixedCategoryArticles };
  }

  private articleFor(id: string, category: string): ArticleTally {
    const entry = this.byId.get(id);
    if (!entry) {
      const tally: ArticleTally = { id, category, n: 0, k: 0, buckets: new Map() };
      this.byId.set(id, { tally, rows: 1, categoryRows: null });
      return tally;
    }
    if (entry.categoryRows) entry.categoryRows.set(category, (entry.categoryRows.get(category) ?? 0) + 1);
    // Categories are only counted from the first disagreement on; every earlier row named the first one.
    else if (category !== entry.tally.category) entry.categoryRows = new Map([[entry.tally.category, entry.rows], [category, 1]]);
    entry.rows += 1;
    return entry.tally;
  }
}

/** Sales and size returns of one category, overall and per bucket. */
export interface CategoryTally extends SalesCounts {
  buckets: Map<string, SalesCounts>;
}

/** Totals over all articles, per category and per category and bucket. */
export interface ReturnTallies {
  all: SalesCounts;
  categories: Map<string, CategoryTally>;
}

/** Sums article tallies into category and category-bucket totals. */
export function tallyCategories(articles: Iterable<ArticleTally>): ReturnTallies {
  const all = { n: 0, k: 0 };
  const categories = new Map<string, CategoryTally>();
  for (const article of articles) {
    all.n += article.n;
    all.k += article.k;
    let category = categories.get(article.category);
    if (!category) {
      category = { n: 0, k: 0, buckets: new Map() };
      categories.set(article.category, category);
    }
    category.n += article.n;
    category.k += article.k;
    for (const [bucket, counts] of article.buckets) {
      const total = category.buckets.get(bucket);
      if (total) {
        total.n += counts.n;
        total.k += counts.k;
      } else category.buckets.set(bucket, { n: counts.n, k: counts.k });
    }
  }
  return { all, categories };
}

/** (returns + strength·prior) / (sales + strength): additive smoothing towards `prior`. */
function smoothedRate(sales: number, sizeReturns: number, prior: number, strength: number): number {
  // Leaving an article out of fractional sums can leave −1e−17 behind; counts are never negative.
  const n = Math.max(0, sales);
  const k = Math.min(Math.max(0, sizeReturns), n);
  return n + strength > 0 ? (k + strength * prior) / (n + strength) : prior;
}

/**
 * The article's expected size-return rate p, leave-one-out (its own sales and returns are taken out of
 * every total first): the overall rate r = (K+1)/(N+2); its category's rate r_c shrunk towards r with
 * `priorStrength` pseudo-sales; each bucket's category rate r_cb shrunk towards r_c the same way; and p
 * the mean of r_cb over the article's buckets, weighted by the article's sales in each.
 */
export function expectedReturnRate(article: ArticleTally, tallies: ReturnTallies, priorStrength: number): number {
  const category = tallies.categories.get(article.category);
  if (!category) throw new RangeError(`article ${article.id}: category '${article.category}' is not in the tallies`);
  const overall = smoothedRate(tallies.all.n - article.n, tallies.all.k - article.k, 0.5, 2);
  const categoryRate = smoothedRate(category.n - article.n, category.k - article.k, overall, priorStrength);
  if (article.n <= 0) return categoryRate;
  let weighted = 0;
  let sales = 0;
  for (const [bucket, own] of article.buckets) {
    if (own.n <= 0) continue;
    const total = category.buckets.get(bucket) ?? { n: 0, k: 0 };
    weighted += own.n * smoothedRate(total.n - own.n, total.k - own.k, categoryRate, priorStrength);
    sales += own.n;
  }
  return sales > 0 ? weighted / sales : categoryRate;
}

/** Scores every article with sales; articles without sales have nothing to score and are left out. */
export function scoreArticles(articles: readonly ArticleTally[], priorStrength: number): TeacherScore[] {
  if (!(priorStrength > 0)) throw new RangeError(`prior strength must be positive, got ${priorStrength}`);
  const tallies = tallyCategories(articles);
  const scores: TeacherScore[] = [];
  for (const article of articles) {
    if (article.n <= 0) continue;
    const p = expectedReturnRate(article, tallies, priorStrength);
    const { rate, s, w, label } = sizeIssueScore(article.n, article.k, p);
    scores.push({ id: article.id, category: article.category, n: article.n, k: article.k, rate, p, s, w, label });
  }
  return scores;
}

/** The q-quantile (0 ≤ q ≤ 1) of ascending-sorted values, linearly interpolated. */
export function sortedQuantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (position - below) * (sorted[above]! - sorted[below]!);
}

export interface CategorySummary {
  category: string;
  articles: number;
  sales: number;
  sizeReturns: number;
  /** Mean expected rate p over the category's articles. */
  meanP: number;
  sizeIssues: number;
}

export interface TeacherSummary {
  articles: number;
  sales: number;
  sizeReturns: number;
  sizeIssues: number;
  /** w at quantiles 0, 0.1, 0.25, 0.5, 0.75, 0.9, 1. */
  wQuantiles: Array<{ q: number; w: number }>;
  categories: CategorySummary[];
}

export const SUMMARY_QUANTILES = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1] as const;

/** Label balance, w quantiles and per-category figures, categories largest first. */
export function summarizeScores(scores: readonly TeacherScore[]): TeacherSummary {
  const byCategory = new Map<string, CategorySummary>();
  let sales = 0;
  let sizeReturns = 0;
  let sizeIssues = 0;
  for (const score of scores) {
    sales += score.n;
    sizeReturns += score.k;
    const issue = score.label === 'size issue' ? 1 : 0;
    sizeIssues += issue;
    let category = byCategory.get(score.category);
    if (!category) {
      category = { category: score.category, articles: 0, sales: 0, sizeReturns: 0, meanP: 0, sizeIssues: 0 };
      byCategory.set(score.category, category);
    }
    category.articles += 1;
    category.sales += score.n;
    category.sizeReturns += score.k;
    category.meanP += score.p;
    category.sizeIssues += issue;
  }
  for (const category of byCategory.values()) category.meanP /= category.articles;
  const weights = scores.map((score) => score.w).sort((a, b) => a - b);
  return {
    articles: scores.length,
    sales,
    sizeReturns,
    sizeIssues,
    wQuantiles: SUMMARY_QUANTILES.map((q) => ({ q, w: sortedQuantile(weights, q) })),
    categories: [...byCategory.values()].sort((a, b) => b.sales - a.sales || a.category.localeCompare(b.category)),
  };
}
