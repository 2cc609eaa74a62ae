// Word-triplet accuracy (the report §3.6): a triplet (word, closer, farther) is right when
// cos(word, closer) > cos(word, farther); a tie counts one half, so a constant embedding scores 0.5.
import type { WordTriplet } from '../text/thesaurus.js';
import { createRandom } from '../random.js';

/** Word vectors as rows of one matrix. */
export interface WordVectors {
  words: string[];
  rows: Float32Array;
  dim: number;
}

export interface ScoredTriplet extends WordTriplet {
  /** cos(word, closer) - cos(word, farther): the report's Table 3.4 score. */
  score: number;
}

export interface TripletAccuracy {
  triplets: number;
  accuracy: number;
  /** Accuracy by the fashion type of the first word. */
  byType: Record<string, { triplets: number; accuracy: number }>;
  /** Accuracy by the depth the farther word parts at (0: another type). */
  byFartherDepth: Record<string, { triplets: number; accuracy: number }>;
}

function cosine(rows: Float32Array, dim: number, a: number, b: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let j = 0; j < dim; j++) {
    const x = rows[a * dim + j];
    const y = rows[b * dim + j];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

export function scoreTriplets(vectors: WordVectors, triplets: WordTriplet[]): ScoredTriplet[] {
  const row = new Map(vectors.words.map((w, i) => [w, i]));
  return triplets.map((t) => {
    const w = row.get(t.word)!;
    return { ...t, score: cosine(vectors.rows, vectors.dim, w, row.get(t.closer)!) - cosine(vectors.rows, vectors.dim, w, row.get(t.farther)!) };
  });
}

function credit(score: number): number {
  return score > 0 ? 1 : score === 0 ? 0.5 : 0;
}

export function tripletAccuracy(scored: ScoredTriplet[], typeOf: (word: string) => string): TripletAccuracy {
  const byType: Record<string, { triplets: number; accuracy: number }> = {};
  const byFartherDepth: Record<string, { triplets: number; accuracy: number }> = {};
  let right = 0;
  for (const t of scored) {
    const c = credit(t.score);
    right += c;
    for (const [table, key] of [[byType, typeOf(t.word)], [byFartherDepth, String(t.fartherDepth)]] as const) {
      const entry = (table[key] ??= { triplets: 0, accuracy: 0 });
      entry.triplets++;
      entry.accuracy += c;
    }
  }
  for (const table of [byType, byFartherDepth]) for (const e of Object.values(table)) e.accuracy /= e.triplets;
  return { triplets: scored.length, accuracy: scored.length ? right / scored.length : 0, byType, byFartherDepth };
}

/** The same words with standard normal vectors of the same width: the measured random baseline. */
export function randomWordVectors(words: string[], dim: number, seed: number): WordVectors {
  const random = createRandom(`random-words-${seed}`);
  const rows = new Float32Array(words.length * dim);
  for (let i = 0; i < rows.length; i += 2) {
    // Box-Muller: two normals from two uniforms.
    const r = Math.sqrt(-2 * Math.log(1 - random.next()));
    const theta = 2 * Math.PI * random.next();
    rows[i] = r * Math.cos(theta);
    if (i + 1 < rows.length) rows[i + 1] = r * Math.sin(theta);
  }
  return { words, rows, dim };
}
