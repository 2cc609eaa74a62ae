// The ids NDJSON that sits beside a .npy of row vectors (one line per row, same order), as embed
// writes it: {id, image?, row?}; a bare JSON string or number per line is accepted too (word lists).
import { UsageError } from '../command.js';
import { describeJsonValue, readNdjson } from '../io/ndjson.js';
import { assertRowsDigest, rowsDigestOf } from '../io/features.js';
import type { RowsDigest } from '../io/features.js';

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
    const id = record[idField];
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError(`expected a string or number id, got ${describeJsonValue(id)}`, { file, line, field: idField });
    ids.push(String(id));
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
