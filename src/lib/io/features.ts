// A feature matrix (.npy of row vectors) with its ids NDJSON (same row order), as written by embed.
import { UsageError } from '../command.js';
import { createHash } from 'node:crypto';
import { readNdjson, requireObject } from './ndjson.js';
import { npyDataSha256, readNpy } from './npy.js';

export interface FeatureMatrix {
  ids: string[];
  rows: Float32Array;
  dim: number;
}

/** `x.npy` -> `x.ids.ndjson`: where embed puts the ids by default. */
export function idsPathFor(npyPath: string): string {
  return npyPath.replace(/\.npy$/, '') + '.ids.ndjson';
}

/**
 * The field on the last line of an ids file that embed writes: SHA-256 of its .npy's data bytes. The two
 * files are renamed one after the other (ids first), so a run killed in between leaves new ids beside
 * the old .npy, and this digest tells. Ids files without it (other tools) are read as they are.
 */
export const ROWS_DIGEST_FIELD = 'rows_sha256';

/** Where an ids file names the rows it was written for. */
export interface RowsDigest {
  sha256: string;
  file: string;
  line: number;
}

/** The rows digest a record carries, if any. */
export function rowsDigestOf(record: Record<string, unknown>, file: string, line: number): RowsDigest | undefined {
  const value = record[ROWS_DIGEST_FIELD];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw new UsageError('expected a hex SHA-256', { file, line, field: ROWS_DIGEST_FIELD });
  return { sha256: value, file, line };
}

/** Refuses an ids file written for other rows than `npyPath` holds; `dataSha256` when the caller already hashed them. */
export async function assertRowsDigest(digest: RowsDigest | undefined, npyPath: string, dataSha256?: string): Promise<void> {
  if (!digest) return;
  const actual = dataSha256 ?? (await npyDataSha256(npyPath));
  if (actual !== digest.sha256) {
    throw new UsageError(`written for other rows than ${npyPath} holds (their digests differ): the pair comes from two runs, e.g. one killed between its two renames; re-run embed`, {
      file: digest.file,
      line: digest.line,
      field: ROWS_DIGEST_FIELD,
    });
  }
}

/** Scans an ids file for its rows digest (for readers that stream the ids alongside the rows). */
export async function readRowsDigest(path: string): Promise<RowsDigest | undefined> {
  let digest: RowsDigest | undefined;
  for await (const { value, file, line } of readNdjson(path)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) digest = rowsDigestOf(value as Record<string, unknown>, file, line) ?? digest;
  }
  return digest;
}

/** Reads ids (the `id` field of each line) in order, and the rows digest if the file carries one. */
export async function readIds(path: string, idField = 'id'): Promise<{ ids: string[]; digest?: RowsDigest }> {
  const ids: string[] = [];
  let digest: RowsDigest | undefined;
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = record[idField];
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError('expected a string or number id', { file, line, field: idField });
    ids.push(String(id));
    digest = rowsDigestOf(record, file, line) ?? digest;
  }
  return { ids, digest };
}

/** Loads a 2-D float .npy and its ids, checking that they agree row for row and hold no NaN. */
export async function readFeatureMatrix(npyPath: string, idsPath: string = idsPathFor(npyPath)): Promise<FeatureMatrix> {
  const array = await readNpy(npyPath);
  if (array.header.shape.length !== 2) throw new UsageError(`expected a 2-D matrix of row vectors, got shape (${array.header.shape.join(', ')})`, { file: npyPath });
  const [count, dim] = array.header.shape;
  const rows = array.data instanceof Float32Array ? array.data : Float32Array.from(array.data as ArrayLike<number>);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < dim; j++) {
      if (!Number.isFinite(rows[r * dim + j])) throw new UsageError(`row ${r} holds a non-finite value`, { file: npyPath, line: r + 1 });
    }
  }
  const { ids, digest } = await readIds(idsPath);
  if (ids.length !== count) throw new UsageError(`${ids.length} ids for ${count} rows of ${npyPath}`, { file: idsPath });
  if (digest) {
    const bytes = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
    await assertRowsDigest(digest, npyPath, createHash('sha256').update(bytes).digest('hex'));
  }
  return { ids, rows, dim };
}
