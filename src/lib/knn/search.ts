// The ways knn gets its neighbour lists: exact search, exact search on one shard, a graph built for
// the run, or a saved index; each says in words what it did for the run's summary line.
import { UsageError } from '../command.js';
import { assertIdsMatchRows, assertUniqueIds, idsPathFor, readRowIds, type RowIds } from '../io/features.js';
import { startProgress } from '../progress.js';
import type { Shard } from '../shard.js';
import { exactNeighbors, planExactSearchFor, type NeighborBlock } from './exact.js';
import { RESCORE_FACTOR, buildHnswIndex, hnswNeighbors, type HnswParameters } from './hnsw.js';
import { openScoreTopK, ivfNeighbors } from './ivf.js';
import { IVF_FORMAT, defaultNprobe, openIvfIndex, savedIndexFormat } from './ivf-index.js';
import { chooseExactKernel, distanceKindOf, type ExactKernel, type KernelName } from './kernel.js';
import { assertIndexDimension, assertIndexMetric, assertIndexedGallery, openSavedIndex, rowsSha256Of, type IdList } from './saved-index.js';
import { emptyBlocks, remapBlocks, shardRows, subsetSource } from './shard.js';
import { openNpyVectorSource, type Metric, type VectorSource } from './source.js';

/** What a knn run does: search (no action), or build or query a saved index. */
export type KnnMode = 'search' | 'build' | 'query';

export function knnModeOf(action: string | undefined, verb: string | undefined): KnnMode {
  if (action === undefined) return 'search';
  if (action !== 'index') throw new UsageError(`unknown action '${action}' (expected 'index build' or 'index query', or none to search)`);
  if (verb === 'build' || verb === 'query') return verb;
  throw new UsageError(`expected 'knn index build' or 'knn index query', got 'knn index ${verb ?? ''}'`.trimEnd());
}

/** A .npy of row vectors with the ids of its rows. */
export interface IdentifiedVectors {
  source: VectorSource;
  ids: string[];
  rowIds: RowIds;
}

/** Opens a .npy of vectors and its ids (default: beside it), checking one unique id per row. */
export async function openIdentifiedVectors(npyPath: string, idsPath: string | undefined, idField: string, stdin: NodeJS.ReadableStream): Promise<IdentifiedVectors> {
  const source = await openNpyVectorSource(npyPath);
  try {
    const ids = await readRowIds(idsPath ?? idsPathFor(npyPath), idField, stdin);
    await assertIdsMatchRows(ids, source.rows, npyPath);
    assertUniqueIds(ids, idField);
    return { source, ids: ids.ids, rowIds: ids };
  } catch (err) {
    await source.close();
    throw err;
  }
}

/** Neighbour lists on their way to the output, and what names their rows. */
export interface NeighborSearch {
  blocks: AsyncGenerator<NeighborBlock>;
  /** The method, in words, for the summary line. */
  method: string;
  /** When the search proper began (performance.now()): queries/s counts from here. */
  started: number;
  queryIds: string[];
  galleryIds: IdList;
  /** The metric scores are in (a saved index's own). */
  metric: Metric;
  /** Rows of a query shard, in the order written (the manifest's positions). */
  positions: number[];
  /** The gallery exact search checks --recall against; null when the lists are exact or it is not at hand. */
  recallGallery: VectorSource | null;
}

export interface ExactSearchSettings {
  k: number;
  metric: Metric;
  excludeSelf: boolean;
  memoryBytes: number;
  threads: number;
}

/** Exact search of every query against the whole gallery, streamed within the memory budget. */
export function exactSearch(query: IdentifiedVectors, gallery: IdentifiedVectors, settings: ExactSearchSettings, exact: { kernel: ExactKernel; reason: string }): NeighborSearch {
  const started = performance.now();
  const plan = planExactSearchFor(query.source, gallery.source, settings);
  const layout = plan.galleryResident ? 'gallery held in memory' : `gallery streamed in slabs of ${plan.gallerySlabRows} rows, queries in blocks of ${plan.queryBlockRows}`;
  const blocks = exactNeighbors(query.source, gallery.source, { ...settings, kernel: exact.kernel });
  return { blocks, method: `exact search, ${exact.reason}, ${layout}`, started, queryIds: query.ids, galleryIds: gallery.ids, metric: settings.metric, positions: [], recallGallery: null };
}

/**
 * The exact search of one shard: its queries against the whole gallery, or every query against its
 * gallery rows. Self-exclusion is by row once the sets are subsets, so the search asks for k + 1.
 */
