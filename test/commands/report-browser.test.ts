// Opens a report built from fixture outputs in a real browser (Debian's chromium, headless, driven
// by playwright-core): the sections and images are there, the tables sort, and no request leaves
// the report directory. Skips, saying why, where /usr/bin/chromium is not installed.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { makeReportInputs } from './report-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); the browser test of the report is skipped`;

/** Opens a built report's index.html in headless chromium, runs `check` on the loaded page, closes the browser. */
async function withReportPage(reportDir: string, check: (page: import('playwright-core').Page) => Promise<void>): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(pathToFileURL(join(reportDir, 'index.html')).href, { waitUntil: 'load' });
    await check(page);
  } finally {
    await browser.close();
  }
}

test('the report works in headless chromium: sections, images, sorting, no outside requests', { timeout: 120_000 }, async (t) => {
  if (missing) t.skip(String(missing));
  const dir = scratchDir('atelier-report-browser-');
  const inputs = await makeReportInputs(dir, 240);
  const out = join(dir, 'report');
  const built = await runAtelier([
    'report', '-o', out, '--classifier', inputs.classifier, '--false-negatives', inputs.falseNegatives, '--per-class', '4',
    '--retrieval', inputs.retrieval, '--knn', inputs.knn, '--images', inputs.images, '--examples', '3', '--top', '5',
    '--train-log', inputs.trainLog, '--rise', inputs.rise, '--tsne', inputs.tsne, '--tsne-max', '120',
  ]);
  assert.equal(built.code, 0, built.stderr);

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const reportUrl = pathToFileURL(out).href + '/';
    const requests: string[] = [];
    const outside: string[] = [];
    // Every request is seen here; one that is not a file inside the report directory is refused and recorded.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      requests.push(url);
      if (url.startsWith(reportUrl) || url.startsWith('data:')) return route.continue();
      outside.push(url);
      return route.abort();
    });
    page.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith(reportUrl) && !url.startsWith('data:') && !outside.includes(url)) outside.push(url);
    });
    // The page's Content-Security-Policy blocks outside URLs before any request: count those attempts too.
    await page.addInitScript(() => {
      const w = window as unknown as { cspViolations: string[] };
      w.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(reportUrl + 'index.html', { waitUntil: 'load' });

    const sections = await page.$$eval('section.report-section', (nodes) => nodes.map((n) => n.id));
    assert.deepEqual(sections, ['classification', 'false-negatives', 'retrieval', 'training', 'rise', 'tsne']);
    const navLinks = await page.$$eval('nav a', (links) => links.map((a) => a.getAttribute('href')));
    assert.deepEqual(navLinks, sections.map((s) => `#${s}`));

    // Images are lazy: scroll through the page so that every one loads, then count the loaded ones.
    const height = await page.evaluate(() => document.body.scrollHeight);
    for (let y = 0; y <= height; y += 700) {
      await page.evaluate((top) => window.scrollTo(0, top), y);
      await page.waitForTimeout(30);
    }
    await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete), undefined, { timeout: 20_000 });
    const images = await page.$$eval('section.report-section', (nodes) =>
      Object.fromEntries(nodes.map((n) => [n.id, { all: n.querySelectorAll('img').length, loaded: Array.from(n.querySelectorAll('img')).filter((i) => i.naturalWidth > 0).length }])),
    );
    assert.equal(images.retrieval.all, 3 * 6);
    assert.equal(images.rise.all, 3 * 2);
    assert.equal(images.tsne.all, 120);
    assert.ok(images['false-negatives'].all > 0);
    for (const [id, n] of Object.entries(images)) assert.equal(n.loaded, n.all, `${id}: ${n.loaded} of ${n.all} images loaded`);
    const charts = await page.$$eval('svg', (svgs) => svgs.map((s) => s.getBoundingClientRect().width));
    assert.equal(charts.length, 3);
    assert.ok(charts.every((w) => w > 100));

    // Sorting: click F1 once (ascending), then again (descending); the confusion matrix sorts by a column too.
    const column = (table: string, index: number) => page.$$eval(`${table} tbody tr`, (rows, i) => rows.map((r) => (r as HTMLTableRowElement).cells[i].getAttribute('data-sort') ?? ''), index);
    const before = await column('#f1-table', 0);
    await page.click('#f1-table thead th:nth-child(4)');
    const ascending = (await column('#f1-table', 3)).map(Number);
    assert.deepEqual(ascending, [...ascending].sort((a, b) => a - b));
    assert.equal(await page.getAttribute('#f1-table thead th:nth-child(4)', 'aria-sort'), 'ascending');
    await page.click('#f1-table thead th:nth-child(4)');
    const descending = (await column('#f1-table', 3)).map(Number);
    assert.deepEqual(descending, [...descending].sort((a, b) => b - a));
    await page.click('#f1-table thead th:nth-child(1)');
    const byName = await column('#f1-table', 0);
    assert.deepEqual(byName, [...before].sort());
    await page.click('#confusion-matrix thead th:nth-child(2)');
    const firstColumn = (await column('#confusion-matrix', 1)).map(Number);
    assert.deepEqual(firstColumn, [...firstColumn].sort((a, b) => a - b));

    assert.deepEqual(pageErrors, []);
    assert.deepEqual(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations), []);
    assert.deepEqual(outside, [], `requests outside the report directory: ${outside.join(', ')}`);
    assert.ok(requests.some((u) => u.endsWith('.jpg')));

    // The screenshot outlives the scratch directory: it goes to $ATELIER_TEST_OUTPUT or <tmp>/atelier-test-output.
    const outputDir = process.env.ATELIER_TEST_OUTPUT ?? join(tmpdir(), 'atelier-test-output');
    mkdirSync(outputDir, { recursive: true });
    const screenshot = join(outputDir, 'report-screenshot.png');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: screenshot, fullPage: true });
    assert.ok(existsSync(screenshot));
    await t.annotate(`screenshot: ${screenshot}`);
  } finally {
    await browser.close();
  }
});

