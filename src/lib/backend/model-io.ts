// Models and checkpoints as directories, without tfjs-node: a tfjs `model.json` (topology + weights
// manifest) beside `weights.bin`, plus an optional group of named tensors (`extra.bin`: optimizer
// state, word matrices) and JSON metadata, all written to a temp directory and renamed into place.
import { createHash } from 'node:crypto';
import { open, readFile, readdir, mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { tf } from './tf.js';
import { UsageError } from '../command.js';
import { checkReplaceableDirOutput, writeAtomicDirectory, type OutputGroup } from '../io/atomic.js';
// Registers the custom layers a saved model may name, in every thread that loads models.
import '../models/attention/branch.js';
import '../models/attention/stn.js';
import '../models/type-attention.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
export const EXTRA_TENSORS_FILE = 'extra.bin';
/** Version of the `atelier` section of model.json; bumped when its layout changes. */
const CHECKPOINT_FORMAT_VERSION = 1;

/** JSON metadata stored with a checkpoint (epoch, RNG state, vocabulary size, ...). */
export type CheckpointMetadata = Record<string, unknown>;

export interface SaveModelOptions {
  /** Named tensors stored beside the model weights, e.g. from `optimizerStateTensors`. */
  extraTensors?: tf.NamedTensorMap;
  /** JSON-serialisable data stored in model.json. */
  metadata?: CheckpointMetadata;
  /** Leave the directory under its temp name for this group to commit with the run's other outputs. */
  outputs?: OutputGroup;
}

export interface LoadedModel {
  model: tf.LayersModel;
  /** The named tensors saved with the model ({} when none); the caller disposes them. */
  extraTensors: tf.NamedTensorMap;
  metadata: CheckpointMetadata;
}

export interface LoadedTensors {
  /** The caller disposes them. */
  tensors: tf.NamedTensorMap;
  metadata: CheckpointMetadata;
}

/** The `atelier` section of model.json: what tfjs itself does not read. */
interface CheckpointSection {
  version: number;
  extraTensors?: WeightGroup;
  metadata?: CheckpointMetadata;
  /** sha256 (hex) of each weight file, written at save and checked at load; older directories have none. */
  checksums?: Record<string, string>;
}

/** One entry of a weights manifest: files and the tensors they hold, in order. */
type WeightGroup = tf.io.WeightsManifestConfig[number];

type ModelDirectoryJson = Partial<tf.io.ModelJSON> & { atelier?: CheckpointSection };

/**
 * Saves `model` (topology, weights, training config) into directory `dir`, with optional extra
 * tensors and metadata. The directory is replaced as a whole only once everything is written.
 */
export async function saveModel(model: tf.LayersModel, dir: string, options: SaveModelOptions = {}): Promise<void> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  // A save handler that only captures what tfjs serialises; the files are written below.
  await model.save(
    tf.io.withSaveHandler(async (captured) => {
      artifacts = captured;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(captured) };
    }),
  );
  if (!artifacts) throw new Error('tfjs did not hand over the model artifacts');
  await writeCheckpointDirectory(dir, artifacts, options);
}

/** Saves named tensors with metadata as a directory holding no model (e.g. a word matrix). */
export async function saveTensors(dir: string, tensors: tf.NamedTensorMap, metadata: CheckpointMetadata = {}): Promise<void> {
  await writeCheckpointDirectory(dir, undefined, { extraTensors: tensors, metadata });
}