export async function shardedExactSearch(
  shard: Shard,
  by: 'query' | 'gallery',
  query: IdentifiedVectors,
  gallery: IdentifiedVectors,
  settings: ExactSearchSettings,
  exact: { kernel: ExactKernel; reason: string },
): Promise<NeighborSearch> {
  const started = performance.now();
  const { k, excludeSelf } = settings;
  const search = { ...settings, kernel: exact.kernel, k: excludeSelf ? k + 1 : k, excludeSelf: false };
  const method = `exact search, ${exact.reason}, shard ${shard.index} of ${shard.count} by ${by}`;
  const common = { method, started, galleryIds: gallery.ids, metric: settings.metric, recallGallery: null };
  if (by === 'query') {
    const rows = shardRows(query.ids, shard);
    const queries = await subsetSource(query.source, rows);
    const blocks = rows.length ? remapBlocks(exactNeighbors(queries, gallery.source, search), { k, selfRow: excludeSelf ? (q) => rows[q] : undefined }) : emptyBlocks(0, k);
    return { ...common, blocks, queryIds: rows.map((r) => query.ids[r]), positions: rows };
  }
  const rows = shardRows(gallery.ids, shard);
  const part = await subsetSource(gallery.source, rows);
  const blocks = rows.length ? remapBlocks(exactNeighbors(query.source, part, search), { k, galleryRows: rows, selfRow: excludeSelf ? (q) => q : undefined }) : emptyBlocks(query.source.rows, k);
  return { ...common, blocks, queryIds: query.ids, positions: [] };
}

