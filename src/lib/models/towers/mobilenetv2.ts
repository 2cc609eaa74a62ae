// MobileNetV2 (Sandler et al. 2018) with width multiplier α, laid out and named as Keras'
// applications.MobileNetV2 (ZeroPadding2D + 'valid' strided convs, ReLU6, BN eps 1e-3), so the
// weights of a Keras model (e.g. nsfwjs's) copy onto it layer by layer.
import { tf } from '../../backend/tf.js';
import type { TowerFamily } from './spec.js';

/** Keras' _make_divisible: channels rounded to a multiple of 8, never below 90% of the request. */
function makeDivisible(v: number, divisor = 8): number {
  const rounded = Math.max(divisor, Math.floor(v + divisor / 2) - (Math.floor(v + divisor / 2) % divisor));
  return rounded < 0.9 * v ? rounded + divisor : rounded;
}

/** (expansion t, channels c, repeats n, first stride s), the paper's table 2. */
const BLOCKS: Array<[number, number, number, number]> = [
  [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
];

export const mobilenetV2: TowerFamily = {
  name: 'mobilenetv2',
  summary: 'MobileNetV2 (Sandler et al. 2018), Keras layout and names; mobilenetv2:ALPHA is the width multiplier',
  defaults: { alpha: 1 },
  minimumSide: () => 32,
  build(image, p, seed) {
    let next = seed;
    const init = () => tf.initializers.glorotUniform({ seed: next++ });
    const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
    const bn = (x: tf.SymbolicTensor, name: string) => apply(tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.999, name }), x);
    const relu6 = (x: tf.SymbolicTensor, name: string) => apply(tf.layers.reLU({ maxValue: 6, name }), x);
    const pointwise = (x: tf.SymbolicTensor, filters: number, name: string) =>
      apply(tf.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: false, kernelInitializer: init(), name }), x);
    // Keras' correct_pad: a stride-2 3x3 conv pads bottom/right by 1 on even sides, all sides on odd.
    const padFor = (x: tf.SymbolicTensor, name: string) => {
      const [h, w] = [x.shape[1] as number, x.shape[2] as number];
      const pad: [[number, number], [number, number]] = [[h % 2, 1], [w % 2, 1]];
      return apply(tf.layers.zeroPadding2d({ padding: pad, name }), x);
    };

    const first = makeDivisible(32 * p.alpha);
    let x = padFor(image, 'Conv1_pad');
    x = apply(tf.layers.conv2d({ filters: first, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, kernelInitializer: init(), name: 'Conv1' }), x);
    x = relu6(bn(x, 'bn_Conv1'), 'Conv1_relu');
    let id = 0;
    for (const [t, c, n, s] of BLOCKS) {
      const out = makeDivisible(c * p.alpha);
      for (let r = 0; r < n; r++) {
        const stride = r === 0 ? s : 1;
        const prefix = id === 0 ? 'expanded_conv_' : `block_${id}_`;
        const inChannels = x.shape[3] as number;
        let y = x;
        if (id > 0) y = relu6(bn(pointwise(y, inChannels * t, `${prefix}expand`), `${prefix}expand_BN`), `${prefix}expand_relu`);
        if (stride === 2) y = padFor(y, `${prefix}pad`);
        y = apply(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: stride === 2 ? 'valid' : 'same', useBias: false, depthwiseInitializer: init(), name: `${prefix}depthwise` }), y);
        y = relu6(bn(y, `${prefix}depthwise_BN`), `${prefix}depthwise_relu`);
        y = bn(pointwise(y, out, `${prefix}project`), `${prefix}project_BN`);
        x = stride === 1 && inChannels === out ? apply(tf.layers.add({ name: `${prefix}add` }), [x, y]) : y;
        id++;
      }
    }
    const last = p.alpha > 1 ? makeDivisible(1280 * p.alpha) : 1280;
    x = relu6(bn(pointwise(x, last, 'Conv_1'), 'Conv_1_bn'), 'out_relu');
    return x;
  },
};