async function writeCheckpointDirectory(dir: string, artifacts: tf.io.ModelArtifacts | undefined, options: SaveModelOptions): Promise<void> {
  const json: ModelDirectoryJson = {};
  const files: Array<[string, Uint8Array]> = [];
  if (artifacts) {
    if (!(artifacts.modelTopology && typeof artifacts.modelTopology === 'object' && !(artifacts.modelTopology instanceof ArrayBuffer))) {
      throw new Error('only layers models with a JSON topology can be saved');
    }
    const weightData = artifacts.weightData ? tf.io.CompositeArrayBuffer.join(artifacts.weightData) : new ArrayBuffer(0);
    const manifest: tf.io.WeightsManifestConfig = [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }];
    Object.assign(json, {
      modelTopology: artifacts.modelTopology,
      weightsManifest: manifest,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy ?? null,
      ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
      ...(artifacts.signature ? { signature: artifacts.signature } : {}),
      ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      ...(artifacts.modelInitializer ? { modelInitializer: artifacts.modelInitializer } : {}),
    });
    files.push([WEIGHTS_FILE, new Uint8Array(weightData)]);
  }
  const section: CheckpointSection = { version: CHECKPOINT_FORMAT_VERSION };
  const extra = options.extraTensors ?? {};
  if (Object.keys(extra).length > 0) {
    const encoded = await tf.io.encodeWeights(extra);
    section.extraTensors = { paths: [EXTRA_TENSORS_FILE], weights: encoded.specs };
    files.push([EXTRA_TENSORS_FILE, new Uint8Array(encoded.data)]);
  }
  if (options.metadata !== undefined) section.metadata = options.metadata;
  section.checksums = Object.fromEntries(files.map(([name, bytes]) => [name, sha256(bytes)]));
  json.atelier = section;
  files.unshift([MODEL_JSON, Buffer.from(JSON.stringify(json))]);

  await mkdir(dirname(dir), { recursive: true });
  await writeAtomicDirectory(dir, async (tmpDir) => {
    for (const [name, bytes] of files) await writeDurably(join(tmpDir, name), bytes);
  }, options.outputs);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes and fsyncs a file, so the directory rename never publishes bytes still in flight. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Loads a directory written by `saveModel` (or by tfjs-node's `file://` saver): the model, the
 * extra tensors and the metadata. A missing or damaged file is a UsageError naming it.
 */
export async function loadModel(dir: string, options: { strict?: boolean } = {}): Promise<LoadedModel> {
  const found = await readCheckpointDirectory(dir);
  const modelJsonPath = join(found.dir, MODEL_JSON);
  if (!found.json.modelTopology) throw new UsageError('holds no model topology (tensors only: use loadTensors)', { file: modelJsonPath });
  const weightSpecs = tf.io.getWeightSpecs(found.json.weightsManifest ?? []);
  const weightData = await readWeightGroups(found.dir, found.json.weightsManifest ?? [], 'weightsManifest', found.json.atelier?.checksums);
  const handler: tf.io.IOHandler = {
    load: async () => tf.io.getModelArtifactsForJSON(found.json as tf.io.ModelJSON, async () => [weightSpecs, weightData]),
  };
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(handler, { strict: options.strict ?? true });
  } catch (err) {
    throw new UsageError(`cannot rebuild the model: ${firstLine(err)}`, { file: modelJsonPath });
  }
  let extraTensors: tf.NamedTensorMap;
  try {
    extraTensors = await readExtraTensors(found.dir, found.json);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, extraTensors, metadata: found.json.atelier?.metadata ?? {} };
}

/** Loads the extra tensors and metadata of a checkpoint directory, with or without a model in it. */
export async function loadTensors(dir: string): Promise<LoadedTensors> {
  const found = await readCheckpointDirectory(dir);
  return { tensors: await readExtraTensors(found.dir, found.json), metadata: found.json.atelier?.metadata ?? {} };
}

/** Reads only the metadata of a checkpoint directory (cheap: no weights are read). */
export async function loadMetadata(dir: string): Promise<CheckpointMetadata> {
  const found = await readCheckpointDirectory(dir);
  return found.json.atelier?.metadata ?? {};
}

/**
 * The batch shape of the model's first input as model.json states it (cheap: no weights are read
 * and no backend starts), e.g. [null, 512] for a model on feature rows; null when it states none.
 */
export async function loadInputShape(dir: string): Promise<Array<number | null> | null> {
  const topology = (await readCheckpointDirectory(dir)).json.modelTopology as ({ model_config?: KerasModelConfig } & KerasModelConfig) | undefined;
  const config = (topology?.model_config ?? topology)?.config;
  const name = config?.input_layers?.[0]?.[0];
  const layer = config?.layers?.find((l) => name === undefined || l.config?.name === name);
  const shape = layer?.config?.batch_input_shape;
  return Array.isArray(shape) ? shape : null;
}

interface KerasModelConfig {
  config?: { input_layers?: Array<[string, number, number]>; layers?: Array<{ config?: { name?: string; batch_input_shape?: Array<number | null> } }> };
}

/**
 * Running products tfjs's Adam keeps outside getWeights(); setWeights recomputes them as
 * beta^(t+1), which differs from the product in the last bit, so they are saved to resume exactly.
 */
const HIDDEN_OPTIMIZER_STATE = ['accBeta1', 'accBeta2'] as const;
const HIDDEN_STATE_MARK = '@';

function hiddenOptimizerVariables(optimizer: tf.Optimizer): Array<[string, tf.Variable]> {
  const fields = optimizer as unknown as Record<string, unknown>;
  return HIDDEN_OPTIMIZER_STATE.filter((field) => fields[field] instanceof tf.Variable).map((field) => [field, fields[field] as tf.Variable]);
}

/**
 * The optimizer's state (iteration count, moments) as named tensors for `extraTensors`, under
 * `prefix`. The returned tensors may be the optimizer's own variables: do not dispose them.
 */
