// The numbers of a crawl or catalogue import: the --stats JSON and the end-of-run summary lines.
import type { ImageOutcome } from '../http/crawl.js';

/** Per-run numbers; also the --stats JSON. */
export interface RunStats {
  mode: 'crawl' | 'import';
  pages?: {
    queued: number;
    fetched: number;
    products: number;
    notProducts: number;
    noindex: number;
    skippedByRobots: number;
    duplicates: number;
    failed: Record<string, number>;
  };
  sitemaps?: { read: number; failed: number; urls: number };
  rows?: { read: number };
  products: { total: number; withoutImages: number };
  images: {
    referenced: number;
    saved: number;
    duplicates: number;
    corrupt: Record<string, number>;
    skipped: Record<string, number>;
    failed: Record<string, number>;
  };
  records: number;
  vocabulary: { words: number; written: number } | null;
  siteWords: Record<string, string[]>;
  run: { seconds: number; requests: number; retries: number; bytes: number; resumed: number };
}

export function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));
}

function countsText(counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** The stats of a crawl or an import before its samples are written (mode and pages or rows aside). */
export function sourceStats(products: number, images: RunStats['images'], resumed: number): Omit<RunStats, 'mode'> {
  return {
    products: { total: products, withoutImages: 0 },
    images: finishImageStats(images),
    records: 0,
    vocabulary: null,
    siteWords: {},
    run: { seconds: 0, requests: 0, retries: 0, bytes: 0, resumed },
  };
}

export function emptyImageStats(): RunStats['images'] {
  return { referenced: 0, saved: 0, duplicates: 0, corrupt: {}, skipped: {}, failed: {} };
}

/** Counts one image outcome in (by 1) or back out (by -1). */
export function countImage(images: RunStats['images'], outcome: ImageOutcome, by: 1 | -1 = 1): void {
  images.referenced += by;
  if (outcome.ok) return;
  const counts = outcome.corrupt ? images.corrupt : outcome.reason === 'noimageindex' || outcome.reason === 'robots' ? images.skipped : images.failed;
  counts[outcome.reason] = (counts[outcome.reason] ?? 0) + by;
}

export function finishImageStats(images: RunStats['images']): RunStats['images'] {
  const nonZero = (counts: Record<string, number>) => sortedCounts(Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0)));
  return { ...images, corrupt: nonZero(images.corrupt), skipped: nonZero(images.skipped), failed: nonZero(images.failed) };
}

/** The end-of-run summary, one line a subject. */
export function summaryLines(stats: RunStats): string[] {
  const lines: string[] = [];
  const line = (text: string) => lines.push(text);
  if (stats.pages) {
    const p = stats.pages;
    line(
      `pages: ${p.queued} queued, ${p.fetched} fetched, ${p.products} products, ${p.notProducts} without a product, ${p.skippedByRobots} skipped by robots.txt, ${p.noindex} noindex; failed: ${countsText(p.failed)}`,
    );
  }
  if (stats.rows) line(`rows: ${stats.rows.read} read, ${stats.products.total} products`);
  const im = stats.images;
  line(
    `images: ${im.referenced} referenced, ${im.saved} saved, ${im.duplicates} duplicates; corrupt: ${countsText(im.corrupt)}; skipped: ${countsText(im.skipped)}; failed: ${countsText(im.failed)}`,
  );
  const siteWordCount = Object.values(stats.siteWords).reduce((n, w) => n + w.length, 0);
  line(
    `records: ${stats.records} (${stats.products.withoutImages} products without a usable image); vocabulary ${stats.vocabulary?.words ?? 0} words; ${siteWordCount} site-specific words dropped; ${stats.run.seconds} s, ${stats.run.requests} requests, ${stats.run.retries} retries${stats.run.resumed > 0 ? `, ${stats.run.resumed} resumed from the state file` : ''}`,
  );
  return lines;
}

/** The stats once the samples are written: records, images, vocabulary, site words and the run's cost. */
export function completeRunStats(
  stats: RunStats,
  written: { records: number; images: number; duplicates: number; vocabulary: RunStats['vocabulary'] },
  labelled: { productsWithoutImages: number; siteWords: Map<string, string[]> },
  run: { seconds: number; requests: number; retries: number; bytes: number },
): void {
  stats.records = written.records;
  stats.products.withoutImages = labelled.productsWithoutImages;
  stats.images.saved = written.images;
  stats.images.duplicates = written.duplicates;
  stats.vocabulary = written.vocabulary;
  stats.siteWords = Object.fromEntries(labelled.siteWords);
  stats.run = { seconds: run.seconds, requests: run.requests, retries: run.retries, bytes: run.bytes, resumed: stats.run.resumed };
}
