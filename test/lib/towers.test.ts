// The tower library: every family builds at square and non-square inputs with the published
// parameter counts, learns on a toy task, and a new family is one object plus one registry line.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { selectBackend } from '../../src/lib/backend/select.js';
import { buildTower, buildTowerGraph, parseInputSize, parseTowerName, registerTowerFamily, towerFamilyNames, type TowerFamily, type TowerSpec } from '../../src/lib/models/towers/index.js';
import { UsageError } from '../../src/lib/command.js';
import { buildWeakModel, featureModel } from '../../src/lib/models/weak-model.js';

await selectBackend({ requested: 'wasm', env: {}, stderr: { write: () => true } as unknown as NodeJS.WritableStream });

const spec = (family: string, height: number, width: number, params: Record<string, number> = {}): TowerSpec => ({ family, input: { height, width }, params, seed: 1 });
const countParams = (m: tf.LayersModel) => m.weights.filter((w) => w.trainable).reduce((s, w) => s + w.shape.reduce((a, b) => a! * b!, 1)!, 0);

test('towers: published parameter counts (torchvision / Keras applications without their classifier)', () => {
  // ResNet-18: 11,689,512 with the 1000-way fc (512·1000 + 1000); ResNet-34: 21,797,672; ResNet-50: 25,557,032 (2048·1000 + 1000).
  const expected: Array<[string, number]> = [['resnet18', 11_689_512 - 513_000], ['resnet34', 21_797_672 - 513_000], ['resnet50', 25_557_032 - 2_049_000]];
  for (const [family, params] of expected) {
    const m = buildTower(spec(family, 32, 32));
    // BatchNorm's beta/gamma are trainable, its moving statistics are not: torchvision counts the same.
    assert.equal(countParams(m), params, family);
    m.dispose();
  }
  // Keras MobileNetV2(include_top=False, alpha=1): 2,257,984 params of which 34,112 non-trainable (BN statistics).
  const mobile = buildTower(spec('mobilenetv2', 32, 32));
  assert.equal(countParams(mobile), 2_257_984 - 34_112);
  assert.equal(mobile.outputs[0].shape[1], 1280);
  mobile.dispose();
  const half = buildTower(spec('mobilenetv2', 32, 32, { alpha: 0.5 }));
  assert.equal(half.outputs[0].shape[1], 1280, 'alpha <= 1 keeps the 1280-d last conv, as Keras');
  assert.equal(half.getLayer('Conv1').getWeights()[0].shape[3], 16);
  half.dispose();
});

test('towers: non-square inputs give the expected feature maps; too small an input is a usage error', () => {
  for (const [family, params, depth, stride] of [['small', { width: 4, blocks: 1, stages: 3 }, 16, 8], ['resnet18', { alpha: 0.125 }, 64, 32], ['resnet50', { alpha: 0.125 }, 256, 32], ['mobilenetv2', { alpha: 0.35 }, 1280, 32]] as const) {
    const g = buildTowerGraph(spec(family, 96, 64, params));
    assert.deepEqual(g.input.shape, [null, 96, 64, 3], family);
    assert.deepEqual(g.map.shape, [null, 96 / stride, 64 / stride, depth], family);
    assert.deepEqual(g.pooled.shape, [null, depth], family);
  }
  assert.throws(() => buildTower(spec('resnet18', 24, 64)), (e: unknown) => e instanceof UsageError && /input size 24x64 is smaller than the tower's minimum 32 \(resnet18\)/.test(e.message));
  assert.throws(() => buildTower(spec('vgg', 32, 32)), (e: unknown) => e instanceof UsageError && /unknown tower 'vgg'/.test(e.message));
});

test('towers: --tower and --input-size parsing', () => {
  assert.deepEqual(parseTowerName('mobilenetv2:0.5'), { family: 'mobilenetv2', params: { alpha: 0.5 } });
  assert.deepEqual(parseTowerName('resnet50'), { family: 'resnet50', params: {} });
  assert.throws(() => parseTowerName('small:2'), /takes no width multiplier/);
  assert.throws(() => parseTowerName('mobilenetv2:x'), /positive number/);
  assert.deepEqual(parseInputSize('96x64'), { height: 96, width: 64 });
  assert.deepEqual(parseInputSize(96), { height: 96, width: 96 });
  assert.throws(() => parseInputSize('96 by 64'), /expected N or HxW/);
});

test('towers: a toy family is one object and one registry line, and trains through the weak model', () => {
  const toy: TowerFamily = {
    name: 'toy',
    summary: 'one strided conv',
    defaults: { filters: 8 },
    minimumSide: () => 2,
    build: (image, p, seed) => tf.layers.conv2d({ filters: p.filters, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }), name: 'toy_conv' }).apply(image) as tf.SymbolicTensor,
  };
  registerTowerFamily(toy);
  assert.ok(towerFamilyNames().includes('toy'));
  const model = buildWeakModel({ inputSize: 12, width: 0, blocksPerStage: 0, stages: 0, projection: 0, vocabularySize: 2, seed: 1, tower: spec('toy', 12, 8) });
  assert.deepEqual(featureModel(model, 'pooled').outputs[0].shape, [null, 8]);
  assert.deepEqual(model.inputs[0].shape, [null, 12, 8, 3]);
  model.dispose();
});

// Each family learns a two-class toy task (bright left half vs bright right half) in a few steps: cheap, but a real gradient path.
test('towers: every family trains on WASM and separates a toy task', async () => {
  const n = 8;
  const [h, w] = [40, 32];
  const x = tf.tidy(() => {
    const left = tf.concat([tf.ones([n / 2, h, w / 2, 3]), tf.zeros([n / 2, h, w / 2, 3])], 2);
    const right = tf.reverse(left, 2);
    return tf.add(tf.concat([left, right], 0), tf.randomUniform([n, h, w, 3], 0, 0.3, 'float32', 5));
  });
  const y = tf.oneHot(tf.tensor1d([...Array(n)].map((_, i) => (i < n / 2 ? 0 : 1)), 'int32'), 2);
  for (const [family, params] of [['small', { width: 4, blocks: 1, stages: 3 }], ['resnet18', { alpha: 0.125 }], ['resnet34', { alpha: 0.0625 }], ['resnet50', { alpha: 0.0625 }], ['mobilenetv2', { alpha: 0.35 }]] as const) {
    const tower = buildTower(spec(family, h, w, params));
    const logits = tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(tower.outputs[0]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: tower.inputs, outputs: logits });
    const optimizer = tf.train.adam(0.01);
    const loss = () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
    let last = Infinity;
    let firstLoss = 0;
    for (let step = 0; step < 8; step++) {
      const value = optimizer.minimize(loss, true) as tf.Scalar;
      last = value.dataSync()[0];
      if (step === 0) firstLoss = last;
      value.dispose();
    }
    assert.ok(last < firstLoss * 0.5, `${family}: loss ${firstLoss.toFixed(3)} -> ${last.toFixed(3)}`);
    optimizer.dispose();
    model.dispose();
  }
  tf.dispose([x, y]);
});