/** An HNSW graph of the gallery built for this run (f32 rows), then searched. */
export async function freshHnswSearch(
  query: IdentifiedVectors,
  gallery: IdentifiedVectors,
  params: HnswParameters,
  opts: { k: number; excludeSelf: boolean; threads: number; stderr: NodeJS.WritableStream },
): Promise<NeighborSearch> {
  const started = performance.now();
  if (params.quantization !== 'f32') throw new UsageError("is for 'knn index build' (a saved index keeps the exact rows to re-rank on); --index hnsw holds f32 rows", { field: '--quantization' });
  const progress = startProgress(opts.stderr, { total: gallery.source.rows, label: 'indexing' });
  const index = await buildHnswIndex(gallery.source, params, { threads: opts.threads, onRows: (n) => progress.update(n) });
  progress.stop();
  const blocks = hnswNeighbors(index, query.source, { k: opts.k, excludeSelf: opts.excludeSelf, threads: opts.threads });
  const method = `HNSW (M=${params.connectivity}, ef=${params.expansionSearch}) built in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  return { blocks, method, started, queryIds: query.ids, galleryIds: gallery.ids, metric: params.metric, positions: [], recallGallery: gallery.source };
}

/** 'knn index query': the saved index and how to open and search it. */
export interface SavedIndexQuery {
  indexDir: string | undefined;
  /** Load into memory instead of memory-mapping. */
  load: boolean;
  verify: boolean;
  /** ef for the search; undefined keeps the index's own. */
  expansionSearch: number | undefined;
  /** --metric as given, which must be the index's. */
  metric: Metric | undefined;
  rescore: number | undefined;
  /** IVF lists probed per query; undefined: defaultNprobe(lists). */
  nprobe: number | undefined;
  /** Exact kernel an IVF index scores its lists with. */
  kernel: KernelName;
  /** Data budget of an IVF search. */
  memoryBytes: number;
  k: number;
  threads: number;
  /** --recall: check the lists against exact search on the indexed vectors, which must be given as `gallery`. */
  recall: boolean;
  gallery: { path: string; idsPath: string | undefined; idField: string } | null;
}

/**
 * Opens a saved index (checked against its meta.json) and searches it. What must be closed after the
 * run is pushed to `closers` as soon as it is open.
 */
export async function savedIndexSearch(
  query: IdentifiedVectors,
  settings: SavedIndexQuery,
  closers: Array<{ close(): Promise<void> }>,
  io: { stdin: NodeJS.ReadableStream; warn: (message: string) => void },
): Promise<NeighborSearch> {
  const opening = performance.now();
  if (!settings.indexDir) throw new UsageError("'knn index query' needs --index-dir", { field: '--index-dir' });
  const dir = settings.indexDir;
  if ((await savedIndexFormat(dir)) === IVF_FORMAT) return ivfIndexSearch(dir, query, settings, closers, io, opening);
  if (settings.nprobe !== undefined) throw new UsageError('is for an IVF index (knn index build --index ivf); this one is HNSW', { field: '--nprobe' });
  const { index, meta, ids: saved, exactRows } = await openSavedIndex(dir, { memoryMap: !settings.load, verify: settings.verify, expansionSearch: settings.expansionSearch });
  if (exactRows) closers.push({ close: async () => exactRows.close() });
  assertIndexMetric(meta, dir, settings.metric);
  assertIndexDimension(meta, dir, query.source);
  if (settings.rescore !== undefined && !exactRows) throw new UsageError('an f32 index scores its candidates exactly already; --rescore is for f16 and i8 indexes', { field: '--rescore' });
  const rescoreCount = exactRows ? (settings.rescore ?? RESCORE_FACTOR * settings.k) : 0;
  const blocks = hnswNeighbors(index, query.source, { k: settings.k, threads: settings.threads, rescore: exactRows ? { rows: exactRows, candidates: rescoreCount } : undefined });
  const recallGallery = await recallGalleryOf(settings, meta, dir, saved, closers, io);
  const opened = (performance.now() - opening) / 1000;
  const method = `HNSW index ${dir} (${settings.load ? 'loaded' : 'memory-mapped'}, ${meta.metric}, ${meta.quantization}, ef=${index.params.expansionSearch}${rescoreCount ? `, ${rescoreCount} candidates re-ranked on exact rows` : ''}; ${settings.verify ? 'verified and ' : ''}opened in ${opened.toFixed(2)} s)`;
  // queries/s counts the search, as for exact search once its ids are read.
  return { blocks, method, started: performance.now(), queryIds: query.ids, galleryIds: saved, metric: meta.metric, positions: [], recallGallery };
}

/** Opens the gallery given for --recall, checked to be the one the index was built from. */
async function recallGalleryOf(
  settings: SavedIndexQuery,
  meta: { rows_sha256: string },
  dir: string,
  saved: IdList,
  closers: Array<{ close(): Promise<void> }>,
  io: { stdin: NodeJS.ReadableStream; warn: (message: string) => void },
): Promise<VectorSource | null> {
  if (settings.recall && !settings.gallery) io.warn('--recall needs the indexed vectors as --gallery (an index does not keep them in a readable form); skipped');
  if (!settings.recall || !settings.gallery) return null;
  const { path, idsPath, idField } = settings.gallery;
  const indexed = await openIdentifiedVectors(path, idsPath, idField, io.stdin);
  closers.push(indexed.source);
  assertIndexedGallery(meta, dir, saved, indexed.rowIds, await rowsSha256Of(path, indexed.rowIds));
  return indexed.source;
}

/** A saved IVF index: the probed lists of each query block scored by the exact kernel. */
async function ivfIndexSearch(
  dir: string,
  query: IdentifiedVectors,
  settings: SavedIndexQuery,
  closers: Array<{ close(): Promise<void> }>,
  io: { stdin: NodeJS.ReadableStream; warn: (message: string) => void },
  opening: number,
): Promise<NeighborSearch> {
  if (settings.rescore !== undefined) throw new UsageError('is for an f16 or i8 HNSW index; an IVF index scores its candidates exactly', { field: '--rescore' });
  if (settings.expansionSearch !== undefined) throw new UsageError('is for an HNSW index; an IVF index takes --nprobe', { field: '--expansion-search' });
  const index = await openIvfIndex(dir, { verify: settings.verify });
  closers.push({ close: async () => index.close() });
  const { meta } = index;
  assertIndexMetric(meta, dir, settings.metric);
  assertIndexDimension(meta, dir, query.source);
  const nprobe = Math.min(settings.nprobe ?? defaultNprobe(meta.lists), meta.lists);
  const exact = await chooseExactKernel(settings.kernel, distanceKindOf(meta.metric), settings.threads).catch((err: Error) => {
    throw new UsageError(err.message, { field: '--kernel' });
  });
  const { scorer } = await openScoreTopK(settings.threads);
  const blocks = ivfNeighbors(index.lists, query.source, { k: settings.k, nprobe, memoryBytes: settings.memoryBytes, kernel: exact.kernel, scorer });
  const recallGallery = await recallGalleryOf(settings, meta, dir, index.ids, closers, io);
  const opened = (performance.now() - opening) / 1000;
  const method = `IVF index ${dir} (${meta.metric}, ${meta.lists} lists, nprobe=${nprobe}, ${exact.reason}; ${settings.verify ? 'verified and ' : ''}opened in ${opened.toFixed(2)} s)`;
  return { blocks, method, started: performance.now(), queryIds: query.ids, galleryIds: index.ids, metric: meta.metric, positions: [], recallGallery };
}

/** The run's summary line: sizes, method, time and throughput. */
export function searchSummaryLine(s: { queries: number; galleryRows: number; dim: number; metric: Metric; method: string; seconds: number }): string {
  return `${s.queries} queries x ${s.galleryRows} gallery rows (${s.dim}-d, ${s.metric}), ${s.method}: ${s.seconds.toFixed(2)} s (${Math.round(s.queries / Math.max(s.seconds, 1e-9))} queries/s)`;
}
