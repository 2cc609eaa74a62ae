// Small models the ONNX, engine and stage-feature tests build the same way.
import { join } from 'node:path';
import { tf } from '../src/lib/backend/tf.js';
import { saveModel } from '../src/lib/backend/model-io.js';
import { buildWeakModel, type WeakModelConfig } from '../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../src/lib/models/weak-files.js';

/** Moving statistics away from 0/1 so that batch normalisation is really exercised. */
export function randomiseNormalisation(model: tf.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    layer.setWeights(layer.getWeights().map((w, i) => (i === 3 ? tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + i) : tf.randomNormal(w.shape, 0, 0.3, 'float32', seed + i))));
  }
}

/**
 * Saves `dir`/mobile.model: a MobileNetV2 weak model at a non-square input, as train-weak
 * --tower mobilenetv2:0.35 --input-size 48x32 saves it, its BatchNorm statistics randomised.
 */
export async function saveMobileWeakModel(dir: string, config: WeakModelConfig, vocabulary: string[]): Promise<void> {
  const tower = { family: 'mobilenetv2', input: { height: 48, width: 32 }, params: { alpha: 0.35 }, seed: 1, resize: 'contain' as const };
  const mobileConfig = { ...config, inputSize: 48, projection: 0, tower };
  const mobile = buildWeakModel(mobileConfig);
  randomiseNormalisation(mobile, 8);
  await saveModel(mobile, join(dir, 'mobile.model'), { metadata: { kind: WEAK_MODEL_KIND, vocabulary, config: mobileConfig, tower, backend: 'cpu', log: [] } });
}
