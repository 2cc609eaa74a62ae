// A saved HNSW index: a directory of index.usearch (usearch's own file), ids.ndjson (one id per row,
// in key order) and meta.json, written last, which records what the other two must be: metric,
// dimension, row count, the SHA-256 of the indexed rows, of the ids file and of the index file.
// An f16 or i8 index also keeps the exact rows as float32 (rows.npy), to re-rank its candidates.
// usearch trusts its file: a damaged graph crashes the native search (measured: a segfault or an
// abort on random bytes in the graph), so a query checks the file against meta.json first.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../command.js';
import { writeAtomicDirectory, type OutputGroup } from '../io/atomic.js';
import { ROWS_DIGEST_FIELD, type RowIds } from '../io/features.js';
import { openNdjsonWriter } from '../io/ndjson.js';
import { npyDataSha256, openNpyWriter, readNpyHeader } from '../io/npy.js';
import { startProgress } from '../progress.js';
import { QUANTIZATIONS, buildHnswIndex, openUsearchFile, type HnswIndex, type HnswParameters, type Quantization, type RowLookup } from './hnsw.js';
import { isMetric, type Metric, type VectorSource } from './source.js';

/** Names of the files in a saved index directory. */
export const HNSW_FILES = { index: 'index.usearch', meta: 'meta.json', ids: 'ids.ndjson', rows: 'rows.npy' } as const;

export const HNSW_FORMAT = 'atelier-hnsw';
export const HNSW_VERSION = 2;

/** What meta.json records. */
export interface HnswMeta extends HnswParameters {
  format: typeof HNSW_FORMAT;
  version: typeof HNSW_VERSION;
  dim: number;
  count: number;
  /** SHA-256 of the indexed .npy's data bytes (the rows_sha256 that embed writes beside it). */
  rows_sha256: string;
  /** SHA-256 of ids.ndjson as saved. */
  ids_sha256: string;
  index_bytes: number;
  /** SHA-256 of index.usearch. */
  index_sha256: string;
  /** SHA-256 of rows.npy's data (the exact float32 rows an f16 or i8 index re-ranks on); null for f32. */
  exact_rows_sha256: string | null;
}

/** SHA-256 of a file, streamed (a 10 GB index never sits in memory). */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The SHA-256 of a .npy's data: the one its ids file carries (already checked against the file), else computed. */
export async function rowsSha256Of(npyPath: string, ids: RowIds): Promise<string> {
  return ids.digest?.sha256 ?? (await npyDataSha256(npyPath));
}

/**
 * Builds an index of `gallery` and saves it into `dir` (an empty directory the caller commits
 * atomically); meta.json goes last, so a directory without it was never finished.
 */
