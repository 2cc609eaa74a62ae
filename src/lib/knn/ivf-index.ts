// A saved IVF-flat index: a directory of vectors.npy (the prepared gallery rows, float32, grouped by
// list), rows.npy (the gallery row of each, uint32), offsets.npy (where each list starts, int64),
// centroids.npy, ids.ndjson (in gallery order, as the HNSW index keeps them) and meta.json, written
// last, with the metric, dimension, the build's settings and the size and SHA-256 of every file.
// Neighbours are reported by gallery row, so ties, ids and --recall work as for exact search.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../command.js';
import { writeAtomicDirectory, type OutputGroup } from '../io/atomic.js';
import { ROWS_DIGEST_FIELD, type RowIds } from '../io/features.js';
import { openNdjsonWriter } from '../io/ndjson.js';
import { openNpyWriter, readNpy, readNpyHeader, writeNpy, type NpyHeader } from '../io/npy.js';
import { startProgress } from '../progress.js';
import { createRandom } from '../random.js';
import type { ScoreTopK } from './gemm.js';
import { DEFAULT_ITERATIONS, TRAIN_ROWS_PER_LIST, assignRows, centroidBias, defaultListCount, prepareRows, sampleRows, trainCentroids, type IvfLists } from './ivf.js';
import { fileSha256, savedIds, type IdList } from './saved-index.js';
import { gatherRows, isMetric, type Metric, type VectorSource } from './source.js';

export const IVF_FILES = { meta: 'meta.json', ids: 'ids.ndjson', vectors: 'vectors.npy', rows: 'rows.npy', offsets: 'offsets.npy', centroids: 'centroids.npy' } as const;
const DATA_FILES = ['vectors', 'rows', 'offsets', 'centroids'] as const;
export const IVF_FORMAT = 'atelier-ivf';
export const IVF_VERSION = 1;

/**
 * Lists probed per query by default: a sixteenth of them. On the 1M x 256 bench data (4,000 lists)
 * 256 lists gave recall@10 0.944 at 6.3x exact search's queries/s, 32 only 0.58 (bench/RESULTS.md).
 */
export const DEFAULT_NPROBE_SHARE = 16;

export function defaultNprobe(lists: number): number {
  return Math.max(1, Math.round(lists / DEFAULT_NPROBE_SHARE));
}

export interface IvfBuildSettings {
  metric: Metric;
  /** k-means centroids; default defaultListCount(rows). */
  lists?: number;
  /** Rows sampled for k-means; default TRAIN_ROWS_PER_LIST per list (all rows when fewer). */
  trainRows?: number;
  iterations?: number;
  seed: number;
}

export interface IvfMeta {
  format: typeof IVF_FORMAT;
  version: typeof IVF_VERSION;
  metric: Metric;
  dim: number;
  count: number;
  lists: number;
  train_rows: number;
  iterations: number;
  seed: number;
  /** SHA-256 of the indexed .npy's data bytes. */
  rows_sha256: string;
  ids_sha256: string;
  files: Record<(typeof DATA_FILES)[number], { bytes: number; sha256: string }>;
}

/** The format a saved index directory's meta.json names (null when it has none or is unreadable: the reader says why). */
export async function savedIndexFormat(dir: string): Promise<string | null> {
  try {
    const meta = JSON.parse(await readFile(join(dir, IVF_FILES.meta), 'utf8')) as { format?: unknown };
    return typeof meta?.format === 'string' ? meta.format : null;
  } catch {
    return null;
  }
}

/**
 * What onnxruntime holds while scoring rows against `lists` centroids, beyond what it held when the
 * budget was taken: a 256 x lists score matrix and TopK's copies of it, and the buffers its threads
 * allocate on the first runs (measured: a 100k build under --memory 256M peaked up to 9% over without it).
 */
function ortWorkingBytes(lists: number): number {
  return 256 * lists * 4 * 3 + 16 * 1024 * 1024;
}

