// ResNet-18/34 (basic blocks) and ResNet-50 (bottleneck blocks), He et al. 2016 table 1: a 7x7/2
// stem and a 3x3/2 max-pool, four stages of 64·α·2^i filters (x4 out of a bottleneck), the first
// block of stages 2-4 downsampling (in the 3x3 conv, as torchvision's v1.5), projection shortcuts
// (option B) where the shape changes. α (`resnet18:0.25`) scales every width, for cheap runs.
import { tf } from '../../backend/tf.js';
import type { TowerFamily } from './spec.js';

type Seeds = () => number;

function conv(x: tf.SymbolicTensor, filters: number, kernel: number, stride: number, name: string, seeds: Seeds): tf.SymbolicTensor {
  return tf.layers
    .conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: seeds() }), name })
    .apply(x) as tf.SymbolicTensor;
}

function bn(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name }).apply(x) as tf.SymbolicTensor;
}

function relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;
}

function block(x: tf.SymbolicTensor, filters: number, stride: number, bottleneck: boolean, name: string, seeds: Seeds): tf.SymbolicTensor {
  const inputFilters = x.shape[3] as number;
  const outFilters = bottleneck ? filters * 4 : filters;
  let y: tf.SymbolicTensor;
  if (bottleneck) {
    y = relu(bn(conv(x, filters, 1, 1, `${name}_1_conv`, seeds), `${name}_1_bn`), `${name}_1_relu`);
    y = relu(bn(conv(y, filters, 3, stride, `${name}_2_conv`, seeds), `${name}_2_bn`), `${name}_2_relu`);
    y = bn(conv(y, outFilters, 1, 1, `${name}_3_conv`, seeds), `${name}_3_bn`);
  } else {
    y = relu(bn(conv(x, filters, 3, stride, `${name}_1_conv`, seeds), `${name}_1_bn`), `${name}_1_relu`);
    y = bn(conv(y, filters, 3, 1, `${name}_2_conv`, seeds), `${name}_2_bn`);
  }
  const shortcut = stride !== 1 || inputFilters !== outFilters ? bn(conv(x, outFilters, 1, stride, `${name}_0_conv`, seeds), `${name}_0_bn`) : x;
  return relu(tf.layers.add({ name: `${name}_add` }).apply([y, shortcut]) as tf.SymbolicTensor, `${name}_out`);
}

function resnet(name: string, blocks: [number, number, number, number], bottleneck: boolean): TowerFamily {
  return {
    name,
    summary: `ResNet-${name.slice(6)} (He et al. 2016, ${bottleneck ? 'bottleneck' : 'basic'} blocks ${blocks.join('-')}); ${name}:ALPHA scales the widths`,
    defaults: { alpha: 1 },
    // Total stride 32: the last map is at least 1x1.
    minimumSide: () => 32,
    build(image, p, seed) {
      let next = seed;
      const seeds = () => next++;
      const width = (f: number) => Math.max(1, Math.round(f * p.alpha));
      let x = relu(bn(conv(image, width(64), 7, 2, 'conv1_conv', seeds), 'conv1_bn'), 'conv1_relu');
      x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool1_pool' }).apply(x) as tf.SymbolicTensor;
      blocks.forEach((count, stage) => {
        for (let b = 0; b < count; b++) {
          x = block(x, width(64 * 2 ** stage), stage > 0 && b === 0 ? 2 : 1, bottleneck, `conv${stage + 2}_block${b + 1}`, seeds);
        }
      });
      return x;
    },
  };
}

export const resnet18 = resnet('resnet18', [2, 2, 2, 2], false);
export const resnet34 = resnet('resnet34', [3, 4, 6, 3], false);
export const resnet50 = resnet('resnet50', [3, 4, 6, 3], true);
