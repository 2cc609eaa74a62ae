// Into and out of the review database: labelled records (the formats train-classifier reads) and
// model predictions (classify, train-classifier --predictions) in; the current labels out as NDJSON
// that train-classifier reads back, with the same group field so every image keeps its side.
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { readLabelledRecords } from '../facets/labels.js';
import { splitOf } from '../random.js';
import { imageRecordOf } from '../facets/inputs.js';
import { readNdjson, requireObject } from '../io/ndjson.js';
import { isStdio } from '../io/paths.js';
import { readKnn, readRise } from '../report/inputs.js';
import { allImages, getSetting, insertImages, insertNeighbors, insertOverlays, insertRun, setSetting, type NewImage, type PredictionIn, type ReviewDb } from './db.js';

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
