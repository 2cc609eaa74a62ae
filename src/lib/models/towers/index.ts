// buildTower(spec): image [H, W, 3] -> pooled features, for every registered family; and the
// parsers of --tower NAME[:ALPHA] and --input-size H[xW] every trainer shares.
import { tf } from '../../backend/tf.js';
import { UsageError } from '../../command.js';
import { towerFamily, towerFamilyNames } from './registry.js';
import { TOWER_LAYER, type InputSize, type TowerFamily, type TowerSpec } from './spec.js';

export { registerTowerFamily, towerFamily, towerFamilyNames } from './registry.js';
export { TOWER_LAYER, type InputSize, type TowerFamily, type TowerSpec } from './spec.js';

/** image -> feature map and pooled features, as symbolic tensors on a fresh input named 'image'. */
export function buildTowerGraph(spec: TowerSpec): { input: tf.SymbolicTensor; map: tf.SymbolicTensor; pooled: tf.SymbolicTensor } {
  const { family, params } = checkTowerSpec(spec);
  const input = tf.input({ shape: [spec.input.height, spec.input.width, 3], name: TOWER_LAYER.input });
  const map = family.build(input, params, spec.seed);
  const pooled = tf.layers.globalAveragePooling2d({ name: TOWER_LAYER.pooled }).apply(map) as tf.SymbolicTensor;
  return { input, map, pooled };
}

/** The family of `spec` and its full parameters; a UsageError for an unknown family or too small an input. */
export function checkTowerSpec(spec: Pick<TowerSpec, 'family' | 'input' | 'params'>): { family: TowerFamily; params: Record<string, number> } {
  const family = towerFamily(spec.family);
  if (!family) throw new UsageError(`unknown tower '${spec.family}' (known: ${towerFamilyNames().join(', ')})`, { field: '--tower' });
  const params = { ...family.defaults, ...spec.params };
  const min = family.minimumSide(params);
  if (spec.input.height < min || spec.input.width < min) {
    throw new UsageError(`input size ${formatInputSize(spec.input)} is smaller than the tower's minimum ${min} (${spec.family}${family.name === 'small' ? ` with ${params.stages} stages` : ''})`, { field: '--input-size' });
  }
  return { family, params };
}

/** The tower as a model: image [n, H, W, 3] in [0, 1] -> pooled features [n, C]. */
export function buildTower(spec: TowerSpec): tf.LayersModel {
  const { input, pooled } = buildTowerGraph(spec);
  return tf.model({ inputs: input, outputs: pooled, name: `tower_${spec.family}` });
}

/** Parses --tower NAME[:ALPHA] into a family and its parameters (alpha only where the family has one). */
export function parseTowerName(text: string): { family: string; params: Record<string, number> } {
  const [name, alphaText, ...rest] = text.split(':');
  const family = towerFamily(name);
  if (!family || rest.length > 0) throw new UsageError(`unknown tower '${text}' (known: ${towerFamilyNames().join(', ')}, NAME:ALPHA for a width multiplier)`, { field: '--tower' });
  if (alphaText === undefined) return { family: name, params: {} };
  const alpha = Number(alphaText);
  if (!('alpha' in family.defaults)) throw new UsageError(`the ${name} tower takes no width multiplier`, { field: '--tower' });
  if (!(alpha > 0) || !Number.isFinite(alpha) || alphaText.trim() === '') throw new UsageError(`width multiplier must be a positive number, got '${alphaText}'`, { field: '--tower' });
  return { family: name, params: { alpha } };
}

/** True when `text` names a registered family (with or without :ALPHA). */
export function isTowerName(text: string): boolean {
  return towerFamily(text.split(':')[0]) !== undefined;
}

/** Parses --input-size: "96" (square) or "96x64" (height x width). */
export function parseInputSize(value: unknown, field = '--input-size'): InputSize {
  const text = String(value).trim();
  const match = /^(\d+)(?:x(\d+))?$/i.exec(text);
  if (!match) throw new UsageError(`expected N or HxW in pixels (e.g. 96 or 96x64), got '${text}'`, { field });
  const height = Number(match[1]);
  const width = Number(match[2] ?? match[1]);
  if (height < 1 || width < 1) throw new UsageError(`sides must be positive, got '${text}'`, { field });
  return { height, width };
}

/** "96" for a square input, "96x64" otherwise. */
export function formatInputSize(size: InputSize): string {
  return size.height === size.width ? String(size.height) : `${size.height}x${size.width}`;
}

/** The input size of an image model's RGB input, or a UsageError naming `file`. */
export function modelInputSize(model: tf.LayersModel, file: string): InputSize {
  const shape = model.inputs[0].shape;
  if (shape.length !== 4 || shape[3] !== 3 || typeof shape[1] !== 'number' || typeof shape[2] !== 'number') {
    throw new UsageError(`model has no RGB image input (input shape ${JSON.stringify(shape)})`, { file });
  }
  return { height: shape[1], width: shape[2] };
}
