// The tower flags every image trainer shares (--tower NAME, --input-size HxW, --backbone and its
// cut, preprocessing, learning rate and BatchNorm handling) and the one function that turns them
// into an image -> pooled-features model plus the record saved as the model's `tower` metadata.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import { positiveNumber } from '../options.js';
import { loadBackbone } from '../backend/backbone-io.js';
import { cutBackbone, parsePreprocessing, type TowerRecord } from '../models/backbone.js';
import { buildTower, checkTowerSpec, parseTowerName, towerFamilyNames, type InputSize, type TowerSpec } from '../models/towers/index.js';

export type { TowerRecord } from '../models/backbone.js';

/** Where a pretrained tower comes from: every image trainer. */
export const backboneSourceOptions = {
  backbone: { describe: 'pretrained tfjs layers model directory to start the tower from (import-backbone or tensorflowjs_converter output)', type: 'string' as const },
  'backbone-layer': { describe: 'layer of --backbone the features come from (default: its last feature map before the classifier, globally averaged)', type: 'string' as const },
  'backbone-preprocess': { describe: 'input preprocessing of --backbone when its directory does not declare it: unit, tf, caffe, torch or scale=S,mean=A:B:C,std=A:B:C,channels=rgb|bgr', type: 'string' as const },
};

/** How a tower is fine-tuned: the trainers with a head-then-fine-tune schedule. */
export const backboneOptions = {
  ...backboneSourceOptions,
  'backbone-lr': { describe: 'learning-rate multiplier of the tower weights while fine-tuning (the head keeps --lr)', type: 'number' as const, default: 1, check: positiveNumber },
  'freeze-bn': { describe: "fine-tune with the tower's BatchNorm statistics frozen (the model runs in inference mode)", type: 'boolean' as const, default: false },
};

export interface BackboneArgs {
  backbone?: string;
  'backbone-layer'?: string;
  'backbone-preprocess'?: string;
  'backbone-lr'?: number;
  'freeze-bn'?: boolean;
}

/** Description of --tower for a trainer's options. */
export function towerNamesText(): string {
  return towerFamilyNames().join('|');
}

/** Non-square inputs are padded ('contain') so no part of the garment is cut; square ones keep round 1's 'cover'. */
export function resizeModeFor(input: InputSize): 'cover' | 'contain' {
  return input.height === input.width ? 'cover' : 'contain';
}

/**
 * The image -> pooled tower the flags ask for: --backbone cut at --backbone-layer, or a fresh
 * `name` tower (small takes `smallParams`: width, blocks, stages) at `input`.
 */
export async function openTower(options: { name: string; input: InputSize; seed: number; smallParams?: Record<string, number>; args: BackboneArgs }): Promise<{ tower: tf.LayersModel; record: TowerRecord }> {
  const { args, input, seed } = options;
  const resize = resizeModeFor(input);
  const backboneLr = args['backbone-lr'] ?? 1;
  if (!(backboneLr > 0) || !Number.isFinite(backboneLr)) throw new UsageError(`must be a positive number, got ${backboneLr}`, { field: '--backbone-lr' });
  if (args.backbone) {
    const loaded = await loadBackbone(args.backbone);
    const preprocessing = args['backbone-preprocess'] ? parsePreprocessing(args['backbone-preprocess']) : loaded.preprocessing;
    if (!preprocessing) throw new UsageError(`${args.backbone} does not declare its input preprocessing; give --backbone-preprocess (unit, tf, caffe, torch or scale=..,mean=..,std=..,channels=..)`, { field: '--backbone-preprocess' });
    const { tower, layer } = cutBackbone(loaded.model, { input, layer: args['backbone-layer'], preprocessing });
    return { tower, record: { family: 'backbone', input, params: {}, seed, resize, backbone: { source: args.backbone, layer, preprocessing } } };
  }
  const spec = towerSpecFor(options.name, input, seed, options.smallParams, args);
  return { tower: buildTower(spec), record: { ...spec, resize } };
}

/** The spec of a fresh `name` tower, checked (family, input size) without building it: for early errors. */
export function towerSpecFor(name: string, input: InputSize, seed: number, smallParams: Record<string, number> | undefined, args: BackboneArgs): TowerSpec {
  if (args.backbone) return { family: 'backbone', input, params: {}, seed };
  if (args['backbone-layer'] || args['backbone-preprocess']) throw new UsageError('only applies with --backbone', { field: args['backbone-layer'] ? '--backbone-layer' : '--backbone-preprocess' });
  const { family, params } = parseTowerName(name);
  const spec: TowerSpec = { family, input, params: family === 'small' ? { ...smallParams } : params, seed };
  checkTowerSpec(spec);
  return spec;
}
