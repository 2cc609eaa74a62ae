// A word's fashion type from the images that carry it (report §4.3's hope of words to add to the
// thesaurus). A word's vector W cannot carry the type (a word whose type is hidden settles away from its
// typed synonyms, bench/RESULTS.md "Fashion-type attention"), but rouge's images are red as red's are,
// and rayé's are striped as striped's are. For each type, a "view" of the images: the ridge regression
// from an image's features to which of that type's typed words its bag carries, predicted out of fold.
// A word of that type has images that score high on one of the view's words (rayé's images on striped),
// a word of another type has images spread over all of them (rayé's images are of every colour). Plain
// sums over rows the caller embedded, no tfjs.
import { createRandom } from '../random.js';
import { featureScaling } from '../facets/linear-probe.js';

/** Above this many feature columns, the rows are first projected onto this many random directions. */
const VIEW_DIMENSIONS = 512;
const FOLDS = 5;

export interface VisualWordTypes {
  /** Predicted type of each word; -1 where the word has fewer than `minImages` images (no evidence). */
  type: Int32Array;
  /** Its probability (>= 1/T): the softmax over types of the best enrichment z; 0 where there is no evidence. */
  probability: Float32Array;
  /** Images whose bag carries the word. */
  images: Int32Array;
  /** Per word and type, the best z of the word's images on a typed word of that type ([K, T], -Infinity: none). */
  enrichment: Float64Array;
}

export interface TypeViewOptions {
  /** Words with fewer images take no type. */
  minImages?: number;
  /** The ridge as a multiple of the training rows (the features are standardised, so each column's own sum of
   * squares): 1 was the best of 0.001-1,000 x n on the fixture catalogue's held-out words (bench/RESULTS.md). */
  ridge?: number;
}

/**
 * Each word's type from its images. `rows` [n, dim] are the images' features, `bags` their words, `known`
 * the type of each word training may use (-1: held out or untyped; such words do not vote). For each type
 * t, a ridge regression from the standardised features to the bag indicators of t's typed words (with
 * `minImages` images), fitted on 4 of 5 folds of images and predicting the fifth; each predicted column is
 * standardised over all images. A word's z on typed word v: the sum of v's standardised predictions over
 * the word's images divided by √(its images) (about N(0, 1) when its images are a random draw). Its type
 * is the type of the highest z, never counting the word's own column.
 */
export function typesFromImageViews(rows: Float32Array, dim: number, bags: readonly Int32Array[], known: ArrayLike<number>, types: number, options: TypeViewOptions = {}): VisualWordTypes {
  const minImages = options.minImages ?? 2;
  const ridge = options.ridge ?? 1;
  const count = known.length;
  const n = bags.length;
  const images = new Int32Array(count);
  for (const bag of bags) for (const w of bag) images[w]++;
  const voters = Array.from({ length: count }, (_, v) => v).filter((v) => known[v] >= 0 && images[v] >= minImages);
  const x = standardisedRows(rows, n, dim);
  const d = x.dim;
  const votersAt = new Int32Array(count).fill(-1);
  voters.forEach((v, j) => (votersAt[v] = j));
  const k = voters.length;
  // Out-of-fold predictions of every voter's indicator: the ridge's columns are independent, so one solve serves all types.
  const predicted = new Float64Array(n * k);
  const grams = foldGrams(x.values, n, d);
  for (let fold = 0; fold < FOLDS; fold++) {
    const a = new Float64Array(d * d);
    grams.forEach((g, f) => {
      if (f !== fold) for (let e = 0; e < d * d; e++) a[e] += g[e];
    });
    let trainRows = 0;
    const xty = new Float64Array(d * k);
    const yMean = new Float64Array(k);
    const columnSums = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      if (i % FOLDS === fold) continue;
      trainRows++;
      for (let p = 0; p < d; p++) columnSums[p] += x.values[i * d + p];
      for (const w of bags[i]) {
        const j = votersAt[w];
        if (j < 0) continue;
        yMean[j]++;
        for (let p = 0; p < d; p++) xty[p * k + j] += x.values[i * d + p];
      }
    }
    // Centre the indicators: Xᵀ(y - ȳ) = Xᵀy - ȳ·Σ x over the training rows.
    for (let j = 0; j < k; j++) {
      yMean[j] /= trainRows || 1;
      for (let p = 0; p < d; p++) xty[p * k + j] -= yMean[j] * columnSums[p];
    }
    for (let p = 0; p < d; p++) a[p * d + p] += ridge * trainRows;
    const b = choleskySolve(a, xty, d, k);
    for (let i = fold; i < n; i += FOLDS) {
      for (let p = 0; p < d; p++) {
        const value = x.values[i * d + p];
        if (value === 0) continue;
        for (let j = 0; j < k; j++) predicted[i * k + j] += value * b[p * k + j];
      }
    }
  }
  standardiseColumns(predicted, k);
  const sums = new Float64Array(count * k);
  bags.forEach((bag, i) => {
    for (const w of bag) for (let j = 0; j < k; j++) sums[w * k + j] += predicted[i * k + j];
  });
  const type = new Int32Array(count).fill(-1);
  const probability = new Float32Array(count);
  const enrichment = new Float64Array(count * types).fill(-Infinity);
  for (let w = 0; w < count; w++) {
    if (images[w] < minImages) continue;
    const scale = 1 / Math.sqrt(images[w]);
    for (let j = 0; j < k; j++) {
      if (voters[j] === w) continue;
      const t = known[voters[j]];
      const z = sums[w * k + j] * scale;
      if (z > enrichment[w * types + t]) enrichment[w * types + t] = z;
    }
    let top = -1;
    for (let t = 0; t < types; t++) if (enrichment[w * types + t] > -Infinity && (top < 0 || enrichment[w * types + t] > enrichment[w * types + top])) top = t;
    if (top < 0) continue;
    let total = 0;
    for (let t = 0; t < types; t++) if (enrichment[w * types + t] > -Infinity) total += Math.exp(enrichment[w * types + t] - enrichment[w * types + top]);
    type[w] = top;
    probability[w] = 1 / total;
  }
  return { type, probability, images, enrichment };
}

