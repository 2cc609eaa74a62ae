import { existsSync } from 'node:fs';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { saveModel, loadMetadata } from '../lib/backend/model-io.js';
import { writeFileAtomic, checkFileOutput } from '../lib/io/atomic.js';
import { checkInputFile } from '../lib/io/paths.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { inputSides } from '../lib/image/batch.js';
import { DEFAULT_TOWER } from '../lib/models/weak-model.js';
import { isTowerName, parseInputSize } from '../lib/models/towers/index.js';
import { backboneOptions, towerNamesText, type BackboneArgs } from '../lib/train/tower-options.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import { fitClassifierLbfgs, trainClassifier } from '../lib/train/classifier-trainer.js';
import { classWeightsFor, readJoinRecords, readLabelledRecords, readLabelsOrder, readSampleWeights } from '../lib/facets/labels.js';
import { CLASSIFIER_MODEL_KIND, buildFeatureClassifier, buildImageClassifier, classifierForSaving, classifierNets, type ClassifierMetadata, type HeadConfig } from '../lib/facets/classifier-model.js';
import { openClassifierInputs, type StnSettings } from '../lib/facets/classifier-inputs.js';
import { splitSamples, trainingClassCounts } from '../lib/facets/classifier-data.js';
import { splitReports } from '../lib/facets/classifier-predict.js';
import { FEATURE_LAYERS, type FeatureLayer } from '../lib/models/kinds.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { fraction, imageSide, inputSizeText, nonNegativeInt, positiveInt, positiveNumber, share } from '../lib/options.js';

interface ClassifierArgs extends LoopArgs {
  input: string;
  'label-field': string;
  'id-field': string;
  'image-field': string;
  'group-field': string;
  'weight-field'?: string;
  join?: string;
  'join-key': string;
  'join-id-field': string;
  features?: string;
  'feature-ids'?: string;
  mode: 'head' | 'finetune';
  solver: 'adam' | 'lbfgs';
  head: 'linear' | 'mlp';
  hidden: number;
  dropout: number;
  tower?: string;
  'tower-layer': FeatureLayer;
  'pixels-size': number;
  'input-size': string;
  'head-epochs': number;
  stn?: string;
  'stn-min-scale': number;
  'stn-max-scale': number;
  width: number;
  blocks: number;
  stages: number;
  'class-weight': string;
  'labels-order'?: string;
  'test-fraction': number;
  'val-fraction': number;
  batch: number;
  lr?: number;
  predictions?: string;
  report?: string;
  backend: string;
  workers: number;
}

type Args = ClassifierArgs & BackboneArgs;

