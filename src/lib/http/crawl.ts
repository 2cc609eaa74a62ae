// The crawl: sitemaps and start URLs form level 0; same-host links matching the follow pattern form
// the next level, admitted in (page order, link order) once the level is done, so which pages are
// crawled never depends on response timing. Every page, with its product and the outcome of each of
// its images, is journalled when done and handed to the caller, not kept: memory holds the frontier
// and each level's links only. A resumed crawl replays the journal and rebuilds the same levels.
import { extractPage, decodeHtml, xRobotsDirectives } from './extract.js';
import { isHtmlType, isImageType, type Fetcher, type FetchResult } from './fetch.js';
import type { RobotsPolicy } from './robots.js';
import { MAX_SITEMAP_BYTES, parseSitemap, sitemapText } from './sitemap.js';
import { recentStoredHashes, verifyAndStoreImage } from './image-store.js';
import type { CrawlJournal, EntryLocation } from './journal.js';

/** One product image after download: stored by hash, or why not. */
export type ImageOutcome =
  | { url: string; ok: true; sha256: string; path: string }
  | { url: string; ok: false; reason: string; message: string; corrupt?: true };

/** The text and images of one product, as taken from its page or its catalogue row. */
export interface ProductSource {
  /** Where the product was found: the page URL after redirects, or `file:line` for an imported row. */
  source: string;
  /** Which site (shop) it belongs to, for the site-specific frequent words. */
  site: string;
  /** The catalogue's own product id, when it has one. */
  productId?: string;
  title: string | null;
  category: string | null;
  description: string | null;
  images: ImageOutcome[];
}

export type PageStatus = 'product' | 'no-product' | 'noindex' | 'failed' | 'blocked';

export interface PageEntry {
  kind: 'page';
  url: string;
  level: number;
  order: number;
  status: PageStatus;
  reason?: string;
  message?: string;
  finalUrl?: string;
  /** Links admitted as candidates for the next level (same host, matching the follow pattern). */
  links: string[];
  product?: ProductSource;
}

export interface SitemapEntry {
  kind: 'sitemap';
  url: string;
  ok: boolean;
  reason?: string;
  urls: string[];
  sitemaps: string[];
}

export type CrawlEntry = PageEntry | SitemapEntry;

export interface CrawlSettings {
  fetcher: Fetcher;
  robots: RobotsPolicy;
  /** Robots token of our user agent, for X-Robots-Tag and meta robots with a user-agent prefix. */
  robotsToken: string;
  startUrls: string[];
  sitemapUrls: string[];
  /** Same-host links whose absolute URL matches are followed; null follows none. */
  follow: RegExp | null;
  /** Only pages whose URL matches are read as product pages; null reads every page. */
  productPattern: RegExp | null;
  /** Pages admitted to the crawl at most (start URLs, sitemap entries and followed links together). */
  maxPages: number;
  /** Sitemap files read at most (an index can name many). */
  maxSitemaps: number;
  imagesDir: string;
  pixelLimit?: number;
  /** The site a product page belongs to. */
  siteOf(url: string): string;
  /** Pages processed at once (the fetcher's own limits still apply). */
  workers: number;
  journal: CrawlJournal<CrawlEntry>;
  /** Called once per page of the crawl as it finishes (replayed ones included), with where the journal holds it. */
  onEntry?(entry: PageEntry, at: EntryLocation, replayed: boolean): void;
  /** Called once per page finished in this run. */
  onPage?(entry: PageEntry): void;
  /** One line per skipped page or image. */
  warn?(message: string): void;
}

export interface CrawlResult {
  /** Pages of the crawl, replayed ones included (each was handed to onEntry). */
  pages: number;
  sitemaps: SitemapEntry[];
  /** Pages taken from the journal instead of fetched. */
  resumedPages: number;
}

/** Runs `work` over `items` with at most `limit` at once; results in item order. */
export async function mapPool<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    for (;;) {
      const index = next++;
      if (index >= items.length) return;
      results[index] = await work(items[index]!, index);
    }
  });
  await Promise.all(runners);
  return results;
}

const PAGE_ACCEPT = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.1';
const IMAGE_ACCEPT = 'image/avif,image/webp,image/jpeg,image/png,image/*;q=0.8';

function failureOf(result: Exclude<FetchResult, { ok: true }>): { reason: string; message: string } {
  return result.reason === 'blocked' ? { reason: 'robots', message: result.message } : { reason: result.reason, message: result.message };
}

