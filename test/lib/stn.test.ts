// The spatial transformer on the attention fixture (a 16-px patch of stripes, dots or checks at a
// random place on 64 x 64 noise; the label is the patch's pattern): trained on the label alone, its
// crop closes on the patch on held-out images, and the tower behind it beats the same tower reading
// the whole image at its input size (16 x 16, a 4x box-filtered resize) by a wide margin.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { registerWasmKernels } from '../../src/lib/backend/wasm-kernels.js';
import { buildTower } from '../../src/lib/models/towers/index.js';
import { stnParts, transformModel, withSpatialTransformer } from '../../src/lib/models/attention/stn.js';
import { transformBox } from '../../src/lib/models/attention/model.js';
import { iou } from '../../src/lib/models/locate.js';
import { createRandom } from '../../src/lib/random.js';
import { PATCH_PATTERNS, patchImages, type PatchImage } from '../../fixtures/lib/patches.js';

const SIZE = 64;
const INPUT = 16;

function batchOf(images: PatchImage[]): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const x = new Float32Array(images.length * SIZE * SIZE * 3);
  images.forEach((im, i) => x.set(im.pixels, i * SIZE * SIZE * 3));
  return { x: tf.tensor4d(x, [images.length, SIZE, SIZE, 3]), y: tf.tensor1d(images.map((im) => PATCH_PATTERNS.indexOf(im.pattern)), 'int32') };
}

/**
 * Adam on softmax cross-entropy, `epochs` passes in shuffled batches of 32, plus the same loss on
 * the transformer's class evidence when there is one; returns held-out accuracy of the tower's head.
 */
async function train(model: tf.LayersModel, trainSet: PatchImage[], testSet: PatchImage[], epochs: number, lr: number): Promise<number> {
  const optimizer: tf.Optimizer = tf.train.adam(lr);
  const random = createRandom(7);
  const evidence = model.layers.some((l) => l.name === 'stn_crop') ? stnParts(model).evidence : null;
  const net = tf.model({ inputs: model.inputs, outputs: [model.outputs[0], ...(evidence ? [evidence] : [])] });
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = trainSet.map((_, i) => i).sort(() => random.next() - 0.5);
    for (let start = 0; start < order.length; start += 32) {
      const { x, y } = batchOf(order.slice(start, start + 32).map((i) => trainSet[i]));
      const { value, grads } = tf.variableGrads(() => {
        const outputs = [net.apply(x, { training: true })].flat() as tf.Tensor2D[];
        return tf.addN(outputs.map((logits) => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits))) as tf.Scalar;
      }, variables);
      optimizer.applyGradients(grads);
      tf.dispose([x, y, value, ...Object.values(grads)]);
    }
  }
  const { x, y } = batchOf(testSet);
  const predicted = tf.tidy(() => tf.argMax(model.predict(x) as tf.Tensor, 1));
  const accuracy = (await tf.tidy(() => tf.mean(tf.cast(tf.equal(predicted, y), 'float32'))).data())[0];
  tf.dispose([x, y, predicted]);
  optimizer.dispose();
  return accuracy;
}

/** The tower (image -> pooled) with a linear class layer on top. */
function classifier(features: tf.LayersModel, name: string): tf.LayersModel {
  const logits = tf.layers.dense({ units: 3, name: `${name}_classes`, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(features.outputs[0]) as tf.SymbolicTensor;
  return tf.model({ inputs: features.inputs, outputs: logits });
}

test('the transformer\'s crop closes on the patch (IoU > 0.5 held out) and beats the same tower without it', { timeout: 240_000 }, async () => {
  registerWasmKernels();
  assert.equal(await tf.setBackend('wasm'), true);
  const trainSet = patchImages(768, 1);
  const testSet = patchImages(192, 2);
  const tower = () => buildTower({ family: 'small', input: { height: INPUT, width: INPUT }, params: { width: 8, blocks: 1, stages: 2 }, seed: 5 });

  // The crop's side is bounded to [0.22, 0.3] of the image (the deck's scale constraints; the patch is 0.25).
  const stn = classifier(withSpatialTransformer(tower(), { height: SIZE, width: SIZE }, { minScale: 0.22, maxScale: 0.3, filters: 8, seed: 11, classes: 3 }), 'stn');
  const stnAccuracy = await train(stn, trainSet, testSet, 7, 0.005);
  const { x } = batchOf(testSet);
  const transforms = (await (transformModel(stn).predict(x) as tf.Tensor).data()) as Float32Array;
  const ious = testSet.map((im, i) => iou(transformBox(transforms[i * 4], transforms[i * 4 + 1], transforms[i * 4 + 2], transforms[i * 4 + 3]), im.box));
  const meanIou = ious.reduce((a, b) => a + b, 0) / ious.length;
  const meanSide = testSet.reduce((s, _, i) => s + transforms[i * 4], 0) / testSet.length;

  // The same tower and class layer on the whole image, box-filtered to its 16 x 16 input.
  const plainTower = tower();
  const image = tf.input({ shape: [SIZE, SIZE, 3], name: 'image' });
  const resized = tf.layers.averagePooling2d({ poolSize: SIZE / INPUT, name: 'resize' }).apply(image) as tf.SymbolicTensor;
  const plain = classifier(tf.model({ inputs: image, outputs: plainTower.apply(resized) as tf.SymbolicTensor }), 'plain');
  const plainAccuracy = await train(plain, trainSet, testSet, 7, 0.005);
  console.log(`stn accuracy ${stnAccuracy.toFixed(3)} mean IoU ${meanIou.toFixed(3)} mean crop side ${meanSide.toFixed(3)}; plain accuracy ${plainAccuracy.toFixed(3)}`);
  assert.ok(meanIou > 0.5, `mean IoU of the crops with the patch ${meanIou.toFixed(3)}`);
  assert.ok(stnAccuracy >= plainAccuracy + 0.3, `accuracy with the transformer ${stnAccuracy.toFixed(3)} vs ${plainAccuracy.toFixed(3)} without`);
});
