// The teacher-score run's end-of-run summary and output lines.
import type { TeacherInputShape } from './teacher-input.js';
import type { TeacherScore, TeacherSummary } from './teacher.js';

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

/** The end-of-run summary, one line per fact, then one line per category. */
export function teacherSummaryLines(summary: TeacherSummary, context: { rows: number; shape: TeacherInputShape; bucket: string; priorStrength: number; tau: number; kept: number }): string[] {
  if (summary.articles === 0) return [`no article in ${context.rows} rows has sales: nothing to score`];
  const lines = [
    `${summary.articles} articles from ${context.rows} ${context.shape === 'article' ? 'article rows' : 'sales rows'}: ${summary.sales} sales, ${summary.sizeReturns} size returns (rate ${fixed(summary.sizeReturns / summary.sales, 4)}); buckets by ${context.bucket}, prior strength ${context.priorStrength}`,
    `labels: size issue ${summary.sizeIssues} (${percent(summary.sizeIssues, summary.articles)}), no size issue ${summary.articles - summary.sizeIssues} (${percent(summary.articles - summary.sizeIssues, summary.articles)}); written ${context.kept} with w >= ${context.tau}`,
    `w quantiles: ${summary.wQuantiles.map(({ q, w }) => `${q === 0 ? 'min' : q === 1 ? 'max' : `p${Math.round(q * 100)}`} ${fixed(w, 3)}`).join(', ')}`,
    'per category: articles, sales, observed size-return rate, mean p, size-issue share',
  ];
  const width = Math.max(...summary.categories.map((c) => c.category.length));
  for (const c of summary.categories) {
    lines.push(
      `  ${c.category.padEnd(width)} ${String(c.articles).padStart(6)} ${String(c.sales).padStart(8)}  rate ${fixed(c.sizeReturns / c.sales, 4)}  p ${fixed(c.meanP, 4)}  size issue ${percent(c.sizeIssues, c.articles)}`,
    );
  }
  return lines;
}

/** The output line; an id that came in as a JSON number goes out as one. */
export function teacherScoreRecord(score: TeacherScore, numericIds: Map<string, number>): Record<string, unknown> {
  return {
    id: numericIds.get(score.id) ?? score.id,
    category: score.category,
    n: score.n,
    k: score.k,
    rate: score.rate,
    p: score.p,
    s: score.s,
    w: score.w,
    label: score.label,
  };
}
