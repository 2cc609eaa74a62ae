// Readers for the outputs of other commands that the report shows. Each accepts the shape its
// command writes (and a few close variants), checks what it uses, and throws a UsageError naming
// the file, line and field of anything it cannot use.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { describeJsonValue, readNdjson, requireId, requireNumber, requireObject } from '../io/ndjson.js';
import { resolveImagePath } from '../image/records.js';
import { boxOfRecord, uprightImageSize } from '../image/boxes.js';

export interface ClassRow {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** What eval-classifier reports about one facet model. */
export interface ClassifierEvaluation {
  name: string;
  accuracy: number | null;
  macroF1: number | null;
  weightedF1: number | null;
  classes: ClassRow[];
  /** confusion[truth][predicted], rows and columns in `labels` order; null when not given. */
  confusion: { labels: string[]; matrix: number[][] } | null;
}

export interface FalseNegativeRecord {
  id: string;
  image: string | null;
  truth: string;
  predicted: string;
  /** The probability the model gave its (wrong) prediction, when known. */
  probability: number | null;
}

/** One eval-retrieval run: top-k accuracy by k, and the random baseline when it was asked for. */
export interface RetrievalRun {
  name: string;
  topk: Array<[number, number]>;
  map: number | null;
  queries: number | null;
  gallery: number | null;
  randomTopk: Array<[number, number]> | null;
}

export interface KnnRecord {
  id: string;
  neighbors: Array<{ id: string; score: number | null }>;
}

/** Catalogue facts by id: where the image is and which item it shows. */
export interface CatalogueEntry {
  image: string | null;
  item: string | null;
  label: string | null;
}

export interface RiseRecord {
  id: string;
  image: string | null;
  overlay: string | null;
  className: string;
  score: number;
}

/** A located garment (locate's output line): the box in pixels of the source image, whose size is read from the file. */
export interface LocatedBox {
  id: string;
  image: string | null;
  box: { x: number; y: number; w: number; h: number };
  score: number | null;
  /** Upright size of the image in pixels; null when it cannot be read. */
  size: { width: number; height: number } | null;
}

export interface TsnePoint {
  id: string;
  x: number;
  y: number;
  label: string | null;
  image: string | null;
}

/** One training run's log: per epoch, flat numeric fields ("precision@1" for nested {precision: {1: ...}}). */
export interface TrainingLog {
  name: string;
  epochs: Array<Record<string, number>>;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected a JSON file' : `cannot read: ${(err as Error).message}`, { file: path });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`not JSON: ${(err as Error).message}`, { file: path });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function finiteOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function idOf(value: unknown): string | null {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : null;
}

function baseName(path: string): string {
  return path.replace(/^.*\//, '').replace(/\.(json|ndjson|jsonl)$/, '').replace(/\.log$/, '');
}

/** Checks a confusion matrix is square, of counts, and as wide as its labels. */
function checkMatrix(matrix: unknown, labels: string[], file: string): number[][] {
  if (!Array.isArray(matrix) || matrix.length !== labels.length) throw new UsageError(`expected ${labels.length} rows (one per label), got ${describeJsonValue(matrix)}`, { file, field: 'confusion' });
  return matrix.map((row, r) => {
    if (!Array.isArray(row) || row.length !== labels.length || row.some((v) => typeof v !== 'number' || !(v >= 0))) {
      throw new UsageError(`row ${r} must hold ${labels.length} non-negative counts`, { file, field: 'confusion' });
    }
    return row as number[];
  });
}

/**
 * An eval-classifier JSON: {perClass | classes: [{label, precision, recall, f1, support}], macroF1,
 * weightedF1, accuracy, confusion: {labels, matrix} | number[][] (with top-level labels)}, possibly
 * under a `test` key.
 */
export function parseClassifierEvaluation(value: unknown, file: string): ClassifierEvaluation {
  if (!isObject(value)) throw new UsageError(`expected a JSON object, got ${describeJsonValue(value)}`, { file });
  const holder = [value, value.test, value.evaluation].find((v) => isObject(v) && (Array.isArray(v.perClass) || Array.isArray(v.classes))) as Record<string, unknown> | undefined;
  if (!holder) throw new UsageError('not an eval-classifier result (no "perClass" or "classes" array)', { file });
  const list = (Array.isArray(holder.perClass) ? holder.perClass : holder.classes) as unknown[];
  const classes = list.map((row, i): ClassRow => {
    if (!isObject(row)) throw new UsageError(`expected an object, got ${describeJsonValue(row)}`, { file, field: `perClass[${i}]` });
    const label = idOf(row.label);
    if (label === null) throw new UsageError('expected a string label', { file, field: `perClass[${i}].label` });
    const numbers = ['precision', 'recall', 'f1', 'support'].map((f) => {
      const v = row[f];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageError(`expected a number, got ${describeJsonValue(v)}`, { file, field: `perClass[${i}].${f}` });
      return v;
    });
    return { label, precision: numbers[0], recall: numbers[1], f1: numbers[2], support: numbers[3] };
  });
  let confusion: ClassifierEvaluation['confusion'] = null;
  const raw = holder.confusion;
  if (isObject(raw)) {
    const labels = Array.isArray(raw.labels) ? raw.labels.map(String) : classes.map((c) => c.label);
    confusion = { labels, matrix: checkMatrix(raw.matrix, labels, file) };
  } else if (Array.isArray(raw)) {
    const labels = Array.isArray(holder.labels) ? holder.labels.map(String) : classes.map((c) => c.label);
    confusion = { labels, matrix: checkMatrix(raw, labels, file) };
  }
  const name = typeof value.name === 'string' ? value.name : typeof value.model === 'string' ? value.model : baseName(file);
  return { name, accuracy: finiteOrNull(holder.accuracy), macroF1: finiteOrNull(holder.macroF1), weightedF1: finiteOrNull(holder.weightedF1), classes, confusion };
}

export async function readClassifierEvaluation(path: string): Promise<ClassifierEvaluation> {
  return parseClassifierEvaluation(await readJson(path), path);
}

/** The probability of `label` in a probs field: an object {label: p} or an array in `labels` order. */
function probabilityOf(probs: unknown, label: string, labels: string[] | null): number | null {
  if (isObject(probs)) return finiteOrNull(probs[label]);
  if (Array.isArray(probs) && labels) {
    const index = labels.indexOf(label);
    return index >= 0 ? finiteOrNull(probs[index]) : null;
  }
  return null;
}

/**
 * eval-classifier's false negatives NDJSON: {id, image?, truth | label, predicted,
 * predictedProbability? | probs?}. Image paths are resolved like every image list.
 */
export async function readFalseNegatives(path: string, labels: string[] | null = null): Promise<FalseNegativeRecord[]> {
  const out: FalseNegativeRecord[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    const truth = idOf(record.truth ?? record.label);
    if (truth === null) throw new UsageError(`expected the true label, got ${describeJsonValue(record.truth ?? record.label)}`, { file, line, field: 'truth' });
    const predicted = idOf(record.predicted);
    if (predicted === null) throw new UsageError(`expected the predicted label, got ${describeJsonValue(record.predicted)}`, { file, line, field: 'predicted' });
    const image = typeof record.image === 'string' && record.image !== '' ? resolveImagePath(record.image, path) : null;
    const probability = finiteOrNull(record.predictedProbability) ?? probabilityOf(record.probs, predicted, labels);
    out.push({ id, image, truth, predicted, probability });
  }
  return out;
}

/** top-k pairs [k, accuracy] of a {"<k>": accuracy | null} object, by k. */
function topkPairs(value: unknown): Array<[number, number]> {
  if (!isObject(value)) return [];
  return Object.entries(value)
    .filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]) && Number(e[0]) > 0)
    .map(([k, v]) => [Number(k), v] as [number, number])
    .sort((a, b) => a[0] - b[0]);
}