/** The list count, sample size and iterations a build uses, refusing ones the gallery cannot give. */
export function ivfBuildPlan(rows: number, dim: number, settings: IvfBuildSettings, memoryBytes: number): { lists: number; trainRows: number; iterations: number } {
  if (rows === 0) throw new UsageError('has no rows to index', { field: '--gallery' });
  const lists = settings.lists ?? defaultListCount(rows);
  if (lists > rows) throw new UsageError(`${lists} lists for ${rows} rows: at most one list a row`, { field: '--lists' });
  // The sample is held whole: at most half of what onnxruntime's working memory leaves.
  const fits = Math.floor(Math.max(0, memoryBytes - ortWorkingBytes(lists)) / 2 / (dim * 4));
  // Never shrunk to fit: the index must not depend on what the process happened to hold.
  const trainRows = Math.min(rows, settings.trainRows ?? TRAIN_ROWS_PER_LIST * lists);
  if (trainRows < lists) throw new UsageError(`${trainRows} k-means rows for ${lists} lists: needs at least one a list`, { field: '--train-rows' });
  if (trainRows > fits) throw new UsageError(`a k-means sample of ${trainRows} rows of ${dim} floats does not fit in half the memory budget (${fits} do): raise --memory or lower --train-rows`, { field: settings.trainRows === undefined ? '--memory' : '--train-rows' });
  return { lists, trainRows, iterations: settings.iterations ?? DEFAULT_ITERATIONS };
}

/**
 * Builds the index into `dir` (an empty directory the caller commits atomically): k-means on a seeded
 * sample, every row assigned to its nearest centroid in streamed blocks, then the rows written grouped
 * by list, in as many passes over the gallery as the budget needs. Same input and seed, same bytes.
 */
