// Losses of the weakly supervised model. Joulin et al. 2015 / the report §2.3: predict one word
// sampled from the image's bag with a softmax, approximated by the positive and N sampled negatives.
import { tf } from '../backend/tf.js';

/**
 * Softmax cross-entropy over [positive, negatives] (the report's negative sampling).
 * z: [B, d] embeddings; kernel: [d, K] word matrix; candidates: [B, 1+N] int32 word ids, positive first.
 */
export function sampledSoftmaxLoss(z: tf.Tensor2D, kernel: tf.Tensor2D, candidates: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [batch, width] = candidates.shape;
    const dim = z.shape[1];
    const words = tf.gather(tf.transpose(kernel), tf.reshape(candidates, [-1])); // [B(1+N), d]
    const wordsByExample = tf.reshape(words, [batch, width, dim]);
    const scores = tf.sum(tf.mul(tf.expandDims(z, 1), wordsByExample), 2); // [B, 1+N]
    const positive = tf.squeeze(tf.slice(scores, [0, 0], [batch, 1]), [1]);
    return tf.mean(tf.sub(tf.logSumExp(scores, 1), positive)) as tf.Scalar;
  });
}

/** Full softmax cross-entropy over the whole vocabulary (`--loss full`, for small K). */
export function fullSoftmaxLoss(z: tf.Tensor2D, kernel: tf.Tensor2D, positives: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const scores = tf.matMul(z, kernel); // [B, K]
    const mask = tf.oneHot(positives, kernel.shape[1]);
    const positive = tf.sum(tf.mul(scores, mask), 1);
    return tf.mean(tf.sub(tf.logSumExp(scores, 1), positive)) as tf.Scalar;
  });
}

/** Inverted dropout with a mask computed by the caller's seeded generator, so resumed runs replay it. */
export function applyDropout(x: tf.Tensor2D, keepMask: Float32Array, rate: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(x, tf.mul(tf.tensor2d(keepMask, x.shape), 1 / (1 - rate))) as tf.Tensor2D);
}
