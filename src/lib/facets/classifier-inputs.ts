// The inputs of a facet classifier: feature rows (precomputed, or computed here by a frozen tower or
// raw pixels) or images decoded once for fine-tuning, with the tower that reads them.
import { tf } from '../backend/tf.js';
import { UsageError, warn } from '../command.js';
import { loadModel } from '../backend/model-io.js';
import { readFeatureMatrix, idsPathFor } from '../io/features.js';
import type { SkipCounter } from '../image/skips.js';
import type { ImageFit } from '../image/decode.js';
import { compactInput, type ImageStore, type InputShape } from '../image/batch.js';
import { computeFeatures, modelPredictor, resizeModeOf } from '../models/image-features.js';
import { isTowerName, modelInputSize, parseInputSize } from '../models/towers/index.js';
import { openTower, towerSpecFor, type BackboneArgs, type TowerRecord } from '../train/tower-options.js';
import { startProgress } from '../progress.js';
import { withSpatialTransformer } from '../models/attention/stn.js';
import type { InputSize } from '../models/towers/spec.js';
import { towerFeatures, type ClassifierMetadata } from './classifier-model.js';
import { isStageLayer, stageFeatureModel } from '../models/stage-features.js';
import type { FeatureLayer } from '../models/kinds.js';
import { decodeImageStore, imageRecordOf } from './inputs.js';
import type { LabelledRecord } from './labels.js';

/** The settings that choose the inputs (train-classifier's flags of the same names). */
export interface ClassifierInputArgs extends BackboneArgs {
  input: string;
  'id-field': string;
  'image-field': string;
  features?: string;
  'feature-ids'?: string;
  mode: 'head' | 'finetune';
  tower?: string;
  'tower-layer': FeatureLayer;
  'pixels-size': number;
  'input-size': string;
  width: number;
  blocks: number;
  stages: number;
  seed: number;
}

/** A spatial transformer in front of the fine-tuned tower: it reads images of `image` and crops them to the tower's input. */
export interface StnSettings {
  image: InputSize;
  minScale: number;
  maxScale: number;
  /** Classes of the localisation net's class evidence. */
  classes: number;
}

/** A labelled record and where its input is: its feature row, or its index in the image store. */
export interface ClassifierSample {
  record: LabelledRecord;
  slot: number;
}

export interface ClassifierInputs {
  input: ClassifierMetadata['input'];
  samples: ClassifierSample[];
  featureRows: Float32Array | null;
  featureDim: number;
  store: ImageStore | null;
  inputSize: InputShape;
  /** image -> features (null for feature rows and raw pixels). */
  towerNet: tf.LayersModel | null;
  towerRecord: ClassifierMetadata['tower'];
  fit: ImageFit;
  /** A tower built here from a family name or --backbone. */
  fresh: boolean;
  /** Records without a feature row. */
  missing: number;
}

