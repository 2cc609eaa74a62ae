// Retrieval ground truth: which images are queries and which are the gallery, and the item each
// shows. Reads the DeepFashion In-Shop list_eval_partition.txt (count line, header line, then
// `image_name item_id evaluation_status`), the official query/gallery list files, or NDJSON
// {id, item, split}.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../command.js';
import { readNdjson, readTextLines, requireId, requireObject } from '../io/ndjson.js';
import { openInputStream } from '../io/paths.js';

export const SPLITS = ['query', 'gallery', 'train'] as const;
export type RetrievalSplit = (typeof SPLITS)[number];

export interface PartitionEntry {
  /** The image name or id that embeddings are matched on. */
  key: string;
  item: string;
  /** null when the input has no split: every image is both a query and the gallery (leave-one-out). */
  split: RetrievalSplit | null;
  /** Another name the same image may go by (the NDJSON `image` field). */
  alias?: string;
  /** Where it is listed, for errors. */
  file?: string;
  line?: number;
}

export interface RetrievalPartition {
  entries: PartitionEntry[];
  format: 'inshop-list' | 'inshop-files' | 'ndjson';
  path: string;
}

function parseSplit(raw: unknown, place: { file: string; line: number; field: string }): RetrievalSplit {
  if (typeof raw === 'string' && (SPLITS as readonly string[]).includes(raw)) return raw as RetrievalSplit;
  throw new UsageError(`expected query, gallery or train, got ${JSON.stringify(raw)}`, place);
}

/** Parses list_eval_partition.txt text lines. */
async function readInShopList(path: string): Promise<PartitionEntry[]> {
  const entries: PartitionEntry[] = [];
  let declared = -1;
  for await (const { text, line } of readTextLines(await openInputStream(path), path)) {
    const trimmed = text.trim();
    if (line === 1) {
      if (!/^\d+$/.test(trimmed)) throw new UsageError(`expected the image count on line 1, got ${JSON.stringify(trimmed.slice(0, 40))}`, { file: path, line });
      declared = Number(trimmed);
      continue;
    }
    if (line === 2) {
      if (!/^image_name\s+item_id\s+evaluation_status$/.test(trimmed)) {
        throw new UsageError(`expected the header 'image_name item_id evaluation_status', got ${JSON.stringify(trimmed.slice(0, 60))}`, { file: path, line });
      }
      continue;
    }
    if (trimmed === '') continue;
    const fields = trimmed.split(/\s+/);
    if (fields.length !== 3) throw new UsageError(`expected 3 fields (image_name item_id evaluation_status), got ${fields.length}`, { file: path, line });
    entries.push({ key: fields[0], item: fields[1], split: parseSplit(fields[2], { file: path, line, field: 'evaluation_status' }), file: path, line });
  }
  if (declared < 0) throw new UsageError('empty file: expected the image count on line 1', { file: path });
  if (declared !== entries.length) throw new UsageError(`line 1 declares ${declared} images but ${entries.length} are listed`, { file: path, line: 1 });
  return entries;
}

async function readLines(path: string): Promise<Array<{ text: string; line: number }>> {
  const lines: Array<{ text: string; line: number }> = [];
  for await (const l of readTextLines(await openInputStream(path), path)) if (l.text.trim() !== '') lines.push({ text: l.text.trim(), line: l.line });
  return lines;
}

/** The item of an In-Shop image path: its `id_XXXXXXXX` folder. */
function itemOfPath(path: string): string | null {
  const match = /(?:^|\/)(id_\d+)\//.exec(path);
  return match ? match[1] : null;
}

/** The official split as line-aligned files: query.txt + query_id.txt, gallery.txt + gallery_id.txt. */
async function readInShopFiles(dir: string): Promise<PartitionEntry[]> {
  const entries: PartitionEntry[] = [];
  for (const split of ['query', 'gallery'] as const) {
    const names = await readLines(join(dir, `${split}.txt`));
    const ids = await readLines(join(dir, `${split}_id.txt`));
    if (names.length !== ids.length) {
      throw new UsageError(`${ids.length} item ids for ${names.length} images in ${split}.txt; the files must be line-aligned`, { file: join(dir, `${split}_id.txt`) });
    }
    names.forEach((name, i) => entries.push({ key: name.text, item: itemOfPath(name.text) ?? ids[i].text, split, file: join(dir, `${split}.txt`), line: name.line }));
  }
  return entries;
}