export default defineCommand<Args>({
  name: 'train-classifier',
  summary: 'train a facet classifier (head on features, or a fine-tuned tower) with class weights and per-class F1',
  description: `Trains a classifier for one facet of a catalogue (--label-field: silhouette, articleType, pattern, ...), the faceting tool of "Deep Learning at GILT". The input is NDJSON or CSV with an id, the label field and, unless --features is given, an image path per record. An id repeated with the same label is used once (a warning counts them); with another label it is an error (exit 2) naming both lines, as is an id repeated in --join.

--mode head trains a linear or MLP head on frozen features: precomputed ones (--features x.npy with its ids NDJSON, e.g. from embed), or computed here from the images by --tower (a train-weak, train-triplet or train-classifier model), or the raw pixels of a --pixels-size crop with --tower pixels. --mode finetune trains the tower end to end with the head, from --tower (a model directory, or a family name for a fresh tower: small with --width, --blocks, --stages; resnet18, resnet34, resnet50, mobilenetv2[:ALPHA]) at --input-size (N or HxW; non-square inputs are padded, not cropped), or from a pretrained --backbone, with random crops and flips. --head-epochs N first trains the head alone with the tower frozen (in inference mode), then everything, the tower at --lr x --backbone-lr (the report's section 2.5). --stn SIZE puts a spatial transformer in front of the tower (GILT's "spatial transformer attachment"): the model reads images of SIZE, a small localisation net picks a box (its side between --stn-min-scale and --stn-max-scale of the image) and the tower reads that box resampled to --input-size; the transformer learns where to look from the labels (its own class evidence, pooled by its score map, is a second cross-entropy term), is saved in the model, and --predictions gives each image's box {x, y, w, h} as fractions of the image. A family name or --backbone in --mode head gives the features of that tower untrained or pretrained (a linear probe).

The loss is a class-weighted cross-entropy: --class-weight balanced weighs each class by the inverse of its training frequency (n / (K n_c)), none weighs all alike, and a file of {label, weight} records (NDJSON or CSV) sets them by hand. --labels-order names the classes, one per line, in the order every output uses (probabilities, reports, confusion matrices); a label outside it is an error. Without it, classes sort by name.

The head is trained by Adam (--solver adam, the default: epochs of mini-batches, early stopping, checkpoints) or, for a linear head on frozen features, fitted by L-BFGS (--solver lbfgs): the multinomial logistic regression scikit-learn's LogisticRegression fits, on standardised features, to convergence, with the L2 penalty (0.1, 0.01, 0.001, 0.0001) that scores best on the validation split (1/n without one), and the same class and record weights. It needs no learning rate or epochs and is what a linear probe is usually measured with; the model saved is the same softmax head.

Records are split into train, validation and test by a hash of --group-field (the product, so all its views stay together; the id when the field is missing): an image never changes sides when labels are added or corrected and the command is run again. Training stops after --patience epochs without a lower validation loss and keeps the best epoch's weights; each epoch writes a checkpoint (default <out>.checkpoint) that --resume continues from, and the epoch log goes to <out>.log.json.

Prints a JSON report: per-class precision, recall, F1 and support, macro and weighted F1, accuracy and the confusion matrix, for the train, validation and test splits (GILT: train and test F1 per class). --predictions writes every record's prediction {id, split, truth, label, probs} for eval-classifier. Corrupt images are skipped with a warning and counted.`,
  options: {
    input: { alias: 'i', describe: 'labelled records, NDJSON or CSV (- for stdin)', type: 'string', default: '-' },
    'label-field': { alias: 'l', describe: 'field holding the facet label', type: 'string', demandOption: true },
    'id-field': { describe: 'field holding the record id', type: 'string', default: 'id' },
    'image-field': { describe: 'field holding the image path (relative paths are taken beside the input file)', type: 'string', default: 'image' },
    'group-field': { describe: 'field whose hash decides the split (records without it use their id)', type: 'string', default: 'product' },
    join: { describe: 'NDJSON/CSV whose records add fields (label, weight) to the input records: teacher-score output per article, say', type: 'string' },
    'join-key': { describe: 'input field matched against the --join records\' ids', type: 'string', default: 'product' },
    'join-id-field': { describe: 'id field of the --join records', type: 'string', default: 'id' },
    'weight-field': { describe: 'field holding a per-record loss weight (e.g. teacher-score\'s w), multiplied with the class weight', type: 'string' },
    features: { alias: 'f', describe: 'precomputed features .npy (rows matched to records by id); instead of images', type: 'string' },
    'feature-ids': { describe: 'ids NDJSON of --features (default: <features>.ids.ndjson)', type: 'string' },
    mode: { describe: 'head: train a head on frozen features; finetune: train the tower end to end', choices: ['head', 'finetune'], default: 'head' },
    solver: { describe: 'adam: epochs of mini-batches at --lr with early stopping; lbfgs (--mode head, linear head): fitted to convergence as scikit-learn\'s LogisticRegression, the L2 penalty chosen on the validation split (no --lr, --epochs, --resume)', choices: ['adam', 'lbfgs'], default: 'adam' },
    head: { describe: 'head: a linear layer or a one-hidden-layer MLP', choices: ['linear', 'mlp'], default: 'linear' },
    hidden: { describe: 'hidden units of the MLP head', type: 'number', default: 256, check: positiveInt },
    dropout: { describe: 'dropout before the class layer while training', type: 'number', default: 0, check: share },
    tower: { alias: 't', describe: `image model directory for features (head) or to start from (finetune); a family (${towerNamesText()}[:ALPHA]) for a fresh tower; "pixels" for raw pixels (head)`, type: 'string' },
    'tower-layer': { describe: 'tower layer the head reads (stages: every resolution of the tower averaged and concatenated, as embed --layer stages; colour survives there; stages-max: each stage\'s maximum too)', choices: FEATURE_LAYERS, default: 'pooled' },
    'pixels-size': { describe: 'side of the raw-pixel crop with --tower pixels', type: 'number', default: 16, check: imageSide },
    'input-size': { describe: 'fresh tower or backbone: input side in pixels, or HxW (non-square: padded, not cropped)', type: 'string', default: String(DEFAULT_TOWER.inputSize), check: inputSizeText },
    width: { describe: 'fresh small tower: filters of the first stage', type: 'number', default: DEFAULT_TOWER.width, check: positiveInt },
    blocks: { describe: 'fresh small tower: residual blocks per stage', type: 'number', default: DEFAULT_TOWER.blocksPerStage, check: positiveInt },
    stages: { describe: 'fresh small tower: stages of the tower', type: 'number', default: DEFAULT_TOWER.stages, check: positiveInt },
    'head-epochs': { describe: 'finetune: epochs that train only the head, the tower frozen, before fine-tuning all', type: 'number', default: 0, check: nonNegativeInt },
    stn: { describe: 'finetune: a spatial transformer in front of the tower reads images of this size (N or HxW) and crops the region it chooses to --input-size', type: 'string', check: inputSizeText },
    'stn-min-scale': { describe: '--stn: smallest crop side, as a share of the image side', type: 'number', default: 0.2, check: fraction },
    'stn-max-scale': { describe: '--stn: largest crop side, as a share of the image side', type: 'number', default: 1, check: fraction },
    ...backboneOptions,
    'class-weight': { describe: 'balanced (inverse frequency), none, or a file of {label, weight} records', type: 'string', default: 'balanced' },
    'labels-order': { describe: 'file with one label per line: the classes and their order in every output', type: 'string' },
    'test-fraction': { describe: 'share of groups held out for the test report', type: 'number', default: 0.2, check: share },
    'val-fraction': { describe: 'share of groups held out for early stopping', type: 'number', default: 0.1, check: share },
    ...loopOptions({ epochs: 60, patience: 6, better: 'a lower validation loss', seeds: 'initialisation, shuffling, augmentation' }),
    batch: { describe: 'examples per step', type: 'number', default: 32, check: positiveInt },
    lr: { describe: 'Adam learning rate (default 0.01 for head, 0.001 for finetune)', type: 'number', check: positiveNumber },
    out: { alias: 'o', describe: 'model directory to write', type: 'string', demandOption: true },
    predictions: { describe: 'write every record\'s prediction {id, split, truth, label, probs} to this NDJSON', type: 'string' },
    report: { describe: 'also write the JSON report to this file', type: 'string' },
    ...backendOption,
    ...trainWorkersOption,
  },
  examples: [
    ['atelier embed -m weak.model -i images.ndjson -o feat.npy && atelier train-classifier -i images.ndjson -l silhouette -f feat.npy -o silhouette.model', 'a linear head on weak features'],
    ['atelier train-classifier -i images.ndjson -l pattern --mode finetune --tower weak.model -o pattern.model --predictions p.ndjson', 'fine-tune the weak tower, keep every prediction'],
    ['atelier train-classifier -i styles.csv --id-field id --image-field image -l articleType --tower pixels -o pixels.model', 'the raw-pixel baseline'],
    ['atelier train-classifier -i images.ndjson -l silhouette -f feat.npy --labels-order order.txt --class-weight none -o m', 'a fixed label order, unweighted loss'],
    ['atelier train-classifier -i images.ndjson --join teacher.ndjson -l label --weight-field w --class-weight none --mode finetune --input-size 64 -o size.model', 'SizeNet end to end: images learn the teacher labels, each weighted by its w'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    checkArgs(args);
    const labelsOrder = args['labels-order'] ? await readLabelsOrder(args['labels-order']) : undefined;
    const set = await readLabelledRecords(args.input, {
      labelField: args['label-field'], idField: args['id-field'], groupField: args['group-field'], labelsOrder, labelsOrderFile: args['labels-order'], stdin: io.stdin,
      join: args.join ? { records: await readJoinRecords(args.join, args['join-id-field']), key: args['join-key'] } : undefined,
    });
    if (set.repeated > 0) warn(io, 'train-classifier', `${set.repeated} records repeat an earlier id with the same label; each id is used once`);
    if (set.unjoined > 0) io.stderr.write(`atelier train-classifier: ${set.unjoined} records without a match in ${args.join} by ${args['join-key']} left out\n`);
    const { labels } = set;
    const weightField = args['weight-field'];
    const sampleWeights = weightField ? readSampleWeights(set.records, weightField) : null;
    // Inputs first: a mistake is reported before the backend loads.
    if (args.features) await checkInputFile(args.features);
    if (args.tower && args.tower !== 'pixels' && !isTowerName(args.tower)) await loadMetadata(args.tower);
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const skips = createSkipCounter();
    const lr = args.lr ?? (args.mode === 'head' ? 0.01 : 0.001);
    const head: HeadConfig = { kind: args.head, hidden: args.hidden, dropout: args.dropout, seed: args.seed };

    // Inputs: feature rows (given or computed by a frozen tower) or decoded images for fine-tuning.
    const stn: StnSettings | undefined = args.stn ? { image: parseInputSize(args.stn, '--stn'), minScale: args['stn-min-scale'], maxScale: args['stn-max-scale'], classes: labels.length } : undefined;
    const { input, featureRows, featureDim, store, inputSize, towerNet, towerRecord, fresh, missing, samples } = await openClassifierInputs(args, set.records, skips, io, 'train-classifier', stn);
    writeSkipSummary(skips, io, 'train-classifier');
    if (samples.length === 0) throw new UsageError(`no usable record (${set.records.length} labelled, ${skips.total} corrupt images)`, { file: args.input });
    const bySplit = splitSamples(samples, args['test-fraction'], args['val-fraction']);
    const { counts: trainCounts, absent } = trainingClassCounts(bySplit.train, labels, { file: args.input, field: args['label-field'] });
    if (absent.length) warn(io, 'train-classifier', `no training example of ${absent.map((l) => `'${l}'`).join(', ')}: the model cannot learn them`);
    const classWeights = await classWeightsFor(args['class-weight'], trainCounts, labels);
    io.stderr.write(`atelier train-classifier: ${labels.length} classes, ${bySplit.train.length} train, ${bySplit.val.length} validation, ${bySplit.test.length} test records\n`);

    // The model: a head on feature rows, or an image model (tower + head) trained whole.
    const model = input === 'image' && args.mode === 'finetune' ? buildImageClassifier(towerNet!, labels.length, head) : buildFeatureClassifier(featureDim, labels.length, head);
    const nets = classifierNets(model, stn !== undefined);
    const feed = { store, featureRows, featureDim, inputSize };
    // Fine-tuning on images: the batch's gradient from the training workers (--workers).
    const workers = store && args.mode === 'finetune' ? trainingWorkers(backend, args.workers, io.env) : 1;
    const fingerprint = JSON.stringify({
      labels, field: args['label-field'], weightField: weightField ?? null, mode: args.mode, input, head, featureDim, inputSize, tower: args.tower ?? null, layer: args['tower-layer'],
      weights: Array.from(classWeights), lr, batch: args.batch, split: [args['test-fraction'], args['val-fraction']], n: [bySplit.train.length, bySplit.val.length, bySplit.test.length],
      // Only when set, so round-1 checkpoints keep their fingerprint.
      ...(fresh && args.tower !== 'small' ? { towerRecord } : {}),
      ...(args['head-epochs'] || args['backbone-lr'] !== 1 || args['freeze-bn'] ? { schedule: [args['head-epochs'], args['backbone-lr'], args['freeze-bn']] } : {}),
      ...(stn ? { stn } : {}),
    });
    const state = args.solver === 'lbfgs' ? await fitClassifierLbfgs(model, nets, feed, bySplit, labels, { classWeights, sampleWeights }, io, 'train-classifier') : await trainClassifier(model, nets, feed, bySplit, labels, {
      mode: args.mode, headEpochs: args['head-epochs'], backboneLr: args['backbone-lr']!, freezeBn: args['freeze-bn'], lr, batch: args.batch, classWeights, sampleWeights, workers,
      epochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], seed: args.seed, resume: args.resume, checkpointDir: checkpointDirOf(args), fingerprint,
    }, io, 'train-classifier');

    // Reports per split, predictions, the model.
    const reports = await splitReports(nets, feed, bySplit, labels, { predictions: args.predictions, imageField: args['image-field'], outputs: io.outputs });
    const metadata: ClassifierMetadata = {
      kind: CLASSIFIER_MODEL_KIND, labels, labelField: args['label-field'], input, mode: args.mode, head,
      inputDim: input === 'features' ? featureDim : inputSides(inputSize).height, classWeights: Array.from(classWeights),
      ...(towerRecord ? { tower: towerRecord, towerLayer: args['tower-layer'] } : {}),
      ...(stn ? { stn: { input: stn.image, minScale: stn.minScale, maxScale: stn.maxScale } } : {}),
      log: state.log, bestEpoch: state.bestEpoch,
    };
    await saveModel(classifierForSaving(model, towerNet, input, args.mode, labels.length, head), args.out, { metadata });
    await writeFileAtomic(logPathOf(args.out), JSON.stringify(state.log, null, 2) + '\n', io.outputs);
    const summary = {
      labelField: args['label-field'], labels, mode: args.mode, input, head: head.kind,
      classWeights: Object.fromEntries(labels.map((l, c) => [l, Number(classWeights[c].toPrecision(6))])),
      samples: { train: bySplit.train.length, val: bySplit.val.length, test: bySplit.test.length, withoutFeatures: missing, corruptImages: skips.total },
      epochs: state.epoch, bestEpoch: state.bestEpoch,
      ...reports,
    };
    const json = JSON.stringify(summary, null, 2) + '\n';
    if (args.report) await writeFileAtomic(args.report, json, io.outputs);
    io.stdout.write(json);
  },
});

