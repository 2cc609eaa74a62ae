// The one tfjs instance of the toolkit. The umbrella package registers gradients, chained ops,
// layers and the plain CPU backend on the shared tfjs-core; the WASM backend registers on the same
// core. Every module that needs tensors imports `tf` from here, never from a package directly.
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tensor = tf.Tensor;
