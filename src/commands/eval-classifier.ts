import { defineCommand, UsageError, warn } from '../lib/command.js';
import { writeFileAtomic, checkFileOutput } from '../lib/io/atomic.js';
import { readRecords } from '../lib/io/csv.js';
import { describeJsonValue, openNdjsonWriter, readNdjson, requireId, requireObject } from '../lib/io/ndjson.js';
import { isStdio } from '../lib/io/paths.js';
import { svgToPng } from '../lib/plot/png.js';
import { PLOT_EXTENSIONS } from '../lib/plot/index.js';
import { multiClassReport } from '../lib/metrics/classification.js';
import { readLabelsOrder } from '../lib/facets/labels.js';
import { confusionMatrixSvg, falseNegativesByClass, reportJson, type ScoredPrediction } from '../lib/facets/evaluation.js';
import { recordedImagePath } from '../lib/image/records.js';

interface Args {
  predictions: string;
  truth?: string;
  'label-field': string;
  'id-field': string;
  'labels-order'?: string;
  split?: string;
  out: string;
  plot?: string;
  'false-negatives'?: string;
  title: string;
}

interface Prediction {
  id: string;
  label: string;
  truth?: string;
  probs?: Record<string, number>;
  record: Record<string, unknown>;
  file: string;
  line: number;
}

