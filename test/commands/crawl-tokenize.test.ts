// crawl-tokenize as a user runs it, against the generated fixture shop served on 127.0.0.1: the three
// templates, robots.txt, broken pages and images, timeouts and body caps, resume after SIGKILL,
// import from NDJSON and CSV, and bad input.
import { test, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atelierBin, parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { startFixtureServer, type FixtureServer } from '../../fixtures/lib/serve.js';

let fixture = '';
let products: Array<{ id: string; title: string; shop: string; images: string[] }> = [];

beforeAll(() => {
  fixture = join(scratchDir('atelier-crawl-fixture-'), 'cat');
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'fixtures', 'generate.js'), '--seed', '1', '--out', fixture, '--products', '40'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  products = parseNdjson(readFileSync(join(fixture, 'products.ndjson'), 'utf8')) as typeof products;
});

const servers: FixtureServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function shop(opts: Parameters<typeof startFixtureServer>[1] = {}): Promise<FixtureServer> {
  const server = await startFixtureServer(join(fixture, 'site'), opts);
  servers.push(server);
  return server;
}

const FAST = ['--host-delay', '0', '--per-host', '4', '--retries', '2', '--backoff', '50', '--timeout', '2000', '--max-body', '1000000'];

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? (d as unknown as { path: string }).path, d.name));
}

