// Choosing what the page shows when the inputs hold more than a page can: evenly spread samples,
// and retrieval examples assembled from knn lines and the catalogue.
import type { CatalogueEntry, KnnRecord } from './inputs.js';
import type { RetrievalExample } from './page.js';

/** `count` items spread evenly over the list (all of it when it is shorter), in list order. */
export function spreadSample<T>(items: T[], count: number): T[] {
  if (count <= 0 || items.length <= count) return items.slice();
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(items[Math.floor((i * items.length) / count)]);
  return out;
}

/**
 * Retrieval examples from knn lines: the query and its first `top` neighbours, with images from the
 * catalogue; a neighbour is correct when the catalogue gives both the same item (null when unknown).
 */
export function retrievalExamples(knn: KnnRecord[], catalogue: Map<string, CatalogueEntry>, count: number, top: number): RetrievalExample[] {
  return spreadSample(knn, count).map((record) => {
    const query = catalogue.get(record.id);
    const item = query?.item ?? null;
    return {
      query: { id: record.id, image: query?.image ?? null, item },
      neighbors: record.neighbors.slice(0, top).map((n) => {
        const entry = catalogue.get(n.id);
        const correct = item !== null && entry?.item != null ? entry.item === item : null;
        return { id: n.id, image: entry?.image ?? null, score: n.score, correct };
      }),
    };
  });
}
