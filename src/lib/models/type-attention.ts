// The report's pseudo-attention model (§4.3): the image embedding is T sub-vectors of S (T fashion
// types: clothing, colour, texture, style), a layer on a word's embedding predicts its type
// (p = softmax(Aᵀ w + b)), and the image sub-vectors are combined by that type vector before the dot
// product with the word: score = w · Σ_t p_t z_t. One custom layer owns W (kernel, first, so the
// word matrix is where every command looks for it), A and b, and scores each word with its own
// predicted type; training combines by the positive word's type, validation takes the best of the
// five cases the report lists (each one-hot type and the uniform vector).
import { LayerBase, lazyOp, tf, whenTfjsLoads } from '../backend/tf.js';
import { takeValues } from '../backend/read.js';

export interface WordTypeScoresConfig {
  units: number;
  types: number;
  seed: number;
  name?: string;
}

export class WordTypeScores extends LayerBase {
  static className = 'AtelierWordTypeScores';
  readonly units: number;
  readonly types: number;
  readonly seed: number;
  private kernel!: tf.LayerVariable;
  private typeKernel!: tf.LayerVariable;
  private typeBias!: tf.LayerVariable;

  constructor(config: WordTypeScoresConfig & Record<string, unknown>) {
    super(config);
    this.units = config.units;
    this.types = config.types;
    this.seed = config.seed;
  }

  build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const dim = (shape[1] as number) / this.types;
    this.kernel = this.addWeight('kernel', [dim, this.units], 'float32', tf.initializers.randomNormal({ mean: 0, stddev: 0.01, seed: this.seed + 3 }));
    this.typeKernel = this.addWeight('type_kernel', [dim, this.types], 'float32', tf.initializers.glorotUniform({ seed: this.seed + 11 }));
    this.typeBias = this.addWeight('type_bias', [this.types], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [shape[0], this.units];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const z = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor2D;
      const w = this.weightsOf();
      const perType = perTypeScores(z, w.kernel, this.types); // [B, T, K]
      const p = tf.transpose(tf.softmax(wordTypeLogits(w))); // [T, K]
      return tf.sum(tf.mul(perType, tf.expandDims(p, 0)), 1);
    });
  }

  weightsOf(): TypeWeights {
    return { kernel: this.kernel.read() as tf.Tensor2D, typeKernel: this.typeKernel.read() as tf.Tensor2D, typeBias: this.typeBias.read() as tf.Tensor1D };
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units, types: this.types, seed: this.seed };
  }
}
whenTfjsLoads(() => tf.serialization.registerClass(WordTypeScores));

export interface TypeWeights {
  /** W, [S, K]. */
  kernel: tf.Tensor2D;
  /** A, [S, T]. */
  typeKernel: tf.Tensor2D;
  /** b, [T]. */
  typeBias: tf.Tensor1D;
}

/** The attention layer of a model, or null for a plain weak model. */
export function typeLayer(model: tf.LayersModel, name = 'words'): WordTypeScores | null {
  const layer = model.layers.find((l) => l.name === name);
  return layer instanceof WordTypeScores ? layer : null;
}

/** Type logits of every word, [K, T]. */
export function wordTypeLogits(w: TypeWeights): tf.Tensor2D {
  return typeLogitsOf(tf.transpose(w.kernel) as tf.Tensor2D, w);
}

/**
 * Type logits of word vectors [n, S]: Aᵀ (w / |w|) + b. On the unit vector, so the type is the word's
 * direction, and A learns at the same pace whatever the scale of W (it starts at std 0.01, where
 * Aᵀ w would leave every word at the bias: measured, the classifier then stayed at the majority type).
 */
export function typeLogitsOf(words: tf.Tensor2D, w: Pick<TypeWeights, 'typeKernel' | 'typeBias'>): tf.Tensor2D {
  const unit = tf.div(words, tf.add(tf.norm(words, 'euclidean', 1, true), 1e-8));
  return tf.add(tf.matMul(unit, w.typeKernel), w.typeBias) as tf.Tensor2D;
}

/** z_t · w_k for every image, type and word: [B, T, K] from z [B, T·S]. */
export function perTypeScores(z: tf.Tensor2D, kernel: tf.Tensor2D, types: number): tf.Tensor3D {
  const [batch, flat] = z.shape;
  const dim = flat / types;
  return tf.reshape(tf.matMul(tf.reshape(z, [batch * types, dim]), kernel), [batch, types, kernel.shape[1]]) as tf.Tensor3D;
}

export type UnknownTypes = 'zero' | 'uniform' | 'entropy';

/** Per-word training targets of the type classifier: a one-hot row for a known type; for the others the report's three options. */
export function typeTargets(wordTypes: Int32Array, types: number, unknown: UnknownTypes): { targets: Float32Array; entropy: Float32Array } {
  const targets = new Float32Array(wordTypes.length * types);
  const entropy = new Float32Array(wordTypes.length);
  wordTypes.forEach((t, k) => {
    if (t >= 0) targets[k * types + t] = 1;
    else if (unknown === 'uniform') targets.fill(1 / types, k * types, (k + 1) * types);
    else if (unknown === 'entropy') entropy[k] = 1;
  });
  return { targets, entropy };
}

