// Real product pages: the 100 Myntra products of ../shared/data/fashion-product-images-hires are
// served on 127.0.0.1 as product pages built from their JSON (JSON-LD with the HTML description,
// the description again as HTML in the body, the full-resolution photo), crawled through the
// sitemap, and their titles and descriptions must come back. Skips when the data is absent.
import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';

const DATA = process.env.ATELIER_REAL_DATA ?? join(repoRoot, '..', 'shared', 'data');
const HIRES = join(DATA, 'fashion-product-images-hires');
const skip = existsSync(join(HIRES, 'styles')) ? false : `real data absent: no ${join(HIRES, 'styles')}`;

interface Product {
  id: string;
  title: string;
  descriptionHtml: string;
  category: string;
}

let server: Server;
let origin: string;
const products: Product[] = [];

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** The words of an HTML fragment, as plain lowercase text (our own stripping, independent of the crawler's). */
const plainWords = (html: string) => html.replace(/<[^>]*>/g, ' ').replace(/&nbsp;/g, ' ').replace(/&[a-z]+;/g, ' ').toLowerCase().split(/[^a-z]+/).filter((w) => w.length > 3);

function page(p: Product): string {
  const jsonLd = JSON.stringify({ '@context': 'https://schema.org', '@type': 'Product', sku: p.id, name: p.title, description: p.descriptionHtml, category: p.category, image: `/img/${p.id}.jpg` });
  return `<!doctype html><html><head><title>${escapeHtml(p.title)} | Myntra</title>
<script type="application/ld+json">${jsonLd.replace(/</g, '\\u003c')}</script></head>
<body><h1>${escapeHtml(p.title)}</h1><div class="description">${p.descriptionHtml}</div><img src="/img/${p.id}.jpg"></body></html>`;
}

beforeAll(() => {
  if (skip) return;
  for (const file of readdirSync(join(HIRES, 'styles')).filter((f) => f.endsWith('.json')).sort()) {
    const json = JSON.parse(readFileSync(join(HIRES, 'styles', file), 'utf8'));
    const data = json.data ?? json;
    products.push({ id: String(data.id), title: String(data.productDisplayName), descriptionHtml: String(data.productDescriptors?.description?.value ?? ''), category: String(data.articleType?.typeName ?? data.articleType ?? '') });
  }
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    const product = /^\/p\/(\d+)\.html$/.exec(url);
    const image = /^\/img\/(\d+)\.jpg$/.exec(url);
    if (url === '/robots.txt') res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\nAllow: /\n');
    else if (url === '/sitemap.xml') {
      const urls = products.map((p) => `<url><loc>${origin}/p/${p.id}.html</loc></url>`).join('');
      res.writeHead(200, { 'content-type': 'application/xml' }).end(`<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${urls}</urlset>`);
    } else if (product && products.some((p) => p.id === product[1])) res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(products.find((p) => p.id === product[1])!));
    else if (image && existsSync(join(HIRES, 'images', `${image[1]}.jpg`))) res.writeHead(200, { 'content-type': 'image/jpeg' }).end(readFileSync(join(HIRES, 'images', `${image[1]}.jpg`)));
    else res.writeHead(404).end('not found');
  });
  return new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => {
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    resolve();
  }));
});

afterAll(() => {
  server?.close();
});

test('the 100 Myntra hi-res products crawled from real product JSON: titles and HTML descriptions round-trip, photos stored', async (ctx) => {
  if (skip) ctx.skip(String(skip));
  const dir = scratchDir('atelier-hires-');
  const out = join(dir, 'samples.ndjson');
  const r = await runAtelier(['crawl-tokenize', '--sitemap', `${origin}/sitemap.xml`, '--host-delay', '0', '--images', join(dir, 'images'), '-o', out, '--vocab', join(dir, 'vocab.ndjson')], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr);
  const records = parseNdjson(readFileSync(out, 'utf8'));
  // Several products share a title, so records are matched by the page they came from.
  const byPage = new Map(records.map((rec) => [/\/p\/(\d+)\.html/.exec(String(rec.source))?.[1], rec]));
  assert.equal(products.length, 100);
  let descriptionsChecked = 0;
  for (const p of products) {
    const rec = byPage.get(p.id);
    assert.ok(rec, `product ${p.id} came back`);
    assert.equal(rec.title, p.title, `product ${p.id}: title`);
    assert.ok(rec.sha256 && existsSync(String(rec.image)), `product ${p.id} has its photo stored`);
    const expected = plainWords(p.descriptionHtml);
    if (expected.length === 0) continue;
    const got = new Set(plainWords(String(rec.description ?? '')));
    const kept = expected.filter((w) => got.has(w)).length / expected.length;
    assert.ok(kept > 0.95, `product ${p.id}: ${(kept * 100).toFixed(1)}% of the description's words came back`);
    assert.ok(!/<[a-z][^>]*>/i.test(String(rec.description)), `product ${p.id}: no HTML tags left in the description`);
    descriptionsChecked++;
  }
  assert.ok(descriptionsChecked >= 90, `${descriptionsChecked} descriptions checked`);
});
