// sitemap.xml (sitemaps.org protocol): a <urlset> of page URLs or a <sitemapindex> of further
// sitemaps; gzipped sitemaps are recognised by their magic bytes.
import { load } from 'cheerio/slim';
import { gunzipSync } from 'node:zlib';
import { resolveHttpUrl } from './extract.js';

/** The protocol's own cap on an uncompressed sitemap file. */
export const MAX_SITEMAP_BYTES = 50 * 1024 * 1024;

export interface ParsedSitemap {
  /** Page URLs of a <urlset>, in file order, each once. */
  urls: string[];
  /** Sitemap URLs of a <sitemapindex>, in file order, each once. */
  sitemaps: string[];
}

/** The text of a sitemap body, gunzipped when it is gzip (limited to maxBytes once inflated). */
export function sitemapText(body: Buffer, maxBytes: number): string {
  if (body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b) return gunzipSync(body, { maxOutputLength: maxBytes }).toString('utf8');
  return body.toString('utf8');
}

/** Parses a sitemap or sitemap index; relative or non-http <loc> values are resolved against `sitemapUrl` or dropped. */
export function parseSitemap(xml: string, sitemapUrl: string): ParsedSitemap {
  const $ = load(xml, { xml: true });
  const urls = new Set<string>();
  const sitemaps = new Set<string>();
  $('loc').each((_, el) => {
    const parent = (el.parent as { name?: string } | null)?.name?.toLowerCase().replace(/^.*:/, '');
    const url = resolveHttpUrl($(el).text(), sitemapUrl);
    if (url === null) return;
    if (parent === 'url') urls.add(url);
    else if (parent === 'sitemap') sitemaps.add(url);
  });
  return { urls: [...urls], sitemaps: [...sitemaps] };
}
