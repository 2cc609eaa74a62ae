// Crawl benchmark (issue 4): pages/s and RSS of `atelier crawl-tokenize` against a loopback shop at
// --concurrency 32 with per-host limits off, and the tokenizer's records/s on real catalogue text.
//
//   node dist/bench/crawl.js [--pages 20000] [--concurrency 32] [--images-per-page 1]
//     [--tokenize-repeats 3] [--skip-crawl] [--skip-tokenize] [--out bench/out/crawl.json]
//
// The shop is served by this same file run with --serve, in its own process (so the RSS sampled is
// the crawler's alone): /sitemap.xml lists /p/0 .. /p/<pages-1>; each page carries a JSON-LD Product
// (title, category, an HTML description) and <images-per-page> image URLs of its own, each answered
// with one of 16 small JPEGs (so every image is fetched and decoded; storage dedups by hash). Titles
// and descriptions come from ../shared/data/fashion-product-images-small/styles_full.csv and the
// hires product JSON when present, else generated words.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { bagOfWords, normalizeStopwords, productText } from '../src/lib/text/tokenize.js';
import { stopwordSet } from '../src/lib/text/stopwords.js';
import { createRandom } from '../src/lib/random.js';
import { MiB, flag, hasFlag, loadAverage, machineInfo, outDir, repoRoot, sampleMemory, writeResults } from './common.js';

const pages = Number(flag('pages', '20000'));
const concurrency = Number(flag('concurrency', '32'));
const imagesPerPage = Number(flag('images-per-page', '1'));
const tokenizeRepeats = Number(flag('tokenize-repeats', '3'));
const outFile = flag('out', join(outDir, 'crawl.json'));
const workDir = join(outDir, 'crawl');
const DATA = join(repoRoot, '..', 'shared', 'data');
const STYLES = join(DATA, 'fashion-product-images-small', 'styles_full.csv');
const HIRES = join(DATA, 'fashion-product-images-hires', 'styles');

interface Product {
  title: string;
  category: string;
  description: string;
}