function checkArgs(args: Args): void {
  if (args.solver === 'lbfgs') {
    // L-BFGS fits a convex problem on fixed rows: a linear head on frozen features, in one go.
    if (args.mode !== 'head') throw new UsageError('lbfgs fits a linear head on frozen features (--mode head); fine-tuning on images trains with --solver adam', { field: '--solver' });
    if (args.head !== 'linear') throw new UsageError('lbfgs fits a linear head; the MLP head trains with --solver adam', { field: '--solver' });
    if (args.dropout > 0) throw new UsageError('lbfgs fits without dropout (its L2 penalty is chosen on the validation split)', { field: '--dropout' });
    if (args.resume) throw new UsageError('lbfgs fits in one pass, with nothing to resume', { field: '--resume' });
  }
  if (args.stn !== undefined && args.mode !== 'finetune') throw new UsageError('the transformer trains with the tower: use --mode finetune', { field: '--stn' });
  if (args['stn-min-scale'] > args['stn-max-scale']) throw new UsageError(`${args['stn-min-scale']} is above --stn-max-scale ${args['stn-max-scale']}`, { field: '--stn-min-scale' });
  if (args['test-fraction'] + args['val-fraction'] >= 1) throw new UsageError('test and validation fractions leave nothing to train on', { field: '--test-fraction' });
  if (args['class-weight'] !== 'balanced' && args['class-weight'] !== 'none' && !existsSync(args['class-weight'])) {
    throw new UsageError(`expected balanced, none or a file of {label, weight} records; '${args['class-weight']}' is neither`, { field: '--class-weight' });
  }
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkLoopOutputs(args);
  await checkFileOutput(args.predictions, '--predictions');
  await checkFileOutput(args.report, '--report');
}