export async function optimizerStateTensors(optimizer: tf.Optimizer, prefix = 'optimizer/'): Promise<tf.NamedTensorMap> {
  const state: tf.NamedTensorMap = {};
  for (const { name, tensor } of await optimizer.getWeights()) state[`${prefix}${name}`] = tensor;
  for (const [field, variable] of hiddenOptimizerVariables(optimizer)) state[`${prefix}${HIDDEN_STATE_MARK}${field}`] = variable;
  return state;
}

/**
 * Restores state saved by `optimizerStateTensors` into an optimizer of the same kind and settings
 * (tfjs matches moments by order, which the checkpoint keeps). The tensors are copied, so the
 * caller may dispose them. Returns false when `tensors` holds no state under `prefix`.
 */
export async function restoreOptimizerState(optimizer: tf.Optimizer, tensors: tf.NamedTensorMap, prefix = 'optimizer/'): Promise<boolean> {
  const entries = Object.entries(tensors).filter(([name]) => name.startsWith(prefix));
  const weights = entries
    .filter(([name]) => !name.startsWith(prefix + HIDDEN_STATE_MARK))
    .map(([name, tensor]) => ({ name: name.slice(prefix.length), tensor }));
  if (weights.length === 0) return false;
  await optimizer.setWeights(weights);
  for (const [field, variable] of hiddenOptimizerVariables(optimizer)) {
    const saved = tensors[`${prefix}${HIDDEN_STATE_MARK}${field}`];
    if (saved) variable.assign(saved);
  }
  return true;
}

/** Whether `dir` holds a model.json (so a resume has something to load). */
export async function isCheckpointDirectory(dir: string): Promise<boolean> {
  return (await stat(join(dir, MODEL_JSON)).catch(() => undefined))?.isFile() === true;
}

async function readCheckpointDirectory(dir: string): Promise<{ dir: string; json: ModelDirectoryJson }> {
  const actualDir = (await isCheckpointDirectory(dir)) ? dir : await interruptedCommitLeftover(dir);
  const path = join(actualDir ?? dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UsageError(`not a model directory: no ${MODEL_JSON} in '${dir}'`, { file: path });
    if (code === 'EACCES' || code === 'EPERM') throw new UsageError('permission denied', { file: path });
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`not valid JSON (${firstLine(err)})`, { file: path });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UsageError('not a model description: expected a JSON object', { file: path });
  const candidate = json as ModelDirectoryJson;
  if (candidate.weightsManifest !== undefined) validateManifest(candidate.weightsManifest, path, 'weightsManifest');
  if (candidate.atelier?.extraTensors !== undefined) validateManifest([candidate.atelier.extraTensors], path, 'atelier.extraTensors');
  const checksums = candidate.atelier?.checksums;
  if (checksums !== undefined && (checksums === null || typeof checksums !== 'object' || Array.isArray(checksums) || !Object.values(checksums).every((v) => typeof v === 'string'))) {
    throw new UsageError('expected an object of file name -> sha256', { file: path, field: 'atelier.checksums' });
  }
  if (candidate.atelier?.metadata !== undefined && (typeof candidate.atelier.metadata !== 'object' || candidate.atelier.metadata === null)) {
    throw new UsageError('expected an object', { file: path, field: 'atelier.metadata' });
  }
  if (candidate.modelTopology === undefined && candidate.atelier === undefined) {
    throw new UsageError('not a model description: neither modelTopology nor an atelier section', { file: path });
  }
  return { dir: actualDir ?? dir, json: candidate };
}

/**
 * A commit killed between its two renames leaves the previous directory at `.name.old-*` and no
 * `name`; that previous directory is the last complete output, so it is what a load should see.
 */
async function interruptedCommitLeftover(dir: string): Promise<string | undefined> {
  if ((await stat(dir).catch(() => undefined)) !== undefined) return undefined;
  const prefix = `.${basename(dir)}.old-`;
  const entries = await readdir(dirname(dir)).catch(() => [] as string[]);
  for (const entry of entries.filter((name) => name.startsWith(prefix)).sort()) {
    const candidate = join(dirname(dir), entry);
    if (await isCheckpointDirectory(candidate)) return candidate;
  }
  return undefined;
}

