// A small seeded PRNG (sfc32) whose state can be saved in a checkpoint and restored exactly,
// so sampling, augmentation and dropout replay identically after --resume.

export interface RandomState {
  a: number;
  b: number;
  c: number;
  d: number;
}

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** The state to store in a checkpoint. */
  state(): RandomState;
}

/** Mixes a seed (number or string) into four 32-bit words. */
function seedState(seed: number | string): RandomState {
  let h = 1779033703 ^ String(seed).length;
  const text = String(seed);
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const words: number[] = [];
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    h ^= h >>> 16;
    words.push(h >>> 0);
  }
  return { a: words[0], b: words[1], c: words[2], d: words[3] };
}

export function createRandom(seedOrState: number | string | RandomState): Random {
  let { a, b, c, d } = typeof seedOrState === 'object' ? seedOrState : seedState(seedOrState);
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  if (typeof seedOrState !== 'object') for (let i = 0; i < 12; i++) next();
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    state: () => ({ a: a >>> 0, b: b >>> 0, c: c >>> 0, d: d >>> 0 }),
  };
}

/** Stable 32-bit FNV-1a hash of a string, for splits that must not move between runs. */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // FNV's high bits barely move between similar ids ("p1", "p2"): finish with a murmur3 mix.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export type SplitName = 'train' | 'val' | 'test';

/**
 * The split of a group from a hash of its key alone: adding, removing or relabelling other records
 * never moves it (GILT: "images in either the test or the training set always remain there").
 * The first `testFraction` of the hash range is test, the next `valFraction` validation.
 */
export function splitOf(key: string, testFraction: number, valFraction: number): SplitName {
  const u = stableHash(key) / 4294967296;
  if (u < testFraction) return 'test';
  if (u < testFraction + valFraction) return 'val';
  return 'train';
}
