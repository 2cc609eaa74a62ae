// Backbones on disk: a tfjs layers model directory (tensorflowjs_converter output or our own
// import-backbone output, which adds the preprocessing to the metadata), and the MobileNetV2
// that the nsfwjs npm package ships inside its tarball, read offline from node_modules.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { tf } from './tf.js';
import { UsageError } from '../command.js';
import { loadModel } from './model-io.js';
import type { Preprocessing } from '../models/backbone.js';

/** Kind written by import-backbone into the metadata of a backbone directory. */
export const BACKBONE_KIND = 'atelier-backbone';

export interface BackboneMetadata {
  kind: typeof BACKBONE_KIND;
  source: string;
  preprocessing: Preprocessing;
  /** Input side the network was trained at. */
  nativeInput: { height: number; width: number };
  [key: string]: unknown;
}

/** A backbone model and, when its directory declares it, its preprocessing. */
export async function loadBackbone(dir: string): Promise<{ model: tf.LayersModel; preprocessing?: Preprocessing }> {
  const { model, metadata, extraTensors } = await loadModel(dir);
  tf.dispose(Object.values(extraTensors));
  const declared = (metadata as Partial<BackboneMetadata>).preprocessing;
  return { model, preprocessing: declared };
}

/** Where the nsfwjs package keeps its MobileNetV2 (the package's `exports` hides the subpath from require). */
export function nsfwjsModelDir(): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('nsfwjs');
  } catch {
    throw new UsageError('the nsfwjs package is not installed (npm install --save-dev nsfwjs)', { field: '--from' });
  }
  // .../nsfwjs/dist/cjs/index.js -> .../nsfwjs/dist/models/mobilenet_v2
  return join(dirname(dirname(entry)), 'models', 'mobilenet_v2');
}

/** Evaluates one of nsfwjs's UMD model files in a sandbox and returns what it exports. */
async function umdExports(path: string): Promise<unknown> {
  const code = await readFile(path, 'utf8');
  const module = { exports: {} as unknown };
  runInNewContext(code, { module, exports: module.exports }, { filename: path });
  return module.exports;
}

/** The nsfwjs MobileNetV2 as model artifacts: Keras topology, quantized weight specs, the shard's bytes. */
export async function nsfwjsArtifacts(): Promise<tf.io.ModelArtifacts & { weightSpecs: tf.io.WeightsManifestEntry[]; weightData: ArrayBuffer }> {
  const dir = nsfwjsModelDir();
  // Through JSON: objects made in the sandbox's realm would confuse tfjs's instanceof checks.
  const model = JSON.parse(JSON.stringify(await umdExports(join(dir, 'model.min.js')))) as { modelTopology?: object; weightsManifest?: tf.io.WeightsManifestConfig };
  const shard = await umdExports(join(dir, 'group1-shard1of1.min.js'));
  if (!model.modelTopology || !model.weightsManifest || typeof shard !== 'string') throw new Error(`unexpected nsfwjs model files in ${dir}`);
  const bytes = Buffer.from(shard, 'base64');
  return {
    modelTopology: model.modelTopology,
    weightSpecs: model.weightsManifest.flatMap((g) => g.weights),
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    format: 'layers-model',
  };
}

/** tfjs's own load of in-memory artifacts (the path nsfwjs takes: the same dequantization). */
export async function loadArtifacts(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(artifacts));
}
