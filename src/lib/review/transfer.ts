// Into and out of the review database: labelled records (the formats train-classifier reads) and
// model predictions (classify, train-classifier --predictions) in; the current labels out as NDJSON
// that train-classifier reads back, with the same group field so every image keeps its side.
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { readLabelledRecords } from '../facets/labels.js';
import { splitOf } from '../random.js';
import { imageRecordOf } from '../facets/inputs.js';
import { readNdjson, requireId, requireObject } from '../io/ndjson.js';
import { PartitionLookup, readRetrievalPartition } from '../knn/index.js';
import { averagePrecision, correctRanks } from '../metrics/retrieval.js';
import { isStdio } from '../io/paths.js';
import { readKnn, readRise } from '../report/inputs.js';
import { allImages, getImage, getSetting, insertImages, insertNeighbors, insertOverlays, insertRetrievalRun, insertRun, setSetting, type NewImage, type PredictionIn, type RetrievalQueryIn, type ReviewDb } from './db.js';

export interface LabelImportOptions {
  labelField: string;
  idField: string;
  imageField: string;
  groupField: string;
  testFraction: number;
  valFraction: number;
  labelsOrder?: string[];
  labelsOrderFile?: string;
}

/** The fields and split fractions fixed by the first import; a later import must agree on the fractions. */
function fixSettings(db: ReviewDb, opts: LabelImportOptions, file: string): void {
  const stored = getSetting(db, 'split');
  const split = JSON.stringify([opts.testFraction, opts.valFraction]);
  if (stored !== undefined && stored !== split) {
    throw new UsageError(`split fractions ${split} differ from the ones the database was made with (${stored}): splits are fixed at the first import`, { file, field: '--test-fraction' });
  }
  if (stored === undefined) {
    setSetting(db, 'split', split);
    for (const [key, value] of [['labelField', opts.labelField], ['idField', opts.idField], ['imageField', opts.imageField], ['groupField', opts.groupField]]) setSetting(db, key, value);
  }
}

/** Imports labelled records; images already in the database keep their label and split. */
export async function importLabels(db: ReviewDb, path: string, opts: LabelImportOptions): Promise<{ added: number; kept: number; labels: string[] }> {
  fixSettings(db, opts, path);
  const set = await readLabelledRecords(path, { labelField: opts.labelField, idField: opts.idField, groupField: opts.groupField, labelsOrder: opts.labelsOrder, labelsOrderFile: opts.labelsOrderFile });
  const images: NewImage[] = set.records.map((r) => ({
    id: r.id,
    path: resolve(imageRecordOf({ id: r.id, record: r.record, file: r.file, line: r.line }, opts.imageField).path),
    grp: r.group,
    split: splitOf(r.group, opts.testFraction, opts.valFraction),
    label: r.label,
    record: JSON.stringify(r.record),
  }));
  const known = JSON.parse(getSetting(db, 'labels') ?? '[]') as string[];
  const labels = opts.labelsOrder ?? [...known, ...set.labels.filter((l) => !known.includes(l))];
  setSetting(db, 'labels', JSON.stringify(labels));
  return { ...insertImages(db, images), labels };
}

/** Imports predictions {id, label, probs?} as one run named `name`; records carrying "error" are skipped. */
export async function importPredictions(db: ReviewDb, path: string, name: string): Promise<{ run: number; stored: number; unknown: number; errors: number }> {
  const predictions: PredictionIn[] = [];
  let labels: string[] | null = null;
  let errors = 0;
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    if (record.error !== undefined) {
      errors++;
      continue;
    }
    const id = record.id;
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError('expected a string or number id', { file, line, field: 'id' });
    if (typeof record.label !== 'string' && typeof record.label !== 'number') throw new UsageError('expected a predicted label', { file, line, field: 'label' });
    const probs = record.probs !== null && typeof record.probs === 'object' && !Array.isArray(record.probs) ? (record.probs as Record<string, number>) : null;
    if (probs && labels === null) labels = Object.keys(probs);
    predictions.push({ id: String(id), label: String(record.label), probs });
  }
  if (predictions.length === 0) throw new UsageError('no predictions', { file: path });
  const run = insertRun(db, name, path, labels ?? (JSON.parse(getSetting(db, 'labels') ?? '[]') as string[]), predictions);
  return { ...run, errors };
}

