// The fixture catalogue generator: byte-identical output per seed, the factors it promises, and the
// fixture server's broken cases.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import sharp from 'sharp';
import { generateFixtures } from '../../fixtures/lib/catalogue.js';
import { BASE_RETURN_RATE, COLOURS, COLOUR_WORDS, LANGS, SHOPS, type Colour, type Lang, type Silhouette } from '../../fixtures/lib/factors.js';
import { startFixtureServer, type FixtureServer } from '../../fixtures/lib/serve.js';
import type { SiteManifest } from '../../fixtures/lib/site.js';
import { parseNdjson, repoRoot, scratchDir } from '../helpers.js';

const PRODUCTS = 60;
const scratch = scratchDir('atelier-fixtures-');
const dirA = join(scratch, 'a');
const dirB = join(scratch, 'b');
const dirC = join(scratch, 'c');

interface TruthView {
  id: string;
  image: string;
  url: string;
  view: number;
  split: 'train' | 'query' | 'gallery';
  flip: boolean;
}
interface Truth {
  id: string;
  item: string;
  silhouette: Silhouette;
  colour: Colour;
  pattern: string;
  slim_cut: boolean;
  shop: string;
  template: string;
  lang: Lang;
  title: string;
  test_item: boolean;
  new_article: boolean;
  private: boolean;
  page: string;
  entry: string;
  roles: string[];
  views: TruthView[];
  large: Array<{ image: string; url: string }>;
  sales: { n: number; k: number; start: string; end: string } | null;
}

function runNode(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stderr }));
  });
}

async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.set(relative(root, path), createHash('sha256').update(await readFile(path)).digest('hex'));
    }
  };
  await walk(root);
  return out;
}

async function readNdjson<T>(path: string): Promise<T[]> {
  return parseNdjson(await readFile(path, 'utf8')) as T[];
}

/** Pixels of the slim-cut mark's cyan fill (no garment colour, alone or blended with its pattern, gets there). */
function cyanPixels(rgb: Buffer): number {
  let count = 0;
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i]!;
    const g = rgb[i + 1]!;
    const b = rgb[i + 2]!;
    if (g > 110 && b > 110 && g > 2 * r + 40 && b > 2 * r + 40) count++;
  }
  return count;
}

let truth: Truth[] = [];

beforeAll(async () => {
  const cli = await runNode(['dist/fixtures/generate.js', '--seed', '11', '--products', String(PRODUCTS), '--out', dirA]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /^generate: 60 products, \d+ views/);
  await generateFixtures({ seed: 11, products: PRODUCTS, out: dirB });
  await generateFixtures({ seed: 12, products: PRODUCTS, out: dirC });
  truth = await readNdjson<Truth>(join(dirA, 'truth.ndjson'));
});

test('the same seed gives byte-identical files, from the CLI and from the library', async () => {
  const a = await hashTree(dirA);
  const b = await hashTree(dirB);
  assert.ok(a.size > 250, `only ${a.size} files`);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [path, hash] of a) assert.equal(b.get(path), hash, path);
});

test('a different seed gives a different catalogue', async () => {
  const a = await hashTree(dirA);
  const c = await hashTree(dirC);
  assert.notEqual(a.get('truth.ndjson'), c.get('truth.ndjson'));
  const shared = [...a.keys()].filter((p) => p.startsWith(join('site', 'images', 'p')) && c.has(p));
  const same = shared.filter((p) => a.get(p) === c.get(p));
  assert.ok(shared.length > 100);
  assert.equal(same.length, 0, `identical images across seeds: ${same.slice(0, 3).join(', ')}`);
});