export interface ImageDownloadSettings {
  fetcher: Fetcher;
  robots: RobotsPolicy;
  robotsToken: string;
  imagesDir: string;
  pixelLimit?: number;
  /** Outcomes already known (from a journal): those URLs are not fetched again while remembered. */
  known?: ReadonlyMap<string, ImageOutcome>;
  /** Image URLs whose outcome is remembered (the oldest forgotten first), so memory stays bounded. */
  remember?: number;
}

/** Default number of image outcomes remembered: pages of one product family usually share images within a few pages. */
export const IMAGE_OUTCOMES_REMEMBERED = 4096;

/**
 * A function that downloads an image URL once per run (later calls share the first one's outcome):
 * robots.txt checked, image/* required, X-Robots-Tag noimageindex respected, decoded to verify, stored by hash.
 */
export function createImageDownloader(settings: ImageDownloadSettings): (url: string) => Promise<ImageOutcome> {
  const outcomes = new Map<string, Promise<ImageOutcome>>();
  const remember = Math.max(1, settings.remember ?? IMAGE_OUTCOMES_REMEMBERED);
  const keep = (url: string, outcome: Promise<ImageOutcome>) => {
    outcomes.set(url, outcome);
    // A Map iterates in insertion order: its first key is the oldest.
    if (outcomes.size > remember) outcomes.delete(outcomes.keys().next().value!);
  };
  for (const [url, outcome] of settings.known ?? []) keep(url, Promise.resolve(outcome));
  const stored = recentStoredHashes(remember);
  const allowUrl = (url: string) => settings.robots.check(url);
  const download = async (url: string): Promise<ImageOutcome> => {
    const result = await settings.fetcher.fetch({ url, accept: IMAGE_ACCEPT, acceptContentType: isImageType, allowUrl });
    if (!result.ok) return { url, ok: false, ...failureOf(result) };
    const directives = xRobotsDirectives(result.headers['x-robots-tag'], settings.robotsToken);
    if (directives.noimageindex || directives.noindex) {
      return { url, ok: false, reason: 'noimageindex', message: 'X-Robots-Tag forbids indexing this image' };
    }
    const image = await verifyAndStoreImage(result.body, settings.imagesDir, settings.pixelLimit, stored);
    if (!image.ok) return { url, ok: false, reason: image.reason, message: image.message, corrupt: true };
    return { url, ok: true, sha256: image.sha256, path: image.path };
  };
  return (url) => {
    let outcome = outcomes.get(url);
    if (outcome === undefined) {
      outcome = download(url);
      keep(url, outcome);
    }
    return outcome;
  };
}

