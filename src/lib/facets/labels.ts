// Facet labels as GILT's faceting tool needs them (Deep Learning at GILT, "Dress Faceting Model"):
// one label field picked from a catalogue, a custom label order, class weights for an imbalanced
// facet, and a train/test split that never moves an image once it has been assigned.
import { UsageError } from '../command.js';
import { readRecords } from '../io/csv.js';
import { readTextLines } from '../io/ndjson.js';
import { openInputStream, inputDisplayName } from '../io/paths.js';

export interface LabelledRecord {
  id: string;
  label: string;
  /** Index of `label` in the label list. */
  classIndex: number;
  /** Split key (e.g. the product), so all views of one product land on one side. */
  group: string;
  /** The whole record (image path and the rest). */
  record: Record<string, unknown>;
  file: string;
  line: number;
}

export interface LabelReadOptions {
  labelField: string;
  idField: string;
  /** Field naming the split group; records without it use their id. */
  groupField?: string;
  /** Fixed label order: a label outside it is an error. Without it, labels sort by name. */
  labelsOrder?: string[];
  /** Where labelsOrder came from, for error messages. */
  labelsOrderFile?: string;
  stdin?: NodeJS.ReadableStream;
  /** Fields from other records (e.g. teacher-score's per article) merged in by `key`; records without a match are left out. */
  join?: { records: Map<string, Record<string, unknown>>; key: string };
}

export interface LabelledSet {
  records: LabelledRecord[];
  labels: string[];
  /** Records left out because --join had no record for their key. */
  unjoined: number;
  /** Records that repeated an earlier id with the same label (kept once). */
  repeated: number;
}

/** A label value as text: strings as they are, numbers and booleans printed; anything else is an error. */
function labelText(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * Reads labelled records from NDJSON or CSV. Every record must carry a usable id and label; the
 * first that does not is a UsageError at its file:line:field. A repeated id with the same label is
 * kept once and counted; with another label it is a UsageError: a model cannot learn both.
 */
export async function readLabelledRecords(path: string, options: LabelReadOptions): Promise<LabelledSet> {
  const order = options.labelsOrder ? new Map(options.labelsOrder.map((l, i) => [l, i])) : undefined;
  const byId = new Map<string, Omit<LabelledRecord, 'classIndex'>>();
  let unjoined = 0;
  let repeated = 0;
  for await (const { value, file, line } of readRecords(path, { stdin: options.stdin })) {
    let record = value as Record<string, unknown>;
    if (options.join) {
      const other = options.join.records.get(String(record[options.join.key]));
      if (!other) {
        unjoined++;
        continue;
      }
      // The record's own fields win (its id above all); the joined record adds what it lacks.
      record = { ...other, ...record };
    }
    const rawId = record[options.idField];
    if (!(typeof rawId === 'string' && rawId !== '') && !(typeof rawId === 'number' && Number.isFinite(rawId))) {
      throw new UsageError(`expected an id (string or number), got ${rawId === undefined ? 'nothing' : JSON.stringify(rawId)}`, { file, line, field: options.idField });
    }
    const label = labelText(record[options.labelField]);
    if (label === undefined) {
      const raw = record[options.labelField];
      throw new UsageError(`expected a label, got ${raw === undefined ? 'nothing (field missing)' : JSON.stringify(raw)}`, { file, line, field: options.labelField });
    }
    if (order && !order.has(label)) {
      throw new UsageError(`label '${label}' is not in the label order${options.labelsOrderFile ? ` of ${options.labelsOrderFile}` : ''}`, { file, line, field: options.labelField });
    }
    const id = String(rawId);
    const groupValue = options.groupField ? record[options.groupField] : undefined;
    const group = typeof groupValue === 'string' || typeof groupValue === 'number' ? String(groupValue) : id;
    const earlier = byId.get(id);
    if (earlier) {
      if (earlier.label !== label) throw new UsageError(`id '${id}' is labelled '${earlier.label}' on line ${earlier.line} and '${label}' here`, { file, line, field: options.labelField });
      repeated++;
      continue;
    }
    byId.set(id, { id, label, group, record, file, line });
  }
  const records = [...byId.values()];
  if (records.length === 0) throw new UsageError(options.join ? `no record matched the joined file by '${options.join.key}'` : 'no labelled records', { file: inputDisplayName(path) });
  const labels = options.labelsOrder ?? [...new Set(records.map((r) => r.label))].sort();
  const index = new Map(labels.map((l, i) => [l, i]));
  const present = new Set(records.map((r) => r.label));
  if (present.size < 2) {
    const last = records[records.length - 1];
    throw new UsageError(`every record has the label '${last.label}': a classifier needs at least two classes`, { file: last.file, line: last.line, field: options.labelField });
  }
  return { records: records.map((r) => ({ ...r, classIndex: index.get(r.label)! })), labels, unjoined, repeated };
}

/**
 * Reads a label order: one label per line (blank lines and lines starting with # are skipped), or
 * a JSON array of strings. A label listed twice is an error.
 */
export async function readLabelsOrder(path: string, stdin?: NodeJS.ReadableStream): Promise<string[]> {
  const stream = await openInputStream(path, stdin);
  const name = inputDisplayName(path);
  const lines: Array<{ text: string; line: number }> = [];
  for await (const { text, line } of readTextLines(stream, name)) lines.push({ text, line });
  const body = lines.map((l) => l.text).join('\n').trim();
  let entries: Array<{ label: string; line: number }>;
  if (body.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw new UsageError(`not a JSON array of labels (${(err as Error).message.split('\n')[0]})`, { file: name });
    }
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string' && x !== '')) throw new UsageError('expected a JSON array of non-empty strings', { file: name });
    entries = (parsed as string[]).map((label) => ({ label, line: 1 }));
  } else {
    entries = lines.map((l) => ({ label: l.text.trim(), line: l.line })).filter((e) => e.label !== '' && !e.label.startsWith('#'));
  }
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.label)) throw new UsageError(`label '${e.label}' is listed twice`, { file: name, line: e.line });
    seen.add(e.label);
  }
  if (entries.length < 2) throw new UsageError(`lists ${entries.length} label(s); a classifier needs at least two`, { file: name });
  return entries.map((e) => e.label);
}

