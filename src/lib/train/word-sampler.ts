// Training examples for the weak model. Joulin et al. 2015 / the report §2.3: pick a word uniformly
// from the vocabulary, then an image whose bag holds it, and predict that word; negatives are drawn
// from words outside the image's bag. Uniform word sampling keeps frequent, non-visual words from
// dominating; 'frequency' sampling (image first, then a word of its bag) is kept for comparison.
import type { Random } from '../random.js';

export type WordSampling = 'uniform' | 'frequency';

export interface WordIndex {
  /** bags[i] = sorted vocabulary ids of image i. */
  bags: Int32Array[];
  /** imagesOfWord[k] = images whose bag holds word k. */
  imagesOfWord: Int32Array[];
  /** Words that occur in at least one bag (only these are drawn as positives). */
  wordsWithImages: Int32Array;
  vocabularySize: number;
}

export function buildWordIndex(bags: Int32Array[], vocabularySize: number): WordIndex {
  const lists: number[][] = Array.from({ length: vocabularySize }, () => []);
  bags.forEach((bag, image) => bag.forEach((word) => lists[word].push(image)));
  const imagesOfWord = lists.map((l) => Int32Array.from(l));
  const wordsWithImages = Int32Array.from(lists.flatMap((l, k) => (l.length ? [k] : [])));
  return { bags: bags.map((b) => Int32Array.from(b).sort()), imagesOfWord, wordsWithImages, vocabularySize };
}

function bagHas(bag: Int32Array, word: number): boolean {
  let lo = 0;
  let hi = bag.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (bag[mid] === word) return true;
    if (bag[mid] < word) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export interface SampledBatch {
  images: Int32Array;
  positives: Int32Array;
  /** [batch, 1 + negatives] row-major, positive first. */
  candidates: Int32Array;
}

export interface SampleOptions {
  batchSize: number;
  negatives: number;
  sampling: WordSampling;
}

/** Draws one batch; negatives never come from the image's own bag and never repeat within a row. */
export function sampleBatch(index: WordIndex, random: Random, options: SampleOptions): SampledBatch {
  const { batchSize, negatives } = options;
  const width = 1 + negatives;
  const images = new Int32Array(batchSize);
  const positives = new Int32Array(batchSize);
  const candidates = new Int32Array(batchSize * width);
  const available = index.vocabularySize;
  for (let row = 0; row < batchSize; row++) {
    let image: number;
    let word: number;
    if (options.sampling === 'uniform') {
      word = index.wordsWithImages[random.int(index.wordsWithImages.length)];
      const holders = index.imagesOfWord[word];
      image = holders[random.int(holders.length)];
    } else {
      image = random.int(index.bags.length);
      while (index.bags[image].length === 0) image = random.int(index.bags.length);
      const bag = index.bags[image];
      word = bag[random.int(bag.length)];
    }
    images[row] = image;
    positives[row] = word;
    candidates[row * width] = word;
    const bag = index.bags[image];
    const free = available - bag.length;
    const wanted = Math.min(negatives, free);
    const chosen = new Set<number>();
    let guard = 0;
    while (chosen.size < wanted && guard++ < wanted * 100) {
      const candidate = random.int(available);
      if (!bagHas(bag, candidate)) chosen.add(candidate);
    }
    let col = 1;
    for (const negative of chosen) candidates[row * width + col++] = negative;
    // A vocabulary smaller than the bag plus N: pad with the positive's first negative (still outside the bag).
    for (; col < width; col++) candidates[row * width + col] = candidates[row * width + 1] ?? word;
  }
  return { images, positives, candidates };
}
