// A word's fashion type from the images that carry it (report §4.3's hope of words to add to the
// thesaurus): the type of the typed word whose images look most like this word's images. A word's
// vector W cannot carry the type (a word whose type is hidden settles away from its typed synonyms,
// bench/RESULTS.md "Fashion-type attention"), but rouge's images are red as red's are. No tfjs here:
// plain sums over rows the caller embedded.

/** How much softer than a hard vote the probability is: cosines 0.1 apart are a factor e. */
const TEMPERATURE = 0.1;

/**
 * Each word's image signature: the mean of its images' rows, each dimension standardised over all
 * images (so the signature is where the word's images sit against the catalogue), [K, dim], and the
 * number of images per word.
 */
export function imageSignatures(rows: Float32Array, dim: number, bags: readonly Int32Array[], vocabularySize: number): { signatures: Float32Array; images: Int32Array; dim: number } {
  const n = bags.length;
  const mean = new Float64Array(dim);
  const deviation = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += rows[i * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= n || 1;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) deviation[j] += (rows[i * dim + j] - mean[j]) ** 2;
  for (let j = 0; j < dim; j++) deviation[j] = Math.sqrt(deviation[j] / (n || 1)) || 1;
  const sum = new Float64Array(vocabularySize * dim);
  const images = new Int32Array(vocabularySize);
  bags.forEach((bag, i) => {
    for (const w of bag) {
      images[w]++;
      for (let j = 0; j < dim; j++) sum[w * dim + j] += (rows[i * dim + j] - mean[j]) / deviation[j];
    }
  });
  const signatures = new Float32Array(vocabularySize * dim);
  for (let w = 0; w < vocabularySize; w++) if (images[w]) for (let j = 0; j < dim; j++) signatures[w * dim + j] = sum[w * dim + j] / images[w];
  return { signatures, images, dim };
}

export interface VisualWordTypes {
  /** Predicted type of each word; -1 where the word has fewer than `minImages` images (no evidence). */
  type: Int32Array;
  /** Its probability (>= 1/T): the softmax of the per-type best cosines; 0 where there is no evidence. */
  probability: Float32Array;
  images: Int32Array;
}

/**
 * Each word's type: for each type, the best cosine between the word's signature and that of a word
 * whose type training knows (`known`, -1 elsewhere: held-out and untyped words do not vote), and the
 * type with the best one. Only words with `minImages` images or more take part.
 */
export function nearestTypedWord(s: { signatures: Float32Array; images: Int32Array; dim: number }, known: ArrayLike<number>, types: number, minImages = 2): VisualWordTypes {
  const { signatures, images, dim } = s;
  const count = images.length;
  const norm = new Float64Array(count);
  for (let w = 0; w < count; w++) {
    let q = 0;
    for (let j = 0; j < dim; j++) q += signatures[w * dim + j] ** 2;
    norm[w] = Math.sqrt(q) || 1;
  }
  const voters = Array.from({ length: count }, (_, v) => v).filter((v) => known[v] >= 0 && images[v] >= minImages);
  const type = new Int32Array(count).fill(-1);
  const probability = new Float32Array(count);
  const best = new Float64Array(types);
  for (let w = 0; w < count; w++) {
    if (images[w] < minImages) continue;
    best.fill(-Infinity);
    for (const v of voters) {
      if (v === w) continue;
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += signatures[w * dim + j] * signatures[v * dim + j];
      const cosine = dot / (norm[w] * norm[v]);
      if (cosine > best[known[v]]) best[known[v]] = cosine;
    }
    let top = -1;
    for (let t = 0; t < types; t++) if (best[t] > -Infinity && (top < 0 || best[t] > best[top])) top = t;
    if (top < 0) continue;
    let total = 0;
    for (let t = 0; t < types; t++) if (best[t] > -Infinity) total += Math.exp((best[t] - best[top]) / TEMPERATURE);
    type[w] = top;
    probability[w] = 1 / total;
  }
  return { type, probability, images };
}

/** As a model's metadata keeps it: per word, the type name (null: too few images), its probability and image count. */
export interface VisualTypesRecord {
  type: Array<string | null>;
  p: number[];
  images: number[];
}

export function visualTypesRecord(v: VisualWordTypes, typeNames: readonly string[]): VisualTypesRecord {
  return {
    type: Array.from(v.type, (t) => (t >= 0 ? typeNames[t] : null)),
    p: Array.from(v.probability, (x) => Math.round(x * 1e6) / 1e6),
    images: Array.from(v.images),
  };
}

/**
 * The type each word is given: from its images where the model has that evidence, else from its
 * vector (the attention layer's classifier, which training combines the sub-vectors by).
 */
export function mergedWordTypes(
  visual: VisualTypesRecord | undefined, byVector: { type: Int32Array; probability: Float32Array }, typeNames: readonly string[],
): { type: Int32Array; probability: Float32Array; evidence: Array<'images' | 'vector'> } {
  const type = Int32Array.from(byVector.type);
  const probability = Float32Array.from(byVector.probability);
  const evidence = Array.from(type, (): 'images' | 'vector' => 'vector');
  visual?.type.forEach((name, k) => {
    if (name === null) return;
    type[k] = typeNames.indexOf(name);
    probability[k] = visual.p[k];
    evidence[k] = 'images';
  });
  return { type, probability, evidence };
}