/** Each column standardised over the rows (a constant column is zero); above VIEW_DIMENSIONS columns, first a seeded ±1 projection. */
function standardisedRows(rows: Float32Array, n: number, dim: number): { values: Float64Array; dim: number } {
  let values = Float64Array.from(rows.subarray(0, n * dim));
  let d = dim;
  if (dim > VIEW_DIMENSIONS) {
    const random = createRandom('type-views');
    const signs = Float64Array.from({ length: dim * VIEW_DIMENSIONS }, () => (random.next() < 0.5 ? -1 : 1));
    const projected = new Float64Array(n * VIEW_DIMENSIONS);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < dim; p++) {
        const value = rows[i * dim + p];
        if (value === 0) continue;
        for (let q = 0; q < VIEW_DIMENSIONS; q++) projected[i * VIEW_DIMENSIONS + q] += value * signs[p * VIEW_DIMENSIONS + q];
      }
    }
    values = projected;
    d = VIEW_DIMENSIONS;
  }
  standardiseColumns(values, d);
  return { values, dim: d };
}

/** Each column of values [rows, dim] minus its mean, over its deviation (featureScaling's: a constant column becomes 0). */
function standardiseColumns(values: Float64Array, dim: number): void {
  const { mean, std } = featureScaling({ x: values, dim });
  for (let e = 0; e < values.length; e++) values[e] = (values[e] - mean[e % dim]) / std[e % dim];
}

/** XᵀX of each fold's rows (row i is in fold i mod FOLDS) of x [n, d]. */
function foldGrams(x: Float64Array, n: number, d: number): Float64Array[] {
  const grams = Array.from({ length: FOLDS }, () => new Float64Array(d * d));
  for (let i = 0; i < n; i++) {
    const g = grams[i % FOLDS];
    const row = i * d;
    for (let p = 0; p < d; p++) {
      const value = x[row + p];
      if (value === 0) continue;
      const out = p * d;
      for (let q = p; q < d; q++) g[out + q] += value * x[row + q];
    }
  }
  for (const g of grams) for (let p = 0; p < d; p++) for (let q = 0; q < p; q++) g[p * d + q] = g[q * d + p];
  return grams;
}

/** Solves A·B = C for B, A [d, d] symmetric positive definite (overwritten), C [d, k]. */
function choleskySolve(a: Float64Array, c: Float64Array, d: number, k: number): Float64Array {
  for (let j = 0; j < d; j++) {
    let diagonal = a[j * d + j];
    for (let m = 0; m < j; m++) diagonal -= a[j * d + m] ** 2;
    const l = Math.sqrt(Math.max(diagonal, 1e-12));
    a[j * d + j] = l;
    for (let i = j + 1; i < d; i++) {
      let value = a[i * d + j];
      for (let m = 0; m < j; m++) value -= a[i * d + m] * a[j * d + m];
      a[i * d + j] = value / l;
    }
  }
  const b = Float64Array.from(c);
  for (let i = 0; i < d; i++) {
    for (let m = 0; m < i; m++) {
      const l = a[i * d + m];
      if (l !== 0) for (let j = 0; j < k; j++) b[i * k + j] -= l * b[m * k + j];
    }
    for (let j = 0; j < k; j++) b[i * k + j] /= a[i * d + i];
  }
  for (let i = d - 1; i >= 0; i--) {
    for (let m = i + 1; m < d; m++) {
      const l = a[m * d + i];
      if (l !== 0) for (let j = 0; j < k; j++) b[i * k + j] -= l * b[m * k + j];
    }
    for (let j = 0; j < k; j++) b[i * k + j] /= a[i * d + i];
  }
  return b;
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
