// Training on WASM keeps memory flat: 2,000 steps of a tiny residual CNN (conv-bn-relu, residual
// add, stride-2 conv, max-pool, depthwise conv, global average pool, dense softmax head and a
// negative-sampling loss over an embedding table) leave the same number of tensors and backend
// buffers after step 2,000 as after step 100.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { registerWasmKernels } from '../../src/lib/backend/wasm-kernels.js';

const STEPS = 2000;
const CHECKPOINT = 100;

function tinyResidualNetwork() {
  const init = (shape: number[], scale: number, seed: number) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, scale, 'float32', seed)));
  const constant = (make: () => tf.Tensor) => tf.tidy(() => tf.variable(make()));
  const weights = {
    conv1: init([3, 3, 3, 8], 0.3, 1),
    gamma: constant(() => tf.ones([8])),
    beta: constant(() => tf.zeros([8])),
    conv2: init([3, 3, 8, 8], 0.15, 2),
    conv3: init([3, 3, 8, 16], 0.15, 3),
    depthwise: init([3, 3, 16, 1], 0.3, 4),
    dense: init([16, 5], 0.3, 5),
    bias: constant(() => tf.zeros([5])),
    embedding: init([30, 16], 0.1, 6),
  };
  const images = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 3, 1, 4], 'int32'), 5));
  const anchors = tf.tensor1d([2, 9, 2, 17], 'int32');
  const negatives = tf.tensor1d([5, 11, 23, 29, 5, 0, 14, 8], 'int32');
  const loss = (): tf.Scalar => {
    const conv1 = tf.conv2d(images, weights.conv1 as tf.Tensor4D, 1, 'same');
    const { mean, variance } = tf.moments(conv1, [0, 1, 2]);
    const h1 = tf.relu(tf.batchNorm(conv1, mean, variance, weights.beta, weights.gamma, 1e-3)) as tf.Tensor4D;
    const h2 = tf.relu(tf.add(tf.conv2d(h1, weights.conv2 as tf.Tensor4D, 1, 'same'), h1)) as tf.Tensor4D;
    const h3 = tf.relu(tf.conv2d(h2, weights.conv3 as tf.Tensor4D, 2, 'same'));
    const h4 = tf.depthwiseConv2d(tf.maxPool(h3, 2, 2, 'same'), weights.depthwise as tf.Tensor4D, 1, 'same');
    const pooled = tf.mean(h4, [1, 2]) as tf.Tensor2D;
    const logits = tf.add(tf.matMul(pooled, weights.dense), weights.bias);
    const classification = tf.losses.softmaxCrossEntropy(labels, logits);
    // Negative sampling: log sigma(a.p) + sum log sigma(-a.n), with log sigma(s) = -softplus(-s).
    const anchor = tf.gather(weights.embedding, anchors);
    const positive = tf.sum(tf.mul(anchor, pooled), 1);
    const negative = tf.sum(tf.mul(tf.expandDims(anchor, 1), tf.reshape(tf.gather(weights.embedding, negatives), [4, 2, 16])), 2);
    const sampling = tf.add(tf.mean(tf.softplus(tf.neg(positive))), tf.mean(tf.softplus(negative)));
    return tf.add(classification, tf.mul(sampling, 0.1)) as tf.Scalar;
  };
  return { weights, loss, data: [images, labels, anchors, negatives] };
}

test('2,000 WASM training steps of a tiny residual CNN keep tensors and backend buffers flat', async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  registerWasmKernels();
  assert.equal(await tf.setBackend('wasm'), true);
  const backend = tf.backend();
  const tensorsAtStart = tf.memory().numTensors;
  const network = tinyResidualNetwork();
  const optimizer = tf.train.adam(0.01);
  const variables = Object.values(network.weights);
  const losses: number[] = [];
  let atCheckpoint = { tensors: -1, buffers: -1, bytes: -1 };
  for (let step = 1; step <= STEPS; step++) {
    const { value, grads } = tf.variableGrads(network.loss, variables);
    optimizer.applyGradients(grads as unknown as Parameters<typeof optimizer.applyGradients>[0]);
    if (step === 1 || step === STEPS) losses.push(value.dataSync()[0]);
    tf.dispose(value);
    tf.dispose(Object.values(grads));
    if (step === CHECKPOINT) atCheckpoint = { tensors: tf.memory().numTensors, buffers: backend.numDataIds(), bytes: tf.memory().numBytes };
  }
  const last = tf.variableGrads(network.loss, variables);
  assert.equal(Object.keys(last.grads).length, variables.length, 'every weight gets a gradient');
  tf.dispose([last.value, ...Object.values(last.grads)]);
  assert.equal(tf.memory().numTensors, atCheckpoint.tensors, 'tensors after step 2,000 vs step 100');
  assert.equal(backend.numDataIds(), atCheckpoint.buffers, 'WASM buffers after step 2,000 vs step 100');
  assert.equal(tf.memory().numBytes, atCheckpoint.bytes, 'bytes after step 2,000 vs step 100');
  assert.ok(losses[1] < 0.5 * losses[0], `training lowers the loss (${losses[0]} -> ${losses[1]})`);
  optimizer.dispose();
  tf.dispose([...variables, ...network.data]);
  assert.equal(tf.memory().numTensors, tensorsAtStart, 'everything is freed at the end');
});
