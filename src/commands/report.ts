import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { isStdio } from '../lib/io/paths.js';
import {
  readCatalogue,
  readClassifierEvaluation,
  readFalseNegatives,
  imageSize,
  readKnn,
  readLocatedBoxes,
  readRetrievalRun,
  readRise,
  readAttention,
  readTrainingLog,
  readTsne,
  retrievalExamples,
  spreadSample,
  writeReport,
  REPORT_MANIFEST,
  type CatalogueEntry,
  type ReportContent,
} from '../lib/report/index.js';
import { checkReplaceableDirOutput } from '../lib/io/atomic.js';
import { integerIn, positiveInt } from '../lib/options.js';

interface Args {
  out: string;
  title: string;
  classifier?: string;
  'false-negatives'?: string;
  retrieval: string[];
  knn?: string;
  images?: string;
  'id-field': string;
  'image-field': string;
  'item-field': string;
  examples: number;
  top: number;
  'per-class': number;
  rise?: string;
  'rise-max': number;
  attention?: string;
  'attention-max': number;
  boxes?: string;
  'boxes-max': number;
  tsne?: string;
  'tsne-max': number;
  'train-log': string[];
  thumbnail: number;
}

const NAME = 'report';

function checkPaths(args: Args): void {
  const inputs: Array<[string, string | undefined]> = [
    ['--classifier', args.classifier],
    ['--false-negatives', args['false-negatives']],
    ['--knn', args.knn],
    ['--images', args.images],
    ['--rise', args.rise],
    ['--attention', args.attention],
    ['--boxes', args.boxes],
    ['--tsne', args.tsne],
    ...args.retrieval.map((p): [string, string] => ['--retrieval', p]),
    ...args['train-log'].map((p): [string, string] => ['--train-log', p]),
  ];
  for (const [flag, path] of inputs) if (path !== undefined && isStdio(path)) throw new UsageError('the report reads files, not stdin', { field: flag });
  if (isStdio(args.out)) throw new UsageError('the report is a directory, not a stream', { field: '--out' });
  if (!inputs.some(([, path]) => path !== undefined)) {
    throw new UsageError('nothing to report: give at least one of --classifier, --false-negatives, --retrieval, --knn, --rise, --attention, --boxes, --tsne, --train-log');
  }
}

