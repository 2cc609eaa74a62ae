// A feature matrix (.npy of row vectors) with its ids NDJSON (same row order), as written by embed.
import { UsageError } from '../command.js';
import { readNdjson, requireObject } from './ndjson.js';
import { readNpy } from './npy.js';

export interface FeatureMatrix {
  ids: string[];
  rows: Float32Array;
  dim: number;
}

/** `x.npy` -> `x.ids.ndjson`: where embed puts the ids by default. */
export function idsPathFor(npyPath: string): string {
  return npyPath.replace(/\.npy$/, '') + '.ids.ndjson';
}

/** Reads ids (the `id` field of each line) in order. */
export async function readIds(path: string, idField = 'id'): Promise<string[]> {
  const ids: string[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = record[idField];
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError('expected a string or number id', { file, line, field: idField });
    ids.push(String(id));
  }
  return ids;
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
  const ids = await readIds(idsPath);
  if (ids.length !== count) throw new UsageError(`${ids.length} ids for ${count} rows of ${npyPath}`, { file: idsPath });
  return { ids, rows, dim };
}