export async function buildIvfIndex(
  dir: string,
  gallery: VectorSource,
  ids: string[],
  rowsSha256: string,
  settings: IvfBuildSettings,
  opts: { scorer: ScoreTopK; memoryBytes: number; stderr: NodeJS.WritableStream },
): Promise<IvfMeta> {
  const { dim, rows } = gallery;
  const { metric } = settings;
  const { lists, trainRows, iterations } = ivfBuildPlan(rows, dim, settings, opts.memoryBytes);
  const random = createRandom(`ivf-${settings.seed}`);

  const sample = prepareRows(trainRows === rows ? await gallery.read(0, rows) : await gatherRows(gallery, sampleRows(rows, trainRows, random)), dim, metric);
  const training = startProgress(opts.stderr, { total: iterations, label: 'k-means' });
  const centroids = await trainCentroids(sample, trainRows, dim, lists, { metric, iterations, random, scorer: opts.scorer, onIteration: (n) => training.update(n) });
  training.stop();
  const bias = centroidBias(metric, centroids, lists, dim);

  // Pass 1: each row's list.
  const slabRows = Math.max(1, Math.min(rows, 16384));
  const slab = new Float32Array(slabRows * dim);
  const listOf = new Int32Array(rows);
  const assigning = startProgress(opts.stderr, { total: rows, label: 'assigning' });
  for (let start = 0; start < rows; start += slabRows) {
    const end = Math.min(rows, start + slabRows);
    const block = prepareRows(await gallery.readInto(start, end, slab), dim, metric);
    await assignRows(opts.scorer, block, end - start, centroids, bias, lists, dim, listOf, start);
    assigning.update(end);
  }
  assigning.stop();
  const offsets = new Float64Array(lists + 1);
  for (let r = 0; r < rows; r++) offsets[listOf[r] + 1]++;
  for (let l = 0; l < lists; l++) offsets[l + 1] += offsets[l];
  const next = offsets.slice(0, lists);
  const position = new Uint32Array(rows);
  const galleryRows = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    const p = next[listOf[r]]++;
    position[r] = p;
    galleryRows[p] = r;
  }

  // Pass 2..: the rows in list order, a range of positions a pass, each range filled from one read of the gallery.
  let maxList = 0;
  for (let l = 0; l < lists; l++) maxList = Math.max(maxList, offsets[l + 1] - offsets[l]);
  // The sample stays referenced until the end; the vectors writer stages 4 MiB.
  const held = sample.byteLength + slab.byteLength + rows * 12 + lists * dim * 8 + 4 * 1024 * 1024 + ortWorkingBytes(lists);
  const rangeRows = Math.max(maxList, Math.min(rows, Math.floor(Math.max(0, opts.memoryBytes - held) / (dim * 4))));
  const vectors = await openNpyWriter(join(dir, IVF_FILES.vectors), { dtype: 'float32', rowShape: [dim], bufferBytes: 4 * 1024 * 1024 });
  try {
    let range = new Float32Array(0);
    const writing = startProgress(opts.stderr, { total: rows, label: 'writing lists' });
    for (let l0 = 0; l0 < lists; ) {
      let l1 = l0 + 1;
      while (l1 < lists && offsets[l1 + 1] - offsets[l0] <= rangeRows) l1++;
      const p0 = offsets[l0], p1 = offsets[l1];
      if (range.length < (p1 - p0) * dim) range = new Float32Array((p1 - p0) * dim);
      for (let start = 0; start < rows; start += slabRows) {
        const end = Math.min(rows, start + slabRows);
        const block = prepareRows(await gallery.readInto(start, end, slab), dim, metric);
        for (let r = start; r < end; r++) {
          const p = position[r];
          if (p >= p0 && p < p1) range.set(block.subarray((r - start) * dim, (r - start + 1) * dim), (p - p0) * dim);
        }
      }
      await vectors.writeRows(range.subarray(0, (p1 - p0) * dim));
      writing.update(p1);
      l0 = l1;
    }
    writing.stop();
    await vectors.close();
  } catch (err) {
    await vectors.abort();
    throw err;
  }
  await writeNpy(join(dir, IVF_FILES.rows), galleryRows, [rows]);
  await writeNpy(join(dir, IVF_FILES.offsets), BigInt64Array.from(offsets, (v) => BigInt(v)), [lists + 1]);
  await writeNpy(join(dir, IVF_FILES.centroids), centroids, [lists, dim]);
  const idsPath = join(dir, IVF_FILES.ids);
  const writer = await openNdjsonWriter(idsPath);
  for (let row = 0; row < ids.length; row++) await writer.write(row === ids.length - 1 ? { id: ids[row], [ROWS_DIGEST_FIELD]: rowsSha256 } : { id: ids[row] });
  await writer.close();
  const files = {} as IvfMeta['files'];
  for (const name of DATA_FILES) {
    const path = join(dir, IVF_FILES[name]);
    files[name] = { bytes: (await stat(path)).size, sha256: await fileSha256(path) };
  }
  const meta: IvfMeta = {
    format: IVF_FORMAT,
    version: IVF_VERSION,
    metric,
    dim,
    count: rows,
    lists,
    train_rows: trainRows,
    iterations,
    seed: settings.seed,
    rows_sha256: rowsSha256,
    ids_sha256: await fileSha256(idsPath),
    files,
  };
  await writeFile(join(dir, IVF_FILES.meta), JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

/** 'knn index build --index ivf': builds into `indexDir`, replaced atomically; closes the gallery's source. */
export async function saveIvfDirectory(
  indexDir: string,
  gallery: { path: string; source: VectorSource; ids: string[]; rowIds: RowIds },
  settings: IvfBuildSettings,
  opts: { scorer: ScoreTopK; memoryBytes: number; stderr: NodeJS.WritableStream; outputs?: OutputGroup; rowsSha256: string },
): Promise<IvfMeta> {
  try {
    return await writeAtomicDirectory(indexDir, (tmpDir) => buildIvfIndex(tmpDir, gallery.source, gallery.ids, opts.rowsSha256, settings, opts), opts.outputs);
  } finally {
    await gallery.source.close();
  }
}

/** Reads meta.json and checks every field it promises, naming the field that is wrong. */
export async function readIvfMeta(dir: string): Promise<IvfMeta> {
  const path = join(dir, IVF_FILES.meta);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`unreadable: ${(err as Error).message}`, { file: path });
  }
  if (meta?.format !== IVF_FORMAT) throw new UsageError(`expected '${IVF_FORMAT}'`, { file: path, field: 'format' });
  if (meta.version !== IVF_VERSION) throw new UsageError(`version ${JSON.stringify(meta.version)} is not ${IVF_VERSION}; rebuild with 'knn index build --index ivf'`, { file: path, field: 'version' });
  if (!isMetric(String(meta.metric))) throw new UsageError(`unknown metric ${JSON.stringify(meta.metric)}`, { file: path, field: 'metric' });
  for (const field of ['dim', 'count', 'lists', 'train_rows', 'iterations']) {
    if (!Number.isInteger(meta[field]) || (meta[field] as number) <= 0) throw new UsageError('expected a positive integer', { file: path, field });
  }
  const isSha = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
  for (const field of ['rows_sha256', 'ids_sha256']) if (!isSha(meta[field])) throw new UsageError('expected a hex SHA-256', { file: path, field });
  const files = meta.files as Record<string, { bytes?: unknown; sha256?: unknown }> | undefined;
  for (const name of DATA_FILES) {
    const entry = files?.[name];
    if (!entry || !Number.isInteger(entry.bytes) || !isSha(entry.sha256)) throw new UsageError('expected {bytes, sha256}', { file: path, field: `files.${name}` });
  }
  return meta as unknown as IvfMeta;
}

/** An opened IVF index: its lists for the search, its ids and meta; close() releases the vectors file. */
export interface SavedIvfIndex {
  lists: IvfLists;
  meta: IvfMeta;
  ids: IdList;
  close(): void;
}

