// Product extraction from a page with a real HTML parser (cheerio). Each field is taken from the first
// source that has it, in this order: schema.org Product in JSON-LD (also inside @graph, arrays and
// nested entities), OpenGraph tags, microdata itemprops, then plain fallbacks (h1 or <title>, meta
// description, images outside links and navigation). Descriptions are returned as text.
import { load, type CheerioAPI } from 'cheerio/slim';
import type { Element } from 'domhandler';
import { htmlToText } from '../text/tokenize.js';

export type ExtractionSource = 'json-ld' | 'opengraph' | 'microdata' | 'fallback';

export interface ExtractedProduct {
  title: string | null;
  category: string | null;
  description: string | null;
  /** Absolute image URLs, in page order, each once. */
  images: string[];
  /** Where each field came from (null when nothing had it). */
  sources: { title: ExtractionSource | null; category: ExtractionSource | null; description: ExtractionSource | null; images: ExtractionSource | null };
}

/** Robots directives of the page's meta tags (name="robots" or our user agent's token). */
export interface MetaRobots {
  noindex: boolean;
  nofollow: boolean;
  noimageindex: boolean;
}

export interface PageExtraction {
  /** The product the page describes, or null for a page that is not a product page (a listing, a home page). */
  product: ExtractedProduct | null;
  /** Absolute http(s) links of the page (fragment removed, each once, rel=nofollow left out). */
  links: string[];
  robots: MetaRobots;
}

interface PartialProduct {
  title?: string | null;
  category?: string | null;
  description?: string | null;
  images?: string[];
}

// htmlparser2 in HTML mode (cheerio's `xml` option with xmlMode off): several times faster than parse5,
// and the extraction only needs elements, attributes and text, not parse5's tree-construction rules.
const HTML_PARSER = { xml: { xmlMode: false, decodeEntities: true } } as const;
const PRODUCT_TYPES = new Set(['product', 'productgroup', 'productmodel', 'individualproduct', 'someproducts']);
const MAX_JSON_LD_DEPTH = 12;

/** Plain text of a field that may hold HTML or entities; null when empty. */
function cleanText(value: unknown): string | null {
  if (typeof value === 'number') return String(value);
  if (typeof value !== 'string') return null;
  const text = htmlToText(value);
  return text === '' ? null : text;
}

/** Absolute http(s) URL of `href` against `base`, without its fragment; null when it is none. */
export function resolveHttpUrl(href: string | undefined | null, base: string): string | null {
  if (href === undefined || href === null) return null;
  const trimmed = href.trim();
  if (trimmed === '' || trimmed.startsWith('data:') || trimmed.startsWith('javascript:') || trimmed.startsWith('mailto:')) return null;
  try {
    const url = new URL(trimmed, base);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    url.hash = '';
    return url.href;
  } catch {
    return null;
  }
}

function unique(values: Array<string | null>): string[] {
  return [...new Set(values.filter((v): v is string => v !== null))];
}

