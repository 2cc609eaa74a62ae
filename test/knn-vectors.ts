// Vector files for the knn index tests: clustered rows and their ids, written where a test asks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeNpy } from '../src/lib/io/npy.js';
import { createRandom } from '../src/lib/random.js';

/** Rows around 40 Gaussian centres: clustered, as embeddings are. */
export function clustered(rows: number, dim: number, seed: number): Float32Array {
  const random = createRandom(seed);
  const centres = createRandom(99);
  const gauss = (r: { next(): number }) => Math.sqrt(-2 * Math.log(r.next() + 1e-300)) * Math.cos(2 * Math.PI * r.next());
  const c = Float32Array.from({ length: 40 * dim }, () => gauss(centres));
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(random.next() * 40) * dim;
    for (let d = 0; d < dim; d++) out[r * dim + d] = c[base + d] + 0.6 * gauss(random);
  }
  return out;
}

/** `<dir>/<name>.npy` of `data` and `<name>.ids.ndjson` with ids `<prefix><row>`; returns the .npy path. */
export async function writeVectors(dir: string, name: string, data: Float32Array, dim: number, prefix: string): Promise<string> {
  const path = join(dir, `${name}.npy`);
  const rows = data.length / dim;
  await writeNpy(path, data, [rows, dim]);
  writeFileSync(join(dir, `${name}.ids.ndjson`), Array.from({ length: rows }, (_, i) => JSON.stringify({ id: `${prefix}${i}` }) + '\n').join(''));
  return path;
}