test('ground truth, manifest and image list agree; one silhouette and one pattern are rare', async () => {
  const manifest = JSON.parse(await readFile(join(dirA, 'manifest.json'), 'utf8'));
  assert.equal(truth.length, PRODUCTS);
  assert.equal(manifest.products, PRODUCTS);
  const ids = new Set(truth.map((t) => t.id));
  assert.equal(ids.size, PRODUCTS);
  for (const t of truth) {
    assert.ok(t.views.length >= 2 && t.views.length <= 4, `${t.id} has ${t.views.length} views`);
    assert.deepEqual(
      t.views.map((v) => v.view),
      t.views.map((_, i) => i + 1),
    );
  }
  const views = truth.reduce((s, t) => s + t.views.length, 0);
  assert.equal(manifest.views, views);
  const images = await readNdjson<{ id: string; product: string; image: string; silhouette: string; slim_cut: boolean }>(join(dirA, 'images.ndjson'));
  assert.equal(images.length, views);
  for (const img of images) {
    const t = truth.find((x) => x.id === img.product)!;
    assert.equal(img.silhouette, t.silhouette);
    assert.equal(img.slim_cut, t.slim_cut);
  }
  const count = (key: 'silhouette' | 'pattern' | 'colour', value: string): number => truth.filter((t) => t[key] === value).length;
  assert.deepEqual(manifest.counts.silhouette.bag, count('silhouette', 'bag'));
  assert.ok(count('silhouette', 'bag') >= 2 && count('silhouette', 'bag') <= 0.08 * PRODUCTS, 'bag is the rare silhouette');
  assert.ok(count('pattern', 'checks') >= 2 && count('pattern', 'checks') <= 0.08 * PRODUCTS, 'checks is the rare pattern');
  assert.ok(count('silhouette', 'dress') >= 3 * count('silhouette', 'bag'));
  for (const colour of COLOURS) assert.ok(count('colour', colour) >= 5, colour);
  const slim = truth.filter((t) => t.slim_cut).length;
  assert.ok(slim >= 0.2 * PRODUCTS && slim <= 0.4 * PRODUCTS);
  assert.ok(truth.filter((t) => t.large.length > 0).length >= 3);
});

test('views are 64x64 RGB JPEGs, larger versions 400x533, all decodable', async () => {
  for (const t of truth) {
    for (const v of t.views) {
      const meta = await sharp(join(dirA, v.image)).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.equal(meta.width, 64, v.image);
      assert.equal(meta.height, 64, v.image);
      assert.equal(meta.channels, 3);
    }
    for (const l of t.large) {
      const { info } = await sharp(join(dirA, l.image)).raw().toBuffer({ resolveWithObject: true });
      assert.equal(info.width, 400);
      assert.equal(info.height, 533);
    }
  }
});

test('the slim-cut mark is drawn on every view of slim-cut items and nowhere else', async () => {
  for (const t of truth) {
    for (const v of t.views) {
      const rgb = await sharp(join(dirA, v.image)).raw().toBuffer();
      const cyan = cyanPixels(rgb);
      if (t.slim_cut) assert.ok(cyan >= 3, `${v.image}: mark missing (${cyan} px)`);
      else assert.equal(cyan, 0, `${v.image}: mark-coloured pixels on an item without the mark`);
    }
  }
});

test('the colour factor shows in the pixels: red items are redder than blue ones', async () => {
  const redness = async (colour: Colour): Promise<number> => {
    let sum = 0;
    let n = 0;
    for (const t of truth.filter((x) => x.colour === colour)) {
      const rgb = await sharp(join(dirA, t.views[0]!.image)).raw().toBuffer();
      for (let i = 0; i < rgb.length; i += 3) sum += rgb[i]! - rgb[i + 2]!;
      n += rgb.length / 3;
    }
    return sum / n;
  };
  assert.ok((await redness('red')) > (await redness('blue')) + 20);
});

test('views of an item differ (crop, scale, flip, brightness) yet are the same item', async () => {
  let differing = 0;
  for (const t of truth) {
    const hashes = new Set<string>();
    for (const v of t.views) hashes.add(createHash('sha256').update(await readFile(join(dirA, v.image))).digest('hex'));
    if (hashes.size === t.views.length) differing++;
  }
  assert.equal(differing, PRODUCTS);
  const flips = truth.flatMap((t) => t.views.map((v) => v.flip));
  assert.ok(flips.includes(true) && flips.includes(false));
});