function validateManifest(manifest: unknown, path: string, field: string): void {
  if (!Array.isArray(manifest)) throw new UsageError('expected an array of weight groups', { file: path, field });
  manifest.forEach((group: unknown, index) => {
    const at = `${field}[${index}]`;
    const g = group as Partial<WeightGroup> | null;
    if (!g || !Array.isArray(g.paths) || !Array.isArray(g.weights)) throw new UsageError('expected {paths, weights}', { file: path, field: at });
    for (const file of g.paths) {
      // Weight files live inside the directory: a path elsewhere is refused, not followed.
      if (typeof file !== 'string' || file === '' || file.includes('/') || file.includes('\\') || file === '..' || file === '.') {
        throw new UsageError(`weight file name '${String(file)}' must be a plain file name inside the directory`, { file: path, field: `${at}.paths` });
      }
    }
    g.weights.forEach((spec: Partial<tf.io.WeightsManifestEntry>, k: number) => {
      if (!spec || typeof spec.name !== 'string' || !Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isInteger(d) && d >= 0) || typeof spec.dtype !== 'string') {
        throw new UsageError('expected {name, shape, dtype}', { file: path, field: `${at}.weights[${k}]` });
      }
    });
  });
}

/** Bytes a manifest entry takes in its file, or undefined when it cannot be known in advance (strings). */
function specByteLength(spec: tf.io.WeightsManifestEntry): number | undefined {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const quantized = spec.quantization?.dtype;
  if (quantized) return count * (quantized === 'uint8' ? 1 : 2);
  const bytes: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
  return bytes[spec.dtype] === undefined ? undefined : count * bytes[spec.dtype];
}

/**
 * Reads every group's files in manifest order into one buffer, checking sizes against the specs,
 * contents against the checksums saved with them, and that every float is finite: a damaged file
 * of the right size must not load and turn every output into NaN.
 */
async function readWeightGroups(dir: string, manifest: tf.io.WeightsManifestConfig, field: string, checksums?: Record<string, string>): Promise<ArrayBuffer> {
  const buffers: ArrayBuffer[] = [];
  for (const group of manifest) {
    const groupBuffers: Uint8Array[] = [];
    for (const file of group.paths) {
      const path = join(dir, file);
      try {
        groupBuffers.push(await readFile(path));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new UsageError(`weight file listed in ${MODEL_JSON} ${field} is missing`, { file: path });
        throw err;
      }
    }
    const sizes = group.weights.map(specByteLength);
    const expected = sizes.every((s) => s !== undefined) ? (sizes as number[]).reduce((a, b) => a + b, 0) : undefined;
    const actual = groupBuffers.reduce((sum, b) => sum + b.byteLength, 0);
    if (expected !== undefined && actual !== expected) {
      throw new UsageError(`holds ${actual} bytes but ${MODEL_JSON} describes ${expected} (truncated or mismatched)`, { file: join(dir, group.paths.join('+')) });
    }
    group.paths.forEach((file, i) => {
      const recorded = checksums?.[file];
      if (recorded !== undefined && sha256(groupBuffers[i]) !== recorded) {
        throw new UsageError(`content does not match the sha256 recorded in ${MODEL_JSON} (damaged or replaced)`, { file: join(dir, file) });
      }
    });
    if (expected !== undefined) checkFinite(dir, group, groupBuffers);
    for (const b of groupBuffers) buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  }
  return tf.io.CompositeArrayBuffer.join(buffers);
}

/** Refuses a float32 weight that is NaN or infinite, naming the file that holds it. */
function checkFinite(dir: string, group: WeightGroup, buffers: Uint8Array[]): void {
  const bytes = buffers.length === 1 ? buffers[0] : Buffer.concat(buffers);
  const ends: number[] = [];
  buffers.reduce((end, b) => (ends.push(end + b.byteLength), end + b.byteLength), 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  for (const spec of group.weights) {
    const length = specByteLength(spec) ?? 0;
    if (spec.dtype === 'float32' && !spec.quantization) {
      for (let at = offset; at < offset + length; at += 4) {
        const value = view.getFloat32(at, true);
        if (!Number.isFinite(value)) {
          const file = group.paths[ends.findIndex((end) => at < end)];
          throw new UsageError(`weight '${spec.name}' holds ${value} (damaged file)`, { file: join(dir, file) });
        }
      }
    }
    offset += length;
  }
}

async function readExtraTensors(dir: string, json: ModelDirectoryJson): Promise<tf.NamedTensorMap> {
  const group = json.atelier?.extraTensors;
  if (!group) return {};
  const data = await readWeightGroups(dir, [group], 'atelier.extraTensors', json.atelier?.checksums);
  return tf.io.decodeWeights(data, group.weights);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200);
}

/** Checks before training that `dir` may receive a model: missing, empty, or an earlier model directory (never a file). */
export function checkModelOutput(dir: string | undefined, field: string): Promise<void> {
  return checkReplaceableDirOutput(dir, field, MODEL_JSON, 'an atelier model directory');
}
