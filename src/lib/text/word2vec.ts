// word2vec, skip-gram with negative sampling (Mikolov et al. 2013), as the C tool does it: frequent
// words subsampled (keep with probability (sqrt(f/t) + 1) t/f, f the word's share, t = sample),
// a random reduced window, negatives from the unigram distribution to the power 3/4, and a learning
// rate falling linearly to 1e-4 of its start. The report (§3.6, §4.1) trains it on the bags of words
// as sentences. Plain typed arrays: the vocabularies here are small and one thread suffices.
import { createRandom } from '../random.js';

export interface Word2VecOptions {
  dim: number;
  /** Context words on each side; 0: the whole sentence (a bag has no order to speak of). */
  window: number;
  negatives: number;
  epochs: number;
  lr: number;
  /** Subsampling threshold t (0: none). */
  sample: number;
  seed: number;
}

/** Input vectors (the word vectors), [vocabularySize, dim] row-major. Sentences hold word ids. */
export function trainWord2Vec(sentences: Int32Array[], vocabularySize: number, options: Word2VecOptions): Float32Array {
  const { dim, negatives, epochs, sample } = options;
  const random = createRandom(`word2vec-${options.seed}`);
  const counts = new Float64Array(vocabularySize);
  let total = 0;
  for (const s of sentences) for (const w of s) {
    counts[w]++;
    total++;
  }
  const keep = new Float64Array(vocabularySize).fill(1);
  if (sample > 0) {
    for (let w = 0; w < vocabularySize; w++) {
      if (counts[w] === 0) continue;
      const f = counts[w] / total;
      keep[w] = Math.min(1, (Math.sqrt(f / sample) + 1) * (sample / f));
    }
  }
  // Cumulative unigram^0.75, sampled by binary search.
  const cumulative = new Float64Array(vocabularySize);
  let acc = 0;
  for (let w = 0; w < vocabularySize; w++) cumulative[w] = acc += counts[w] ** 0.75;
  const drawNegative = (): number => {
    const u = random.next() * acc;
    let lo = 0;
    let hi = vocabularySize - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const input = new Float32Array(vocabularySize * dim);
  for (let i = 0; i < input.length; i++) input[i] = (random.next() - 0.5) / dim;
  const output = new Float32Array(vocabularySize * dim);
  const gradient = new Float32Array(dim);
  const steps = Math.max(1, total * epochs);
  let done = 0;
  const kept: number[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (const sentence of sentences) {
      kept.length = 0;
      for (const w of sentence) if (keep[w] >= 1 || random.next() < keep[w]) kept.push(w);
      for (let i = 0; i < kept.length; i++) {
        const lr = options.lr * Math.max(1e-4, 1 - done / steps);
        const reach = options.window > 0 ? options.window - random.int(options.window) : kept.length;
        const center = kept[i] * dim;
        for (let j = Math.max(0, i - reach); j <= Math.min(kept.length - 1, i + reach); j++) {
          if (j === i || kept[j] === kept[i]) continue;
          gradient.fill(0);
          for (let d = 0; d <= negatives; d++) {
            const target = d === 0 ? kept[j] : drawNegative();
            if (d > 0 && target === kept[j]) continue;
            const label = d === 0 ? 1 : 0;
            const out = target * dim;
            let dot = 0;
            for (let k = 0; k < dim; k++) dot += input[center + k] * output[out + k];
            const g = (label - 1 / (1 + Math.exp(-Math.max(-30, Math.min(30, dot))))) * lr;
            for (let k = 0; k < dim; k++) {
              gradient[k] += g * output[out + k];
              output[out + k] += g * input[center + k];
            }
          }
          for (let k = 0; k < dim; k++) input[center + k] += gradient[k];
        }
        done++;
      }
      done += sentence.length - kept.length;
    }
  }
  return input;
}
