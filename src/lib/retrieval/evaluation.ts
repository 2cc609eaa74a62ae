// Retrieval evaluation on an In-Shop style partition: which images are queries and gallery, how each query ranks.
import { UsageError, type CommandIO } from '../command.js';
import { idsPathFor } from '../io/features.js';
import { describeJsonValue, readNdjson, requireId, requireObject } from '../io/ndjson.js';
import {
  PartitionLookup,
  assertIdsMatchRows,
  distanceKindOf,
  gatherRows,
  normalizeRows,
  openNpyVectorSource,
  readRowIds,
  scoreTile,
  type Metric,
  type PartitionEntry,
} from '../knn/index.js';
import {
  averagePrecision,
  correctRanks,
  expectedRandomTopK,
  relevantRanks,
  sampleRandomRanks,
  summarizeRetrieval,
  type RetrievalSummary,
} from '../metrics/retrieval.js';
import { startProgress } from '../progress.js';
import { createRandom } from '../random.js';

/** Scores held per block of queries when ranking against the whole gallery. */
const SCORE_BLOCK_BYTES = 64 * 1024 * 1024;

/** One evaluated query: its first correct rank (null = none in the known ranking) and average precision. */
export interface QueryResult {
  id: string;
  item: string;
  rank: number | null;
  ap: number;
  relevant: number;
}

/** What the JSON output says about one run. */
export interface RetrievalRunReport extends RetrievalSummary {
  name: string;
  method: 'embeddings' | 'knn' | 'random';
  /** Ranking depth the metrics are cut at (knn lists), null when the whole gallery is ranked. */
  mapCutoff: number | null;
  topkExpected?: Record<string, number>;
}

/** The evaluation set: queries and gallery as partition entries, with the protocol they follow. */
export interface Protocol {
  entries: PartitionEntry[];
  /** Entry indices of the queries and of the gallery, in partition order. */
  queries: number[];
  gallery: number[];
  /** No split in the partition: every image is a query against all the others. */
  leaveOneOut: boolean;
}

export function protocolOf(entries: PartitionEntry[], usable: (entry: number) => boolean): Protocol {
  const leaveOneOut = entries.length > 0 && entries.every((e) => e.split === null);
  const queries: number[] = [];
  const gallery: number[] = [];
  entries.forEach((e, i) => {
    if (!usable(i)) return;
    if (leaveOneOut || e.split === 'query') queries.push(i);
    if (leaveOneOut || e.split === 'gallery') gallery.push(i);
  });
  return { entries, queries, gallery, leaveOneOut };
}

/** Gallery positions of each item. */
export function galleryByItem(protocol: Protocol): Map<string, number[]> {
  const byItem = new Map<string, number[]>();
  protocol.gallery.forEach((entry, position) => {
    const item = protocol.entries[entry].item;
    const list = byItem.get(item);
    if (list) list.push(position);
    else byItem.set(item, [position]);
  });
  return byItem;
}

export interface RetrievalEvaluation {
  results: QueryResult[];
  skipped: Record<string, number>;
  galleryCount: number;
  items: number;
  depth: number | null;
  leaveOneOut: boolean;
}

/** Embeddings to rank with: the .npy and the ids NDJSON of its rows (default: beside it). */
export interface EmbeddingsInput {
  embeddings: string;
  ids?: string;
  /** Field of the ids records that holds the id. */
  idField: string;
}