export default defineCommand<Args>({
  name: 'eval-classifier',
  summary: 'per-class precision/recall/F1, confusion matrix (JSON + PNG) and false negatives of facet predictions',
  description: `Compares predictions ({id, label, probs} from classify, or train-classifier --predictions) with the true labels and prints one JSON object: accuracy, macro and support-weighted F1, per-class precision, recall, F1 and support, and the confusion matrix (rows the truth, columns the prediction), all in the label order.

The truth comes from --truth (NDJSON or CSV, the label in --label-field, matched by --id-field), or from each prediction's own "truth" field as train-classifier writes it; --split keeps only predictions of one split (train, val, test). The label order is --labels-order when given (a label outside it is an error), else the order of the first prediction's probs (the model's order), then any other label by name.

Each id may be predicted once (a repeated id is an error naming both lines); a --truth file may repeat an id with the same label, not with two. probs values must be probabilities in [0, 1]. Predictions carrying "error" (images classify could not read) are counted, not scored; so are predictions without a true label. --plot draws the confusion matrix as a PNG (or SVG) heat map, each row shaded by its share of the class; --false-negatives writes the GILT "false negatives view": per class in label order, each of its images the model called something else, the most confident mistakes first, {label, id, predicted, predictedProbability, trueProbability, ...}.`,
  options: {
    predictions: { alias: 'p', describe: 'predictions NDJSON {id, label, probs?} (- for stdin)', type: 'string', default: '-' },
    truth: { alias: 't', describe: 'true labels, NDJSON or CSV (default: the predictions\' own "truth" field)', type: 'string' },
    'label-field': { alias: 'l', describe: 'field of --truth holding the label', type: 'string', default: 'label' },
    'id-field': { describe: 'field of --truth holding the id', type: 'string', default: 'id' },
    'labels-order': { describe: 'file with one label per line: the classes and their order', type: 'string' },
    split: { describe: 'score only predictions whose "split" field is this (e.g. test)', type: 'string' },
    out: { alias: 'o', describe: 'where the JSON report goes (- for stdout)', type: 'string', default: '-' },
    plot: { describe: 'draw the confusion matrix to this PNG (or .svg)', type: 'string' },
    'false-negatives': { describe: 'write the false negatives per class to this NDJSON', type: 'string' },
    title: { describe: 'title of the confusion plot', type: 'string', default: 'Confusion matrix' },
  },
  examples: [
    ['atelier classify -m m -i images.ndjson | atelier eval-classifier -t images.ndjson -l silhouette --plot confusion.png', 'score a model against the catalogue'],
    ['atelier eval-classifier -p predictions.ndjson --split test --false-negatives fn.ndjson', 'the test split of train-classifier --predictions'],
    ['atelier eval-classifier -p p.ndjson -t truth.csv -l pattern --labels-order order.txt | jq .perClass', 'a custom label order'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    const order = args['labels-order'] ? await readLabelsOrder(args['labels-order']) : undefined;
    const predictions: Prediction[] = [];
    let errors = 0;
    let otherSplit = 0;
    const predictedAt = new Map<string, number>();
    for await (const { value, file, line } of readNdjson(args.predictions, { stdin: io.stdin })) {
      const record = requireObject(value, { file, line });
      const id = requireId(record, 'id', { file, line });
      // One vote per image: a repeated id would be scored twice.
      const firstLine = predictedAt.get(String(id));
      if (firstLine !== undefined) throw new UsageError(`id '${id}' was already predicted on line ${firstLine}`, { file, line, field: 'id' });
      predictedAt.set(String(id), line);
      if (args.split !== undefined && record.split !== args.split) {
        otherSplit++;
        continue;
      }
      if (record.error !== undefined) {
        errors++;
        continue;
      }
      const label = labelText(record.label);
      if (label === undefined) throw new UsageError(`expected a predicted label, got ${record.label === undefined ? 'nothing' : JSON.stringify(record.label)}`, { file, line, field: 'label' });
      if (order && !order.includes(label)) throw new UsageError(`predicted label '${label}' is not in ${args['labels-order']}`, { file, line, field: 'label' });
      const probs = probabilitiesOf(record.probs, { file, line });
      predictions.push({ id: String(id), label, truth: labelText(record.truth), probs, record, file, line });
    }
    if (predictions.length === 0) throw new UsageError(`no prediction to score (${errors} with errors${args.split !== undefined ? `, ${otherSplit} of other splits` : ''})`, { file: isStdio(args.predictions) ? 'stdin' : args.predictions });

    const truth = new Map<string, { label: string; file: string; line: number }>();
    if (args.truth) {
      for await (const { value, file, line } of readRecords(args.truth)) {
        const record = value as Record<string, unknown>;
        const id = requireId(record, args['id-field'], { file, line });
        const label = labelText(record[args['label-field']]);
        if (label === undefined) throw new UsageError(`expected a label, got ${record[args['label-field']] === undefined ? 'nothing (field missing)' : JSON.stringify(record[args['label-field']])}`, { file, line, field: args['label-field'] });
        if (order && !order.includes(label)) throw new UsageError(`label '${label}' is not in ${args['labels-order']}`, { file, line, field: args['label-field'] });
        // A repeated id with the same label is harmless (a catalogue row per image); two labels are a contradiction.
        const seen = truth.get(String(id));
        if (seen && seen.label !== label) throw new UsageError(`id '${id}' is labelled '${seen.label}' on line ${seen.line} and '${label}' here`, { file, line, field: args['label-field'] });
        truth.set(String(id), { label, file, line });
      }
    } else {
      for (const p of predictions) {
        if (p.truth === undefined) throw new UsageError('no "truth" field: give the true labels with --truth', { file: p.file, line: p.line, field: 'truth' });
        if (order && !order.includes(p.truth)) throw new UsageError(`true label '${p.truth}' is not in ${args['labels-order']}`, { file: p.file, line: p.line, field: 'truth' });
        truth.set(p.id, { label: p.truth, file: p.file, line: p.line });
      }
    }

    const scored = predictions.filter((p) => truth.has(p.id));
    const withoutTruth = predictions.length - scored.length;
    if (scored.length === 0) throw new UsageError(`no predicted id has a true label (e.g. '${predictions[0].id}')`, { file: args.truth ?? args.predictions, field: args['id-field'] });
    if (withoutTruth) warn(io, 'eval-classifier', `${withoutTruth} predictions have no true label and are not scored`);
    if (errors) warn(io, 'eval-classifier', `${errors} predictions carry an error (unreadable images) and are not scored`);

    const labels = order ?? defaultOrder(scored, truth);
    const index = new Map(labels.map((l, i) => [l, i]));
    const items: ScoredPrediction[] = scored.map((p) => ({
      id: p.id,
      truth: index.get(truth.get(p.id)!.label)!,
      predicted: index.get(p.label)!,
      probs: p.probs ? labels.map((l) => Number(p.probs![l] ?? 0)) : undefined,
      extra: {
        // Relative paths were written relative to the predictions' own inputs: resolve them before they move to another file.
        ...(typeof p.record.image === 'string' && p.record.image !== '' ? { image: recordedImagePath(p.record.image, p.file) } : {}),
        ...(typeof p.record.split === 'string' ? { split: p.record.split } : {}),
      },
    }));
    const report = multiClassReport(items.map((x) => x.truth), items.map((x) => x.predicted), labels);
    const json = JSON.stringify({ predictions: predictions.length + errors, scored: scored.length, errors, withoutTruth, ...(args.split !== undefined ? { split: args.split } : {}), ...reportJson(report) }, null, 2) + '\n';

    if (args.plot) {
      const svg = confusionMatrixSvg(report, args.title);
      await writeFileAtomic(args.plot, /\.svg$/i.test(args.plot) ? svg : await svgToPng(svg, 2), io.outputs);
    }
    if (args['false-negatives']) {
      const writer = await openNdjsonWriter(args['false-negatives'], { stdout: io.stdout, outputs: io.outputs });
      try {
        for (const fn of falseNegativesByClass(items, labels)) await writer.write(fn);
        await writer.close();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    }
    if (isStdio(args.out)) io.stdout.write(json);
    else await writeFileAtomic(args.out, json, io.outputs);
  },
});

/** A prediction's probs: absent, or an object of probabilities in [0, 1]. */
function probabilitiesOf(value: unknown, place: { file: string; line: number }): Record<string, number> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`expected an object of probabilities per label, got ${describeJsonValue(value)}`, { ...place, field: 'probs' });
  for (const [label, p] of Object.entries(value)) {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new UsageError(`expected a probability in [0, 1], got ${describeJsonValue(p)}`, { ...place, field: `probs.${label}` });
  }
  return value as Record<string, number>;
}

function labelText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** The model's order (keys of the first probs), then any other label seen, by name. */
function defaultOrder(predictions: Prediction[], truth: Map<string, { label: string }>): string[] {
  const first = predictions.find((p) => p.probs)?.probs;
  const labels = first ? Object.keys(first) : [];
  const known = new Set(labels);
  const others = new Set<string>();
  for (const p of predictions) {
    for (const l of [p.label, truth.get(p.id)?.label]) if (l !== undefined && !known.has(l)) others.add(l);
  }
  return [...labels, ...[...others].sort()];
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  await checkFileOutput(args.plot, '--plot', { extensions: PLOT_EXTENSIONS });
}