async function checkedHeader(path: string, metaPath: string, dtype: string, shape: number[]): Promise<NpyHeader> {
  const header = await readNpyHeader(path);
  if (header.dtype !== dtype || header.shape.join(',') !== shape.join(',')) {
    throw new UsageError(`holds a ${header.dtype} array of shape (${header.shape.join(', ')}), but ${metaPath} records ${dtype} of shape (${shape.join(', ')}): rebuild the index`, { file: path });
  }
  return header;
}

/**
 * Opens a saved IVF index after checking each file's size against meta.json, its SHA-256 unless
 * `verify` is false, and the ids file's SHA-256; the lists' offsets and rows are checked for range
 * either way, so an edited file cannot send the search outside the vectors file.
 */
export async function openIvfIndex(dir: string, opts: { verify: boolean }): Promise<SavedIvfIndex> {
  const meta = await readIvfMeta(dir);
  const metaPath = join(dir, IVF_FILES.meta);
  for (const name of DATA_FILES) {
    const path = join(dir, IVF_FILES[name]);
    const size = await stat(path).then((s) => s.size, () => null);
    if (size === null) throw new UsageError('missing from the index directory', { file: path });
    if (size !== meta.files[name].bytes) throw new UsageError(`${size} bytes, but ${metaPath} records ${meta.files[name].bytes}: the file was truncated or replaced; rebuild the index`, { file: path, field: `files.${name}.bytes` });
    if (opts.verify && (await fileSha256(path)) !== meta.files[name].sha256) {
      throw new UsageError(`differs from the SHA-256 in ${metaPath}: the file is damaged or comes from another build; rebuild the index`, { file: path, field: `files.${name}.sha256` });
    }
  }
  const idsPath = join(dir, IVF_FILES.ids);
  const idsBytes = await readFile(idsPath).catch(() => null);
  if (idsBytes === null) throw new UsageError('missing from the index directory', { file: idsPath });
  if (createHash('sha256').update(idsBytes).digest('hex') !== meta.ids_sha256) throw new UsageError(`differs from the ids_sha256 in ${metaPath}: the ids were edited or come from another index`, { file: idsPath, field: 'ids_sha256' });
  const ids = savedIds(idsBytes, idsPath);
  if (ids.length !== meta.count) throw new UsageError(`has ${ids.length} ids for an index of ${meta.count} rows`, { file: idsPath });

  const { dim, count, lists } = meta;
  const path = (name: (typeof DATA_FILES)[number]) => join(dir, IVF_FILES[name]);
  const vectorsHeader = await checkedHeader(path('vectors'), metaPath, 'float32', [count, dim]);
  await checkedHeader(path('rows'), metaPath, 'uint32', [count]);
  await checkedHeader(path('offsets'), metaPath, 'int64', [lists + 1]);
  await checkedHeader(path('centroids'), metaPath, 'float32', [lists, dim]);
  const galleryRows = (await readNpy(path('rows'))).data as Uint32Array;
  const offsets = Float64Array.from((await readNpy(path('offsets'))).data as BigInt64Array, (v) => Number(v));
  const centroids = (await readNpy(path('centroids'))).data as Float32Array;
  const bad = (file: string, what: string) => new UsageError(`${what}: the file is damaged; rebuild the index`, { file });
  if (offsets[0] !== 0 || offsets[lists] !== count) throw bad(path('offsets'), `lists must cover rows 0 to ${count}`);
  for (let l = 0; l < lists; l++) if (!(offsets[l + 1] >= offsets[l])) throw bad(path('offsets'), `list ${l} ends before it starts`);
  for (let p = 0; p < count; p++) if (galleryRows[p] >= count) throw bad(path('rows'), `row ${galleryRows[p]} is past the ${count} indexed`);
  const fd = openSync(path('vectors'), 'r');
  const rowBytes = dim * 4;
  return {
    meta,
    ids,
    lists: {
      dim,
      metric: meta.metric,
      lists,
      count,
      centroids,
      offsets,
      galleryRows,
      readRows(start, end, target) {
        const out = target.subarray(0, (end - start) * dim);
        const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
        let done = 0;
        while (done < bytes.length) {
          const n = readSync(fd, bytes, done, bytes.length - done, vectorsHeader.dataOffset + start * rowBytes + done);
          if (n === 0) throw new UsageError('ends early: rebuild the index', { file: path('vectors') });
          done += n;
        }
        return out;
      },
    },
    close: () => closeSync(fd),
  };
}