test('In-Shop partition: count line, header, query and gallery views for test items, train for the rest', async () => {
  const lines = (await readFile(join(dirA, 'list_eval_partition.txt'), 'utf8')).trimEnd().split('\n');
  const rows = lines.slice(2).map((l) => l.trim().split(/\s+/));
  assert.equal(Number(lines[0]), rows.length);
  assert.equal(lines[1], 'image_name item_id evaluation_status');
  const byItem = new Map<string, string[]>();
  for (const [name, item, split] of rows) {
    assert.ok(['train', 'query', 'gallery'].includes(split!), split);
    await stat(join(dirA, name!));
    byItem.set(item!, [...(byItem.get(item!) ?? []), split!]);
  }
  for (const t of truth) {
    const splits = byItem.get(t.item)!;
    assert.equal(splits.length, t.views.length);
    if (t.test_item) {
      assert.ok(splits.includes('query') && splits.includes('gallery'), `${t.item}: ${splits}`);
      assert.ok(!splits.includes('train'));
    } else assert.ok(splits.every((s) => s === 'train'));
  }
  assert.ok(truth.some((t) => t.test_item) && truth.some((t) => !t.test_item));
  const nd = await readNdjson<{ id: string; item: string; split: string; image: string }>(join(dirA, 'list_eval_partition.ndjson'));
  assert.deepEqual(
    nd.map((r) => [r.image, r.item, r.split]),
    rows,
  );
});

test('sales: the event file adds up to the article file, dates fall in the sales period', async () => {
  const articles = await readNdjson<{ id: string; category: string; n: number; k: number; start: string; end: string }>(join(dirA, 'sales', 'articles.ndjson'));
  const events = await readNdjson<{ article: string; category: string; date: string; returned_for_size: boolean }>(join(dirA, 'sales', 'events.ndjson'));
  const byId = new Map(articles.map((a) => [a.id, { ...a, seenN: 0, seenK: 0 }]));
  let lastDate = '';
  for (const e of events) {
    const a = byId.get(e.article)!;
    assert.ok(a, e.article);
    assert.equal(e.category, a.category);
    assert.ok(e.date >= a.start && e.date <= a.end, `${e.article} sold ${e.date} outside ${a.start}..${a.end}`);
    assert.ok(e.date >= lastDate, 'events are in date order');
    lastDate = e.date;
    a.seenN += 1;
    if (e.returned_for_size) a.seenK += 1;
  }
  for (const a of byId.values()) {
    assert.equal(a.seenN, a.n, a.id);
    assert.equal(a.seenK, a.k, a.id);
    assert.ok(a.k <= a.n && a.n > 0);
  }
  for (const t of truth) {
    assert.equal(byId.has(t.id), !t.new_article, t.id);
    if (t.sales) assert.equal(t.sales.n, byId.get(t.id)!.n);
  }
  assert.ok(truth.some((t) => t.new_article));
  const csv = parseCsv(await readFile(join(dirA, 'sales', 'articles.csv')), { columns: true }) as Array<Record<string, string>>;
  assert.deepEqual(
    csv.map((r) => [r.id, r.category, Number(r.n), Number(r.k), r.start, r.end]),
    articles.map((a) => [a.id, a.category, a.n, a.k, a.start, a.end]),
  );
  const eventsCsv = parseCsv(await readFile(join(dirA, 'sales', 'events.csv')), { columns: true }) as Array<Record<string, string>>;
  assert.equal(eventsCsv.length, events.length);
  assert.equal(eventsCsv[0]!.returned_for_size, String(events[0]!.returned_for_size));
});

