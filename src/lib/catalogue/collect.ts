// The products of a run, crawled or imported, each journalled as it completes; a failure leaves the
// journal for a resume and drops the unfinished outputs.
import type { Fetcher } from '../http/fetch.js';
import type { CrawlJournal } from '../http/journal.js';
import type { Progress } from '../progress.js';
import { crawlCatalogue, type CatalogueCrawlSettings } from './crawl.js';
import { importCatalogue, type CatalogueImport, type CatalogueImportSettings } from './import.js';

type Without<T> = Omit<T, 'onJournal' | 'onPage' | 'onRow' | 'fetcher'>;

/** A crawl or an import, with what both share. */
export type ProductCollection = { crawl: Without<CatalogueCrawlSettings> } | { import: Without<CatalogueImportSettings> };

/**
 * Crawls or imports the products, counting pages or rows on `progress`, and closes `fetcher`. On a
 * failure the journal is closed (kept for a resume), the fetcher too, and `abortOutputs` is called.
 */
export async function collectProducts(
  collection: ProductCollection,
  fetcher: Fetcher,
  progress: Progress,
  abortOutputs: () => Promise<void>,
): Promise<CatalogueImport & { journal: CrawlJournal<unknown> | null }> {
  let journal: CrawlJournal<unknown> | null = null;
  const onJournal = (j: CrawlJournal<unknown>) => (journal = j);
  let found: CatalogueImport;
  try {
    found = 'crawl' in collection
      ? await crawlCatalogue({ ...collection.crawl, fetcher, onJournal, onPage: (done) => progress.update(done) })
      : await importCatalogue({ ...collection.import, fetcher, onJournal, onRow: () => progress.tick() });
  } catch (err) {
    progress.stop();
    (journal as CrawlJournal<unknown> | null)?.close();
    await fetcher.close().catch(() => {});
    await abortOutputs();
    throw err;
  }
  progress.stop();
  await fetcher.close();
  return { ...found, journal };
}
