// Product extraction (JSON-LD incl. @graph and arrays, OpenGraph, microdata, fallbacks), robots
// directives, sitemaps and robots.txt parsing.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { decodeHtml, extractPage, parseRobotsDirectives, xRobotsDirectives } from '../../src/lib/http/extract.js';
import { parseSitemap, sitemapText } from '../../src/lib/http/sitemap.js';
import { parseRobots } from '../../src/lib/http/robots.js';

const PAGE = 'https://shop.test/p/42.html';

function page(head: string, body: string): string {
  return `<!doctype html><html><head><title>Page title | Shop</title>${head}</head><body>${body}</body></html>`;
}

function ld(value: unknown): string {
  return `<script type="application/ld+json">${JSON.stringify(value)}</script>`;
}

test('JSON-LD Product: name, HTML description as text, category, image list resolved', () => {
  const html = page(
    ld({ '@context': 'https://schema.org', '@type': 'Product', name: 'Robe &amp; ceinture', description: '<p>Robe <b>écru</b></p><p>en lin</p>', category: 'Robes', image: ['/img/1.jpg', 'https://cdn.test/2.jpg', '/img/1.jpg'] }),
    '<h1>Other</h1>',
  );
  const { product } = extractPage(html, PAGE);
  assert.ok(product);
  assert.equal(product.title, 'Robe & ceinture');
  assert.equal(product.description, 'Robe écru en lin');
  assert.equal(product.category, 'Robes');
  assert.deepEqual(product.images, ['https://shop.test/img/1.jpg', 'https://cdn.test/2.jpg']);
  assert.deepEqual(product.sources, { title: 'json-ld', category: 'json-ld', description: 'json-ld', images: 'json-ld' });
});

test('JSON-LD @graph with ImageObjects and a breadcrumb; broken JSON-LD blocks are skipped', () => {
  const html = page(
    '<script type="application/ld+json">{ not json </script>' +
      ld({
        '@context': 'https://schema.org',
        '@graph': [
          { '@type': 'WebSite', name: 'Shop' },
          { '@type': 'BreadcrumbList', itemListElement: [{ '@type': 'ListItem', position: 2, name: 'Skirts' }, { '@type': 'ListItem', position: 1, name: 'Women' }] },
          { '@type': ['Thing', 'Product'], name: 'Gonna blu', image: [{ '@type': 'ImageObject', url: 'a.jpg' }, { '@type': 'ImageObject', contentUrl: 'b.jpg' }] },
        ],
      }),
    '',
  );
  const { product } = extractPage(html, PAGE);
  assert.ok(product);
  assert.equal(product.title, 'Gonna blu');
  assert.equal(product.category, 'Women > Skirts');
  assert.deepEqual(product.images, ['https://shop.test/p/a.jpg', 'https://shop.test/p/b.jpg']);
});

test('JSON-LD top-level array and a Product nested in a page entity', () => {
  const html = page(ld([{ '@type': 'Organization', name: 'Shop' }, { '@type': 'ItemPage', mainEntity: { '@type': 'http://schema.org/Product', name: 'Nested', image: 'n.jpg' } }]), '');
  const { product } = extractPage(html, PAGE);
  assert.equal(product?.title, 'Nested');
  assert.deepEqual(product?.images, ['https://shop.test/p/n.jpg']);
});

test('OpenGraph product: og tags, several og:image; microdata fills the category', () => {
  const html = page(
    '<meta property="og:type" content="product"><meta property="og:title" content="Jupe rouge"><meta property="og:description" content="Jupe &eacute;cru">' +
      '<meta property="og:image" content="https://shop.test/1.jpg"><meta property="og:image" content="/2.jpg">',
    '<div itemscope itemtype="https://schema.org/Product"><span itemprop="category">Jupes</span></div>',
  );
  const { product } = extractPage(html, PAGE);
  assert.ok(product);
  assert.equal(product.title, 'Jupe rouge');
  assert.equal(product.description, 'Jupe écru');
  assert.equal(product.category, 'Jupes');
  assert.deepEqual(product.images, ['https://shop.test/1.jpg', 'https://shop.test/2.jpg']);
  assert.deepEqual(product.sources, { title: 'opengraph', category: 'microdata', description: 'opengraph', images: 'opengraph' });
});

test("microdata: the product's own itemprops, not those of a nested brand scope", () => {
  const html = page(
    '',
    `<div itemscope itemtype="http://schema.org/Product">
       <h1 itemprop="name">Trousers</h1>
       <div itemprop="brand" itemscope itemtype="http://schema.org/Brand"><span itemprop="name">Acme</span></div>
       <img itemprop="image" src="t1.jpg"><link itemprop="image" href="/t2.jpg">
       <div itemprop="description"><p>Wide <i>leg</i></p></div>
       <meta itemprop="category" content="Trousers &gt; Wide">
     </div>`,
  );
  const { product } = extractPage(html, PAGE);
  assert.ok(product);
  assert.equal(product.title, 'Trousers');
  assert.equal(product.description, 'Wide leg');
  assert.equal(product.category, 'Trousers > Wide');
  assert.deepEqual(product.images, ['https://shop.test/p/t1.jpg', 'https://shop.test/t2.jpg']);
});

