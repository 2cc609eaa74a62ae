import { defineCommand, warn } from '../lib/command.js';
import type { RecordFormat } from '../lib/io/csv.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { BUCKET_KINDS, type BucketKind } from '../lib/sizenet/dates.js';
import { scoreArticles, summarizeScores } from '../lib/sizenet/teacher.js';
import { tallyTeacherInput, type TeacherColumns, type TeacherInputShape } from '../lib/sizenet/teacher-input.js';
import { teacherScoreRecord, teacherSummaryLines } from '../lib/sizenet/teacher-report.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { nonNegativeNumber, positiveNumber } from '../lib/options.js';

interface TeacherScoreArgs {
  input: string;
  output: string;
  format: string;
  shape: string;
  bucket: string;
  priorStrength: number;
  tau: number;
  idCol: string;
  categoryCol: string;
  nCol: string;
  kCol: string;
  startCol: string;
  endCol: string;
  dateCol: string;
  returnedCol: string;
  returnedValues: string;
  keptValues: string;
  quiet: boolean;
}

const NAME = 'teacher-score';

export default defineCommand<TeacherScoreArgs>({
  name: NAME,
  summary: "SizeNet's teacher: confidence-weighted size-issue labels per article from sales and size returns",
  description: [
    'Labels each article "size issue" or "no size issue" from its sales and size returns, with a confidence weight, as the teacher of SizeNet (Karessli, Guigourès, Shirvany 2019) does. For an article with n sales, k size returns and expected size-return rate p: L = C(n,k) p^k (1-p)^(n-k), the score s = -ln L and the weight w = ln(1 + s); the label is "size issue" when the article\'s own rate k/n is above p. ln L is computed from log-gamma, rearranged (Loader\'s saddle-point form) so that it keeps about 14 significant digits for n in the billions, k = 0, k = n and p near 0 or 1.',
    'How p is chosen. Size-return rates depend on the category (high heels come back more than sneakers) and on the sales period (season, sales events), so p is the rate of the article\'s category over the article\'s own sales period. Sales fall into time buckets (--bucket: calendar month, ISO week, or meteorological season, where "2017-winter" is December 2016 to February 2017). The overall rate is r = (K+1)/(N+2); a category\'s rate is r_c = (K_c + a*r)/(N_c + a) and its rate in one bucket r_cb = (K_cb + a*r_c)/(N_cb + a), where a is --prior-strength, counted in sales, so a small category leans on the overall rate and a thin bucket on its category. p is the mean of r_cb over the article\'s buckets, weighted by the article\'s sales in each. Every total N, K leaves the article itself out (leave-one-out), so an article\'s own returns never raise its own expectation, and an article that alone is its category is compared with the rest of the shop.',
    'Input is NDJSON or CSV (by extension, else sniffed; a .gz file is decompressed, its format taken from the name inside or --format) in one of two shapes, set with --shape or detected from the first row\'s columns. Per-article rows {id, category, n, k, start, end} give an article\'s sales and size returns between two dates (inclusive), spread evenly over the days of that period; an article has one row (a second row of the same id is an error naming both lines). Per-sale rows {id, category, date, returned} are one sale each, with whether it came back for a size reason (see --returned-values and --kept-values); they are aggregated per article in one streaming pass, so memory grows with the number of articles, not of sales. Column names are set with the --*-col options. An article listed under several categories gets the one most of its rows name (a warning says how many).',
    'Output is one NDJSON line per article with sales, in order of first appearance: {id, category, n, k, rate, p, s, w, label}. --tau drops articles whose w is below it (the paper\'s threshold). A summary goes to stderr: articles, label balance, w quantiles and, per category, the observed rate and mean p. A bad value (a negative count, k > n, an unparsable date, a missing column, an unknown returned value) stops the run with one line file:line: column: what is wrong, exit status 2, and nothing written: every row is read and checked before the first line of output, and a file given with -o appears only when complete.',
  ].join('\n\n'),
  positionals: [{ name: 'input', describe: "sales file (NDJSON or CSV, optionally .gz); '-' reads stdin", type: 'string', default: '-' }],
  options: {
    output: { alias: 'o', describe: "where the NDJSON goes; '-' is stdout (a file is written atomically)", type: 'string', default: '-' },
    format: { describe: 'input format: auto (by extension, else sniffed), ndjson, csv or tsv', type: 'string', choices: ['auto', 'ndjson', 'csv', 'tsv'], default: 'auto' },
    shape: { describe: 'input rows: auto (from the columns), article (one row per article) or event (one row per sale)', type: 'string', choices: ['auto', 'article', 'event'], default: 'auto' },
    bucket: { describe: 'time buckets for category rates: month, week (ISO) or season (meteorological)', type: 'string', choices: [...BUCKET_KINDS], default: 'month' },
    'prior-strength': { describe: 'additive smoothing, in pseudo-sales: a bucket rate is pulled towards its category rate, a category rate towards the overall rate (> 0)', type: 'number', default: 100, check: positiveNumber },
    tau: { describe: 'write only articles whose weight w is at least this (the paper\'s tau)', type: 'number', default: 0, check: nonNegativeNumber },
    'id-col': { describe: 'column with the article id', type: 'string', default: 'id' },
    'category-col': { describe: 'column with the article category', type: 'string', default: 'category' },
    'n-col': { describe: 'per-article rows: column with the number of sales', type: 'string', default: 'n' },
    'k-col': { describe: 'per-article rows: column with the number of size returns', type: 'string', default: 'k' },
    'start-col': { describe: 'per-article rows: column with the first day of the sales period', type: 'string', default: 'start' },
    'end-col': { describe: 'per-article rows: column with the last day of the sales period', type: 'string', default: 'end' },
    'date-col': { describe: 'per-sale rows: column with the date of the sale', type: 'string', default: 'date' },
    'returned-col': { describe: 'per-sale rows: column saying whether the sale came back for a size reason', type: 'string', default: 'returned' },
    'returned-values': { describe: 'per-sale rows: comma-separated values of the returned column that mean a size return (JSON true always does)', type: 'string', default: 'true,1,yes' },
    'kept-values': { describe: 'per-sale rows: comma-separated values that mean the sale was kept (JSON false always does); any other value is an error', type: 'string', default: 'false,0,no' },
    quiet: { alias: 'q', describe: 'no summary on stderr', type: 'boolean', default: false },
  },
  examples: [
    ['atelier teacher-score sales/articles.ndjson -o teacher.ndjson', 'score per-article sales rows, bucketed by month'],
    ["atelier teacher-score --id-col article --returned-col returned_for_size --bucket season --tau 1 sales/events.ndjson | jq -c 'select(.label == \"size issue\")'", 'score per-sale rows by season and keep the confident size issues'],
    [
      'atelier teacher-score --id-col item_id --date-col review_date --returned-col fit --returned-values small,large --kept-values fit renttherunway_fit.csv.gz -o teacher.ndjson',
      'RentTheRunway rentals: a rental whose fit was small or large counts as a size return',
    ],
  ],
  async run(args, io) {
    await checkOutputs(args);
    const columns: TeacherColumns = {
      id: args.idCol,
      category: args.categoryCol,
      n: args.nCol,
      k: args.kCol,
      start: args.startCol,
      end: args.endCol,
      date: args.dateCol,
      returned: args.returnedCol,
    };
    const bucketKind = args.bucket as BucketKind;
    const source = {
      input: args.input,
      format: args.format as 'auto' | RecordFormat,
      stdin: io.stdin,
      shape: args.shape as 'auto' | TeacherInputShape,
      returnedValues: args.returnedValues,
      keptValues: args.keptValues,
    };
    const { tallies, shape, rows, ids } = await tallyTeacherInput(source, columns, bucketKind);
    const { articles, mixedCategoryArticles } = tallies.finish();
    if (mixedCategoryArticles > 0) warn(io, NAME, `${mixedCategoryArticles} article(s) appear under more than one category; each was scored in the one most of its rows name`);
    const scores = scoreArticles(articles, args.priorStrength);
    const unsold = articles.length - scores.length;
    if (unsold > 0) warn(io, NAME, `${unsold} article(s) with no sales have nothing to score and were left out`);
    const kept = scores.filter((score) => score.w >= args.tau);

    const writer = await openNdjsonWriter(args.output, { stdout: io.stdout, outputs: io.outputs });
    try {
      for (const score of kept) await writer.write(teacherScoreRecord(score, ids));
      await writer.close();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    if (!args.quiet) {
      const summary = summarizeScores(scores);
      const lines = teacherSummaryLines(summary, { rows, shape, bucket: args.bucket, priorStrength: args.priorStrength, tau: args.tau, kept: kept.length });
      io.stderr.write(lines.map((line) => `atelier ${NAME}: ${line}\n`).join(''));
    }
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: TeacherScoreArgs): Promise<void> {
  await checkFileOutput(args.output, '--output');
}
