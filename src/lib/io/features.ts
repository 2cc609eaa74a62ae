// A feature matrix (.npy of row vectors) with its ids NDJSON (same row order), as written by embed.
import { UsageError } from '../command.js';
import { createHash } from 'node:crypto';
import { describeJsonValue, readNdjson, requireId } from './ndjson.js';
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
function rowsDigestOf(record: Record<string, unknown>, file: string, line: number): RowsDigest | undefined {
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

// The ids NDJSON beside a .npy (one line per row, same order), as embed writes it: {id, image?, row?};
// a bare JSON string or number per line is accepted too (word lists).
export interface RowIds {
  /** The id of each row. */
  ids: string[];
  /** The image path of each row, where the records carry one (matched against In-Shop image names). */
  images: Array<string | undefined>;
  path: string;
  /** The line of each row's id in `path`, for errors. */
  lines: number[];
  /** The digest of the rows the file was written for (embed writes one), if any. */
  digest?: RowsDigest;
}

/** Reads the ids of every row, in order; `idField` names the id in object records. */
export async function readRowIds(path: string, idField = 'id', stdin?: NodeJS.ReadableStream): Promise<RowIds> {
  const ids: string[] = [];
  const images: Array<string | undefined> = [];
  const lines: number[] = [];
  let digest: RowsDigest | undefined;
  for await (const { value, file, line } of readNdjson(path, { stdin })) {
    if (typeof value === 'string' || typeof value === 'number') {
      ids.push(String(value));
      images.push(undefined);
      lines.push(line);
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`expected an object with '${idField}' or a string, got ${describeJsonValue(value)}`, { file, line });
    const record = value as Record<string, unknown>;
    ids.push(requireId(record, idField, { file, line }));
    images.push(typeof record.image === 'string' ? record.image : undefined);
    lines.push(line);
    digest = rowsDigestOf(record, file, line) ?? digest;
  }
  return { ids, images, path, lines, digest };
}

/** Refuses a repeated id (an answer naming it would not say which row), at the line of its second occurrence. */
export function assertUniqueIds(ids: RowIds, idField = 'id'): void {
  const firstLine = new Map<string, number>();
  ids.ids.forEach((id, row) => {
    const first = firstLine.get(id);
    if (first !== undefined) throw new UsageError(`id ${JSON.stringify(id)} is already on line ${first}; every row needs its own id`, { file: ids.path, line: ids.lines[row], field: idField });
    firstLine.set(id, ids.lines[row]!);
  });
}

/** Checks that there is exactly one id per row of the vectors file, and that the ids were written for these rows. */
export async function assertIdsMatchRows(ids: RowIds, rows: number, vectorsPath: string): Promise<void> {
  if (ids.ids.length !== rows) {
    throw new UsageError(`has ${ids.ids.length} ids but ${vectorsPath} has ${rows} rows; they must be line-for-row aligned`, {
      file: ids.path,
      ...(ids.ids.length > rows ? { line: rows + 1 } : {}),
    });
  }
  await assertRowsDigest(ids.digest, vectorsPath);
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
  const { ids, digest } = await readRowIds(idsPath);
  if (ids.length !== count) throw new UsageError(`${ids.length} ids for ${count} rows of ${npyPath}`, { file: idsPath });
  if (digest) {
    const bytes = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
    await assertRowsDigest(digest, npyPath, createHash('sha256').update(bytes).digest('hex'));
  }
  return { ids, rows, dim };
}
