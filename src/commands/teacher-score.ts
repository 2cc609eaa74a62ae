import { createGunzip } from 'node:zlib';
import { defineCommand, UsageError, warn, type CommandIO, type ErrorPlace } from '../lib/command.js';
import { readCsvStream, readRecords, recordFormatFromPath, type RecordFormat } from '../lib/io/csv.js';
import { describeJsonValue, openNdjsonWriter, readNdjsonStream, requireObject, type NdjsonRecord } from '../lib/io/ndjson.js';
import { inputDisplayName, openInputStream } from '../lib/io/paths.js';
import { BUCKET_KINDS, bucketOfDay, parseDay, spreadOverBuckets, type BucketKind } from '../lib/sizenet/dates.js';
import { ArticleTallies, scoreArticles, summarizeScores, type TeacherScore, type TeacherSummary } from '../lib/sizenet/teacher.js';
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

type Shape = 'article' | 'event';
type InputRecord = NdjsonRecord<Record<string, unknown>>;

/** The columns each shape reads, by role, as the user named them. */
interface Columns {
  id: string;
  category: string;
  n: string;
  k: string;
  start: string;
  end: string;
  date: string;
  returned: string;
}

const NAME = 'teacher-score';
/** Distinct date texts remembered with their bucket; timestamps could make every row distinct, so it is bounded. */
const BUCKET_CACHE_LIMIT = 100_000;

/** NDJSON, CSV or TSV records from `path`; a `.gz` file is decompressed on the way (its format from the name inside). */
async function* readInputRecords(path: string, format: string, stdin: NodeJS.ReadableStream): AsyncGenerator<InputRecord> {
  if (!path.toLowerCase().endsWith('.gz')) {
    yield* readRecords(path, { format: format as RecordFormat | 'auto', stdin });
    return;
  }
  const name = inputDisplayName(path);
  const chosen = format !== 'auto' ? (format as RecordFormat) : recordFormatFromPath(path.slice(0, -3));
  if (chosen === null) throw new UsageError('cannot tell from its name whether this compressed file holds NDJSON or CSV; say which with --format', { file: name });
  const compressed = await openInputStream(path, stdin);
  const stream = compressed.pipe(createGunzip());
  compressed.on('error', (err: Error) => stream.destroy(err));
  try {
    if (chosen === 'ndjson') {
      for await (const record of readNdjsonStream(stream, name)) yield { value: requireObject(record.value, record), line: record.line, file: name };
    } else {
      yield* readCsvStream(stream, name, { delimiter: chosen === 'tsv' ? '\t' : ',' });
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) throw new UsageError(`not a valid gzip file (${(err as Error).message})`, { file: name });
    throw err;
  }
}

function place(record: InputRecord, field?: string): ErrorPlace {
  return { file: record.file, line: record.line, field };
}

function has(record: InputRecord, column: string): boolean {
  return Object.prototype.hasOwnProperty.call(record.value, column);
}

/** The columns the first record must have for `shape`, and a UsageError naming the first one missing. */
function requireColumns(record: InputRecord, shape: Shape, columns: Columns): void {
  const roles: Array<[keyof Columns, string]> =
    shape === 'article'
      ? [['id', '--id-col'], ['category', '--category-col'], ['n', '--n-col'], ['k', '--k-col'], ['start', '--start-col'], ['end', '--end-col']]
      : [['id', '--id-col'], ['category', '--category-col'], ['date', '--date-col'], ['returned', '--returned-col']];
  for (const [role, flag] of roles) {
    const column = columns[role];
    if (!has(record, column)) {
      const found = Object.keys(record.value).join(', ') || 'none';
      throw new UsageError(`no column '${column}' for ${shape === 'article' ? 'per-article' : 'per-sale'} input (columns here: ${found}); name it with ${flag}`, place(record, column));
    }
  }
}

/** Per-article rows when the first record has the n and k columns, per-sale rows when it has date and returned. */
function detectShape(record: InputRecord, columns: Columns): Shape {
  if (has(record, columns.n) && has(record, columns.k)) return 'article';
  if (has(record, columns.date) && has(record, columns.returned)) return 'event';
  const found = Object.keys(record.value).join(', ') || 'none';
  throw new UsageError(
    `cannot tell the input's shape from its columns (${found}): per-article rows need '${columns.n}' and '${columns.k}' (plus '${columns.start}', '${columns.end}'), ` +
      `per-sale rows need '${columns.date}' and '${columns.returned}'; rename with --n-col/--k-col/--date-col/--returned-col or set --shape`,
    place(record),
  );
}

/** A non-empty text key from a string or number cell. */
function keyText(record: InputRecord, column: string): string {
  const value = record.value[column];
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new UsageError(`expected a non-empty name, got ${describeJsonValue(value)}`, place(record, column));
}

/** A whole number of sales or returns, from a JSON number or a CSV cell. */
function countValue(record: InputRecord, column: string): number {
  const value = record.value[column];
  let count: number | null = null;
  if (typeof value === 'number') count = value;
  else if (typeof value === 'string' && /^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$/.test(value)) count = Number(value);
  if (count === null || !Number.isFinite(count)) throw new UsageError(`expected a count (a whole number >= 0), got ${describeJsonValue(value)}`, place(record, column));
  if (count < 0) throw new UsageError(`negative count ${count}`, place(record, column));
  if (!Number.isSafeInteger(count)) throw new UsageError(`expected a whole number, got ${count}`, place(record, column));
  return count;
}

/** A UTC day number from a date cell. */
function dayValue(record: InputRecord, column: string): number {
  const value = record.value[column];
  const day = typeof value === 'string' ? parseDay(value) : null;
  if (day === null) throw new UsageError(`unparsable date ${describeJsonValue(value)} (expected YYYY-MM-DD or an ISO 8601 timestamp)`, place(record, column));
  return day;
}