export default defineCommand<Args>({
  name: NAME,
  summary: 'gather the outputs of other commands into one static HTML report directory',
  description: `Builds a self-contained report directory (index.html, report.json and img/ with a copy of every image shown; no server, no external URL) from whatever outputs it is given; a section whose input is missing is left out. Sections, in order:

- classification: per-class precision, recall, F1 and support and the confusion matrix from eval-classifier's JSON (--classifier), as tables sortable by clicking a header;
- false negatives: per true class, the images the model called something else, with the predicted label (--false-negatives, eval-classifier's NDJSON), GILT's view for spotting mistagged images;
- retrieval: the top-k accuracy curve of one or more eval-retrieval results (--retrieval, with the random baseline when it was computed) and examples from knn output (--knn): each query and its nearest gallery images, those of the query's item framed green (items and image paths from --images);
- training curves: loss and validation metrics per epoch from training logs (--train-log: <model>.log.json of train-weak or train-sizenet, or a JSON object with a "log" array);
- RISE: each photo beside its saliency overlay and the model's score (P(size issue) for a sizenet model) from rise's NDJSON run with --overlay;
- attention crops: each photo with the crops a spatial transformer chose drawn on it, numbered by step, and the predicted labels (--attention: the --predictions of train-attention or of train-classifier --stn);
- located garments: each photo with the box locate found drawn over it, and its score (--boxes, locate's NDJSON);
- t-SNE map: thumbnails at their tsne coordinates (--tsne), framed by label colour.

Image paths in any input are taken from the current directory when the file is there, else from the directory of the file that names them. Unreadable images are shown as grey boxes and counted on stderr. The directory is written under a temporary name and renamed into place; an existing --out is replaced only when it is an earlier report. Prints the path of index.html on stdout.`,
  options: {
    out: { alias: 'o', describe: 'report directory to write (replaced when it is an earlier report)', type: 'string', default: 'report' },
    title: { describe: 'page title', type: 'string', default: 'atelier report' },
    classifier: { describe: 'eval-classifier JSON (per-class F1, confusion matrix)', type: 'string' },
    'false-negatives': { describe: 'eval-classifier false negatives NDJSON {id, image, truth|label, predicted, ...}', type: 'string' },
    retrieval: { describe: 'eval-retrieval JSON results, drawn together on the top-k curve', type: 'array', string: true, default: [] },
    knn: { describe: 'knn output NDJSON {id, neighbors} for retrieval examples', type: 'string' },
    images: { describe: 'image list NDJSON {id, image, item} (e.g. images.ndjson): images and items of knn ids, and images other inputs lack', type: 'string' },
    'id-field': { describe: 'id field of --images', type: 'string', default: 'id' },
    'image-field': { describe: 'image path field of --images', type: 'string', default: 'image' },
    'item-field': { describe: 'field of --images that says which item an image shows (a neighbour of the same item is correct)', type: 'string', default: 'item' },
    examples: { describe: 'retrieval examples to show (spread over the knn lines)', type: 'number', default: 8, check: positiveInt },
    top: { describe: 'neighbours shown per retrieval example', type: 'number', default: 10, check: positiveInt },
    'per-class': { describe: 'false negatives shown per class', type: 'number', default: 24, check: positiveInt },
    rise: { describe: 'rise output NDJSON {id, image, class, score, overlay}', type: 'string' },
    'rise-max': { describe: 'RISE pairs shown', type: 'number', default: 24, check: positiveInt },
    attention: { describe: 'predictions NDJSON with attention crops: train-attention {id, image, boxes} or train-classifier --stn {id, image, box}', type: 'string' },
    'attention-max': { describe: 'images with attention crops shown (the first ones of the test split when there is one)', type: 'number', default: 24, check: positiveInt },
    boxes: { describe: 'locate output NDJSON {id, image, x, y, w, h, score}: boxes drawn on their images', type: 'string' },
    'boxes-max': { describe: 'located boxes shown (spread over the file)', type: 'number', default: 24, check: positiveInt },
    tsne: { describe: 'tsne output NDJSON {id, x, y, label?, image?}', type: 'string' },
    'tsne-max': { describe: 'points drawn on the t-SNE map (spread over the file)', type: 'number', default: 1000, check: positiveInt },
    'train-log': { describe: 'training logs (<model>.log.json) to plot', type: 'array', string: true, default: [] },
    thumbnail: { describe: 'longest side of the copied images in pixels', type: 'number', default: 128, check: integerIn(8, 1024) },
  },
  examples: [
    ['atelier report -o out/report --classifier eval.json --false-negatives fn.ndjson', 'the F1 view and the false negatives view of a facet model'],
    ['atelier report -o out/report --retrieval trained.json pixels.json --knn knn.ndjson --images fixtures/out/images.ndjson', 'retrieval curves and examples'],
    ['atelier locate -m locate.model -i scenes.ndjson > boxes.ndjson && atelier report -o out/report --boxes boxes.ndjson', 'located garment boxes drawn on the photos'],
    ['atelier report -o out/report --tsne map.ndjson --rise rise.ndjson --train-log weak.model.log.json', 't-SNE map, RISE overlays and training curves'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    checkPaths(args);
    const content: ReportContent = { title: args.title, inputs: [] };
    const noted = (what: string, path: string) => content.inputs.push({ what, path });

    let catalogue = new Map<string, CatalogueEntry>();
    if (args.images) {
      catalogue = await readCatalogue(args.images, { id: args['id-field'], image: args['image-field'], item: args['item-field'] });
      noted('image list', args.images);
    }
    // A record's own image when it is on disk, else the catalogue's (an older file may carry a path relative to elsewhere).
    const imageOf = (id: string, image: string | null) => (image !== null && existsSync(image) ? image : catalogue.get(id)?.image ?? image);

    if (args.classifier) {
      content.classifier = await readClassifierEvaluation(args.classifier);
      noted('classifier evaluation', args.classifier);
    }
    if (args['false-negatives']) {
      const labels = content.classifier?.confusion?.labels ?? content.classifier?.classes.map((c) => c.label) ?? null;
      const records = (await readFalseNegatives(args['false-negatives'], labels)).map((r) => ({ ...r, image: imageOf(r.id, r.image) }));
      content.falseNegatives = { records, perClass: args['per-class'], labels: labels ?? undefined };
      noted('false negatives', args['false-negatives']);
      if (records.length === 0) warn(io, NAME, `${args['false-negatives']} lists no false negatives; the section is left out`);
    }
    if (args.retrieval.length || args.knn) {
      const runs = [];
      for (const path of args.retrieval) {
        runs.push(await readRetrievalRun(path));
        noted('retrieval evaluation', path);
      }
      let examples: ReturnType<typeof retrievalExamples> = [];
      if (args.knn) {
        if (!args.images) warn(io, NAME, '--knn without --images: neighbours cannot be shown as images or marked correct');
        examples = retrievalExamples(await readKnn(args.knn), catalogue, args.examples, args.top);
        noted('knn neighbours', args.knn);
      }
      content.retrieval = { runs, examples };
    }
    if (args['train-log'].length) {
      content.training = [];
      for (const path of args['train-log']) {
        content.training.push(await readTrainingLog(path));
        noted('training log', path);
      }
    }
    if (args.rise) {
      const records = (await readRise(args.rise)).map((r) => ({ ...r, image: imageOf(r.id, r.image) }));
      const missingOverlay = records.filter((r) => r.overlay === null).length;
      if (missingOverlay) warn(io, NAME, `${missingOverlay} RISE lines have no overlay (run rise with --overlay DIR)`);
      content.rise = { records: records.slice(0, args['rise-max']) };
      noted('RISE explanations', args.rise);
    }
    if (args.attention) {
      const records = (await readAttention(args.attention)).map((r) => ({ ...r, image: imageOf(r.id, r.image) }));
      // Held-out images show what the model learnt, not what it memorised.
      const test = records.filter((r) => r.split === 'test');
      content.attention = { records: (test.length ? test : records).slice(0, args['attention-max']) };
      noted('attention crops', args.attention);
    }
    if (args.boxes) {
      const all = await readLocatedBoxes(args.boxes);
      const records = [];
      for (const r of spreadSample(all, args['boxes-max'])) {
        const image = imageOf(r.id, r.image);
        records.push({ ...r, image, size: await imageSize(image) });
      }
      content.boxes = { records, total: all.length };
      noted('located boxes', args.boxes);
    }
    if (args.tsne) {
      const points = (await readTsne(args.tsne)).map((p) => ({ ...p, image: imageOf(p.id, p.image) }));
      content.tsne = { points: spreadSample(points, args['tsne-max']), total: points.length };
      noted('t-SNE coordinates', args.tsne);
    }

    const summary = await writeReport(args.out, content, { thumbnailSize: args.thumbnail });
    if (summary.missingImages.length) {
      warn(io, NAME, `${summary.missingImages.length} images could not be read and show as grey boxes (first: ${summary.missingImages[0]})`);
    }
    io.stderr.write(`atelier ${NAME}: ${summary.sections.length} sections (${summary.sections.join(', ') || 'none'}), ${summary.images} images -> ${args.out}\n`);
    io.stdout.write(resolve(summary.index) + '\n');
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  if (!isStdio(args.out)) await checkReplaceableDirOutput(args.out, '--out', REPORT_MANIFEST, 'an atelier report');
}