function typeNames(node: Record<string, unknown>): string[] {
  const raw = node['@type'];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.filter((t): t is string => typeof t === 'string').map((t) => t.replace(/^.*[/#:]/, '').toLowerCase());
}

/** Every JSON object of a JSON-LD value, depth first in document order (arrays, @graph and nested entities included). */
function* jsonLdNodes(value: unknown, depth = 0): Generator<Record<string, unknown>> {
  if (depth > MAX_JSON_LD_DEPTH || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) yield* jsonLdNodes(item, depth + 1);
    return;
  }
  const node = value as Record<string, unknown>;
  yield node;
  for (const [key, child] of Object.entries(node)) {
    if (key === '@context') continue;
    if (child !== null && typeof child === 'object') yield* jsonLdNodes(child, depth + 1);
  }
}

function jsonLdImageUrls(value: unknown, base: string): Array<string | null> {
  if (typeof value === 'string') return [resolveHttpUrl(value, base)];
  if (Array.isArray(value)) return value.flatMap((v) => jsonLdImageUrls(v, base));
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const url = o.contentUrl ?? o.url ?? o['@id'];
    return typeof url === 'string' ? [resolveHttpUrl(url, base)] : [];
  }
  return [];
}

function jsonLdCategory(value: unknown): string | null {
  if (typeof value === 'string') return cleanText(value);
  if (Array.isArray(value)) {
    const parts = value.map(jsonLdCategory).filter((v): v is string => v !== null);
    return parts.length > 0 ? parts.join(' > ') : null;
  }
  if (value !== null && typeof value === 'object') return cleanText((value as Record<string, unknown>).name);
  return null;
}

function firstText(value: unknown): string | null {
  if (Array.isArray(value)) {
    for (const v of value) {
      const t = cleanText(v);
      if (t !== null) return t;
    }
    return null;
  }
  if (value !== null && typeof value === 'object') return cleanText((value as Record<string, unknown>)['@value']);
  return cleanText(value);
}

/** Parses every JSON-LD script; an unparsable one is skipped (shops ship broken JSON-LD often enough). */
function jsonLdValues($: CheerioAPI): unknown[] {
  const values: unknown[] = [];
  $('script[type="application/ld+json" i]').each((_, el) => {
    const text = $(el).text().trim();
    if (text === '') return;
    try {
      values.push(JSON.parse(text));
    } catch {
      // not JSON; nothing to take from it
    }
  });
  return values;
}

function fromJsonLd($: CheerioAPI, base: string): PartialProduct | null {
  const values = jsonLdValues($);
  let product: Record<string, unknown> | null = null;
  let breadcrumb: string | null = null;
  for (const node of jsonLdNodes(values)) {
    const types = typeNames(node);
    if (product === null && types.some((t) => PRODUCT_TYPES.has(t))) product = node;
    if (breadcrumb === null && types.includes('breadcrumblist')) breadcrumb = breadcrumbText(node.itemListElement);
  }
  if (product === null) return null;
  return {
    title: firstText(product.name),
    description: firstText(product.description),
    category: jsonLdCategory(product.category) ?? breadcrumb,
    images: unique(jsonLdImageUrls(product.image, base)),
  };
}

function breadcrumbText(items: unknown): string | null {
  if (!Array.isArray(items)) return null;
  const sorted = [...items].filter((i): i is Record<string, unknown> => i !== null && typeof i === 'object');
  sorted.sort((a, b) => Number(a.position ?? 0) - Number(b.position ?? 0));
  const names = sorted
    .map((i) => cleanText(i.name) ?? (i.item && typeof i.item === 'object' ? cleanText((i.item as Record<string, unknown>).name) : null))
    .filter((n): n is string => n !== null);
  return names.length > 0 ? names.join(' > ') : null;
}

function metaContent($: CheerioAPI, property: string): string[] {
  const values: string[] = [];
  $(`meta[property="${property}" i], meta[name="${property}" i]`).each((_, el) => {
    const content = $(el).attr('content');
    if (content !== undefined && content.trim() !== '') values.push(content);
  });
  return values;
}

function fromOpenGraph($: CheerioAPI, base: string): { product: PartialProduct; isProduct: boolean } {
  const type = (metaContent($, 'og:type')[0] ?? '').trim().toLowerCase();
  const images = metaContent($, 'og:image').concat(metaContent($, 'og:image:url'));
  return {
    isProduct: type === 'product' || type.startsWith('product.') || type === 'og:product',
    product: {
      title: cleanText(metaContent($, 'og:title')[0]),
      description: cleanText(metaContent($, 'og:description')[0]),
      category: cleanText(metaContent($, 'product:category')[0] ?? metaContent($, 'og:product:category')[0]),
      images: unique(images.map((u) => resolveHttpUrl(u, base))),
    },
  };
}

/** The value of one microdata property element (HTML's rules: content, src, href, datetime, or text). */
function itempropValue($: CheerioAPI, el: Element, base: string): { text: string | null; url: string | null } {
  const node = $(el);
  const content = node.attr('content');
  if (content !== undefined) return { text: cleanText(content), url: resolveHttpUrl(content, base) };
  const name = el.name.toLowerCase();
  if (['img', 'audio', 'video', 'source', 'embed', 'iframe', 'track'].includes(name)) {
    const src = node.attr('src');
    return { text: null, url: resolveHttpUrl(src, base) };
  }
  if (['a', 'area', 'link'].includes(name)) return { text: null, url: resolveHttpUrl(node.attr('href'), base) };
  if (name === 'object') return { text: null, url: resolveHttpUrl(node.attr('data'), base) };
  if (name === 'data' || name === 'meter') return { text: cleanText(node.attr('value')), url: null };
  if (name === 'time') return { text: cleanText(node.attr('datetime') ?? node.text()), url: null };
  return { text: cleanText(node.html() ?? ''), url: null };
}

function fromMicrodata($: CheerioAPI, base: string): PartialProduct | null {
  const scope = $('[itemscope][itemtype]')
    .filter((_, el) => {
      const types = ($(el).attr('itemtype') ?? '').split(/\s+/);
      return types.some((t) => PRODUCT_TYPES.has(t.replace(/^.*[/#:]/, '').toLowerCase()));
    })
    .first();
  if (scope.length === 0) return null;
  const scopeElement = scope[0]!;
  const props = new Map<string, Element[]>();
  scope.find('[itemprop]').each((_, el) => {
    // A property belongs to the nearest enclosing itemscope; the brand's own "name" is not the product's.
    const owner = $(el).parent().closest('[itemscope]')[0];
    if (owner !== scopeElement) return;
    for (const prop of ($(el).attr('itemprop') ?? '').split(/\s+/)) {
      if (prop === '') continue;
      const list = props.get(prop) ?? [];
      list.push(el);
      props.set(prop, list);
    }
  });
  const text = (prop: string): string | null => {
    for (const el of props.get(prop) ?? []) {
      const v = itempropValue($, el, base).text;
      if (v !== null) return v;
    }
    return null;
  };
  return {
    title: text('name'),
    description: text('description'),
    category: text('category'),
    images: unique((props.get('image') ?? []).map((el) => itempropValue($, el, base).url)),
  };
}

function fromFallback($: CheerioAPI, base: string): PartialProduct {
  const h1 = cleanText($('h1').first().html() ?? '');
  const title = h1 ?? cleanText($('title').first().text());
  const description = cleanText(metaContent($, 'description')[0]);
  // Images inside links, navigation, headers and footers are thumbnails, logos and banners.
  const images = $('img')
    .filter((_, el) => $(el).closest('a, nav, header, footer').length === 0)
    .map((_, el) => resolveHttpUrl($(el).attr('src') ?? $(el).attr('data-src'), base))
    .get() as Array<string | null>;
  return { title, description, category: null, images: unique(images) };
}

/** Parses a robots directive list ("noindex, nofollow", "none"). */
export function parseRobotsDirectives(value: string): MetaRobots {
  const words = value
    .toLowerCase()
    .split(/[,\s]+/)
    .filter((w) => w !== '');
  const none = words.includes('none');
  return {
    noindex: none || words.includes('noindex'),
    nofollow: none || words.includes('nofollow'),
    noimageindex: words.includes('noimageindex'),
  };
}

/**
 * The directives of X-Robots-Tag header values that apply to us: those without a user-agent prefix
 * and those prefixed with our robots token (e.g. "atelier-crawler: noimageindex").
 */
export function xRobotsDirectives(headerValue: string | undefined, robotsToken: string): MetaRobots {
  const result: MetaRobots = { noindex: false, nofollow: false, noimageindex: false };
  if (headerValue === undefined) return result;
  const token = robotsToken.toLowerCase();
  for (const part of headerValue.split(/,(?=\s*[a-z0-9_-]+\s*:)/i)) {
    const match = /^\s*([a-z0-9_-]+)\s*:\s*(.*)$/i.exec(part);
    let directives = part;
    if (match && !['unavailable_after', 'max-snippet', 'max-image-preview', 'max-video-preview'].includes(match[1]!.toLowerCase())) {
      if (match[1]!.toLowerCase() !== token) continue;
      directives = match[2]!;
    }
    const d = parseRobotsDirectives(directives);
    result.noindex ||= d.noindex;
    result.nofollow ||= d.nofollow;
    result.noimageindex ||= d.noimageindex;
  }
  return result;
}

function metaRobots($: CheerioAPI, robotsToken: string): MetaRobots {
  const result: MetaRobots = { noindex: false, nofollow: false, noimageindex: false };
  for (const name of ['robots', robotsToken.toLowerCase()]) {
    for (const content of metaContent($, name)) {
      const d = parseRobotsDirectives(content);
      result.noindex ||= d.noindex;
      result.nofollow ||= d.nofollow;
      result.noimageindex ||= d.noimageindex;
    }
  }
  return result;
}

function pageLinks($: CheerioAPI, base: string): string[] {
  const links: Array<string | null> = [];
  $('a[href], area[href]').each((_, el) => {
    const rel = ($(el).attr('rel') ?? '').toLowerCase().split(/\s+/);
    if (rel.includes('nofollow')) return;
    links.push(resolveHttpUrl($(el).attr('href'), base));
  });
  return unique(links);
}

function pick<K extends 'title' | 'category' | 'description'>(
  key: K,
  candidates: Array<[ExtractionSource, () => PartialProduct | null]>,
): [string | null, ExtractionSource | null] {
  for (const [source, read] of candidates) {
    const value = read()?.[key];
    if (value !== undefined && value !== null && value !== '') return [value, source];
  }
  return [null, null];
}

/** Parses an HTML page at `pageUrl` into its product (if any), its links and its meta robots directives. */
export function extractPage(html: string, pageUrl: string, robotsToken = 'atelier-crawler'): PageExtraction {
  const $ = load(html, HTML_PARSER);
  const base = resolveHttpUrl($('base[href]').first().attr('href'), pageUrl) ?? pageUrl;
  const robots = metaRobots($, robotsToken);
  const links = robots.nofollow ? [] : pageLinks($, base);

  // Later sources are read only when an earlier one lacks something (most shops fill JSON-LD completely).
  const jsonLd = fromJsonLd($, base);
  const lazy = <T>(read: () => T): (() => T) => {
    let value: { v: T } | null = null;
    return () => (value ??= { v: read() }).v;
  };
  const og = lazy(() => fromOpenGraph($, base));
  const microdata = lazy(() => fromMicrodata($, base));
  const fallback = lazy(() => fromFallback($, base));
  const structured = jsonLd !== null || og().isProduct || microdata() !== null;
  // Without structured data, a page is a product page when it has a title and its own (unlinked) images.
  if (!structured && (fallback().title === null || (fallback().images ?? []).length === 0)) return { product: null, links, robots };

  const candidates: Array<[ExtractionSource, () => PartialProduct | null]> = [
    ['json-ld', () => jsonLd],
    ['opengraph', () => (og().isProduct || jsonLd !== null || microdata() !== null ? og().product : null)],
    ['microdata', microdata],
    ['fallback', fallback],
  ];
  const [title, titleSource] = pick('title', candidates);
  const [category, categorySource] = pick('category', candidates);
  const [description, descriptionSource] = pick('description', candidates);
  let images: string[] = [];
  let imagesSource: ExtractionSource | null = null;
  for (const [source, read] of candidates) {
    const partial = read();
    if (partial?.images && partial.images.length > 0) {
      images = partial.images;
      imagesSource = source;
      break;
    }
  }
  return {
    product: {
      title,
      category,
      description,
      images,
      sources: { title: titleSource, category: categorySource, description: descriptionSource, images: imagesSource },
    },
    links,
    robots,
  };
}

/** Text of a page body decoded with its declared charset (header first, then <meta charset>), UTF-8 otherwise. */
export function decodeHtml(body: Buffer, contentTypeHeader: string | undefined): string {
  const fromHeader = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentTypeHeader ?? '')?.[1];
  const head = body.subarray(0, 2048).toString('latin1');
  const fromMeta = /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(head)?.[1];
  for (const label of [fromHeader, fromMeta, 'utf-8']) {
    if (label === undefined) continue;
    try {
      return new TextDecoder(label).decode(body);
    } catch {
      // unknown label: try the next one
    }
  }
  return body.toString('utf8');
}