test('slim cut raises the size-return rate well above its category base rate; shoes return more than t-shirts', () => {
  const pooled = (pick: (t: Truth) => boolean): number => {
    let k = 0;
    let expected = 0;
    for (const t of truth.filter((x) => x.sales && pick(x))) {
      k += t.sales!.k;
      expected += t.sales!.n * BASE_RETURN_RATE[t.silhouette];
    }
    return k / expected;
  };
  const slim = pooled((t) => t.slim_cut);
  const regular = pooled((t) => !t.slim_cut);
  assert.ok(slim > 1.6 * regular, `slim ${slim.toFixed(2)} vs regular ${regular.toFixed(2)} times the base rate`);
  const rate = (s: Silhouette): number => {
    const ts = truth.filter((t) => t.sales && t.silhouette === s && !t.slim_cut);
    return ts.reduce((a, t) => a + t.sales!.k, 0) / ts.reduce((a, t) => a + t.sales!.n, 0);
  };
  assert.ok(rate('shoe') > 2 * rate('t-shirt'), `shoe ${rate('shoe')} t-shirt ${rate('t-shirt')}`);
});

test('text: EN/FR/IT, colour words as weak labels with words dropped, shop names as noise', async () => {
  const products = await readNdjson<{ id: string; title: string; description: string; lang: Lang; shop: string; images: string[] }>(join(dirA, 'products.ndjson'));
  assert.equal(products.length, PRODUCTS);
  for (const lang of LANGS) assert.ok(products.some((p) => p.lang === lang), lang);
  const t = new Map(truth.map((x) => [x.id, x]));
  const mentions = (p: (typeof products)[number], text: string): boolean =>
    COLOUR_WORDS[t.get(p.id)!.colour][p.lang].some((w) => new RegExp(`(^|[^\\p{L}])${w}([^\\p{L}]|$)`, 'iu').test(text));
  const named = products.filter((p) => mentions(p, `${p.title} ${p.description}`)).length;
  const titled = products.filter((p) => mentions(p, p.title)).length;
  assert.ok(named >= 0.6 * PRODUCTS, `colour named in ${named} products`);
  assert.ok(titled < PRODUCTS, 'some titles drop the colour word');
  for (const shop of SHOPS) {
    const own = products.filter((p) => p.shop === shop.slug);
    const withName = own.filter((p) => `${p.title} ${p.description}`.includes(shop.name)).length;
    assert.ok(withName >= 0.7 * own.length, `${shop.name} named in ${withName}/${own.length}`);
  }
  const all = products.map((p) => `${p.title} ${p.description}`).join(' ');
  assert.match(all, /\b\d+ cm\b/);
  assert.match(all, /<p>/);
  for (const p of products) for (const img of p.images) await stat(join(dirA, img));
});