function valueList(text: string): Set<string> {
  return new Set(
    text
      .split(',')
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== ''),
  );
}

/** Reads every record into per-article tallies, validating each; nothing is written until this returns. */
async function tallyInput(args: TeacherScoreArgs, io: CommandIO, columns: Columns, bucketKind: BucketKind): Promise<{ tallies: ArticleTallies; shape: Shape; rows: number; ids: Map<string, number> }> {
  const tallies = new ArticleTallies();
  const numericIds = new Map<string, number>();
  const returnedValues = valueList(args.returnedValues);
  const keptValues = valueList(args.keptValues);
  for (const value of returnedValues) {
    if (keptValues.has(value)) throw new UsageError(`'${value}' is in both --returned-values and --kept-values`, { field: '--kept-values' });
  }
  const bucketCache = new Map<string, string>();
  const bucketOfDateText = (record: InputRecord, column: string): string => {
    const text = record.value[column];
    const cached = typeof text === 'string' ? bucketCache.get(text) : undefined;
    if (cached !== undefined) return cached;
    const bucket = bucketOfDay(dayValue(record, column), bucketKind);
    if (bucketCache.size >= BUCKET_CACHE_LIMIT) bucketCache.clear();
    bucketCache.set(text as string, bucket);
    return bucket;
  };
  let shape: Shape | null = args.shape === 'auto' ? null : (args.shape as Shape);
  let rows = 0;
  // Per-article rows: one per article; a second one would be summed into it silently.
  const articleLine = new Map<string, number>();
  for await (const record of readInputRecords(args.input, args.format, io.stdin)) {
    if (rows === 0) {
      shape ??= detectShape(record, columns);
      requireColumns(record, shape, columns);
    }
    rows += 1;
    const id = keyText(record, columns.id);
    const rawId = record.value[columns.id];
    if (typeof rawId === 'number' && !numericIds.has(id)) numericIds.set(id, rawId);
    const category = keyText(record, columns.category);
    if (shape === 'article') {
      const firstLine = articleLine.get(id);
      if (firstLine !== undefined) throw new UsageError(`article ${JSON.stringify(id)} already has a row on line ${firstLine}; give one row per article (or per-sale rows)`, place(record, columns.id));
      articleLine.set(id, record.line);
      const n = countValue(record, columns.n);
      const k = countValue(record, columns.k);
      if (k > n) throw new UsageError(`size returns (${k}) exceed sales (${n})`, place(record, columns.k));
      const first = dayValue(record, columns.start);
      const last = dayValue(record, columns.end);
      if (last < first) throw new UsageError(`sales period ends before it starts (${columns.start} ${String(record.value[columns.start])})`, place(record, columns.end));
      tallies.addArticle(id, category, n, k, spreadOverBuckets(first, last, bucketKind));
    } else {
      const bucket = bucketOfDateText(record, columns.date);
      tallies.addSales(id, category, bucket, 1, returnedFlag(record, columns.returned, returnedValues, keptValues));
    }
  }
  if (rows === 0) throw new UsageError('no rows to score', { file: inputDisplayName(args.input) });
  return { tallies, shape: shape!, rows, ids: numericIds };
}

/** 1 when the sale came back for a size reason, 0 when it was kept; anything else is an error. */
function returnedFlag(record: InputRecord, column: string, returnedValues: Set<string>, keptValues: Set<string>): number {
  const value = record.value[column];
  if (value === true) return 1;
  if (value === false) return 0;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : typeof value === 'number' ? String(value) : null;
  if (text !== null && returnedValues.has(text)) return 1;
  if (text !== null && keptValues.has(text)) return 0;
  throw new UsageError(
    `${describeJsonValue(value)} is neither a size return (${[...returnedValues].join(', ')}) nor a kept sale (${[...keptValues].join(', ')}); see --returned-values and --kept-values`,
    place(record, column),
  );
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

/** The end-of-run summary, one line per fact, then one line per category. */
function summaryLines(summary: TeacherSummary, context: { rows: number; shape: Shape; bucket: string; priorStrength: number; tau: number; kept: number }): string[] {
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
    const columns: Columns = {
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
    const { tallies, shape, rows, ids } = await tallyInput(args, io, columns, bucketKind);
    const { articles, mixedCategoryArticles } = tallies.finish();
    if (mixedCategoryArticles > 0) warn(io, NAME, `${mixedCategoryArticles} article(s) appear under more than one category; each was scored in the one most of its rows name`);
    const scores = scoreArticles(articles, args.priorStrength);
    const unsold = articles.length - scores.length;
    if (unsold > 0) warn(io, NAME, `${unsold} article(s) with no sales have nothing to score and were left out`);
    const kept = scores.filter((score) => score.w >= args.tau);

    const writer = await openNdjsonWriter(args.output, { stdout: io.stdout, outputs: io.outputs });
    try {
      for (const score of kept) await writer.write(outputRecord(score, ids));
      await writer.close();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    if (!args.quiet) {
      const summary = summarizeScores(scores);
      const lines = summaryLines(summary, { rows, shape, bucket: args.bucket, priorStrength: args.priorStrength, tau: args.tau, kept: kept.length });
      io.stderr.write(lines.map((line) => `atelier ${NAME}: ${line}\n`).join(''));
    }
  },
});

/** The output line; an id that came in as a JSON number goes out as one. */
function outputRecord(score: TeacherScore, numericIds: Map<string, number>): Record<string, unknown> {
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

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: TeacherScoreArgs): Promise<void> {
  await checkFileOutput(args.output, '--output');
}
