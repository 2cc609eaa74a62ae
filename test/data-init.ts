// Batch normalisation set from data, for tests that need an untrained tower to behave like a
// trained one: each BN layer's moving mean and variance become the statistics of its own input on
// `images` (layer by layer, so each sees the earlier ones' effect), with γ and β drawn near 1 and 0.
// A freshly initialised tower's rows otherwise share almost all of their direction, and a test of
// how well a transform (int8 rounding, say) keeps images apart would measure nothing.
import { tf } from '../src/lib/backend/tf.js';

export function initBatchNormFromData(model: tf.LayersModel, images: tf.Tensor4D, seed = 1): void {
  let k = 0;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const probe = tf.model({ inputs: model.inputs, outputs: layer.input as tf.SymbolicTensor });
    const weights = tf.tidy(() => {
      const x = probe.predict(images) as tf.Tensor;
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      const { mean, variance } = tf.moments(x, axes);
      const channels = mean.shape[0];
      return [tf.randomUniform([channels], 0.5, 1.5, 'float32', seed + k), tf.randomNormal([channels], 0, 0.1, 'float32', seed + k + 1), mean, variance];
    });
    k += 2;
    layer.setWeights(weights);
    tf.dispose(weights);
  }
}