/** Ranks every query against the whole gallery by the embeddings: exact ranks, full-depth AP. */
export async function evaluateEmbeddings(input: EmbeddingsInput, lookup: PartitionLookup, metric: Metric, io: Pick<CommandIO, 'stdin' | 'stderr'>, warn: (message: string) => void): Promise<RetrievalEvaluation> {
  const npyPath = input.embeddings;
  const source = await openNpyVectorSource(npyPath);
  try {
    const ids = await readRowIds(input.ids ?? idsPathFor(npyPath), input.idField, io.stdin);
    await assertIdsMatchRows(ids, source.rows, npyPath);
    const entries = lookup.partition.entries;
    const rowOfEntry = new Int32Array(entries.length).fill(-1);
    let unmatched = 0;
    let duplicates = 0;
    ids.ids.forEach((id, row) => {
      let entry = lookup.find(id);
      if (entry < 0 && ids.images[row] !== undefined) entry = lookup.find(ids.images[row]!);
      if (entry < 0) unmatched++;
      else if (rowOfEntry[entry] >= 0) duplicates++;
      else rowOfEntry[entry] = row;
    });
    if (unmatched === ids.ids.length) {
      throw new UsageError(`none of the ${ids.ids.length} ids (e.g. ${JSON.stringify(ids.ids[0])}) is in the partition ${lookup.partition.path}`, { file: ids.path });
    }
    if (duplicates > 0) warn(`${duplicates} rows repeat an image already seen; the first row of each is used`);
    const protocol = protocolOf(entries, (e) => rowOfEntry[e] >= 0);
    const all = protocolOf(entries, () => true);
    const byItem = galleryByItem(protocol);
    const skipped = { noEmbedding: all.queries.length - protocol.queries.length, noGalleryMatch: 0 };
    const position = new Map(protocol.gallery.map((entry, i) => [entry, i]));

    const galleryRows = await gatherRows(source, protocol.gallery.map((e) => rowOfEntry[e]));
    const dim = source.dim;
    if (metric === 'cosine') normalizeRows(galleryRows, dim);
    const evaluated = protocol.queries.filter((q) => {
      const relevant = byItem.get(entries[q].item)?.length ?? 0;
      const self = protocol.leaveOneOut ? 1 : 0;
      if (relevant - self > 0) return true;
      skipped.noGalleryMatch++;
      return false;
    });
    const G = protocol.gallery.length;
    const blockRows = Math.max(1, Math.floor(SCORE_BLOCK_BYTES / Math.max(1, G * 4)));
    const scores = new Float32Array(Math.min(blockRows, Math.max(1, evaluated.length)) * G);
    const results: QueryResult[] = [];
    const progress = startProgress(io.stderr, { total: evaluated.length, label: 'ranking' });
    for (let start = 0; start < evaluated.length; start += blockRows) {
      const block = evaluated.slice(start, start + blockRows);
      const queryRows = await gatherRows(source, block.map((e) => rowOfEntry[e]));
      if (metric === 'cosine') normalizeRows(queryRows, dim);
      scoreTile(distanceKindOf(metric), queryRows, block.length, galleryRows, G, dim, scores);
      block.forEach((entry, q) => {
        const item = entries[entry].item;
        const relevant = byItem.get(item) ?? [];
        const self = protocol.leaveOneOut ? position.get(entry) ?? -1 : -1;
        const ranks = relevantRanks(scores.subarray(q * G, (q + 1) * G), relevant, self);
        results.push({ id: entries[entry].key, item, rank: ranks.length ? ranks[0] : null, ap: averagePrecision(ranks, ranks.length), relevant: ranks.length });
      });
      progress.update(Math.min(evaluated.length, start + blockRows));
    }
    progress.stop();
    return { results, skipped, galleryCount: G, items: byItem.size, depth: null, leaveOneOut: protocol.leaveOneOut };
  } finally {
    await source.close();
  }
}