/** Catalogue text: the real Myntra rows (titles, categories) with the hires HTML descriptions cycled in. */
function catalogue(): { products: Product[]; source: string } {
  if (existsSync(STYLES)) {
    const rows = parse(readFileSync(STYLES, 'utf8'), { columns: true, skip_empty_lines: true, relax_column_count: true }) as Array<Record<string, string>>;
    const descriptions: string[] = [];
    if (existsSync(HIRES)) {
      for (const file of readdirSync(HIRES).filter((f) => f.endsWith('.json')).sort()) {
        const json = JSON.parse(readFileSync(join(HIRES, file), 'utf8')) as { data?: { productDescriptors?: { description?: { value?: string } } } };
        const value = json.data?.productDescriptors?.description?.value;
        if (value) descriptions.push(value);
      }
    }
    const products = rows.map((r, i) => ({
      title: r.productDisplayName ?? '',
      category: [r.masterCategory, r.subCategory, r.articleType].filter(Boolean).join(' > '),
      description: descriptions.length ? descriptions[i % descriptions.length] : `<p>${r.baseColour ?? ''} ${r.usage ?? ''} ${r.season ?? ''}</p>`,
    }));
    return { products, source: `styles_full.csv (${rows.length} rows) + ${descriptions.length} hires HTML descriptions` };
  }
  const random = createRandom('crawl-bench-text');
  const words = ['cotton', 'shirt', 'blue', 'slim', 'fit', 'dress', 'linen', 'striped', 'jacket', 'denim', 'wool', 'black', 'floral', 'summer', 'casual', 'formal'];
  const pick = (count: number) => Array.from({ length: count }, () => words[Math.floor(random.next() * words.length)]).join(' ');
  const products = Array.from({ length: 10000 }, () => ({ title: pick(6), category: `Apparel > ${pick(1)}`, description: `<p><strong>${pick(3)}</strong><br/> ${pick(30)}</p>` }));
  return { products, source: 'generated words' };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** The shop server (runs in the --serve child): prints its origin on stdout, serves until killed. */
async function serve(): Promise<void> {
  const { products } = catalogue();
  const jpegs = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      sharp({ create: { width: 64, height: 80, channels: 3, background: { r: (i * 53) % 256, g: (i * 97) % 256, b: (i * 31) % 256 } } })
        .jpeg({ quality: 80 })
        .toBuffer(),
    ),
  );
  let sitemap = '';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/robots.txt') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('User-agent: *\nAllow: /\n');
      return;
    }
    if (path === '/sitemap.xml') {
      res.writeHead(200, { 'Content-Type': 'application/xml' }).end(sitemap);
      return;
    }
    let match = /^\/p\/(\d+)$/.exec(path);
    if (match) {
      const i = Number(match[1]);
      const product = products[i % products.length];
      const images = Array.from({ length: imagesPerPage }, (_, j) => `/img/${i}-${j}.jpg`);
      const ld = { '@context': 'https://schema.org', '@type': 'Product', name: product.title, category: product.category, description: product.description, image: images };
      const body = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(product.title)} | Bench Shop</title><script type="application/ld+json">${JSON.stringify(ld).replace(/</g, '\\u003c')}</script></head><body><nav><a href="/">Home</a> <a href="/c/1">Shirts</a></nav><h1>${escapeHtml(product.title)}</h1>${images.map((u) => `<img src="${u}" alt="">`).join('')}<div class="description">${product.description}</div><footer>Bench Shop, free returns</footer></body></html>`;
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
      return;
    }
    match = /^\/img\/(\d+)-(\d+)\.jpg$/.exec(path);
    if (match) {
      res.writeHead(200, { 'Content-Type': 'image/jpeg' }).end(jpegs[Number(match[1]) % jpegs.length]);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const urls: string[] = [];
  for (let i = 0; i < pages; i++) urls.push(`<url><loc>${origin}/p/${i}</loc></url>`);
  sitemap = `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${urls.join('')}</urlset>\n`;
  process.stdout.write(`${origin}\n`);
}

async function crawlRun(): Promise<Record<string, unknown>> {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  const server = spawn(process.execPath, [process.argv[1], '--serve', '--pages', String(pages), '--images-per-page', String(imagesPerPage)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const origin = await new Promise<string>((done, fail) => {
    const lines = createInterface({ input: server.stdout! });
    lines.once('line', done);
    server.once('exit', (code) => fail(new Error(`the shop server exited (${String(code)})`)));
  });
  const stats = join(workDir, 'stats.json');
  const args = [
    join(repoRoot, 'bin', 'atelier'), 'crawl-tokenize', '--sitemap', `${origin}/sitemap.xml`, '--images', join(workDir, 'images'), '-o', join(workDir, 'samples.ndjson'),
    '--stats', stats, '--max-pages', String(pages), '--concurrency', String(concurrency), '--per-host', '0', '--host-delay', '0',
  ];
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const sampler = sampleMemory(child.pid!, 250);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  const seconds = (performance.now() - started) / 1000;
  const { samples, peak } = sampler.stop();
  server.kill('SIGTERM');
  const runStats = existsSync(stats) ? (JSON.parse(readFileSync(stats, 'utf8')) as Record<string, unknown>) : null;
  const at = (share: number) => samples[Math.min(samples.length - 1, Math.floor(share * (samples.length - 1)))]?.rss ?? NaN;
  const records = existsSync(join(workDir, 'samples.ndjson')) ? readFileSync(join(workDir, 'samples.ndjson'), 'utf8').split('\n').filter(Boolean).length : 0;
  return {
    command: `node bin/atelier ${args.slice(1).map((a) => (a.startsWith(repoRoot) ? relative(repoRoot, a) : a)).join(' ')}`,
    exitCode: code,
    pages,
    imagesPerPage,
    concurrency,
    seconds,
    pagesPerSecond: pages / seconds,
    requestsPerSecond: (pages * (1 + imagesPerPage)) / seconds,
    records,
    rssMiB: { at10: MiB(at(0.1)), at25: MiB(at(0.25)), at50: MiB(at(0.5)), at75: MiB(at(0.75)), at95: MiB(at(0.95)), max: MiB(Math.max(...samples.map((s) => s.rss))), peak: MiB(peak) },
    rssSamples: samples.filter((_, i) => i % 4 === 0).map((s) => ({ t: s.t, MiB: MiB(s.rss) })),
    runStats: runStats ? { run: runStats.run, pages: runStats.pages, images: runStats.images } : null,
    stderrTail: stderr.trim().split('\n').slice(-3),
  };
}

function tokenizeRun(): Record<string, unknown> {
  const { products, source } = catalogue();
  const stopwords = normalizeStopwords(stopwordSet(['en', 'fr', 'it']));
  const options = { stopwords, minLength: 2 };
  const time = (fields: (p: Product) => string[]) => {
    let best = Infinity;
    let tokens = 0;
    for (let r = 0; r < tokenizeRepeats; r++) {
      const started = performance.now();
      tokens = 0;
      for (const p of products) tokens += bagOfWords(productText(fields(p)), options).length;
      best = Math.min(best, (performance.now() - started) / 1000);
    }
    return { records: products.length, seconds: best, recordsPerSecond: products.length / best, tokensPerRecord: tokens / products.length };
  };
  return {
    source,
    titleAndCategory: time((p) => [p.title, p.category]),
    withHtmlDescription: time((p) => [p.title, p.category, p.description]),
  };
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const results: Record<string, unknown> = {};
  if (!hasFlag('skip-tokenize')) {
    const t = tokenizeRun();
    results.tokenize = t;
    const a = t.titleAndCategory as { recordsPerSecond: number; records: number };
    const b = t.withHtmlDescription as { recordsPerSecond: number };
    console.log(`tokenize (${String(t.source)}): title+category ${Math.round(a.recordsPerSecond)} records/s; with the HTML description ${Math.round(b.recordsPerSecond)} records/s (${a.records} records, best of ${tokenizeRepeats})`);
  }
  if (!hasFlag('skip-crawl')) {
    const c = await crawlRun();
    results.crawl = c;
    const rss = c.rssMiB as Record<string, number>;
    console.log(`crawl ${pages} pages (+${imagesPerPage} image each), concurrency ${concurrency}, per-host off: ${(c.seconds as number).toFixed(1)} s, ${Math.round(c.pagesPerSecond as number)} pages/s (target >= 500), exit ${String(c.exitCode)}, ${String(c.records)} records`);
    console.log(`crawler RSS MiB at 10/25/50/75/95% of the run: ${rss.at10} / ${rss.at25} / ${rss.at50} / ${rss.at75} / ${rss.at95}; peak ${rss.peak}`);
    if (c.exitCode !== 0) console.log(String((c.stderrTail as string[]).join('\n')));
  }
  const loadAfter = loadAverage();
  writeResults(outFile, { machine: { ...machineInfo(), loadAverageBefore: loadBefore, loadAverageAfter: loadAfter }, command: `node dist/bench/crawl.js ${process.argv.slice(2).join(' ')}`.trim(), ...results });
  console.log(`load average before/after: ${loadBefore.join(' ')} / ${loadAfter.join(' ')}; JSON: ${relative(process.cwd(), outFile)}`);
}

if (hasFlag('serve')) await serve();
else await main();