async function readPartitionNdjson(path: string): Promise<PartitionEntry[]> {
  const entries: PartitionEntry[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    const { item, split, image } = record;
    if (typeof item !== 'string' && typeof item !== 'number') throw new UsageError('expected a string or number item', { file, line, field: 'item' });
    const entry: PartitionEntry = { key: String(id), item: String(item), split: split === undefined || split === null ? null : parseSplit(split, { file, line, field: 'split' }), file, line };
    if (typeof image === 'string' && image !== entry.key) entry.alias = image;
    entries.push(entry);
  }
  return entries;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/**
 * Reads a partition from a list_eval_partition.txt, an NDJSON file (.ndjson/.jsonl/.json or a first
 * character '{'), or a directory holding list_eval_partition.txt (or Eval/...) or the official
 * query/gallery list files. A mix of records with and without a split is refused.
 */
export async function readRetrievalPartition(path: string): Promise<RetrievalPartition> {
  if (await isDirectory(path)) {
    const names = new Set(await readdir(path));
    for (const candidate of ['list_eval_partition.txt', join('Eval', 'list_eval_partition.txt')]) {
      if (await isFile(join(path, candidate))) return { entries: await readInShopList(join(path, candidate)), format: 'inshop-list', path: join(path, candidate) };
    }
    if (['query.txt', 'query_id.txt', 'gallery.txt', 'gallery_id.txt'].every((n) => names.has(n))) {
      return { entries: await readInShopFiles(path), format: 'inshop-files', path };
    }
    throw new UsageError('directory holds neither list_eval_partition.txt nor query.txt/query_id.txt/gallery.txt/gallery_id.txt', { file: path });
  }
  let ndjson = /\.(nd)?jsonl?$|\.json$/i.test(path);
  if (!/\.txt$/i.test(path) && !ndjson) {
    for await (const { text } of readTextLines(await openInputStream(path), path)) {
      ndjson = text.trimStart().startsWith('{');
      break;
    }
  }
  const entries = ndjson ? await readPartitionNdjson(path) : await readInShopList(path);
  const withSplit = entries.filter((e) => e.split !== null).length;
  if (withSplit !== 0 && withSplit !== entries.length) {
    throw new UsageError(`${entries.length - withSplit} records have no split and ${withSplit} do; give every record a split or none`, { file: path, field: 'split' });
  }
  return { entries, format: ndjson ? 'ndjson' : 'inshop-list', path };
}

/** Finds a partition entry for an embedding id: exactly, by alias, or by a trailing part of a path (`/data/img/x.jpg` finds `img/x.jpg`). */
export class PartitionLookup {
  private readonly byKey = new Map<string, number>();

  constructor(readonly partition: RetrievalPartition) {
    partition.entries.forEach((e, i) => {
      const first = this.byKey.get(e.key);
      if (first !== undefined) {
        const before = partition.entries[first]!;
        const where = before.file !== undefined && before.file !== e.file ? `${before.file}:${before.line}` : `line ${before.line}`;
        throw new UsageError(`image ${JSON.stringify(e.key)} is listed twice (first on ${where})`, { file: e.file ?? partition.path, line: e.line });
      }
      this.byKey.set(e.key, i);
    });
    partition.entries.forEach((e, i) => {
      if (e.alias !== undefined && !this.byKey.has(e.alias)) this.byKey.set(e.alias, i);
    });
  }

  /** Index of the entry for `id` in partition.entries, or -1. */
  find(id: string): number {
    const exact = this.byKey.get(id);
    if (exact !== undefined) return exact;
    let path = id.replace(/\\/g, '/');
    for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/')) {
      path = path.slice(slash + 1);
      const hit = this.byKey.get(path);
      if (hit !== undefined) return hit;
    }
    return -1;
  }
}