export async function buildSavedIndex(
  dir: string,
  gallery: VectorSource,
  ids: string[],
  rowsSha256: string,
  params: HnswParameters,
  opts: { threads: number; onRows?: (done: number) => void },
): Promise<HnswMeta> {
  const exactRows = params.quantization === 'f32' ? null : await openNpyWriter(join(dir, HNSW_FILES.rows), { dtype: 'float32', rowShape: [gallery.dim], bufferBytes: 4 * 1024 * 1024 });
  let index: HnswIndex;
  try {
    index = await buildHnswIndex(gallery, params, { ...opts, onChunk: exactRows ? (rows) => exactRows.writeRows(rows) : undefined });
  } catch (err) {
    await exactRows?.abort();
    throw err;
  }
  const exactRowsSha256 = exactRows ? await exactRows.dataSha256() : null;
  await exactRows?.close();
  const indexPath = join(dir, HNSW_FILES.index);
  index.save(indexPath);
  const idsPath = join(dir, HNSW_FILES.ids);
  const writer = await openNdjsonWriter(idsPath);
  for (let row = 0; row < ids.length; row++) await writer.write(row === ids.length - 1 ? { id: ids[row], [ROWS_DIGEST_FIELD]: rowsSha256 } : { id: ids[row] });
  await writer.close();
  const meta: HnswMeta = {
    format: HNSW_FORMAT,
    version: HNSW_VERSION,
    dim: index.dim,
    count: index.size(),
    ...params,
    rows_sha256: rowsSha256,
    ids_sha256: await fileSha256(idsPath),
    index_bytes: (await stat(indexPath)).size,
    index_sha256: await fileSha256(indexPath),
    exact_rows_sha256: exactRowsSha256,
  };
  await writeFile(join(dir, HNSW_FILES.meta), JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

/**
 * 'knn index build': indexes the gallery into `indexDir`, replaced atomically (with the run's other
 * outputs when `outputs` is given); closes the gallery's source.
 */
export async function saveIndexDirectory(
  indexDir: string,
  gallery: { path: string; source: VectorSource; ids: string[]; rowIds: RowIds },
  params: HnswParameters,
  opts: { threads: number; stderr: NodeJS.WritableStream; outputs?: OutputGroup },
): Promise<void> {
  try {
    await writeAtomicDirectory(indexDir, async (tmpDir) => {
      const progress = startProgress(opts.stderr, { total: gallery.source.rows, label: 'indexing' });
      await buildSavedIndex(tmpDir, gallery.source, gallery.ids, await rowsSha256Of(gallery.path, gallery.rowIds), params, { threads: opts.threads, onRows: (n) => progress.update(n) });
      progress.stop();
    }, opts.outputs);
  } finally {
    await gallery.source.close();
  }
}

/** Reads meta.json and checks every field it promises, naming the field that is wrong. */
export async function readHnswMeta(dir: string): Promise<HnswMeta> {
  const path = join(dir, HNSW_FILES.meta);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UsageError("not an index directory made by 'atelier knn index build' (no meta.json)", { file: dir });
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`invalid JSON: ${(err as Error).message}`, { file: path });
  }
  if (meta === null || typeof meta !== 'object' || meta.format !== HNSW_FORMAT) throw new UsageError(`expected '${HNSW_FORMAT}'`, { file: path, field: 'format' });
  if (meta.version !== HNSW_VERSION) throw new UsageError(`version ${JSON.stringify(meta.version)} is not ${HNSW_VERSION} (made by another atelier, without the checksums a query needs); rebuild with 'knn index build'`, { file: path, field: 'version' });
  if (!isMetric(String(meta.metric))) throw new UsageError(`unknown metric ${JSON.stringify(meta.metric)}`, { file: path, field: 'metric' });
  // Indexes saved before --quantization existed hold float32 rows.
  meta.quantization ??= 'f32';
  if (!QUANTIZATIONS.includes(meta.quantization as Quantization)) throw new UsageError(`unknown quantization ${JSON.stringify(meta.quantization)} (expected ${QUANTIZATIONS.join(', ')})`, { file: path, field: 'quantization' });
  for (const field of ['dim', 'connectivity', 'expansionAdd', 'expansionSearch']) {
    if (!Number.isInteger(meta[field]) || (meta[field] as number) <= 0) throw new UsageError('expected a positive integer', { file: path, field });
  }
  for (const field of ['count', 'index_bytes']) {
    if (!Number.isInteger(meta[field]) || (meta[field] as number) < 0) throw new UsageError('expected a whole number', { file: path, field });
  }
  meta.exact_rows_sha256 ??= null;
  for (const field of ['rows_sha256', 'ids_sha256', 'index_sha256', ...(meta.quantization === 'f32' ? [] : ['exact_rows_sha256'])]) {
    if (typeof meta[field] !== 'string' || !/^[0-9a-f]{64}$/.test(meta[field] as string)) throw new UsageError('expected a hex SHA-256', { file: path, field });
  }
  return meta as unknown as HnswMeta;
}

/** Row ids, read on demand (`string[]` is one too). */
export interface IdList {
  readonly length: number;
  at(row: number): string | undefined;
}

