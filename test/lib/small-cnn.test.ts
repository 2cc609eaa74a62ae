import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { buildSmallCnn, SMALL_CNN_FILTERS } from '../../src/lib/models/small-cnn.js';

await tf.setBackend('cpu');

function describeLayers(model: tf.LayersModel): string[] {
  return model.layers.map((layer) => {
    const config = layer.getConfig() as { filters?: number; kernelSize?: number[]; strides?: number[]; units?: number; activation?: string };
    return `${layer.getClassName()}${config.filters ? ` f${config.filters} k${config.kernelSize?.join('x')} s${config.strides?.join('x')} ${config.activation}` : ''}${config.units ? ` u${config.units} ${config.activation}` : ''} -> ${JSON.stringify(layer.outputShape)}`;
  });
}

test('the max-pool variant: 4 relu 3x3 convs (32, 32, 64, 64), two 2x2 pools, GAP, softmax', () => {
  assert.deepEqual(SMALL_CNN_FILTERS, [32, 32, 64, 64]);
  assert.deepEqual(describeLayers(buildSmallCnn({ variant: 'maxpool' })), [
    'Conv2D f32 k3x3 s1x1 relu -> [null,64,64,32]',
    'Conv2D f32 k3x3 s1x1 relu -> [null,64,64,32]',
    'MaxPooling2D -> [null,32,32,32]',
    'Conv2D f64 k3x3 s1x1 relu -> [null,32,32,64]',
    'Conv2D f64 k3x3 s1x1 relu -> [null,32,32,64]',
    'MaxPooling2D -> [null,16,16,64]',
    'GlobalAveragePooling2D -> [null,64]',
    'Dense u10 softmax -> [null,10]',
  ]);
});

test('the stride-2 variant downsamples in the 2nd and 4th conv instead', () => {
  const model = buildSmallCnn({ variant: 'stride2', inputSize: 32, classes: 4 });
  assert.deepEqual(describeLayers(model), [
    'Conv2D f32 k3x3 s1x1 relu -> [null,32,32,32]',
    'Conv2D f32 k3x3 s2x2 relu -> [null,16,16,32]',
    'Conv2D f64 k3x3 s1x1 relu -> [null,16,16,64]',
    'Conv2D f64 k3x3 s2x2 relu -> [null,8,8,64]',
    'GlobalAveragePooling2D -> [null,64]',
    'Dense u4 softmax -> [null,4]',
  ]);
  // Same parameter count as the max-pool variant: pooling has no weights.
  assert.equal(model.countParams(), buildSmallCnn({ variant: 'maxpool', inputSize: 32, classes: 4 }).countParams());
});

test('a seed fixes the initial weights; outputs are probabilities', async () => {
  const a = buildSmallCnn({ variant: 'stride2', inputSize: 16, seed: 3 });
  const b = buildSmallCnn({ variant: 'stride2', inputSize: 16, seed: 3 });
  const c = buildSmallCnn({ variant: 'stride2', inputSize: 16, seed: 4 });
  assert.deepEqual(await a.getWeights()[0].data(), await b.getWeights()[0].data());
  assert.notDeepEqual(await a.getWeights()[0].data(), await c.getWeights()[0].data());
  const p = (a.predict(tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 1)) as tf.Tensor).sum(1);
  for (const s of await p.data()) assert.ok(Math.abs(s - 1) < 1e-5);
  assert.throws(() => buildSmallCnn({ variant: 'avgpool' as 'maxpool' }), /unknown small CNN variant/);
});