test('a demo-like report shows every false-negative picture: a catalogue of relative image paths, outputs elsewhere', { timeout: 240_000 }, async (t) => {
  const dir = scratchDir('atelier-report-demo-');
  const fixtures = await fixtureCatalogue();
  // As in make demo: the catalogue lists "site/images/..." relative to its own folder, and every output goes to another one.
  const catalogue = join(dir, 'catalogue');
  mkdirSync(catalogue);
  symlinkSync(join(fixtures, 'site'), join(catalogue, 'site'));
  const list = join(catalogue, 'images.ndjson');
  writeFileSync(list, readFileSync(join(fixtures, 'images.ndjson'), 'utf8').trim().split('\n').slice(0, 300).join('\n') + '\n');
  assert.match(readFileSync(list, 'utf8'), /"image":"site\//);
  const demo = join(dir, 'demo');
  mkdirSync(demo);
  const run = async (args: string[]) => {
    const r = await runAtelier(args);
    assert.equal(r.code, 0, `atelier ${args.join(' ')}:\n${r.stderr}`);
    return r;
  };
  await run(['embed', '-m', 'pixels', '-i', list, '-o', join(demo, 'pixels.npy')]);
  await run(['train-classifier', '-i', list, '-l', 'silhouette', '-f', join(demo, 'pixels.npy'), '--epochs', '5', '-o', join(demo, 'silhouette.model'), '--predictions', join(demo, 'predictions.ndjson')]);
  await run(['eval-classifier', '-p', join(demo, 'predictions.ndjson'), '--split', 'test', '--false-negatives', join(demo, 'false-negatives.ndjson'), '-o', join(demo, 'eval.json')]);
  const missed = parseNdjson(readFileSync(join(demo, 'false-negatives.ndjson'), 'utf8'));
  assert.ok(missed.length > 0, 'the raw-pixel head misses some test images');
  const out = join(demo, 'report');
  await run(['report', '-o', out, '--classifier', join(demo, 'eval.json'), '--false-negatives', join(demo, 'false-negatives.ndjson'), '--per-class', '100']);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.equal((html.match(/class="thumb missing"/g) ?? []).length, 0, 'no "no image" placeholder');
  assert.equal((html.match(/<figure class="card"><img /g) ?? []).length, missed.length, 'one picture per false negative');
  // A false-negatives file written before the fix carries the catalogue's relative paths: --images finds them by id.
  const older = join(demo, 'older-false-negatives.ndjson');
  const relativeById = new Map(parseNdjson(readFileSync(list, 'utf8')).map((r) => [r.id, r.image]));
  writeFileSync(older, missed.map((r) => JSON.stringify({ ...r, image: relativeById.get(r.id) })).join('\n') + '\n');
  const olderOut = join(demo, 'older-report');
  await run(['report', '-o', olderOut, '--classifier', join(demo, 'eval.json'), '--false-negatives', older, '--images', list, '--per-class', '100']);
  assert.equal((readFileSync(join(olderOut, 'index.html'), 'utf8').match(/class="thumb missing"/g) ?? []).length, 0, 'no placeholder with --images');
  if (missing) {
    await t.annotate(missing);
    return;
  }
  await withReportPage(out, async (page) => {
    const height = await page.evaluate(() => document.body.scrollHeight);
    for (let y = 0; y <= height; y += 700) {
      await page.evaluate((top) => window.scrollTo(0, top), y);
      await page.waitForTimeout(30);
    }
    await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete), undefined, { timeout: 20_000 });
    const shown = await page.$$eval('#false-negatives img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    assert.equal(shown.length, missed.length);
    assert.ok(shown.every((w) => w > 0), 'every false-negative picture loads');
    assert.equal(await page.locator('.missing').count(), 0, 'no placeholder on the page');
  });
});