/**
 * The attention model's loss for a batch: softmax over [positive, negatives] (or the whole vocabulary)
 * of w · Σ_t q_t z_t with q the positive word's predicted type, plus `typeWeight` times the type
 * cross-entropy against the targets and, where asked, the entropy of q (pushing it to one type).
 */
export function attentionLoss(
  z: tf.Tensor2D, w: TypeWeights, types: number, positives: tf.Tensor1D, candidates: tf.Tensor2D | null,
  targets: tf.Tensor2D, entropyMask: tf.Tensor1D, typeWeight: number,
): tf.Scalar {
  return tf.tidy(() => {
    const [batch, flat] = z.shape;
    const dim = flat / types;
    const words = tf.transpose(w.kernel) as tf.Tensor2D; // [K, S]
    const positive = tf.gather(words, positives); // [B, S]
    const q = tf.softmax(typeLogitsOf(positive, w)); // [B, T]
    const v = tf.sum(tf.mul(tf.reshape(z, [batch, types, dim]), tf.expandDims(q, 2)), 1) as tf.Tensor2D; // [B, S]
    let scores: tf.Tensor2D;
    let positiveScore: tf.Tensor1D;
    if (candidates) {
      const width = candidates.shape[1];
      const cand = tf.reshape(tf.gather(words, tf.reshape(candidates, [-1])), [batch, width, dim]);
      scores = tf.sum(tf.mul(tf.expandDims(v, 1), cand), 2) as tf.Tensor2D;
      positiveScore = tf.squeeze(tf.slice(scores, [0, 0], [batch, 1]), [1]) as tf.Tensor1D;
    } else {
      scores = tf.matMul(v, w.kernel);
      positiveScore = tf.sum(tf.mul(scores, tf.oneHot(positives, w.kernel.shape[1])), 1) as tf.Tensor1D;
    }
    const wordLoss = tf.mean(tf.sub(tf.logSumExp(scores, 1), positiveScore));
    // The type loss trains A and b only: were it to move W, the words it knows would drift from the
    // words it does not (measured on the fixtures: typed 1.0, held-out words 0.36), and the
    // classifier would not carry over to new words, the point of enriching the thesaurus.
    const logQ = tf.logSoftmax(typeLogitsOf(detach(positive) as tf.Tensor2D, w));
    const crossEntropy = tf.neg(tf.sum(tf.mul(tf.gather(targets, positives), logQ), 1));
    const entropy = tf.mul(tf.neg(tf.sum(tf.mul(tf.exp(logQ), logQ), 1)), tf.gather(entropyMask, positives));
    return tf.add(wordLoss, tf.mul(tf.mean(tf.add(crossEntropy, entropy)), typeWeight)) as tf.Scalar;
  });
}

/** Validation scores (the report): for each image, each word's best score over the T one-hot type vectors and the uniform one, [B, K]. */
export function fiveCaseScores(z: tf.Tensor2D, kernel: tf.Tensor2D, types: number): tf.Tensor2D {
  return tf.tidy(() => {
    const perType = perTypeScores(z, kernel, types); // [B, T, K]
    const uniform = tf.mean(perType, 1, true);
    return tf.max(tf.concat([perType, uniform], 1), 1) as tf.Tensor2D;
  });
}

/** Each word's predicted type and its probability, from the layer's weights. */
export async function predictedWordTypes(layer: WordTypeScores): Promise<{ type: Int32Array; probability: Float32Array }> {
  const p = tf.tidy(() => tf.softmax(wordTypeLogits(layer.weightsOf())));
  const [count, types] = p.shape as [number, number];
  const values = (await takeValues(p)) as Float32Array;
  const type = new Int32Array(count);
  const probability = new Float32Array(count);
  for (let k = 0; k < count; k++) {
    for (let t = 1; t < types; t++) if (values[k * types + t] > values[k * types + type[k]]) type[k] = t;
    probability[k] = values[k * types + type[k]];
  }
  return { type, probability };
}

/**
 * `tag --by-type`: for one image embedding z (T sub-vectors of S), the k best words of each type,
 * each word scored on its own predicted type's sub-vector only (z_t · w_k). kernel is W as [S, K].
 */
export function topWordsByType(z: Float32Array, kernel: Float32Array, dim: number, wordType: Int32Array, types: number, k: number): Array<Array<{ word: number; score: number }>> {
  const count = wordType.length;
  const out: Array<Array<{ word: number; score: number }>> = Array.from({ length: types }, () => []);
  for (let w = 0; w < count; w++) {
    const t = wordType[w];
    let s = 0;
    for (let j = 0; j < dim; j++) s += z[t * dim + j] * kernel[j * count + w];
    out[t].push({ word: w, score: s });
  }
  return out.map((list) => list.sort((a, b) => b.score - a.score || a.word - b.word).slice(0, k));
}

/** x with no gradient flowing back through it (tfjs has no stopGradient op). */
const detach = lazyOp(() => tf.customGrad(((x: tf.Tensor) => ({ value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor);