/**
 * The saved ids as the file's bytes and one offset per line, decoded only for the neighbours a query
 * reports: 10M ids as JavaScript strings would take ~1 GB and minutes to parse, this ~14 bytes each.
 * The file's SHA-256 was checked against meta.json, so its lines are the ones the build wrote.
 */
class SavedIds implements IdList {
  constructor(
    private readonly bytes: Buffer,
    private readonly starts: Float64Array,
    private readonly file: string,
  ) {}

  get length(): number {
    return this.starts.length - 1;
  }

  at(row: number): string | undefined {
    if (row < 0 || row >= this.length) return undefined;
    const id = (JSON.parse(this.bytes.toString('utf8', this.starts[row], this.starts[row + 1])) as { id?: unknown }).id;
    if (typeof id !== 'string') throw new UsageError('expected a string id', { file: this.file, line: row + 1, field: 'id' });
    return id;
  }
}

export function savedIds(bytes: Buffer, file: string): IdList {
  let lines = 0;
  for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) lines++;
  const starts = new Float64Array(lines + 1);
  let line = 0;
  for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) starts[++line] = at + 1;
  return new SavedIds(bytes, starts, file);
}

export interface SavedIndex {
  index: HnswIndex;
  meta: HnswMeta;
  ids: IdList;
  /** The exact rows of an f16 or i8 index (null for f32); close() releases them. */
  exactRows: (RowLookup & { close(): void }) | null;
}

/**
 * rows.npy read one row at a time with positional reads: a query touches ~4 x k rows of it, so the
 * file stays on disk (and in the page cache) instead of in memory.
 */
async function openExactRows(path: string, meta: HnswMeta, metaPath: string, verify: boolean): Promise<RowLookup & { close(): void }> {
  // readNpyHeader also refuses a file shorter than its shape.
  const header = await readNpyHeader(path).catch((err: Error) => {
    throw err instanceof UsageError ? err : new UsageError(`missing or unreadable (${err.message}); an ${meta.quantization} index re-ranks on it: rebuild the index`, { file: path });
  });
  if (header.dtype !== 'float32' || header.shape.length !== 2 || header.shape[0] !== meta.count || header.shape[1] !== meta.dim) {
    throw new UsageError(`holds a ${header.dtype} array of shape (${header.shape.join(', ')}), but ${metaPath} records ${meta.count} float32 rows of ${meta.dim}: rebuild the index`, { file: path });
  }
  if (verify && (await npyDataSha256(path)) !== meta.exact_rows_sha256) {
    throw new UsageError(`differs from the exact_rows_sha256 in ${metaPath}: the file is damaged or comes from another build; rebuild the index`, { file: path, field: 'exact_rows_sha256' });
  }
  const fd = openSync(path, 'r');
  const rowBytes = meta.dim * 4;
  return {
    dim: meta.dim,
    readRow(row, target) {
      readSync(fd, new Uint8Array(target.buffer, target.byteOffset, rowBytes), 0, rowBytes, header.dataOffset + row * rowBytes);
    },
    close: () => closeSync(fd),
  };
}

/**
 * Opens a saved index after checking its files against meta.json: the index file's size always, its
 * SHA-256 unless `verify` is false (one streamed read of the file), and the ids file's SHA-256.
 * Memory-mapped (`memoryMap`: the OS pages the file in on demand) or loaded into memory.
 */
