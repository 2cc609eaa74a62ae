// SizeNet's student (Karessli et al. 2019): an MLP of 4 fully connected layers with nonlinear
// activations on image features, a sigmoid output, trained with binary cross-entropy weighted by
// the teacher's confidence w = ln(1 + s).
import { tf } from '../backend/tf.js';
import type { Random } from '../random.js';

export interface StudentConfig {
  inputDim: number;
  /** Widths of the three hidden layers (the fourth layer is the single output). */
  hidden: number[];
  dropout: number;
  seed: number;
}

export const STUDENT_LAYER = { input: 'features', logit: 'logit', probability: 'p_size_issue' } as const;

/** Hidden dense layers plus the logit layer, unattached, so the same layers serve training and saved models. */
export function studentLayers(config: StudentConfig): tf.layers.Layer[] {
  const layers: tf.layers.Layer[] = config.hidden.map((units, i) =>
    tf.layers.dense({ units, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: config.seed + i }), name: `fc${i + 1}` }),
  );
  layers.push(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: config.seed + 99 }), name: STUDENT_LAYER.logit }));
  return layers;
}

/** features -> P(size issue), as a saveable model over the given layers. */
export function buildStudentModel(config: StudentConfig, layers: tf.layers.Layer[]): tf.LayersModel {
  const input = tf.input({ shape: [config.inputDim], name: STUDENT_LAYER.input });
  let x: tf.SymbolicTensor = input;
  for (const layer of layers) x = layer.apply(x) as tf.SymbolicTensor;
  const p = tf.layers.activation({ activation: 'sigmoid', name: STUDENT_LAYER.probability }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: p, name: 'atelier_sizenet' });
}

/** image -> tower features -> the student's layers -> P(size issue): one model that rise can explain from pixels. */
export function buildImageStudentModel(featureModel: tf.LayersModel, student: tf.LayersModel): tf.LayersModel {
  const image = tf.input({ shape: featureModel.inputs[0].shape.slice(1) as number[], name: 'image' });
  const features = featureModel.apply(image) as tf.SymbolicTensor;
  const p = student.apply(features) as tf.SymbolicTensor;
  return tf.model({ inputs: image, outputs: p, name: 'atelier_sizenet_image' });
}

/** Logits in training mode, with dropout masks from the caller's seeded generator (replayable on resume). */
export function studentLogits(layers: tf.layers.Layer[], x: tf.Tensor2D, dropout: number, random: Random | null): tf.Tensor1D {
  let h: tf.Tensor2D = x;
  layers.forEach((layer, i) => {
    h = layer.apply(h) as tf.Tensor2D;
    if (random && dropout > 0 && i < layers.length - 1) {
      const mask = new Float32Array(h.size);
      for (let j = 0; j < mask.length; j++) mask[j] = random.next() < dropout ? 0 : 1 / (1 - dropout);
      h = tf.mul(h, tf.tensor2d(mask, h.shape as [number, number]));
    }
  });
  return tf.reshape(h, [-1]) as tf.Tensor1D;
}

/**
 * SizeNet loss: Σ w_i · BCE(y_i, σ(z_i)) / Σ w_i, with BCE from logits as softplus(z) − y·z
 * (stable for large |z|; tfjs's logSigmoid gradient is avoided on purpose).
 */
export function weightedBinaryCrossEntropy(logits: tf.Tensor1D, labels: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const perSample = tf.sub(tf.softplus(logits), tf.mul(labels, logits));
    return tf.div(tf.sum(tf.mul(perSample, weights)), tf.maximum(tf.sum(weights), 1e-12)) as tf.Scalar;
  });
}