/** An eval-retrieval JSON result. */
export function parseRetrievalRun(value: unknown, file: string): RetrievalRun {
  if (!isObject(value) || !isObject(value.topk)) throw new UsageError('not an eval-retrieval result (no "topk" object)', { file });
  const topk = topkPairs(value.topk);
  if (topk.length === 0) throw new UsageError('"topk" holds no accuracy', { file, field: 'topk' });
  const baselines = isObject(value.baselines) && isObject(value.baselines.random) ? value.baselines.random : null;
  return {
    name: typeof value.name === 'string' ? value.name : baseName(file),
    topk,
    map: finiteOrNull(value.map),
    queries: finiteOrNull(value.queries),
    gallery: finiteOrNull(value.gallery),
    randomTopk: baselines ? topkPairs(baselines.topk) : null,
  };
}

export async function readRetrievalRun(path: string): Promise<RetrievalRun> {
  return parseRetrievalRun(await readJson(path), path);
}

/** knn output lines {id, neighbors: [{id, score}]}, the first `limit` ones. */
export async function readKnn(path: string, limit = Infinity): Promise<KnnRecord[]> {
  const out: KnnRecord[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    if (out.length >= limit) break;
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    if (!Array.isArray(record.neighbors)) throw new UsageError(`expected an array of {id, score}, got ${describeJsonValue(record.neighbors)}`, { file, line, field: 'neighbors' });
    const neighbors = record.neighbors.map((n: unknown, i: number) => {
      const nid = idOf(isObject(n) ? n.id : n);
      if (nid === null) throw new UsageError(`expected a string or number id, got ${describeJsonValue(n)}`, { file, line, field: `neighbors[${i}].id` });
      return { id: nid, score: isObject(n) ? finiteOrNull(n.score) : null };
    });
    out.push({ id, neighbors });
  }
  return out;
}

