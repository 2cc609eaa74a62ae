// The fashion thesaurus (data/fashion-thesaurus.json, built by data/build-thesaurus.ts): a tree whose
// first level is the fashion type (the report §4.3: clothing, colour, texture, style) and whose
// groups hold words. It gives word triplets (the report §3.6: a word, a closer word, a farther one)
// and the type of a word.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../command.js';
import { packageRoot } from '../io/paths.js';
import { stableHash } from '../random.js';

/** The thesaurus shipped with atelier. */
export const DEFAULT_THESAURUS = join(packageRoot(import.meta.url), 'data', 'fashion-thesaurus.json');

export interface Thesaurus {
  /** Fashion types, in the order of the type vector. */
  types: string[];
  /** Each word's path from its type down to its group. */
  paths: Map<string, string[]>;
}

export interface WordTriplet {
  word: string;
  closer: string;
  farther: string;
  /** Depth of the deepest group word and closer share (1: only the type). */
  closerDepth: number;
  /** Depth of the deepest group word and farther share (0: another type). */
  fartherDepth: number;
}

export async function readThesaurus(path: string): Promise<Thesaurus> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code ? `cannot read the thesaurus (${code})` : `not JSON: ${(err as Error).message}`, { file: path });
  }
  const doc = parsed as { types?: unknown; groups?: unknown };
  if (!Array.isArray(doc.types) || !doc.types.every((t) => typeof t === 'string') || doc.types.length < 2) throw new UsageError('expected at least two type names', { file: path, field: 'types' });
  if (!Array.isArray(doc.groups)) throw new UsageError('expected an array of {path, words}', { file: path, field: 'groups' });
  const types = doc.types as string[];
  const paths = new Map<string, string[]>();
  doc.groups.forEach((g, i) => {
    const group = g as { path?: unknown; words?: unknown };
    const field = `groups[${i}]`;
    if (!Array.isArray(group.path) || group.path.length === 0 || !group.path.every((p) => typeof p === 'string')) throw new UsageError('path: expected a non-empty array of names', { file: path, field });
    if (!types.includes(group.path[0] as string)) throw new UsageError(`path: '${group.path[0]}' is not one of the types (${types.join(', ')})`, { file: path, field });
    if (!Array.isArray(group.words) || !group.words.every((w) => typeof w === 'string')) throw new UsageError('words: expected an array of words', { file: path, field });
    for (const w of group.words as string[]) {
      if (paths.has(w)) throw new UsageError(`word '${w}' is in two groups`, { file: path, field });
      paths.set(w, group.path as string[]);
    }
  });
  return { types, paths };
}

/** The type index of each word the thesaurus knows (-1 elsewhere), for a vocabulary. */
export function wordTypeIndices(thesaurus: Thesaurus, vocabulary: readonly string[]): Int32Array {
  return Int32Array.from(vocabulary, (w) => {
    const path = thesaurus.paths.get(w);
    return path ? thesaurus.types.indexOf(path[0]) : -1;
  });
}

function sharedDepth(a: string[], b: string[]): number {
  let d = 0;
  while (d < a.length && d < b.length && a[d] === b[d]) d++;
  return d;
}

/**
 * Triplets over the thesaurus words present in `vocabulary`, the same for the same inputs: for each
 * word, every word of its nearest group (deepest shared path) is a closer word, and for each
 * shallower depth where words exist one farther word is picked by a stable hash of (seed, word,
 * closer, depth). So a triplet tests one step of the tree: same group vs the parent's other groups,
 * ..., same type vs another type.
 */
export function thesaurusTriplets(thesaurus: Thesaurus, vocabulary: Iterable<string>, seed = 1): WordTriplet[] {
  const words = [...new Set(vocabulary)].filter((w) => thesaurus.paths.has(w)).sort();
  const paths = words.map((w) => thesaurus.paths.get(w)!);
  const triplets: WordTriplet[] = [];
  for (let i = 0; i < words.length; i++) {
    const byDepth = new Map<number, number[]>();
    let deepest = 0;
    for (let j = 0; j < words.length; j++) {
      if (j === i) continue;
      const d = sharedDepth(paths[i], paths[j]);
      const list = byDepth.get(d) ?? [];
      list.push(j);
      byDepth.set(d, list);
      if (d > deepest) deepest = d;
    }
    if (deepest === 0) continue;
    for (const p of byDepth.get(deepest)!) {
      for (let depth = 0; depth < deepest; depth++) {
        const far = byDepth.get(depth);
        if (!far) continue;
        const n = far[stableHash(`${seed}|${words[i]}|${words[p]}|${depth}`) % far.length];
        triplets.push({ word: words[i], closer: words[p], farther: words[n], closerDepth: deepest, fartherDepth: depth });
      }
    }
  }
  return triplets;
}