test('products.csv is the same catalogue as products.ndjson (BOM, CRLF, quoted HTML)', async () => {
  const raw = await readFile(join(dirA, 'products.csv'));
  assert.deepEqual([...raw.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  assert.ok(raw.includes('\r\n'));
  const rows = parseCsv(raw, { columns: true, bom: true }) as Array<Record<string, string>>;
  const products = await readNdjson<{ id: string; title: string; description: string; images: string[] }>(join(dirA, 'products.ndjson'));
  assert.equal(rows.length, products.length);
  rows.forEach((r, i) => {
    const p = products[i]!;
    assert.equal(r.product_id, p.id);
    assert.equal(r.title, p.title);
    assert.equal(r.description_html, p.description);
    assert.deepEqual(r.images!.split('|'), p.images);
  });
});

test('corrupt images are listed and none of them decodes', async () => {
  const corrupt = await readNdjson<{ path: string; kind: string }>(join(dirA, 'corrupt.ndjson'));
  const kinds = corrupt.map((c) => c.kind);
  for (const k of ['truncated-jpeg', 'zero-bytes', 'text-named-jpg']) assert.ok(kinds.includes(k), k);
  for (const c of corrupt) {
    await stat(join(dirA, c.path));
    await assert.rejects(sharp(join(dirA, c.path)).raw().toBuffer(), `${c.path} decoded`);
  }
});

test('site: three templates, sitemap and robots cover every product page', async () => {
  const site = join(dirA, 'site');
  const manifest = JSON.parse(await readFile(join(site, '_fixture.json'), 'utf8')) as SiteManifest;
  const seen = { product: 0, graph: 0, opengraph: 0, bare: 0 };
  for (const t of truth) {
    const html = await readFile(join(site, t.page), 'utf8');
    const images = t.views.length + t.large.length + (t.roles.some((r) => ['truncatedImage', 'htmlAsImage', 'textAsJpeg'].includes(r)) ? 1 : 0);
    assert.ok(html.includes('<title>') && html.includes('<h1'), t.page);
    if (t.template === 'jsonld') {
      const script = /<script type="application\/ld\+json">([\s\S]*?)<\/script>/.exec(html)![1]!;
      const data = JSON.parse(script);
      const product = data['@graph'] ? data['@graph'].find((n: { '@type': string }) => n['@type'] === 'Product') : data;
      if (data['@graph']) seen.graph++;
      else seen.product++;
      assert.equal(product.name, t.title);
      assert.equal(product.image.length, images);
    } else if (t.template === 'opengraph') {
      seen.opengraph++;
      assert.equal(html.match(/<meta property="og:image"/g)!.length, images);
      assert.equal(html.match(/itemprop="image"/g)!.length, images);
      assert.ok(!html.includes('application/ld+json'));
    } else {
      seen.bare++;
      assert.match(html, /<meta name="description" content="/);
      assert.equal(html.match(/<img /g)!.length, images);
      assert.ok(!html.includes('og:') && !html.includes('itemprop') && !html.includes('ld+json'));
    }
    for (const v of t.views) await stat(join(site, v.url));
    assert.equal(t.private, t.page.startsWith('/private/'));
  }
  assert.ok(seen.product > 0 && seen.graph > 0 && seen.opengraph > 0 && seen.bare > 0, JSON.stringify(seen));
  const sitemap = await readFile(join(site, 'sitemap.xml'), 'utf8');
  for (const t of truth) assert.ok(sitemap.includes(`<loc>http://127.0.0.1:0${t.entry}</loc>`), t.entry);
  const robots = await readFile(join(site, 'robots.txt'), 'utf8');
  assert.match(robots, /^Disallow: \/private\/$/m);
  assert.match(robots, /^Crawl-delay: [\d.]+$/m);
  assert.ok(manifest.disallowedPages.length >= 2);
  assert.equal(manifest.disallowedPages.length, truth.filter((t) => t.private).length);
});

test('fixture server: real origin substituted and every broken case answers as documented', async () => {
  const server: FixtureServer = await startFixtureServer(join(dirA, 'site'), { slowMs: 300, hugeBytes: 1 << 20, crawlDelay: 0.5 });
  try {
    const m = server.manifest;
    const get = (path: string, init: RequestInit = {}): Promise<Response> => fetch(server.origin + path, { redirect: 'manual', ...init });

    const sitemap = await (await get('/sitemap.xml')).text();
    assert.ok(sitemap.includes(`<loc>${server.url}index.html</loc>`));
    assert.ok(!sitemap.includes('127.0.0.1:0/'));
    const robots = await (await get('/robots.txt')).text();
    assert.match(robots, /^Crawl-delay: 0\.5$/m);
    assert.ok(robots.includes(`Sitemap: ${server.url}sitemap.xml`));

    const page = truth.find((t) => !t.private && t.roles.length === 0)!;
    const ok = await get(page.page);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type')!, /^text\/html/);
    assert.ok((await ok.text()).includes(server.url));

    assert.equal((await get(m.missing[0]!)).status, 404);
    assert.equal((await get('/_fixture.json')).status, 404);

    const flaky = m.fail500Once[0]!;
    assert.equal((await get(flaky)).status, 500);
    assert.equal((await get(flaky)).status, 200);

    const throttled = m.tooManyRequestsOnce[0]!.path;
    const first = await get(throttled);
    assert.equal(first.status, 429);
    assert.equal(first.headers.get('retry-after'), '1');
    assert.equal((await get(throttled)).status, 200);

    let url = m.redirectChain.start;
    const statuses: number[] = [];
    for (let hop = 0; hop < 5; hop++) {
      const res = await get(url);
      statuses.push(res.status);
      if (res.status < 300 || res.status >= 400) break;
      url = new URL(res.headers.get('location')!, server.origin + url).pathname;
    }
    assert.deepEqual(statuses, [301, 302, 307, 200]);
    assert.equal(url, m.redirectChain.target);

    const loopA = await get(m.redirectLoop.start);
    const loopB = await get(new URL(loopA.headers.get('location')!, server.origin).pathname);
    assert.equal(new URL(loopB.headers.get('location')!, server.origin).pathname, m.redirectLoop.start);

    const truncated = await get(m.brokenImages.truncated);
    assert.equal(truncated.status, 200);
    assert.equal(truncated.headers.get('content-type'), 'image/jpeg');
    await assert.rejects(sharp(Buffer.from(await truncated.arrayBuffer())).raw().toBuffer());
    const htmlImage = await get(m.brokenImages.htmlAsImage);
    assert.match(htmlImage.headers.get('content-type')!, /^text\/html/);
    const textImage = await get(m.brokenImages.textAsJpeg);
    assert.equal(textImage.headers.get('content-type'), 'image/jpeg');
    await assert.rejects(sharp(Buffer.from(await textImage.arrayBuffer())).raw().toBuffer());

    const noindex = await get(m.noImageIndex[0]!);
    assert.equal(noindex.headers.get('x-robots-tag'), 'noimageindex');
    const plainImage = await get(page.views[0]!.url);
    assert.equal(plainImage.headers.get('x-robots-tag'), null);
    assert.equal((await sharp(Buffer.from(await plainImage.arrayBuffer())).metadata()).width, 64);

    const t0 = performance.now();
    assert.equal((await get(m.slow[0]!)).status, 200);
    assert.ok(performance.now() - t0 >= 250);
    const huge = await get(m.huge[0]!);
    assert.ok((await huge.arrayBuffer()).byteLength >= 1 << 20);

    assert.equal(server.hits(flaky), 2);
    assert.ok(server.requests.some((r) => r.path === m.missing[0] && r.status === 404));
    assert.equal(server.requests.filter((r) => r.path.startsWith('/private/')).length, 0);
  } finally {
    await server.close();
  }
});

test('each server has its own state: a new server fails the flaky page once again', async () => {
  const manifest = JSON.parse(await readFile(join(dirA, 'site', '_fixture.json'), 'utf8')) as SiteManifest;
  for (let i = 0; i < 2; i++) {
    const server = await startFixtureServer(join(dirA, 'site'));
    try {
      assert.equal((await fetch(server.origin + manifest.fail500Once[0]!)).status, 500);
    } finally {
      await server.close();
    }
  }
});

test('generate: bad options exit 2 with one line; a foreign directory is never replaced', async () => {
  const few = await runNode(['dist/fixtures/generate.js', '--products', '5', '--out', join(scratch, 'few')]);
  assert.equal(few.code, 2);
  assert.match(few.stderr, /^generate: --products must be an integer/);
  const noOut = await runNode(['dist/fixtures/generate.js', '--seed', '1']);
  assert.equal(noOut.code, 2);
  const foreign = join(scratch, 'foreign');
  await mkdir(foreign);
  await writeFile(join(foreign, 'keep.txt'), 'mine\n');
  const refused = await runNode(['dist/fixtures/generate.js', '--products', '20', '--out', foreign]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /refusing to replace/);
  assert.equal(await readFile(join(foreign, 'keep.txt'), 'utf8'), 'mine\n');
  assert.deepEqual(await readdir(scratch).then((names) => names.filter((n) => n.includes('.tmp-'))), []);
});

test('regenerating over an earlier catalogue replaces it whole', async () => {
  await writeFile(join(dirB, 'stale.txt'), 'left over\n');
  await generateFixtures({ seed: 11, products: PRODUCTS, out: dirB });
  const a = await hashTree(dirA);
  const b = await hashTree(dirB);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
});