/** Scores queries from knn output: ranks known to the depth of the neighbour lists. */
export async function evaluateKnn(knnPath: string, lookup: PartitionLookup, stdin: NodeJS.ReadableStream, warn: (message: string) => void): Promise<RetrievalEvaluation> {
  const entries = lookup.partition.entries;
  const protocol = protocolOf(entries, () => true);
  const byItem = galleryByItem(protocol);
  const isQuery = new Uint8Array(entries.length);
  for (const q of protocol.queries) isQuery[q] = 1;
  const isGallery = new Uint8Array(entries.length);
  for (const g of protocol.gallery) isGallery[g] = 1;
  const seen = new Uint8Array(entries.length);
  const skipped = { notInKnn: 0, notAQuery: 0, noGalleryMatch: 0, neighborsNotInGallery: 0 };
  const results: QueryResult[] = [];
  let depth = 0;
  let shortest = Infinity;
  for await (const { value, file, line } of readNdjson(knnPath, { stdin })) {
    const record = requireObject(value, { file, line });
    requireId(record, 'id', { file, line });
    if (!Array.isArray(record.neighbors)) throw new UsageError(`expected an array of {id, score}, got ${describeJsonValue(record.neighbors)}`, { file, line, field: 'neighbors' });
    const entry = lookup.find(String(record.id));
    if (entry < 0 || !isQuery[entry]) {
      skipped.notAQuery++;
      continue;
    }
    if (seen[entry]) throw new UsageError(`query ${JSON.stringify(record.id)} appears twice`, { file, line, field: 'id' });
    seen[entry] = 1;
    const item = entries[entry].item;
    const relevant = (byItem.get(item)?.length ?? 0) - (protocol.leaveOneOut ? 1 : 0);
    if (relevant <= 0) {
      skipped.noGalleryMatch++;
      continue;
    }
    const items: Array<string | null> = [];
    record.neighbors.forEach((n: unknown, i: number) => {
      const id = n !== null && typeof n === 'object' ? (n as Record<string, unknown>).id : n;
      if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError(`expected a string or number id, got ${describeJsonValue(id)}`, { file, line, field: `neighbors[${i}].id` });
      const g = lookup.find(String(id));
      if (g === entry) return;
      if (g < 0 || !isGallery[g]) {
        skipped.neighborsNotInGallery++;
        return;
      }
      items.push(entries[g].item);
    });
    depth = Math.max(depth, items.length);
    shortest = Math.min(shortest, items.length);
    const ranks = correctRanks(items, item);
    results.push({ id: entries[entry].key, item, rank: ranks.length ? ranks[0] : null, ap: averagePrecision(ranks, relevant, items.length), relevant });
  }
  for (const q of protocol.queries) if (!seen[q]) skipped.notInKnn++;
  // Lists that hold the whole gallery are complete rankings: nothing is cut.
  const candidates = protocol.gallery.length - (protocol.leaveOneOut ? 1 : 0);
  const complete = shortest >= candidates;
  if (skipped.notInKnn > 0) warn(`${skipped.notInKnn} queries of the partition have no line in ${knnPath}; they are left out`);
  if (skipped.neighborsNotInGallery > 0) warn(`${skipped.neighborsNotInGallery} neighbours are not gallery images of the partition and were ignored (was knn run against the gallery split?)`);
  return { results, skipped, galleryCount: protocol.gallery.length, items: byItem.size, depth: complete ? null : depth, leaveOneOut: protocol.leaveOneOut };
}

/** A random ordering of the gallery for every query: the chance level every model must beat. */
export function evaluateRandom(queries: Array<{ id: string; item: string; relevant: number }>, galleryCount: number, leaveOneOut: boolean, seed: number, ks: number[]) {
  const random = createRandom(`eval-retrieval-random-${seed}`);
  const candidates = galleryCount - (leaveOneOut ? 1 : 0);
  const results: QueryResult[] = queries.map((q) => {
    const ranks = sampleRandomRanks(candidates, q.relevant, random.next);
    return { id: q.id, item: q.item, rank: ranks.length ? ranks[0] : null, ap: averagePrecision(ranks, q.relevant), relevant: q.relevant };
  });
  const expected: Record<string, number> = {};
  for (const k of ks) {
    let sum = 0;
    for (const q of queries) sum += expectedRandomTopK(candidates, q.relevant, k);
    expected[k] = queries.length ? sum / queries.length : 0;
  }
  return { results, expected };
}

/** The partition's queries with their relevant counts, for a random baseline without a model. */
export function partitionQueries(lookup: PartitionLookup): { queries: Array<{ id: string; item: string; relevant: number }>; galleryCount: number; items: number; leaveOneOut: boolean; noGalleryMatch: number } {
  const protocol = protocolOf(lookup.partition.entries, () => true);
  const byItem = galleryByItem(protocol);
  const queries: Array<{ id: string; item: string; relevant: number }> = [];
  let noGalleryMatch = 0;
  for (const q of protocol.queries) {
    const e = protocol.entries[q];
    const relevant = (byItem.get(e.item)?.length ?? 0) - (protocol.leaveOneOut ? 1 : 0);
    if (relevant > 0) queries.push({ id: e.key, item: e.item, relevant });
    else noGalleryMatch++;
  }
  return { queries, galleryCount: protocol.gallery.length, items: byItem.size, leaveOneOut: protocol.leaveOneOut, noGalleryMatch };
}

export function retrievalRunReport(name: string, method: RetrievalRunReport['method'], results: QueryResult[], ks: number[], depth: number | null): RetrievalRunReport {
  const summary = summarizeRetrieval(
    results.map((r) => r.rank),
    results.map((r) => r.ap),
    ks,
    depth ?? undefined,
  );
  return { name, method, ...summary, mapCutoff: depth };
}

/** Rounds metrics to 6 decimals for a readable JSON. */
export function rounded<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_key, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(6)) : v))) as T;
}