/** Class weights by --class-weight: balanced (from the training counts), none (all 1), or a file of {label, weight}. */
export async function classWeightsFor(choice: string, trainCounts: ArrayLike<number>, labels: string[]): Promise<Float32Array> {
  if (choice === 'balanced') return balancedClassWeights(trainCounts);
  if (choice === 'none') return new Float32Array(labels.length).fill(1);
  return readClassWeights(choice, labels);
}

/** Per-record loss weights from `field` (e.g. teacher-score's w): finite and >= 0, else a usage error at the record. */
export function readSampleWeights(records: readonly LabelledRecord[], field: string): Map<string, number> {
  const weights = new Map<string, number>();
  for (const r of records) {
    const w = r.record[field];
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw new UsageError(`expected a finite weight >= 0, got ${w === undefined ? 'nothing (field missing)' : JSON.stringify(w)}`, { file: r.file, line: r.line, field });
    weights.set(r.id, w);
  }
  return weights;
}

/** Balanced weights (inverse frequency): w_c = n / (K · n_c), so every class carries the same total weight; absent classes get 0. */
export function balancedClassWeights(counts: ArrayLike<number>): Float32Array {
  const present = Array.from(counts).filter((c) => c > 0).length;
  const total = Array.from(counts).reduce((a, b) => a + b, 0);
  return Float32Array.from(counts, (c) => (c > 0 ? total / (present * c) : 0));
}

/** Reads class weights from NDJSON/CSV records {label, weight}; labels not listed get weight 1. */
export async function readClassWeights(path: string, labels: string[]): Promise<Float32Array> {
  const index = new Map(labels.map((l, i) => [l, i]));
  const weights = new Float32Array(labels.length).fill(1);
  for await (const { value, file, line } of readRecords(path)) {
    const record = value as Record<string, unknown>;
    const label = labelText(record.label);
    if (label === undefined) throw new UsageError('expected a label', { file, line, field: 'label' });
    if (!index.has(label)) throw new UsageError(`label '${label}' is not one of the classes (${labels.join(', ')})`, { file, line, field: 'label' });
    const weight = typeof record.weight === 'string' ? Number(record.weight) : record.weight;
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) throw new UsageError(`expected a non-negative number, got ${JSON.stringify(record.weight)}`, { file, line, field: 'weight' });
    weights[index.get(label)!] = weight;
  }
  return weights;
}

/** Count of records per class, in label order. */
export function classCounts(classIndices: ArrayLike<number>, classCount: number): Float64Array {
  const counts = new Float64Array(classCount);
  for (let i = 0; i < classIndices.length; i++) counts[classIndices[i]]++;
  return counts;
}

/** Reads NDJSON/CSV records into a map by `idField`, for LabelReadOptions.join. */
export async function readJoinRecords(path: string, idField: string): Promise<Map<string, Record<string, unknown>>> {
  const byId = new Map<string, Record<string, unknown>>();
  const lines = new Map<string, number>();
  for await (const { value, file, line } of readRecords(path, {})) {
    const record = value as Record<string, unknown>;
    const id = record[idField];
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError('expected an id (string or number)', { file, line, field: idField });
    // Two records for one id would leave which fields join to chance.
    if (byId.has(String(id))) throw new UsageError(`id '${id}' is already on line ${lines.get(String(id))}; the joined records need one per id`, { file, line, field: idField });
    byId.set(String(id), record);
    lines.set(String(id), line);
  }
  return byId;
}