test('fallback: h1, meta description and images outside links; <base href> respected', () => {
  const html = page(
    '<base href="https://static.test/x/"><meta name="description" content="A plain page">',
    '<header><img src="logo.png"></header><h1>Plain bag</h1><img src="bag1.jpg"><a href="/other"><img src="thumb.jpg"></a><img src="data:image/png;base64,AAAA">',
  );
  const { product } = extractPage(html, PAGE);
  assert.ok(product);
  assert.equal(product.title, 'Plain bag');
  assert.equal(product.description, 'A plain page');
  assert.equal(product.category, null);
  assert.deepEqual(product.images, ['https://static.test/x/bag1.jpg']);
  assert.equal(product.sources.title, 'fallback');
});

test('a listing page (thumbnails inside links, no structured data) is not a product; its links are', () => {
  const html = page('', '<h1>Dresses</h1><ul><li><a href="p/1.html#top"><img src="1.jpg"> One</a></li><li><a href="p/2.html" rel="nofollow">Two</a></li><li><a href="mailto:x@y">mail</a></li></ul>');
  const result = extractPage(html, 'https://shop.test/c/dresses.html');
  assert.equal(result.product, null);
  assert.deepEqual(result.links, ['https://shop.test/c/p/1.html']);
});

test('meta robots and X-Robots-Tag directives, including user-agent scoped ones', () => {
  const html = page('<meta name="robots" content="noindex, nofollow"><meta name="atelier-crawler" content="noimageindex">', '<a href="/x">x</a>');
  const result = extractPage(html, PAGE, 'atelier-crawler');
  assert.deepEqual(result.robots, { noindex: true, nofollow: true, noimageindex: true });
  assert.deepEqual(result.links, [], 'nofollow: no links');
  assert.deepEqual(parseRobotsDirectives('none'), { noindex: true, nofollow: true, noimageindex: false });
  assert.equal(xRobotsDirectives('noimageindex', 'atelier-crawler').noimageindex, true);
  assert.equal(xRobotsDirectives('googlebot: noimageindex', 'atelier-crawler').noimageindex, false);
  assert.equal(xRobotsDirectives('googlebot: noindex, atelier-crawler: noimageindex', 'atelier-crawler').noimageindex, true);
  assert.equal(xRobotsDirectives(undefined, 'atelier-crawler').noindex, false);
});

test('decodeHtml honours the charset of the header, then of <meta>', () => {
  const latin1 = Buffer.from('<meta charset="iso-8859-1"><p>\xe9cru</p>', 'latin1');
  assert.match(decodeHtml(latin1, 'text/html'), /écru/);
  assert.match(decodeHtml(Buffer.from('<p>\xe9cru</p>', 'latin1'), 'text/html; charset=windows-1252'), /écru/);
  assert.match(decodeHtml(Buffer.from('<p>écru</p>'), undefined), /écru/);
});

test('sitemaps: urlset, sitemap index, gzip, relative and duplicate locs', () => {
  const urlset = `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://shop.test/a.html</loc></url><url><loc> /b.html </loc></url><url><loc>https://shop.test/a.html</loc></url><url><loc>ftp://x/y</loc></url></urlset>`;
  assert.deepEqual(parseSitemap(urlset, 'https://shop.test/sitemap.xml'), { urls: ['https://shop.test/a.html', 'https://shop.test/b.html'], sitemaps: [] });
  const index = `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://shop.test/s1.xml</loc></sitemap><sitemap><loc>https://shop.test/s2.xml.gz</loc></sitemap></sitemapindex>`;
  assert.deepEqual(parseSitemap(index, 'https://shop.test/sitemap.xml').sitemaps, ['https://shop.test/s1.xml', 'https://shop.test/s2.xml.gz']);
  assert.equal(sitemapText(gzipSync(Buffer.from(urlset)), 1 << 20), urlset);
  assert.throws(() => sitemapText(gzipSync(Buffer.from(urlset)), 10));
});

test('robots.txt: our group by product token, Crawl-delay in ms (capped), sitemaps', () => {
  const text = 'User-agent: BadBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\nCrawl-delay: 2\nSitemap: https://shop.test/sitemap.xml\n';
  const rules = parseRobots('https://shop.test/robots.txt', text, 'atelier-crawler/0.1 (+https://x)', 60_000);
  assert.equal(rules.isAllowed('https://shop.test/p/1.html'), true);
  assert.equal(rules.isAllowed('https://shop.test/private/1.html'), false);
  assert.equal(rules.crawlDelayMs, 2000);
  assert.deepEqual(rules.sitemaps, ['https://shop.test/sitemap.xml']);
  assert.equal(parseRobots('https://shop.test/robots.txt', text, 'atelier-crawler', 500).crawlDelayMs, 500);
  const bad = parseRobots('https://shop.test/robots.txt', text, 'BadBot/2.0', 60_000);
  assert.equal(bad.isAllowed('https://shop.test/p/1.html'), false);
});