/** Reads, computes or decodes the inputs of `records` as `args` ask; corrupt images are counted in `skips`. */
export async function openClassifierInputs(
  args: ClassifierInputArgs,
  records: LabelledRecord[],
  skips: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  command: string,
  stn?: StnSettings,
): Promise<ClassifierInputs> {
  let featureRows: Float32Array | null = null;
  let featureDim = 0;
  let store: ImageStore | null = null;
  let inputSize: InputShape = 0;
  let towerNet: tf.LayersModel | null = null;
  let towerRecord: ClassifierMetadata['tower'] = args.tower;
  let fit: ImageFit = 'cover';
  // A family name or --backbone: a tower built here (checked now, before any image is decoded).
  const fresh = args.backbone !== undefined || (args.tower !== undefined && isTowerName(args.tower));
  const requestedInput = parseInputSize(args['input-size']);
  const smallParams = { width: args.width, blocks: args.blocks, stages: args.stages };
  if (args.backbone && args.tower && !isTowerName(args.tower)) throw new UsageError('give either --tower (a model) or --backbone', { field: '--backbone' });
  if (fresh || (!args.tower && !args.features && args.mode === 'finetune')) towerSpecFor(args.tower ?? 'small', requestedInput, args.seed, smallParams, args);
  const openFresh = async (): Promise<tf.LayersModel> => {
    const opened = await openTower({ name: args.tower ?? 'small', input: requestedInput, seed: args.seed, smallParams, args });
    towerRecord = opened.record;
    inputSize = compactInput(requestedInput);
    fit = opened.record.resize;
    return opened.tower;
  };
  // A fresh tower or backbone has pooled features and their stages; projection and embedding belong to a trained model.
  const freshTowerFeatures = async (): Promise<tf.LayersModel> => {
    const layer = args['tower-layer'];
    if (layer !== 'pooled' && !isStageLayer(layer)) throw new UsageError('a fresh tower or backbone has only pooled features (and their stages)', { field: '--tower-layer' });
    const tower = await openFresh();
    return isStageLayer(layer) ? stageFeatureModel(tower, layer) : tower;
  };
  const openSaved = async (dir: string): Promise<tf.LayersModel> => {
    const loaded = await loadModel(dir);
    inputSize = compactInput(modelInputSize(loaded.model, dir));
    fit = resizeModeOf(loaded.metadata);
    const record = loaded.metadata.tower;
    if (record && typeof record === 'object') towerRecord = { ...(record as TowerRecord), source: dir };
    return loaded.model;
  };
  let input: ClassifierMetadata['input'] = 'features';
  const samples: ClassifierSample[] = [];
  let missing = 0;
  if (args.features) {
    if (args.mode === 'finetune') throw new UsageError('fine-tuning needs images, not precomputed features', { field: '--features' });
    const matrix = await readFeatureMatrix(args.features, args['feature-ids'] ?? idsPathFor(args.features));
    const rowOf = new Map(matrix.ids.map((id, row) => [id, row]));
    for (const record of records) {
      const row = rowOf.get(record.id);
      if (row === undefined) missing++;
      else samples.push({ record, slot: row });
    }
    if (samples.length === 0) throw new UsageError(`no record id is in the ids of ${args.features} (e.g. '${records[0].id}' vs '${matrix.ids[0]}')`, { file: args.input, field: args['id-field'] });
    if (missing) warn(io, command, `${missing} labelled records have no feature row and are left out`);
    featureRows = matrix.rows;
    featureDim = matrix.dim;
  } else if (args.mode === 'head') {
    if (!args.tower && !args.backbone) throw new UsageError('a head needs features: give --features, or --tower (a model, a tower family or "pixels") or --backbone to compute them from the images', { field: '--tower' });
    if (args.tower === 'pixels') {
      input = 'pixels';
      inputSize = args['pixels-size'];
    } else if (fresh) {
      towerNet = await freshTowerFeatures();
      input = 'image';
    } else {
      const tower = await openSaved(args.tower!);
      towerNet = towerFeatures(tower, args['tower-layer'], args.tower!);
      input = 'image';
    }
    const byId = new Map(records.map((r) => [r.id, r]));
    const rows: Float32Array[] = [];
    const progress = startProgress(io.stderr, { label: 'features' });
    const images = records.map((r) => imageRecordOf(r, args['image-field']));
    for await (const batch of computeFeatures(towerNet && modelPredictor(towerNet, inputSize), images, inputSize, 64, skips, io, command, fit)) {
      featureDim = batch.dim;
      batch.records.forEach((r, i) => {
        samples.push({ record: byId.get(r.id)!, slot: rows.length });
        rows.push(batch.rows.slice(i * batch.dim, (i + 1) * batch.dim));
      });
      progress.tick(batch.records.length);
    }
    progress.stop();
    featureRows = new Float32Array(rows.length * featureDim);
    rows.forEach((r, i) => featureRows!.set(r, i * featureDim));
  } else {
    if (args.tower && !fresh) {
      if (args.tower === 'pixels') throw new UsageError('there is no tower to fine-tune in raw pixels', { field: '--tower' });
      towerNet = towerFeatures(await openSaved(args.tower), args['tower-layer'], args.tower);
    } else {
      towerNet = await freshTowerFeatures();
    }
    if (stn) {
      // A small localisation net (8 then 16 filters): it only has to find where to look.
      towerNet = withSpatialTransformer(towerNet, stn.image, { minScale: stn.minScale, maxScale: stn.maxScale, filters: 8, seed: args.seed + 900, classes: stn.classes });
      inputSize = compactInput(stn.image);
    }
    input = 'image';
    const progress = startProgress(io.stderr, { label: 'decoding' });
    const decoded = await decodeImageStore(records, args['image-field'], inputSize, skips, io, command, () => progress.tick(1), fit);
    progress.stop();
    store = decoded.store;
    decoded.sourceIndex.forEach((source, slot) => samples.push({ record: records[source], slot }));
  }
  return { input, samples, featureRows, featureDim, store, inputSize, towerNet, towerRecord, fit, fresh, missing };
}