export async function openSavedIndex(dir: string, opts: { memoryMap: boolean; verify: boolean; expansionSearch?: number }): Promise<SavedIndex> {
  const meta = await readHnswMeta(dir);
  const metaPath = join(dir, HNSW_FILES.meta);
  const indexPath = join(dir, HNSW_FILES.index);
  const idsPath = join(dir, HNSW_FILES.ids);
  const size = await stat(indexPath).then((s) => s.size, () => null);
  if (size === null) throw new UsageError('missing from the index directory', { file: indexPath });
  if (size !== meta.index_bytes) throw new UsageError(`${size} bytes, but ${metaPath} records ${meta.index_bytes}: the file was truncated or replaced; rebuild the index`, { file: indexPath, field: 'index_bytes' });
  if (opts.verify && (await fileSha256(indexPath)) !== meta.index_sha256) {
    throw new UsageError(`differs from the index_sha256 in ${metaPath}: the file is damaged or comes from another build; rebuild the index`, { file: indexPath, field: 'index_sha256' });
  }
  const idsBytes = await readFile(idsPath).catch(() => null);
  if (idsBytes === null) throw new UsageError('missing from the index directory', { file: idsPath });
  if (createHash('sha256').update(idsBytes).digest('hex') !== meta.ids_sha256) throw new UsageError(`differs from the ids_sha256 in ${metaPath}: the ids were edited or come from another index`, { file: idsPath, field: 'ids_sha256' });
  const ids = savedIds(idsBytes, idsPath);
  if (ids.length !== meta.count) throw new UsageError(`has ${ids.length} ids for an index of ${meta.count} rows`, { file: idsPath });
  const params: HnswParameters = { metric: meta.metric, quantization: meta.quantization, connectivity: meta.connectivity, expansionAdd: meta.expansionAdd, expansionSearch: opts.expansionSearch ?? meta.expansionSearch };
  const index = openUsearchFile(indexPath, meta.dim, params, opts.memoryMap);
  if (index.size() !== meta.count || index.dim !== meta.dim) {
    throw new UsageError(`holds ${index.size()} ${index.dim}-d rows, but ${metaPath} records ${meta.count} ${meta.dim}-d rows`, { file: indexPath });
  }
  const exactRows = meta.quantization === 'f32' ? null : await openExactRows(join(dir, HNSW_FILES.rows), meta, metaPath, opts.verify);
  return { index, meta, ids, exactRows };
}

/** Refuses a --metric other than the one the index was built for (the index cannot answer for it). */
export function assertIndexMetric(meta: Pick<HnswMeta, 'metric'>, dir: string, metric: Metric | undefined): void {
  if (metric !== undefined && metric !== meta.metric) {
    throw new UsageError(`the index was built for ${meta.metric}, not ${metric} (--metric); leave --metric out, or build an index for ${metric}`, { file: join(dir, HNSW_FILES.meta), field: 'metric' });
  }
}

/** Refuses query rows of another width than the index's. */
export function assertIndexDimension(meta: Pick<HnswMeta, 'dim'>, dir: string, query: VectorSource): void {
  if (query.dim !== meta.dim) {
    throw new UsageError(`${query.name} has ${query.dim}-d rows but the index holds ${meta.dim}-d vectors: the query must come from the embedding the index was built on`, { file: join(dir, HNSW_FILES.meta), field: 'dim' });
  }
}

/** Refuses a gallery (--recall's reference) other than the rows and ids the index was built from. */
export function assertIndexedGallery(meta: Pick<HnswMeta, 'rows_sha256'>, dir: string, indexIds: IdList, galleryIds: RowIds, galleryRowsSha256: string): void {
  const metaPath = join(dir, HNSW_FILES.meta);
  if (galleryIds.ids.length !== indexIds.length) throw new UsageError(`has ${galleryIds.ids.length} ids but the index holds ${indexIds.length} rows`, { file: galleryIds.path });
  const row = galleryIds.ids.findIndex((id, r) => id !== indexIds.at(r));
  if (row >= 0) throw new UsageError(`id ${JSON.stringify(galleryIds.ids[row])} differs from the index's ${JSON.stringify(indexIds.at(row))} at this row: not the ids the index was built from`, { file: galleryIds.path, line: galleryIds.lines[row], field: 'id' });
  if (galleryRowsSha256 !== meta.rows_sha256) throw new UsageError(`the gallery's rows differ from the ones the index was built from (rows_sha256 in ${metaPath})`, { file: galleryIds.path, field: ROWS_DIGEST_FIELD });
}
