// Deep TEN's encoding layer (Zhang, Xue, Dana 2017, "Deep TEN: Texture encoding network", §3):
// residuals r_ik = x_i - c_k to K learnable codewords, soft-assigned with learnable smoothing
// a_ik = softmax_k(-s_k ||r_ik||^2), aggregated e_k = sum_i a_ik r_ik: a fixed-length,
// orderless description of a variable set of local features.
import { tf } from '../../backend/tf.js';

/**
 * x [B, M, D] (M local features), codewords [K, D], smoothing [K] -> [B, K, D]. The sum is
 * divided by M so the vector's scale does not depend on the glimpse size.
 */
export function textureEncoding(x: tf.Tensor3D, codewords: tf.Tensor2D, smoothing: tf.Tensor1D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, m, d] = x.shape;
    const k = codewords.shape[0];
    const residuals = tf.sub(tf.reshape(x, [b, m, 1, d]), tf.reshape(codewords, [1, 1, k, d])); // [B, M, K, D]
    const distances = tf.sum(tf.square(residuals), 3); // [B, M, K]
    const assignment = tf.softmax(tf.mul(tf.neg(tf.reshape(smoothing, [1, 1, k])), distances)); // over K
    return tf.div(tf.sum(tf.mul(tf.reshape(assignment, [b, m, k, 1]), residuals), 1), m) as tf.Tensor3D;
  });
}