/** id -> image path (resolved), item and label, from an image list such as images.ndjson or embed's ids. */
export async function readCatalogue(path: string, fields: { id: string; image: string; item: string; label?: string }): Promise<Map<string, CatalogueEntry>> {
  const out = new Map<string, CatalogueEntry>();
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, fields.id, { file, line });
    const image = typeof record[fields.image] === 'string' && record[fields.image] !== '' ? resolveImagePath(record[fields.image] as string, path) : null;
    out.set(id, { image, item: idOf(record[fields.item]), label: fields.label ? idOf(record[fields.label]) : null });
  }
  return out;
}

/** rise output lines {id, image, class, score, overlay?}. */
export async function readRise(path: string): Promise<RiseRecord[]> {
  const out: RiseRecord[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    const score = requireNumber(record, 'score', { file, line });
    const image = typeof record.image === 'string' && record.image !== '' ? resolveImagePath(record.image, path) : null;
    const overlay = typeof record.overlay === 'string' && record.overlay !== '' ? resolveImagePath(record.overlay, path) : null;
    out.push({ id, image, overlay, className: idOf(record.class) ?? '0', score });
  }
  return out;
}

/** locate output lines {id, image, x, y, w, h, score?}; size stays null: the report reads it (imageSize) only for the boxes it shows. */
export async function readLocatedBoxes(path: string): Promise<LocatedBox[]> {
  const out: LocatedBox[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    const box = boxOfRecord(record, { file, line });
    if (!box) throw new UsageError('expected a box: x, y, w, h in pixels', { file, line, field: 'x' });
    const image = typeof record.image === 'string' && record.image !== '' ? resolveImagePath(record.image, path) : null;
    const score = typeof record.score === 'number' && Number.isFinite(record.score) ? record.score : null;
    out.push({ id, image, box, score, size: null });
  }
  return out;
}

/** The upright size of an image file, or null when it cannot be read (the report then shows a grey box). */
export async function imageSize(path: string | null): Promise<{ width: number; height: number } | null> {
  return path === null ? null : uprightImageSize(path).catch(() => null);
}

/** tsne output lines {id, x, y, label?, image?}. */
export async function readTsne(path: string): Promise<TsnePoint[]> {
  const out: TsnePoint[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    const x = requireNumber(record, 'x', { file, line });
    const y = requireNumber(record, 'y', { file, line });
    const image = typeof record.image === 'string' && record.image !== '' ? resolveImagePath(record.image, path) : null;
    out.push({ id, x, y, label: idOf(record.label), image });
  }
  return out;
}

/** Flattens one epoch record into numeric fields; {precision: {1: 0.5}} becomes "precision@1". */
function flattenEpoch(record: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
    else if (isObject(value)) for (const [inner, v] of Object.entries(value)) if (typeof v === 'number' && Number.isFinite(v)) out[`${key}@${inner}`] = v;
  }
  return out;
}

/**
 * A training log: a JSON array of epoch records (train-weak and train-sizenet's <model>.log.json),
 * or an object holding one under "log" (train-sizenet's --report, a model's metadata.json).
 */
export function parseTrainingLog(value: unknown, file: string): TrainingLog {
  const list = Array.isArray(value) ? value : isObject(value) && Array.isArray(value.log) ? value.log : null;
  if (!list) throw new UsageError('not a training log (expected an array of epoch records, or an object with a "log" array)', { file });
  const epochs = list.map((record, i) => {
    if (!isObject(record)) throw new UsageError(`expected an epoch record, got ${describeJsonValue(record)}`, { file, field: `[${i}]` });
    const flat = flattenEpoch(record);
    if (flat.epoch === undefined) flat.epoch = i + 1;
    return flat;
  });
  return { name: baseName(file), epochs };
}

export async function readTrainingLog(path: string): Promise<TrainingLog> {
  return parseTrainingLog(await readJson(path), path);
}
