// A crawl of product pages into journalled products: the pages counted as they finish, one product
// kept per final URL.
import { resolve } from 'node:path';
import { crawl, type CrawlEntry, type PageEntry, type ProductSource, type SitemapEntry } from '../http/crawl.js';
import type { createFetcher } from '../http/fetch.js';
import type { createRobotsPolicy } from '../http/robots.js';
import { openRunJournal, type CrawlJournal, type EntryLocation } from '../http/journal.js';
import { fingerprintOf, type CatalogueImport } from './import.js';
import { countImage, emptyImageStats, increment, sortedCounts, sourceStats, type RunStats } from './stats.js';

/** Where a kept product lies in the journal and its place in crawl order (level, then order). */
interface CrawlProductRef {
  level: number;
  order: number;
  at: EntryLocation;
}

/**
 * Counts the pages of a crawl as they finish and keeps one product per final URL: the first in crawl
 * order, whatever order they finish in (a later-finishing earlier page replaces the one counted).
 * `finish` gives the products' journal locations sorted by source URL, and the stats.
 */
export function createCrawlTally(readProduct: (at: EntryLocation) => ProductSource, countBag: (product: ProductSource, sign: 1 | -1) => void) {
  const failed: Record<string, number> = {};
  const pageStats = { queued: 0, fetched: 0, products: 0, notProducts: 0, noindex: 0, skippedByRobots: 0, duplicates: 0, failed };
  const bySource = new Map<string, CrawlProductRef>();
  const images = emptyImageStats();
  const add = (page: PageEntry, at: EntryLocation): void => {
    pageStats.queued += 1;
    if (page.status === 'blocked') pageStats.skippedByRobots += 1;
    else if (page.status === 'failed') increment(failed, page.reason ?? 'failed');
    else pageStats.fetched += 1;
    if (page.status === 'no-product') pageStats.notProducts += 1;
    if (page.status === 'noindex') pageStats.noindex += 1;
    if (page.status !== 'product' || page.product === undefined) return;
    const product = page.product;
    const previous = bySource.get(product.source);
    if (previous !== undefined) {
      pageStats.duplicates += 1;
      if (previous.level < page.level || (previous.level === page.level && previous.order < page.order)) return;
      const replaced = readProduct(previous.at);
      countBag(replaced, -1);
      for (const image of replaced.images) countImage(images, image, -1);
    }
    bySource.set(product.source, { level: page.level, order: page.order, at });
    countBag(product, 1);
    for (const image of product.images) countImage(images, image);
  };
  const finish = (sitemaps: SitemapEntry[], resumed: number): { order: EntryLocation[]; stats: RunStats } => {
    const sources = [...bySource.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const order = sources.map((source) => bySource.get(source)!.at);
    pageStats.products = order.length;
    return {
      order,
      stats: {
        mode: 'crawl',
        pages: { ...pageStats, failed: sortedCounts(failed) },
        sitemaps: {
          read: sitemaps.filter((s) => s.ok).length,
          failed: sitemaps.filter((s) => !s.ok).length,
          urls: sitemaps.reduce((n, s) => n + s.urls.length, 0),
        },
        ...sourceStats(order.length, images, resumed),
      },
    };
  };
  return { add, finish };
}

/** What a crawl needs, as plain values. */
export interface CatalogueCrawlSettings {
  startUrls: string[];
  sitemapUrls: string[];
  /** Regular expressions (checked by the caller): links to follow, product pages, and the site (its first group; default: the host). */
  follow?: string;
  productPattern?: string;
  sitePattern?: string;
  maxPages: number;
  maxSitemaps: number;
  imagesDir: string;
  statePath: string | null;
  restart: boolean;
  concurrency: number;
  userAgent: string;
  fetcher: ReturnType<typeof createFetcher>;
  robots: ReturnType<typeof createRobotsPolicy>;
  robotsToken: string;
  onPage(done: number): void;
  countBag(product: ProductSource, sign: 1 | -1): void;
  warn(message: string): void;
  onJournal(journal: CrawlJournal<unknown>): void;
}

/** Crawls product pages into journalled products: where each lies (by source URL), and the stats. */
export async function crawlCatalogue(s: CatalogueCrawlSettings): Promise<CatalogueImport> {
  const pattern = (text: string | undefined) => (text === undefined ? null : new RegExp(text, 'u'));
  const sitePattern = pattern(s.sitePattern);
  const siteOf = (url: string): string => {
    const match = sitePattern?.exec(url);
    if (match && match[1] !== undefined) return match[1];
    return new URL(url).host;
  };
  const fingerprint = fingerprintOf({
    mode: 'crawl',
    startUrls: s.startUrls,
    sitemapUrls: s.sitemapUrls,
    follow: s.follow ?? null,
    productPattern: s.productPattern ?? null,
    sitePattern: s.sitePattern ?? null,
    maxPages: s.maxPages,
    maxSitemaps: s.maxSitemaps,
    images: resolve(s.imagesDir),
    userAgent: s.userAgent,
  });
  const journal = openRunJournal<CrawlEntry>(s.statePath, fingerprint, s.restart);
  s.onJournal(journal as CrawlJournal<unknown>);
  const readProduct = (at: EntryLocation) => (journal.read(at) as PageEntry).product!;
  const tally = createCrawlTally(readProduct, s.countBag);
  let done = 0;
  const result = await crawl({
    fetcher: s.fetcher,
    robots: s.robots,
    robotsToken: s.robotsToken,
    startUrls: s.startUrls,
    sitemapUrls: s.sitemapUrls,
    follow: pattern(s.follow),
    productPattern: pattern(s.productPattern),
    maxPages: s.maxPages,
    maxSitemaps: s.maxSitemaps,
    imagesDir: s.imagesDir,
    siteOf,
    workers: Math.max(4, s.concurrency * 2),
    journal,
    onEntry: tally.add,
    onPage: () => s.onPage(++done),
    warn: s.warn,
  });
  return { ...tally.finish(result.sitemaps, result.resumedPages), readProduct };
}