test('sitemap crawl: three templates parsed, robots honoured, broken pages and images skipped and counted', async () => {
  const server = await shop();
  const dir = scratchDir();
  const out = join(dir, 'samples.ndjson');
  const args = ['crawl-tokenize', '--sitemap', `${server.url}sitemap.xml`, '--images', join(dir, 'img'), '-o', out, '--vocab', join(dir, 'vocab.ndjson'), '--stats', join(dir, 'stats.json'), '--site-pattern', '/shops/([^/]+)/', ...FAST];
  const r = await runAtelier(args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  const records = parseNdjson(readFileSync(out, 'utf8'));
  const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
  const m = server.manifest;

  // Every public product page of every template gave records with its title.
  const bySource = new Map<string, Array<Record<string, unknown>>>();
  for (const rec of records) bySource.set(String(rec.source), [...(bySource.get(String(rec.source)) ?? []), rec]);
  const templates = new Set<string>();
  for (const page of m.productPages) {
    if (m.disallowedPages.includes(page.path)) continue;
    const recs = bySource.get(`${server.origin}${page.path}`);
    assert.ok(recs && recs.length > 0, `records for ${page.path} (${page.template})`);
    const title = products.find((p) => p.id === page.id)!.title;
    assert.equal(recs[0]!.title, title, `${page.path} title`);
    templates.add(page.template);
  }
  assert.deepEqual([...templates].sort(), ['bare', 'jsonld', 'opengraph']);

  // robots.txt: read once, disallowed pages never requested.
  assert.equal(server.hits('/robots.txt'), 1);
  for (const path of m.disallowedPages) assert.equal(server.hits(path), 0, `${path} is disallowed`);
  assert.equal(stats.pages.skippedByRobots, m.disallowedPages.length);
  assert.ok(server.requests.every((q) => q.userAgent.startsWith('atelier-crawler/')));

  // Failures counted by reason; the 500-then-200 and 429 pages retried and kept; the chain followed.
  assert.equal(stats.pages.failed['http-404'], 1);
  assert.equal(stats.pages.failed['redirect-loop'], 1);
  for (const path of [...m.fail500Once, ...m.tooManyRequestsOnce.map((t) => t.path)]) {
    assert.equal(server.hits(path), 2, `${path} retried once`);
    assert.ok(bySource.has(`${server.origin}${path}`), `${path} kept after the retry`);
  }
  assert.ok(bySource.has(`${server.origin}${m.redirectChain.target}`), 'redirect chain followed to its product');

  // Broken images skipped and counted; the noimageindex one not stored.
  assert.equal(stats.images.corrupt.truncated, 1);
  assert.equal(stats.images.corrupt['not-an-image'], 1);
  assert.equal(stats.images.failed['content-type'], 1);
  assert.equal(stats.images.skipped.noimageindex, m.noImageIndex.length);
  const urls = new Set(records.map((rec) => String(rec.url).replace(server.origin, '')));
  for (const bad of [...Object.values(m.brokenImages), ...m.noImageIndex]) assert.ok(!urls.has(bad), `${bad} not in the output`);
  assert.match(r.stderr, /truncated/);

  // Images stored once per content, under their hash; sorted output; bags are sets without digits.
  const files = filesUnder(join(dir, 'img'));
  assert.equal(files.length, new Set(records.map((rec) => rec.sha256)).size);
  assert.equal(stats.images.saved, files.length);
  for (const rec of records.slice(0, 20)) assert.equal(sha256(String(rec.image)), rec.sha256);
  const keys = records.map((rec) => String(rec.source));
  assert.deepEqual(keys, [...keys].sort());
  assert.equal(new Set(records.map((rec) => rec.id)).size, records.length, 'ids are unique');
  for (const rec of records) {
    const tokens = rec.tokens as string[];
    assert.equal(new Set(tokens).size, tokens.length);
    assert.ok(tokens.every((t) => /^\p{L}[\p{L}\p{M}-]*$/u.test(t)), JSON.stringify(tokens));
  }

  // The shop names are site-specific words: dropped from their own shop's bags.
  assert.ok(stats.siteWords['atelier-nord'].includes('nord'), JSON.stringify(stats.siteWords));
  for (const rec of records.filter((x) => String(x.source).includes('/atelier-nord/'))) assert.ok(!(rec.tokens as string[]).includes('nord'));

  // Vocabulary: {word, count, df} by count; counts match the output.
  const vocab = parseNdjson(readFileSync(join(dir, 'vocab.ndjson'), 'utf8')) as Array<{ word: string; count: number; df: number }>;
  assert.ok(vocab.length > 20);
  for (let i = 1; i < vocab.length; i++) assert.ok(vocab[i - 1]!.count >= vocab[i]!.count);
  const top = vocab[0]!;
  assert.equal(top.count, records.filter((rec) => (rec.tokens as string[]).includes(top.word)).length);
  assert.equal(top.df, new Set(records.filter((rec) => (rec.tokens as string[]).includes(top.word)).map((rec) => rec.source)).size);
  assert.ok(!existsSync(`${out}.state`), 'state file removed after a complete run');
  assert.match(r.stderr, /pages: \d+ queued/);
});

test('followed links: slow page times out, huge page is cut, unmatched links are not fetched', async () => {
  const server = await shop({ slowMs: 3000, hugeBytes: 8 * 1024 * 1024 });
  const dir = scratchDir();
  const args = ['crawl-tokenize', `${server.url}index.html`, '--follow', '/(slow|huge)/', '--images', join(dir, 'img'), '--stats', join(dir, 'stats.json'), ...FAST, '--timeout', '700', '--retries', '0', '--max-body', '200000'];
  const r = await runAtelier(args);
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
  assert.equal(stats.pages.failed.timeout, 1);
  assert.equal(stats.pages.failed['too-large'], 1);
  assert.equal(stats.pages.queued, 3);
  assert.equal(server.hits('/shops/atelier-nord/index.html'), 0, 'links not matching --follow are not fetched');
  assert.equal(r.stdout, '', 'no products on these pages');
});

test('resume: a crawl killed with SIGKILL and run again writes the same output as an uninterrupted run', async () => {
  const server = await shop({ crawlDelay: 0.02 });
  const dir = scratchDir();
  const common = (out: string) => ['crawl-tokenize', '--sitemap', `${server.url}sitemap.xml`, '--images', join(dir, 'img'), '-o', out, '--stats', `${out}.stats.json`, ...FAST, '--per-host', '2'];
  const full = await runAtelier(common(join(dir, 'full.ndjson')));
  assert.equal(full.code, 0, full.stderr);
  const fullRequests = server.requests.length;

  const out = join(dir, 'resumed.ndjson');
  const state = `${out}.state`;
  const child = spawn(process.execPath, [atelierBin, ...common(out)], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const lines = existsSync(state) ? readFileSync(state, 'utf8').split('\n').length : 0;
    if (lines >= 20) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  assert.ok(!existsSync(out), 'no output from the killed run');
  const journalled = readFileSync(state, 'utf8').split('\n').filter((l) => l.includes('"kind":"page"')).length;
  assert.ok(journalled >= 10, `${journalled} pages journalled before the kill`);

  const before = server.requests.length;
  const again = await runAtelier(common(out));
  assert.equal(again.code, 0, again.stderr);
  const resumedRequests = server.requests.length - before;
  assert.equal(readFileSync(out, 'utf8'), readFileSync(join(dir, 'full.ndjson'), 'utf8'));
  const stats = JSON.parse(readFileSync(`${out}.stats.json`, 'utf8'));
  assert.ok(stats.run.resumed >= journalled - 1, `resumed ${stats.run.resumed} of ${journalled}`);
  assert.ok(resumedRequests < fullRequests - 10, `resumed run sent ${resumedRequests} requests, a full one ${fullRequests}`);
  assert.match(again.stderr, /resumed from the state file/);
  assert.ok(!existsSync(state));
});

test('import: NDJSON and CSV catalogue rows give the same samples, ids from the id field', async () => {
  const dir = scratchDir();
  const ndjson = await runAtelier([
    'crawl-tokenize', '--import', join(fixture, 'products.ndjson'), '--image-field', 'images', '--id-field', 'id', '--site-field', 'shop',
    '--images', join(dir, 'img'), '-o', join(dir, 'a.ndjson'), '--stats', join(dir, 'a.json'),
  ]);
  assert.equal(ndjson.code, 0, ndjson.stderr);
  const csv = await runAtelier([
    'crawl-tokenize', '--import', join(fixture, 'products.csv'), '--image-field', 'images', '--id-field', 'product_id', '--site-field', 'shop',
    '--description-field', 'description_html', '--images', join(dir, 'img'), '-o', join(dir, 'b.ndjson'),
  ]);
  assert.equal(csv.code, 0, csv.stderr);
  const a = parseNdjson(readFileSync(join(dir, 'a.ndjson'), 'utf8'));
  const b = parseNdjson(readFileSync(join(dir, 'b.ndjson'), 'utf8'));
  const strip = (rows: Array<Record<string, unknown>>) => rows.map(({ source: _s, ...rest }) => rest);
  assert.deepEqual(strip(a), strip(b));
  const stats = JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8'));
  const refs = products.reduce((n, p) => n + p.images.length, 0);
  const lost = [stats.images.corrupt, stats.images.failed, stats.images.skipped].flatMap((c: Record<string, number>) => Object.values(c)).reduce((x, y) => x + y, 0);
  assert.equal(a.length, refs - lost);
  assert.equal(stats.rows.read, products.length);
  const first = products[0]!;
  assert.equal(a[0]!.id, first.images.length > 1 ? `${first.id}-1` : first.id);
  assert.equal(a[0]!.title, first.title);
  assert.match(String(a[0]!.source), /products\.ndjson:1$/);

  const textOnly = await runAtelier(['crawl-tokenize', '--import', join(fixture, 'products.csv'), '--id-field', 'product_id', '--description-field', 'description_html', '--max-df', '1']);
  assert.equal(textOnly.code, 0, textOnly.stderr);
  const rows = parseNdjson(textOnly.stdout);
  assert.equal(rows.length, products.length);
  assert.equal(rows[0]!.image, null);
  assert.ok((rows[0]!.tokens as string[]).length > 0);
});

test('bad input: a malformed URL line, a missing CSV column, an unwritable output -> one line with file:line, exit 2', async () => {
  const dir = scratchDir();
  const urls = join(dir, 'urls.txt');
  writeFileSync(urls, 'http://127.0.0.1:9/a.html\nnot a url\n');
  const a = await runAtelier(['crawl-tokenize', '--url-file', urls, '--images', join(dir, 'img')]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, new RegExp(`^atelier crawl-tokenize: ${urls.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: not an absolute http\\(s\\) URL`));
  assert.equal(a.stderr.trim().split('\n').length, 1);

  const b = await runAtelier(['crawl-tokenize', '--import', join(fixture, 'products.csv'), '--title-field', 'name']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /products\.csv:2: name: no such column/);
  assert.equal(b.stderr.trim().split('\n').length, 1);

  const c = await runAtelier(['crawl-tokenize', '--import', join(fixture, 'products.csv'), '-o', join(dir, 'missing', 'out.ndjson')]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /missing\/out\.ndjson/);
  assert.equal(c.stderr.trim().split('\n').length, 1);

  const d = await runAtelier(['crawl-tokenize', 'http://127.0.0.1:9/']);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /--images: required/);
});
