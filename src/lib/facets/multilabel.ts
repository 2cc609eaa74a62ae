// Multi-label records (the Stitch Fix deck trains on Fashion144k's several labels per image): the
// labels of a record are gathered from one or more fields, each a list of strings, one string, or
// a boolean (true adds the field's name as a label).
import { UsageError } from '../command.js';
import { readRecords } from '../io/csv.js';
import { inputDisplayName } from '../io/paths.js';

export interface MultiLabelRecord {
  id: string;
  /** Indices into the label list, sorted. */
  labels: number[];
  group: string;
  record: Record<string, unknown>;
  file: string;
  line: number;
}

export interface MultiLabelSet {
  records: MultiLabelRecord[];
  /** Every label seen, sorted by name. */
  labels: string[];
}

export interface MultiLabelReadOptions {
  labelFields: string[];
  idField: string;
  groupField?: string;
  stdin?: NodeJS.ReadableStream;
}

/** The labels one field contributes; a missing field or a value of another type is an error. */
function labelsOfField(value: unknown, field: string, place: { file: string; line: number }): string[] {
  if (typeof value === 'boolean') return value ? [field] : [];
  if (typeof value === 'string' && value.trim() !== '') return [value];
  if (typeof value === 'number' && Number.isFinite(value)) return [String(value)];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && v.trim() !== '')) return value as string[];
  const got = value === undefined ? 'nothing (field missing)' : JSON.stringify(value);
  throw new UsageError(`expected a label, a list of labels or a boolean, got ${got}`, { ...place, field });
}

/** Reads NDJSON or CSV records with their label sets; duplicate ids keep the last record. */
export async function readMultiLabelRecords(path: string, options: MultiLabelReadOptions): Promise<MultiLabelSet> {
  const byId = new Map<string, Omit<MultiLabelRecord, 'labels'> & { names: string[] }>();
  for await (const { value, file, line } of readRecords(path, { stdin: options.stdin })) {
    const record = value as Record<string, unknown>;
    const rawId = record[options.idField];
    if (!(typeof rawId === 'string' && rawId !== '') && !(typeof rawId === 'number' && Number.isFinite(rawId))) {
      throw new UsageError(`expected an id (string or number), got ${rawId === undefined ? 'nothing' : JSON.stringify(rawId)}`, { file, line, field: options.idField });
    }
    const names = [...new Set(options.labelFields.flatMap((f) => labelsOfField(record[f], f, { file, line })))];
    const id = String(rawId);
    const groupValue = options.groupField ? record[options.groupField] : undefined;
    const group = typeof groupValue === 'string' || typeof groupValue === 'number' ? String(groupValue) : id;
    byId.delete(id);
    byId.set(id, { id, names, group, record, file, line });
  }
  const all = [...byId.values()];
  if (all.length === 0) throw new UsageError('no labelled records', { file: inputDisplayName(path) });
  const labels = [...new Set(all.flatMap((r) => r.names))].sort();
  if (labels.length < 2) throw new UsageError(`the records hold ${labels.length} label(s); multi-label training needs at least two`, { file: inputDisplayName(path), field: options.labelFields.join(',') });
  const index = new Map(labels.map((l, i) => [l, i]));
  return { records: all.map(({ names, ...r }) => ({ ...r, labels: names.map((l) => index.get(l)!).sort((a, b) => a - b) })), labels };
}

/** Rows of 0/1 targets [records.length, labelCount], row-major. */
export function multiHotTargets(labelSets: number[][], labelCount: number): Float32Array {
  const out = new Float32Array(labelSets.length * labelCount);
  labelSets.forEach((set, i) => set.forEach((c) => (out[i * labelCount + c] = 1)));
  return out;
}
