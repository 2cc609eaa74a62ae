// atelier's own small ResNet-style tower (the weak model's since round 1): a stride-2 3x3 stem,
// `stages` stages of `blocks` basic blocks with width·2^i filters, each later stage halving the
// resolution with a strided conv (MaxPoolGrad is slow on WASM). Layer names and seeds are those
// of round 1, so a spec rebuilds the weights older models were initialised with.
import { tf } from '../../backend/tf.js';
import type { TowerFamily } from './spec.js';

export function convBnRelu(x: tf.SymbolicTensor, filters: number, stride: number, name: string, seed: number, relu = true): tf.SymbolicTensor {
  let y = tf.layers
    .conv2d({ filters, kernelSize: 3, strides: stride, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed }), name: `${name}_conv` })
    .apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_bn` }).apply(y) as tf.SymbolicTensor;
  return relu ? (tf.layers.reLU({ name: `${name}_relu` }).apply(y) as tf.SymbolicTensor) : y;
}

function residualBlock(x: tf.SymbolicTensor, filters: number, stride: number, name: string, seed: number): tf.SymbolicTensor {
  const inputFilters = x.shape[x.shape.length - 1] as number;
  const a = convBnRelu(x, filters, stride, `${name}_a`, seed);
  const b = convBnRelu(a, filters, 1, `${name}_b`, seed + 1, false);
  let shortcut = x;
  if (stride !== 1 || inputFilters !== filters) {
    shortcut = tf.layers
      .conv2d({ filters, kernelSize: 1, strides: stride, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: seed + 2 }), name: `${name}_short_conv` })
      .apply(x) as tf.SymbolicTensor;
    shortcut = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_short_bn` }).apply(shortcut) as tf.SymbolicTensor;
  }
  const sum = tf.layers.add({ name: `${name}_add` }).apply([b, shortcut]) as tf.SymbolicTensor;
  return tf.layers.reLU({ name: `${name}_out` }).apply(sum) as tf.SymbolicTensor;
}

export const smallTower: TowerFamily = {
  name: 'small',
  summary: "atelier's small ResNet-style tower (--width, --blocks, --stages)",
  defaults: { width: 16, blocks: 1, stages: 4 },
  // The stem and every later stage halve the input, and the last map must be >= 2x2.
  minimumSide: (p) => 2 ** (p.stages + 1),
  build(image, p, seed) {
    let x = convBnRelu(image, p.width, 2, 'stem', seed);
    let layerSeed = seed + 10;
    for (let stage = 0; stage < p.stages; stage++) {
      for (let block = 0; block < p.blocks; block++) {
        x = residualBlock(x, p.width * 2 ** stage, stage > 0 && block === 0 ? 2 : 1, `s${stage}b${block}`, layerSeed);
        layerSeed += 10;
      }
    }
    return x;
  },
};
