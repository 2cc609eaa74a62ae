// Word vectors as embed --words and train-word2vec write them: a float32 .npy of rows and an ids
// NDJSON of {id: word, row} beside it.
import { UsageError } from '../command.js';
import { idsPathFor, readFeatureMatrix } from '../io/features.js';
import type { WordVectors } from '../metrics/word-triplets.js';

export async function readWordVectors(npyPath: string, idsPath = idsPathFor(npyPath)): Promise<WordVectors> {
  const matrix = await readFeatureMatrix(npyPath, idsPath);
  const seen = new Set<string>();
  matrix.ids.forEach((w, i) => {
    if (seen.has(w)) throw new UsageError(`word '${w}' has two rows`, { file: idsPath, line: i + 1, field: 'id' });
    seen.add(w);
  });
  return { words: matrix.ids, rows: matrix.rows, dim: matrix.dim };
}

/** The nearest words of `word` by cosine (itself left out), best first. */
export function nearestWords(vectors: WordVectors, norms: Float32Array, word: number, count: number): Int32Array {
  const { rows, dim } = vectors;
  const n = vectors.words.length;
  const sims = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += rows[word * dim + j] * rows[i * dim + j];
    sims[i] = i === word ? -Infinity : dot / (norms[word] * norms[i] || 1);
  }
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => sims[b] - sims[a] || a - b);
  return order.slice(0, Math.min(count, n - 1));
}

/** L2 norm of each row. */
export function rowNorms(vectors: WordVectors): Float32Array {
  const out = new Float32Array(vectors.words.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let j = 0; j < vectors.dim; j++) s += vectors.rows[i * vectors.dim + j] ** 2;
    out[i] = Math.sqrt(s);
  }
  return out;
}

/**
 * The nearest vocabulary words of a vocabulary word in fixed vectors (ids of `vocabulary`), computed
 * when first asked and kept; words the vectors lack have none.
 */
export function nearestVocabularyWords(vectors: WordVectors, vocabulary: readonly string[], count: number): (word: number) => Int32Array {
  const row = new Map(vectors.words.map((w, i) => [w, i]));
  const present = vocabulary.flatMap((w, id) => (row.has(w) ? [id] : []));
  const sub: WordVectors = { words: present.map((id) => vocabulary[id]), dim: vectors.dim, rows: new Float32Array(present.length * vectors.dim) };
  present.forEach((id, i) => sub.rows.set(vectors.rows.subarray(row.get(vocabulary[id])! * vectors.dim, (row.get(vocabulary[id])! + 1) * vectors.dim), i * vectors.dim));
  const norms = rowNorms(sub);
  const place = new Map(present.map((id, i) => [id, i]));
  const cache = new Map<number, Int32Array>();
  const none = new Int32Array(0);
  return (word) => {
    const at = place.get(word);
    if (at === undefined) return none;
    let near = cache.get(word);
    if (!near) {
      near = Int32Array.from(nearestWords(sub, norms, at, count), (i) => present[i]);
      cache.set(word, near);
    }
    return near;
  };
}
