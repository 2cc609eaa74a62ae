// The small image CNN of the training benchmark and of quick experiments: four 3x3 convolutions,
// two downsampling steps, global average pooling and a softmax classifier.
import { tf } from '../backend/tf.js';

/** How the CNN halves its resolution: a 2x2 max-pool after a conv, or the conv itself at stride 2. */
export type SmallCnnVariant = 'maxpool' | 'stride2';

export interface SmallCnnOptions {
  variant: SmallCnnVariant;
  /** Height and width of the square RGB input. */
  inputSize?: number;
  /** Input channels (3 for RGB). */
  channels?: number;
  classes?: number;
  /** Filters of the four convolutions. */
  filters?: [number, number, number, number];
  /** Seed of the Glorot initialisers, so two builds with the same seed hold the same weights. */
  seed?: number;
}

/** Filters of the benchmark CNN: two stages of 32 then two of 64. */
export const SMALL_CNN_FILTERS: [number, number, number, number] = [32, 32, 64, 64];

/**
 * Builds the CNN (not compiled): conv-relu x4, downsampling after the 2nd and 4th conv, global
 * average pool, dense softmax. With 'stride2' the 2nd and 4th conv use stride 2 instead of a pool.
 */
export function buildSmallCnn(options: SmallCnnOptions): tf.Sequential {
  const { variant, inputSize = 64, channels = 3, classes = 10, filters = SMALL_CNN_FILTERS, seed } = options;
  if (variant !== 'maxpool' && variant !== 'stride2') throw new Error(`unknown small CNN variant '${String(variant)}'`);
  let nextSeed = seed;
  const initializer = () => tf.initializers.glorotUniform({ seed: nextSeed === undefined ? undefined : nextSeed++ });
  const model = tf.sequential({ name: `small_cnn_${variant}` });
  filters.forEach((count, index) => {
    const downsamples = index % 2 === 1;
    model.add(
      tf.layers.conv2d({
        ...(index === 0 ? { inputShape: [inputSize, inputSize, channels] } : {}),
        filters: count,
        kernelSize: 3,
        strides: downsamples && variant === 'stride2' ? 2 : 1,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: initializer(),
        name: `conv${index + 1}`,
      }),
    );
    if (downsamples && variant === 'maxpool') model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: `pool${index + 1}` }));
  });
  model.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  model.add(tf.layers.dense({ units: classes, activation: 'softmax', kernelInitializer: initializer(), name: 'classifier' }));
  return model;
}