test('located boxes are drawn over their photos at the place and size locate gave, square or not', { timeout: 120_000 }, async (t) => {
  const dir = scratchDir('atelier-report-boxes-');
  // A wide photo with a grey square at a known place, and a tall one: a box drawn in the wrong axis or scale shows here.
  const wide = join(dir, 'wide.png');
  const tall = join(dir, 'tall.png');
  await sharp({ create: { width: 200, height: 100, channels: 3, background: '#fff' } }).composite([{ input: { create: { width: 50, height: 50, channels: 3, background: '#888' } }, left: 120, top: 30 }]).png().toFile(wide);
  await sharp({ create: { width: 60, height: 180, channels: 3, background: '#fff' } }).png().toFile(tall);
  const truth = [
    { id: 'wide', image: wide, x: 120, y: 30, w: 50, h: 50, score: 0.93 },
    { id: 'tall', image: tall, x: 6, y: 90, w: 30, h: 72, score: 0.5 },
  ];
  const boxes = join(dir, 'boxes.ndjson');
  writeFileSync(boxes, truth.map((b) => JSON.stringify(b)).join('\n') + '\n');
  const out = join(dir, 'report');
  const built = await runAtelier(['report', '-o', out, '--boxes', boxes]);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stderr, /1 sections \(boxes\), 2 images/);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.match(html, /left:60\.00%;top:30\.00%;width:25\.00%;height:50\.00%/);
  if (missing) {
    await t.annotate(missing);
    return;
  }
  await withReportPage(out, async (page) => {
    await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete && img.naturalWidth > 0), undefined, { timeout: 20_000 });
    const drawn = await page.$$eval('#boxes figure.located', (figures) => figures.map((f) => {
      const img = f.querySelector('img')!.getBoundingClientRect();
      const box = f.querySelector('.located-box')!.getBoundingClientRect();
      return { id: f.querySelector('img')!.alt, img: [img.left, img.top, img.width, img.height], box: [box.left - img.left, box.top - img.top, box.width, box.height] };
    }));
    assert.equal(drawn.length, 2);
    const sizes: Record<string, [number, number]> = { wide: [200, 100], tall: [60, 180] };
    for (const d of drawn) {
      const b = truth.find((r) => r.id === d.id)!;
      const [width, height] = sizes[d.id];
      const scale = d.img[2] / width;
      assert.ok(Math.abs(d.img[3] / d.img[2] - height / width) < 0.02, `${d.id}: the photo keeps its aspect ratio (${d.img})`);
      const expected = [b.x * scale, b.y * scale, b.w * scale, b.h * scale];
      d.box.forEach((v, k) => assert.ok(Math.abs(v - expected[k]) <= 1.5, `${d.id}: box ${d.box} on the page, expected ${expected}`));
    }
    // The wide photo's grey square lies under its box: sample the screenshot inside the box and just outside it.
    const shot = await page.locator('#boxes figure.located').first().locator('img').screenshot();
    const { data, info } = await sharp(shot).raw().toBuffer({ resolveWithObject: true });
    const at = (fx: number, fy: number) => data[(Math.floor(fy * info.height) * info.width + Math.floor(fx * info.width)) * info.channels];
    assert.ok(at(0.725, 0.55) < 160 && at(0.5, 0.55) > 220, 'the grey square is inside the drawn box, white outside');
  });
});