/** Imports knn output {id, neighbors: [{id, score}]}: each image's nearest neighbours. */
export async function importKnn(db: ReviewDb, path: string): Promise<{ stored: number; unknown: number }> {
  return insertNeighbors(db, await readKnn(path));
}

/** Imports rise output {id, class, score, overlay}: the saliency overlays of each image. */
export async function importRise(db: ReviewDb, path: string): Promise<{ stored: number; unknown: number }> {
  return insertOverlays(db, (await readRise(path)).map((r) => ({ ...r, overlay: r.overlay === null ? null : resolve(r.overlay) })));
}

export interface RetrievalImportOptions {
  /** knn output of the queries against the gallery: the neighbours shown. */
  knn: string;
  /** The partition eval-retrieval read: which images are queries and gallery, and their items. */
  partition: string;
  /** eval-retrieval --per-query output {id, item, rank, ap, relevant}: its rank and AP replace the ones computed from the knn lists. */
  perQuery?: string;
  name: string;
}

export interface RetrievalImportSummary {
  run: number;
  queries: number;
  skipped: { notAQuery: number; notInDb: number; notInKnn: number; noGalleryMatch: number; neighborsNotInGallery: number };
}

/**
 * Imports retrieval examples: each knn line of a partition query whose image is in the database,
 * its neighbours in the gallery (itself left out) marked hit when they show the query's item. Ids
 * match the partition as eval-retrieval matches them, so the ranks and AP agree with its own.
 */
