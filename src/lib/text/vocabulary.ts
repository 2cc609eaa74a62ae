// Word statistics over bags of words: the top-K vocabulary (the report keeps the 30,000 most frequent
// words, §2.6) and the site-specific frequent words that are noise rather than labels (shop name,
// "collection", "buy": frequent in one source's products but not in the others').

export interface VocabularyEntry {
  word: string;
  /** Samples (image records) whose bag holds the word. */
  count: number;
  /** Products whose bag holds the word (several images of one product count once). */
  df: number;
}

export interface VocabularyCounter {
  /** Adds one sample's bag; `product` says which product it belongs to. */
  add(bag: readonly string[], product: string): void;
  /** Samples seen so far. */
  readonly samples: number;
  /** Products seen so far. */
  readonly products: number;
  /** Distinct words seen so far. */
  readonly size: number;
  /** The `k` most frequent words: by count, then df, then word (code point order), so ties are stable. */
  top(k: number): VocabularyEntry[];
}

/**
 * Counts words over a stream of bags. The samples of one product must arrive one after another
 * (as crawl-tokenize writes them); df counts a product once per run of its samples.
 */
export function createVocabularyCounter(): VocabularyCounter {
  const entries = new Map<string, { count: number; df: number; lastProduct: number }>();
  let samples = 0;
  let products = 0;
  let currentProduct: string | null = null;
  return {
    add(bag, product) {
      samples += 1;
      if (product !== currentProduct) {
        currentProduct = product;
        products += 1;
      }
      for (const word of new Set(bag)) {
        const entry = entries.get(word);
        if (entry === undefined) {
          entries.set(word, { count: 1, df: 1, lastProduct: products });
          continue;
        }
        entry.count += 1;
        if (entry.lastProduct !== products) {
          entry.df += 1;
          entry.lastProduct = products;
        }
      }
    },
    get samples() {
      return samples;
    },
    get products() {
      return products;
    },
    get size() {
      return entries.size;
    },
    top(k) {
      const all: VocabularyEntry[] = [];
      for (const [word, e] of entries) all.push({ word, count: e.count, df: e.df });
      all.sort(compareEntries);
      return all.slice(0, Math.max(0, k));
    },
  };
}

function compareEntries(a: VocabularyEntry, b: VocabularyEntry): number {
  if (a.count !== b.count) return b.count - a.count;
  if (a.df !== b.df) return b.df - a.df;
  return a.word < b.word ? -1 : a.word > b.word ? 1 : 0;
}

/** Per-site document frequencies: how many of a site's products have each word in their bag. */
export interface SiteWordFrequencies {
  products: number;
  df: Map<string, number>;
}

/** Adds one product's bag to its site's frequencies (creating the site's entry on first use). */
export function addSiteProduct(sites: Map<string, SiteWordFrequencies>, site: string, bag: readonly string[]): void {
  let entry = sites.get(site);
  if (entry === undefined) {
    entry = { products: 0, df: new Map() };
    sites.set(site, entry);
  }
  entry.products += 1;
  for (const word of new Set(bag)) entry.df.set(word, (entry.df.get(word) ?? 0) + 1);
}

/** Takes back one product's bag from its site's frequencies (a product replaced by an earlier one with the same source). */
export function removeSiteProduct(sites: Map<string, SiteWordFrequencies>, site: string, bag: readonly string[]): void {
  const entry = sites.get(site);
  if (entry === undefined) return;
  entry.products -= 1;
  for (const word of new Set(bag)) {
    const df = (entry.df.get(word) ?? 0) - 1;
    if (df > 0) entry.df.set(word, df);
    else entry.df.delete(word);
  }
}

export interface SiteWordOptions {
  /** A word in more than this fraction of a site's products is a candidate (0..1; 1 turns the rule off). */
  maxDf: number;
  /** Sites with fewer products are left alone: a fraction of a handful of products says little. */
  minProducts: number;
}

/**
 * The site-specific frequent words of each site: in more than maxDf of that site's products, and in
 * at most maxDf of the products of all other sites together. With a single site there is nothing to
 * compare with, and a common label ("casual") cannot be told from a shop name, so nothing is removed.
 */
export function siteSpecificWords(sites: ReadonlyMap<string, SiteWordFrequencies>, options: SiteWordOptions): Map<string, string[]> {
  const totalProducts = [...sites.values()].reduce((n, s) => n + s.products, 0);
  const totalDf = new Map<string, number>();
  for (const site of sites.values()) for (const [word, df] of site.df) totalDf.set(word, (totalDf.get(word) ?? 0) + df);
  const result = new Map<string, string[]>();
  for (const [name, site] of [...sites].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const otherProducts = totalProducts - site.products;
    if (site.products < options.minProducts || options.maxDf >= 1 || otherProducts === 0) continue;
    const words: string[] = [];
    for (const [word, df] of site.df) {
      if (df <= options.maxDf * site.products) continue;
      const otherDf = (totalDf.get(word) ?? 0) - df;
      if (otherDf > options.maxDf * otherProducts) continue;
      words.push(word);
    }
    if (words.length > 0) result.set(name, words.sort());
  }
  return result;
}
