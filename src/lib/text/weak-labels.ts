// Products -> the weakly labelled image set of the report (§2.6): one sample per product image, each
// with the bag of words of its product (several images of a product give several samples with the
// same bag), after dropping the words that are frequent in one site's products but not in the others'.
import { createHash } from 'node:crypto';
import { bagOfWords, productText, type TokenizeOptions } from './tokenize.js';
import { addSiteProduct, siteSpecificWords, type SiteWordFrequencies, type SiteWordOptions } from './vocabulary.js';

export type TextField = 'title' | 'category' | 'description';
export const TEXT_FIELDS: readonly TextField[] = ['title', 'category', 'description'];

/** What a product must say about itself; crawled pages and imported rows both give this. */
export interface LabelledProduct {
  source: string;
  site: string;
  productId?: string;
  title: string | null;
  category: string | null;
  description: string | null;
  /** Its images; only the `ok` ones become samples. */
  images: ReadonlyArray<{ url: string; ok: boolean; sha256?: string; path?: string }>;
}

/** One output sample. `url`, `image` and `sha256` are null for a text-only product (no image field asked for). */
export interface WeakLabelRecord {
  id: string;
  source: string;
  url: string | null;
  image: string | null;
  sha256: string | null;
  title: string | null;
  category: string | null;
  description: string | null;
  tokens: string[];
}

export interface WeakLabelOptions {
  tokenize: TokenizeOptions;
  /** Fields whose text makes the bag, in this order. */
  fields: readonly TextField[];
  siteWords: SiteWordOptions;
  /** When true a product without images gives one text-only sample; otherwise none. */
  textOnly: boolean;
}

export interface WeakLabelSet {
  records: WeakLabelRecord[];
  /** Words removed per site as site-specific (sorted). */
  siteWords: Map<string, string[]>;
  /** Products that gave no sample (no usable image). */
  productsWithoutImages: number;
}

/** A short stable id from the strings that identify a sample. */
export function stableId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/** The bag of one product before site-specific words are removed. */
export function productBag(product: LabelledProduct, options: Pick<WeakLabelOptions, 'tokenize' | 'fields'>): string[] {
  return bagOfWords(productText(options.fields.map((f) => product[f])), options.tokenize);
}

/** Builds the samples of `products`, in the order given (images in product order). */
export function buildWeakLabels(products: readonly LabelledProduct[], options: WeakLabelOptions): WeakLabelSet {
  const sites = new Map<string, SiteWordFrequencies>();
  for (const p of products) addSiteProduct(sites, p.site, productBag(p, options));
  const labelled = labelProducts(products, sites, options);
  const records = [...labelled.samples];
  return { records, siteWords: labelled.siteWords, productsWithoutImages: labelled.productsWithoutImages };
}

/** Samples drawn one product at a time, and what was dropped on the way (final once `samples` is spent). */
export interface LabelledStream {
  samples: Iterable<WeakLabelRecord>;
  siteWords: Map<string, string[]>;
  productsWithoutImages: number;
}

/**
 * The samples of `products` (an iterable, so a crawl can read them back one by one instead of holding
 * them), whose bags are already counted into `sites`: site-specific words are dropped from each bag.
 */
export function labelProducts(products: Iterable<LabelledProduct>, sites: ReadonlyMap<string, SiteWordFrequencies>, options: WeakLabelOptions): LabelledStream {
  const siteWords = siteSpecificWords(sites, options.siteWords);
  const siteWordSets = new Map([...siteWords].map(([site, words]) => [site, new Set(words)]));
  const stream: LabelledStream = { siteWords, productsWithoutImages: 0, samples: [] };
  stream.samples = (function* () {
    for (const p of products) {
      const bag = productBag(p, options);
      const drop = siteWordSets.get(p.site);
      const samples = productSamples(p, drop ? bag.filter((w) => !drop.has(w)) : bag, options.textOnly);
      if (samples.length === 0) stream.productsWithoutImages += 1;
      yield* samples;
    }
  })();
  return stream;
}

/**
 * The samples of one product whose final bag is `tokens`: one per usable image, or one text-only sample
 * when `textOnly` and it names no image; none (a product without a usable image) otherwise.
 */
export function productSamples(p: LabelledProduct, tokens: string[], textOnly: boolean): WeakLabelRecord[] {
  const text = { title: p.title, category: p.category, description: p.description };
  const usable = p.images.filter((im) => im.ok && im.sha256 !== undefined && im.path !== undefined);
  if (usable.length === 0) {
    return textOnly && p.images.length === 0 ? [{ id: p.productId ?? stableId(p.source), source: p.source, url: null, image: null, sha256: null, ...text, tokens }] : [];
  }
  return usable.map((im, n) => {
    const id = p.productId !== undefined ? (usable.length === 1 ? p.productId : `${p.productId}-${n + 1}`) : stableId(p.source, im.url);
    return { id, source: p.source, url: im.url, image: im.path!, sha256: im.sha256!, ...text, tokens };
  });
}