export async function importRetrieval(db: ReviewDb, opts: RetrievalImportOptions): Promise<RetrievalImportSummary> {
  const partition = await readRetrievalPartition(opts.partition);
  const lookup = new PartitionLookup(partition);
  const entries = partition.entries;
  const leaveOneOut = entries.every((e) => e.split === null);
  const isQuery = (e: number) => leaveOneOut || entries[e].split === 'query';
  const isGallery = (e: number) => leaveOneOut || entries[e].split === 'gallery';
  const galleryOfItem = new Map<string, number>();
  entries.forEach((e, i) => isGallery(i) && galleryOfItem.set(e.item, (galleryOfItem.get(e.item) ?? 0) + 1));
  // A database image is a partition entry by its id or, as eval-retrieval matches embeddings, by its path.
  const imageOfEntry = new Map<number, string>();
  const entryOfImage = new Map<string, number>();
  for (const image of allImages(db)) {
    let e = lookup.find(image.id);
    if (e < 0) e = lookup.find(image.path);
    if (e >= 0 && !imageOfEntry.has(e)) {
      imageOfEntry.set(e, image.id);
      entryOfImage.set(image.id, e);
    }
  }
  const imageOf = (id: string, e: number): string | null => imageOfEntry.get(e) ?? (getImage(db, id) ? id : null);
  // knn ids are the partition's names or, when it names images by path, the database's ids.
  const entryOf = (id: string): number => {
    const e = lookup.find(id);
    return e >= 0 ? e : (entryOfImage.get(id) ?? -1);
  };

  const evaluated = new Map<number, { rank: number | null; ap: number; relevant: number }>();
  if (opts.perQuery) {
    for await (const { value, file, line } of readNdjson(opts.perQuery)) {
      const record = requireObject(value, { file, line });
      const id = requireId(record, 'id', { file, line });
      const e = entryOf(id);
      if (e < 0) throw new UsageError(`query ${JSON.stringify(id)} is not in the partition ${opts.partition}`, { file, line, field: 'id' });
      const { rank, ap, relevant } = record;
      if (rank !== null && !(Number.isInteger(rank) && (rank as number) > 0)) throw new UsageError('expected a positive integer or null', { file, line, field: 'rank' });
      if (typeof ap !== 'number' || !(ap >= 0 && ap <= 1)) throw new UsageError('expected a number in [0, 1]', { file, line, field: 'ap' });
      if (!Number.isInteger(relevant) || (relevant as number) < 0) throw new UsageError('expected a count', { file, line, field: 'relevant' });
      evaluated.set(e, { rank: rank as number | null, ap, relevant: relevant as number });
    }
  }

  const skipped = { notAQuery: 0, notInDb: 0, notInKnn: 0, noGalleryMatch: 0, neighborsNotInGallery: 0 };
  const seen = new Set<number>();
  const queries: RetrievalQueryIn[] = [];
  for await (const { value, file, line } of readNdjson(opts.knn)) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, 'id', { file, line });
    if (!Array.isArray(record.neighbors)) throw new UsageError('expected an array of {id, score}', { file, line, field: 'neighbors' });
    const e = entryOf(id);
    if (e < 0 || !isQuery(e) || (opts.perQuery && !evaluated.has(e))) {
      skipped.notAQuery++;
      continue;
    }
    if (seen.has(e)) throw new UsageError(`query ${JSON.stringify(id)} appears twice`, { file, line, field: 'id' });
    seen.add(e);
    const imageId = imageOf(id, e);
    if (imageId === null) {
      skipped.notInDb++;
      continue;
    }
    const item = entries[e].item;
    const relevant = (galleryOfItem.get(item) ?? 0) - (leaveOneOut ? 1 : 0);
    if (relevant <= 0) {
      skipped.noGalleryMatch++;
      continue;
    }
    const neighbors: RetrievalQueryIn['neighbors'] = [];
    record.neighbors.forEach((n: unknown, i: number) => {
      const raw = n !== null && typeof n === 'object' ? (n as Record<string, unknown>) : { id: n };
      if (typeof raw.id !== 'string' && typeof raw.id !== 'number') throw new UsageError('expected a string or number id', { file, line, field: `neighbors[${i}].id` });
      const nid = String(raw.id);
      const g = entryOf(nid);
      if (g === e) return;
      if (g < 0 || !isGallery(g)) {
        skipped.neighborsNotInGallery++;
        return;
      }
      const score = typeof raw.score === 'number' && Number.isFinite(raw.score) ? raw.score : null;
      neighbors.push({ id: imageOf(nid, g) ?? nid, score, hit: entries[g].item === item });
    });
    const ranks = correctRanks(neighbors.map((n) => (n.hit ? item : null)), item);
    const given = evaluated.get(e);
    queries.push({
      imageId, item, neighbors,
      firstRank: given ? given.rank : (ranks[0] ?? null),
      ap: given ? given.ap : averagePrecision(ranks, relevant, neighbors.length),
      relevant: given ? given.relevant : relevant,
    });
  }
  for (const e of evaluated.keys()) if (!seen.has(e)) skipped.notInKnn++;
  if (queries.length === 0) throw new UsageError(`no line is a query of ${opts.partition} whose image is in the database`, { file: opts.knn });
  return { run: insertRetrievalRun(db, opts.name, opts.perQuery ?? opts.knn, queries), queries: queries.length, skipped };
}

/**
 * The current labels as NDJSON lines: each image's original record with the label field set to its
 * label now and the image path made relative to `outPath` (absolute for stdout), so the file reads anywhere.
 */
export function* exportLines(db: ReviewDb, outPath: string): Generator<string> {
  const labelField = getSetting(db, 'labelField');
  const imageField = getSetting(db, 'imageField');
  if (!labelField || !imageField) throw new UsageError('the database holds no imported labels', { field: '--db' });
  const base = isStdio(outPath) ? null : dirname(resolve(outPath));
  for (const image of allImages(db)) {
    const record = JSON.parse(image.record) as Record<string, unknown>;
    record[labelField] = image.label;
    record[imageField] = base === null || !isAbsolute(image.path) ? image.path : relative(base, image.path);
    yield JSON.stringify(record);
  }
}
