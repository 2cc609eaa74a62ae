// atelier teacher-score run as a user would: spawned, on real files, stdin, gzip, the generated
// fixture catalogue and (when present) the RentTheRunway fit data.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir('atelier-teacher-');
const OUTPUT_FIELDS = ['id', 'category', 'n', 'k', 'rate', 'p', 's', 'w', 'label'];

function write(name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function ndjson(rows: object[]): string {
  return rows.map((row) => JSON.stringify(row)).join('\n') + '\n';
}

/** Per-article rows whose sales periods each lie inside one month, and the same sales one event per line. */
function sameSalesBothShapes(): { articles: object[]; events: object[] } {
  const spec: Array<[string, string, number, number, string]> = [
    ['a1', 'dress', 40, 12, '2017-01'],
    ['a2', 'dress', 60, 6, '2017-01'],
    ['a3', 'dress', 30, 9, '2017-02'],
    ['a4', 'dress', 25, 2, '2017-02'],
    ['b1', 'shoe', 50, 20, '2017-01'],
    ['b2', 'shoe', 70, 14, '2017-02'],
    ['c1', 'bag', 12, 0, '2017-01'],
  ];
  const articles = spec.map(([id, category, n, k, month]) => ({ id, category, n, k, start: `${month}-03`, end: `${month}-27` }));
  const events: object[] = [];
  for (const [id, category, n, k, month] of spec) {
    for (let i = 0; i < n; i++) events.push({ id, category, date: `${month}-${String(3 + (i % 25)).padStart(2, '0')}`, returned: i < k });
  }
  return { articles, events };
}

test('per-article NDJSON: one line per article with the fields in order, consistent labels and weights', async () => {
  const { articles } = sameSalesBothShapes();
  const input = write('articles.ndjson', ndjson(articles));
  const result = await runAtelier(['teacher-score', input]);
  assert.equal(result.code, 0, result.stderr);
  const rows = parseNdjson(result.stdout);
  assert.deepEqual(rows.map((r) => r.id), ['a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'c1']);
  for (const row of rows) {
    assert.deepEqual(Object.keys(row), OUTPUT_FIELDS);
    const { n, k, rate, p, s, w, label } = row as { n: number; k: number; rate: number; p: number; s: number; w: number; label: string };
    assert.equal(rate, k / n);
    assert.ok(p > 0 && p < 1);
    assert.ok(s > 0 && Number.isFinite(s));
    assert.equal(w, Math.log1p(s));
    assert.equal(label, rate > p ? 'size issue' : 'no size issue');
  }
  assert.equal(rows.find((r) => r.id === 'a1')!.label, 'size issue');
  assert.equal(rows.find((r) => r.id === 'a2')!.label, 'no size issue');
  assert.match(result.stderr, /7 articles from 7 article rows: 287 sales, 63 size returns/);
  assert.match(result.stderr, /labels: size issue \d+ \(\d+\.\d%\), no size issue \d+/);
  assert.match(result.stderr, /w quantiles: min [\d.]+, p10 [\d.]+, p25 .* max [\d.]+/);
  assert.match(result.stderr, /^atelier teacher-score: +dress +4 +155 +rate 0\.1871 +p 0\.\d{4}/m);
});

test('per-sale rows aggregate to the same scores as per-article rows (CSV from stdin, NDJSON from a file)', async () => {
  const { articles, events } = sameSalesBothShapes();
  const articleFile = write('same-articles.ndjson', ndjson(articles));
  const csv = ['id,category,date,returned', ...events.map((e) => Object.values(e).join(','))].join('\r\n') + '\r\n';
  const [fromArticles, fromEvents] = await Promise.all([runAtelier(['teacher-score', '-q', articleFile]), runAtelier(['teacher-score', '-q', '--format', 'csv', '-'], { input: csv })]);
  assert.equal(fromEvents.code, 0, fromEvents.stderr);
  assert.equal(fromEvents.stderr, '', '--quiet leaves stderr empty');
  const a = parseNdjson(fromArticles.stdout);
  const e = parseNdjson(fromEvents.stdout);
  assert.equal(e.length, a.length);
  for (let i = 0; i < a.length; i++) {
    for (const field of ['id', 'category', 'n', 'k', 'label']) assert.equal(e[i]![field], a[i]![field]);
    for (const field of ['p', 's', 'w']) assert.ok(Math.abs((e[i]![field] as number) - (a[i]![field] as number)) < 1e-12, `${field} of ${a[i]!.id}`);
  }
});

test('--tau keeps only confident articles; --bucket and --prior-strength change p; -o writes a file', async () => {
  const { events } = sameSalesBothShapes();
  const input = write('events.ndjson', ndjson(events));
  const all = parseNdjson((await runAtelier(['teacher-score', '-q', input])).stdout);
  const ws = all.map((r) => r.w as number).sort((x, y) => x - y);
  const tau = ws[3]!;
  const out = join(dir, 'kept.ndjson');
  const [kept, seasons, strong] = await Promise.all([
    runAtelier(['teacher-score', '--tau', String(tau), '-o', out, input]),
    runAtelier(['teacher-score', '-q', '--bucket', 'season', input]),
    runAtelier(['teacher-score', '-q', '--prior-strength', '1e9', input]),
  ]);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(kept.stdout, '', 'with -o nothing goes to stdout');
  const keptRows = parseNdjson(readFileSync(out, 'utf8'));
  assert.deepEqual(keptRows.map((r) => r.id), all.filter((r) => (r.w as number) >= tau).map((r) => r.id));
  assert.equal(keptRows.length, 4);
  assert.match(kept.stderr, new RegExp(`written 4 with w >= ${tau}`));
  // January and February fall into one winter season: one bucket per category instead of two.
  const seasonP = parseNdjson(seasons.stdout).find((r) => r.id === 'a1')!.p as number;
  assert.notEqual(seasonP, all.find((r) => r.id === 'a1')!.p);
  // A huge prior makes every p the overall rate without the article: (K − k + 1) / (N − n + 2).
  for (const row of parseNdjson(strong.stdout)) {
    const expected = (63 - (row.k as number) + 1) / (287 - (row.n as number) + 2);
    assert.ok(Math.abs((row.p as number) - expected) < 1e-6, `p of ${row.id}`);
  }
});

test('column names, returned values and gzip: RentTheRunway-like rentals', async () => {
  const lines = ['item_id,user_id,category,fit,review_date'];
  const fits = ['fit', 'small', 'fit', 'large', 'fit', 'fit'];
  for (let i = 0; i < 60; i++) lines.push(`${100 + (i % 4)},${i},${i % 4 === 3 ? 'gown' : 'dress'},${fits[i % 6]},2016-0${1 + (i % 3)}-1${i % 9}`);
  const input = write('rentals.csv.gz', gzipSync(lines.join('\n') + '\n'));
  const args = ['teacher-score', '--id-col', 'item_id', '--date-col', 'review_date', '--returned-col', 'fit', '--returned-values', 'small,large', '--kept-values', 'fit', input];
  const [result, withoutValues] = await Promise.all([runAtelier(args), runAtelier(args.filter((a, i) => !['--returned-values', '--kept-values'].includes(a) && !['--returned-values', '--kept-values'].includes(args[i - 1]!)))]);
  assert.equal(result.code, 0, result.stderr);
  const rows = parseNdjson(result.stdout);
  assert.deepEqual(rows.map((r) => [r.id, r.category, r.n]), [['100', 'dress', 15], ['101', 'dress', 15], ['102', 'dress', 15], ['103', 'gown', 15]]);
  assert.equal(rows.reduce((sum, r) => sum + (r.k as number), 0), 20, 'small and large count, fit does not');
  assert.equal(withoutValues.code, 2);
  assert.match(withoutValues.stderr, /^atelier teacher-score: .*rentals\.csv\.gz:2: fit: a string \("fit"\) is neither a size return \(true, 1, yes\) nor a kept sale/);
});

test('numeric ids stay numbers; an article under two categories gets its majority one, with a warning', async () => {
  const rows = [
    { id: 7, category: 'top', date: '2017-01-01', returned: 1 },
    { id: 7, category: 'tunic', date: '2017-01-02', returned: 0 },
    { id: 7, category: 'tunic', date: '2017-01-03', returned: 0 },
    { id: 8, category: 'top', date: '2017-01-03', returned: 'yes' },
    { id: 8, category: 'top', date: '2017-01-04', returned: 'no' },
  ];
  const result = await runAtelier(['teacher-score', '-'], { input: ndjson(rows) });
  assert.equal(result.code, 0, result.stderr);
  const out = parseNdjson(result.stdout);
  assert.deepEqual(out.map((r) => [r.id, r.category, r.n, r.k]), [[7, 'tunic', 3, 1], [8, 'top', 2, 1]]);
  assert.match(result.stderr, /warning: 1 article\(s\) appear under more than one category/);
});

test('bad input: one line file:line: field, exit 2, nothing written to stdout or -o', async () => {
  const good = { id: 'a', category: 'dress', n: 10, k: 2, start: '2017-01-01', end: '2017-01-31' };
  const cases: Array<{ name: string; text: string; args?: string[]; expected: RegExp }> = [
    { name: 'negative.ndjson', text: ndjson([good, { ...good, id: 'b', n: -3, k: 0 }]), expected: /negative\.ndjson:2: n: negative count -3$/ },
    { name: 'k-over-n.ndjson', text: ndjson([good, { ...good, id: 'b' }, { ...good, id: 'c', k: 11 }]), expected: /k-over-n\.ndjson:3: k: size returns \(11\) exceed sales \(10\)$/ },
    { name: 'twice.ndjson', text: ndjson([good, { ...good, id: 'b' }, { ...good, n: 4 }]), expected: /twice\.ndjson:3: id: article "a" already has a row on line 1; give one row per article/ },
    { name: 'fraction.csv', text: 'id,category,n,k,start,end\na,dress,10.5,1,2017-01-01,2017-01-02\n', expected: /fraction\.csv:2: n: expected a whole number, got 10\.5$/ },
    { name: 'date.csv', text: 'id,category,n,k,start,end\na,dress,10,1,2017-01-01,2017-01-31\nb,dress,5,1,2017-02-30,2017-03-01\n', expected: /date\.csv:3: start: unparsable date a string \("2017-02-30"\)/ },
    { name: 'backwards.ndjson', text: ndjson([{ ...good, start: '2017-02-01' }]), expected: /backwards\.ndjson:1: end: sales period ends before it starts/ },
    { name: 'event-date.ndjson', text: ndjson([{ id: 'a', category: 'x', date: '2017-01-01', returned: true }, { id: 'a', category: 'x', date: 'yesterday', returned: true }]), expected: /event-date\.ndjson:2: date: unparsable date/ },
    { name: 'no-category.csv', text: 'id,cat,n,k,start,end\na,dress,10,1,2017-01-01,2017-01-31\n', expected: /no-category\.csv:2: category: no column 'category' for per-article input \(columns here: id, cat, n, k, start, end\); name it with --category-col$/ },
    { name: 'renamed.csv', text: 'id,category,n,k,start,end\na,dress,10,1,2017-01-01,2017-01-31\n', args: ['--category-col', 'segment'], expected: /renamed\.csv:2: segment: no column 'segment'/ },
    { name: 'shape.ndjson', text: ndjson([{ id: 'a', category: 'x', sold: 3 }]), expected: /shape\.ndjson:1: cannot tell the input's shape from its columns \(id, category, sold\)/ },
    { name: 'missing-later.ndjson', text: ndjson([good, { id: 'b', n: 3, k: 1, start: '2017-01-01', end: '2017-01-02' }]), expected: /missing-later\.ndjson:2: category: expected a non-empty name, got missing$/ },
    { name: 'empty.ndjson', text: '\n\n', expected: /empty\.ndjson: no rows to score$/ },
    { name: 'prior.ndjson', text: ndjson([good]), args: ['--prior-strength', '0'], expected: /--prior-strength: '0' is not a positive number$/ },
  ];
  const existing = write('existing-output.ndjson', 'old contents\n');
  // Every case to stdout; a few also to a new file and over an existing one (each spawn costs a second).
  const withFiles = new Set(['negative.ndjson', 'date.csv', 'no-category.csv']);
  await Promise.all(
    cases.map(async ({ name, text, args = [], expected }) => {
      const input = write(name, text);
      const out = join(dir, `out-${name}`);
      const runs = [runAtelier(['teacher-score', ...args, input])];
      if (withFiles.has(name)) runs.push(runAtelier(['teacher-score', ...args, '-o', out, input]), runAtelier(['teacher-score', ...args, '-o', existing, input]));
      for (const result of await Promise.all(runs)) {
        assert.equal(result.code, 2, `${name}: ${result.stderr}`);
        assert.equal(result.stdout, '', `${name}: nothing on stdout`);
        const lines = result.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, `${name}: one line, got ${result.stderr}`);
        assert.match(lines[0]!, /^atelier teacher-score: /);
        assert.match(lines[0]!, expected, name);
      }
      assert.equal(existsSync(out), false, `${name}: no output file`);
    }),
  );
  assert.equal(readFileSync(existing, 'utf8'), 'old contents\n', 'an existing output is left as it was');
});

test('fixture catalogue: slim-cut articles get higher mean w and mostly the size-issue label', async () => {
  const fixtures = join(dir, 'fixtures');
  const generated = spawnSync(process.execPath, [join(repoRoot, 'dist', 'fixtures', 'generate.js'), '--seed', '1', '--out', fixtures, '--products', '200'], { encoding: 'utf8' });
  assert.equal(generated.status, 0, generated.stderr);
  const slimCut = new Map(parseNdjson(readFileSync(join(fixtures, 'truth.ndjson'), 'utf8')).map((r) => [r.id, r.slim_cut === true]));
  const runs = await Promise.all([
    runAtelier(['teacher-score', join(fixtures, 'sales', 'articles.csv')]),
    runAtelier(['teacher-score', '--id-col', 'article', '--returned-col', 'returned_for_size', join(fixtures, 'sales', 'events.ndjson')]),
  ]);
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    const rows = parseNdjson(run.stdout);
    assert.ok(rows.length >= 150, `${rows.length} articles scored`);
    const group = (slim: boolean) => rows.filter((r) => slimCut.get(r.id as string) === slim);
    const meanW = (g: typeof rows) => g.reduce((sum, r) => sum + (r.w as number), 0) / g.length;
    const issueShare = (g: typeof rows) => g.filter((r) => r.label === 'size issue').length / g.length;
    const slim = group(true);
    const plain = group(false);
    assert.ok(slim.length >= 20 && plain.length >= 60, `${slim.length} slim-cut, ${plain.length} plain`);
    assert.ok(meanW(slim) > meanW(plain) + 0.3, `mean w slim ${meanW(slim)} vs plain ${meanW(plain)}`);
    assert.ok(issueShare(slim) >= 0.8, `slim-cut labelled size issue: ${issueShare(slim)}`);
    assert.ok(issueShare(plain) <= 0.3, `plain labelled size issue: ${issueShare(plain)}`);
  }
});

const FIT_DATA = process.env.ATELIER_FIT_DATA ?? join(repoRoot, '..', 'shared', 'data', 'fit', 'renttherunway_fit.csv.gz');

test('RentTheRunway fit data: every rental counted, a size issue label for roughly half the items', async (ctx) => {
  if (!existsSync(FIT_DATA)) ctx.skip(`no ${FIT_DATA}`);
  const result = await runAtelier([
    'teacher-score',
    '--id-col', 'item_id',
    '--date-col', 'review_date',
    '--returned-col', 'fit',
    '--returned-values', 'small,large',
    '--kept-values', 'fit',
    FIT_DATA,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const rows = parseNdjson(result.stdout);
  assert.equal(rows.length, 5850);
  assert.equal(rows.reduce((sum, r) => sum + (r.n as number), 0), 192_544);
  assert.equal(rows.reduce((sum, r) => sum + (r.k as number), 0), 25_779 + 24_707);
  const share = rows.filter((r) => r.label === 'size issue').length / rows.length;
  assert.ok(share > 0.3 && share < 0.6, `size-issue share ${share}`);
  assert.match(result.stderr, /warning: 5 article\(s\) appear under more than one category/);
  assert.match(result.stderr, /^atelier teacher-score: +dress +\d+ +\d+ +rate 0\.28/m);
});
