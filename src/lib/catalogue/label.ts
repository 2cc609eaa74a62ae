// The products of a run, read back from the journal one by one in output order, become labelled
// samples; a shard also notes each sample's manifest position and site for merge.
import type { ProductSource } from '../http/crawl.js';
import type { EntryLocation } from '../http/journal.js';
import { labelProducts, type LabelledStream, type WeakLabelOptions, type WeakLabelRecord } from '../text/weak-labels.js';
import type { SiteWordFrequencies } from '../text/vocabulary.js';

export interface LabelledCatalogue {
  /** Site words and products without images, final once `samples` is spent. */
  labelled: LabelledStream;
  samples: Iterable<WeakLabelRecord>;
  /** With `shard`: each written sample's position (its row's line, then its place among the row's samples) and site. */
  positions: number[];
  sampleSites: string[];
}

export function labelCatalogue(
  order: readonly EntryLocation[],
  readProduct: (at: EntryLocation) => ProductSource,
  sites: ReadonlyMap<string, SiteWordFrequencies>,
  options: WeakLabelOptions,
  shard: boolean,
): LabelledCatalogue {
  let current: ProductSource | null = null;
  const products = (function* () {
    for (const at of order) yield (current = readProduct(at));
  })();
  const labelled = labelProducts(products, sites, options);
  const sampleSites: string[] = [];
  const positions: number[] = [];
  let lastSource: string | null = null;
  let nth = 0;
  const samples = shard
    ? (function* () {
        for (const sample of labelled.samples) {
          // A sample's position: its row's line, then its image's place among the row's samples.
          nth = sample.source === lastSource ? nth + 1 : 0;
          lastSource = sample.source;
          positions.push(Number(sample.source.slice(sample.source.lastIndexOf(':') + 1)) * 65536 + nth);
          sampleSites.push(current!.site);
          yield sample;
        }
      })()
    : labelled.samples;
  return { labelled, samples, positions, sampleSites };
}
