// Every tower family converts to ONNX and runs in onnxruntime-node with the tfjs outputs within
// 1e-4: ResNet-18/34 (basic blocks), ResNet-50 (bottlenecks), MobileNetV2 (depthwise, ReLU6, Keras'
// asymmetric zero padding, at odd sides too), non-square inputs, and a pretrained-style backbone
// behind its frozen preprocessing conv. Widths are cut by alpha so the file stays fast.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { tf } from '../../src/lib/backend/tf.js';
import { buildTower, type TowerSpec } from '../../src/lib/models/towers/index.js';
import { cutBackbone, PREPROCESSING } from '../../src/lib/models/backbone.js';
import { exportLayersModel } from '../../src/lib/onnx/export.js';
import { randomiseNormalisation } from '../model-fixtures.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const spec = (family: string, height: number, width: number, params: Record<string, number> = {}): TowerSpec => ({ family, input: { height, width }, params, seed: 3 });

async function worstDifference(model: tf.LayersModel, count: number): Promise<number> {
  const [, height, width] = model.inputs[0].shape as number[];
  const input = tf.randomUniform([count, height, width, 3], 0, 1, 'float32', 11);
  const expected = (model.predict(input) as tf.Tensor).dataSync();
  const exported = await exportLayersModel(model, { kind: 'tower' });
  const session = await ort.InferenceSession.create(exported.bytes, { intraOpNumThreads: 1 });
  const result = await session.run({ [exported.inputName]: new ort.Tensor('float32', input.dataSync() as Float32Array, input.shape) });
  const got = result[exported.outputs[0].name].data as Float32Array;
  await session.release();
  input.dispose();
  assert.equal(got.length, expected.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  return worst;
}

const families: Array<[string, TowerSpec]> = [
  ['small', spec('small', 32, 32, { width: 8, blocks: 1, stages: 2 })],
  ['resnet18:0.125', spec('resnet18', 32, 32, { alpha: 0.125 })],
  ['resnet34:0.125 at 48x32', spec('resnet34', 48, 32, { alpha: 0.125 })],
  ['resnet50:0.125 (bottlenecks)', spec('resnet50', 32, 32, { alpha: 0.125 })],
  ['mobilenetv2:0.35', spec('mobilenetv2', 32, 32, { alpha: 0.35 })],
  ['mobilenetv2:0.35 at 49x35 (odd sides: asymmetric padding)', spec('mobilenetv2', 49, 35, { alpha: 0.35 })],
];

for (const [name, s] of families) {
  test(`onnx towers: ${name} matches tfjs within 1e-4`, async () => {
    const model = buildTower(s);
    randomiseNormalisation(model, 20);
    const worst = await worstDifference(model, 3);
    assert.ok(worst < 1e-4, `${name}: worst relative difference ${worst}`);
    model.dispose();
  });
}

test('onnx towers: a backbone behind its frozen preprocessing conv (caffe: BGR, mean-subtracted) at 40x32 matches tfjs within 1e-4', async () => {
  const pretrained = buildTower(spec('mobilenetv2', 64, 64, { alpha: 0.35 }));
  randomiseNormalisation(pretrained, 30);
  const { tower } = cutBackbone(pretrained, { input: { height: 40, width: 32 }, preprocessing: PREPROCESSING.caffe });
  assert.ok(tower.layers.some((l) => l.name === 'preprocess'));
  const worst = await worstDifference(tower, 2);
  assert.ok(worst < 1e-4, `backbone: worst relative difference ${worst}`);
  pretrained.dispose();
});