/** Crawls from the settings' start URLs and sitemaps; see the file comment for the order. */
export async function crawl(settings: CrawlSettings): Promise<CrawlResult> {
  const { fetcher, robots, journal } = settings;
  const allowUrl = (url: string) => robots.check(url);
  const replayedPages = new Map<string, { entry: PageEntry; at: EntryLocation }>();
  const replayedSitemaps = new Map<string, SitemapEntry>();
  const images = new Map<string, ImageOutcome>();
  for (const [i, entry] of journal.replayed.entries()) {
    if (entry.kind === 'page') {
      replayedPages.set(entry.url, { entry, at: journal.replayedAt[i]! });
      for (const image of entry.product?.images ?? []) if (!images.has(image.url)) images.set(image.url, image);
    } else if (entry.kind === 'sitemap') {
      replayedSitemaps.set(entry.url, entry);
    }
  }

  const fetchImage = createImageDownloader({ ...settings, known: images });

  const processPage = async (url: string, level: number, order: number): Promise<PageEntry> => {
    const base = { kind: 'page' as const, url, level, order, links: [] as string[] };
    const result = await fetcher.fetch({ url, accept: PAGE_ACCEPT, acceptContentType: isHtmlType, allowUrl });
    if (!result.ok) {
      const failure = failureOf(result);
      return { ...base, status: result.reason === 'blocked' ? 'blocked' : 'failed', ...failure, finalUrl: result.url };
    }
    const html = decodeHtml(result.body, result.headers['content-type']);
    const page = extractPage(html, result.url, settings.robotsToken);
    const header = xRobotsDirectives(result.headers['x-robots-tag'], settings.robotsToken);
    const pageHost = new URL(result.url).host;
    const links =
      settings.follow === null || header.nofollow
        ? []
        : page.links.filter((link) => new URL(link).host === pageHost && settings.follow!.test(link));
    const done = { ...base, links, finalUrl: result.url };
    if (page.robots.noindex || header.noindex) return { ...done, status: 'noindex' };
    if (page.product === null || (settings.productPattern !== null && !settings.productPattern.test(result.url))) {
      return { ...done, status: 'no-product' };
    }
    const product = page.product;
    const noImages = page.robots.noimageindex || header.noimageindex;
    const imageOutcomes = noImages
      ? product.images.map((u): ImageOutcome => ({ url: u, ok: false, reason: 'noimageindex', message: 'the page forbids indexing its images' }))
      : await Promise.all(product.images.map(fetchImage));
    return {
      ...done,
      status: 'product',
      product: {
        source: result.url,
        site: settings.siteOf(result.url),
        title: product.title,
        category: product.category,
        description: product.description,
        images: imageOutcomes,
      },
    };
  };

  const warnPage = (entry: PageEntry) => {
    if (!settings.warn) return;
    if (entry.status === 'failed') settings.warn(`${entry.url}: skipped, ${entry.reason} (${entry.message})`);
    for (const image of entry.product?.images ?? []) {
      if (!image.ok && image.reason !== 'noimageindex' && image.reason !== 'robots') settings.warn(`${image.url}: image skipped, ${image.reason} (${image.message})`);
    }
  };

  // Sitemaps, breadth first through indexes, in file order.
  const sitemaps: SitemapEntry[] = [];
  const sitemapQueue = [...settings.sitemapUrls];
  const sitemapSeen = new Set(sitemapQueue);
  while (sitemapQueue.length > 0 && sitemaps.length < settings.maxSitemaps) {
    const batch = sitemapQueue.splice(0, Math.min(sitemapQueue.length, settings.maxSitemaps - sitemaps.length));
    const entries = await mapPool(batch, settings.workers, async (url) => {
      const replayed = replayedSitemaps.get(url);
      if (replayed) return replayed;
      const result = await fetcher.fetch({ url, accept: 'application/xml,text/xml;q=0.9,*/*;q=0.5', allowUrl });
      let entry: SitemapEntry;
      if (!result.ok) {
        entry = { kind: 'sitemap', url, ok: false, reason: failureOf(result).reason, urls: [], sitemaps: [] };
        settings.warn?.(`${url}: sitemap skipped, ${entry.reason} (${result.message})`);
      } else {
        try {
          const parsed = parseSitemap(sitemapText(result.body, MAX_SITEMAP_BYTES), result.url);
          entry = { kind: 'sitemap', url, ok: true, urls: parsed.urls, sitemaps: parsed.sitemaps };
        } catch (err) {
          entry = { kind: 'sitemap', url, ok: false, reason: 'unreadable', urls: [], sitemaps: [] };
          settings.warn?.(`${url}: sitemap skipped, unreadable (${(err as Error).message})`);
        }
      }
      journal.append(entry);
      return entry;
    });
    for (const entry of entries) {
      sitemaps.push(entry);
      for (const nested of entry.sitemaps) {
        if (!sitemapSeen.has(nested)) {
          sitemapSeen.add(nested);
          sitemapQueue.push(nested);
        }
      }
    }
  }

  const seen = new Set<string>();
  let admitted = 0;
  const admit = (candidates: Iterable<string>, into: string[]) => {
    for (const url of candidates) {
      if (admitted >= settings.maxPages) return;
      if (seen.has(url)) continue;
      seen.add(url);
      into.push(url);
      admitted += 1;
    }
  };

  let level: string[] = [];
  admit(settings.startUrls, level);
  admit(
    sitemaps.flatMap((s) => s.urls),
    level,
  );
  let pages = 0;
  let resumedPages = 0;
  for (let depth = 0; level.length > 0; depth++) {
    // Only what the next level needs is kept per page; the entry itself goes to the journal and onEntry.
    const done = await mapPool(level, settings.workers, async (url, order) => {
      const replayed = replayedPages.get(url);
      let entry: PageEntry;
      if (replayed && replayed.entry.level === depth && replayed.entry.order === order) {
        replayedPages.delete(url);
        resumedPages += 1;
        entry = replayed.entry;
        settings.onEntry?.(entry, replayed.at, true);
      } else {
        entry = await processPage(url, depth, order);
        const at = journal.append(entry);
        warnPage(entry);
        settings.onEntry?.(entry, at, false);
        settings.onPage?.(entry);
      }
      return { links: entry.links, finalUrl: entry.finalUrl };
    });
    pages += done.length;
    // Where redirects led counts as seen, so the same page is not queued again under its final URL.
    for (const page of done) if (page.finalUrl) seen.add(page.finalUrl);
    const next: string[] = [];
    for (const page of done) admit(page.links, next);
    level = next;
  }
  return { pages, sitemaps, resumedPages };
}
