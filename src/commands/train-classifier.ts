import { existsSync } from 'node:fs';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { splitOf, type SplitName } from '../lib/random.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { tf } from '../lib/backend/tf.js';
import { takeScalar, takeValues } from '../lib/backend/read.js';
import { saveModel, loadMetadata } from '../lib/backend/model-io.js';
import { openAtomicWriteStream, writeFileAtomic, checkFileOutput } from '../lib/io/atomic.js';
import { checkInputFile } from '../lib/io/paths.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { recordedImagePath } from '../lib/image/records.js';
import { DEFAULT_TOWER } from '../lib/models/weak-model.js';
import { isTowerName, parseInputSize } from '../lib/models/towers/index.js';
import { stnParts, transformModel } from '../lib/models/attention/stn.js';
import { transformBox } from '../lib/models/attention/model.js';
import { backboneOptions, towerNamesText, type BackboneArgs } from '../lib/train/tower-options.js';
import { copyMatchingWeights } from '../lib/models/weak-files.js';
import { batchPixels, drawCrops, inputSides } from '../lib/image/batch.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import { classifierGradients, openClassifierParallel } from '../lib/train/classifier-parallel.js';
import { multiClassReport } from '../lib/metrics/classification.js';
import {
  classCounts, classWeightsFor, readJoinRecords, readLabelledRecords, readLabelsOrder, readSampleWeights, type LabelledRecord,
} from '../lib/facets/labels.js';
import {
  CLASSIFIER_MODEL_KIND, buildFeatureClassifier, buildImageClassifier, headVariables, logitsModel, weightedCrossEntropy,
  type ClassifierMetadata, type HeadConfig,
} from '../lib/facets/classifier-model.js';
import { argmax, predictionLine, reportJson, softmaxRow } from '../lib/facets/evaluation.js';
import { openClassifierInputs, type StnSettings } from '../lib/facets/classifier-inputs.js';
import { initialTrainingState, shuffledBatches, trainLoop, type EpochLogEntry } from '../lib/train/loop.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { fraction, imageSide, inputSizeText, nonNegativeInt, positiveInt, positiveNumber, share } from '../lib/options.js';

/** Prefix of the tower's own optimizer state in checkpoints (--backbone-lr other than 1). */
const TOWER_OPTIMIZER = 'tower-optimizer/';

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
  head: 'linear' | 'mlp';
  hidden: number;
  dropout: number;
  tower?: string;
  'tower-layer': 'pooled' | 'projection' | 'embedding';
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

/** One training example: its labelled record and where its input is (feature row or stored image). */
interface Sample {
  record: LabelledRecord;
  split: SplitName;
  /** Row in the feature matrix, or index in the image store. */
  slot: number;
}

export default defineCommand<Args>({
  name: 'train-classifier',
  summary: 'train a facet classifier (head on features, or a fine-tuned tower) with class weights and per-class F1',
  description: `Trains a classifier for one facet of a catalogue (--label-field: silhouette, articleType, pattern, ...), the faceting tool of "Deep Learning at GILT". The input is NDJSON or CSV with an id, the label field and, unless --features is given, an image path per record. An id repeated with the same label is used once (a warning counts them); with another label it is an error (exit 2) naming both lines, as is an id repeated in --join.

--mode head trains a linear or MLP head on frozen features: precomputed ones (--features x.npy with its ids NDJSON, e.g. from embed), or computed here from the images by --tower (a train-weak, train-triplet or train-classifier model), or the raw pixels of a --pixels-size crop with --tower pixels. --mode finetune trains the tower end to end with the head, from --tower (a model directory, or a family name for a fresh tower: small with --width, --blocks, --stages; resnet18, resnet34, resnet50, mobilenetv2[:ALPHA]) at --input-size (N or HxW; non-square inputs are padded, not cropped), or from a pretrained --backbone, with random crops and flips. --head-epochs N first trains the head alone with the tower frozen (in inference mode), then everything, the tower at --lr x --backbone-lr (the report's section 2.5). --stn SIZE puts a spatial transformer in front of the tower (GILT's "spatial transformer attachment"): the model reads images of SIZE, a small localisation net picks a box (its side between --stn-min-scale and --stn-max-scale of the image) and the tower reads that box resampled to --input-size; the transformer learns where to look from the labels (its own class evidence, pooled by its score map, is a second cross-entropy term), is saved in the model, and --predictions gives each image's box {x, y, w, h} as fractions of the image. A family name or --backbone in --mode head gives the features of that tower untrained or pretrained (a linear probe).

The loss is a class-weighted cross-entropy: --class-weight balanced weighs each class by the inverse of its training frequency (n / (K n_c)), none weighs all alike, and a file of {label, weight} records (NDJSON or CSV) sets them by hand. --labels-order names the classes, one per line, in the order every output uses (probabilities, reports, confusion matrices); a label outside it is an error. Without it, classes sort by name.

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
    head: { describe: 'head: a linear layer or a one-hidden-layer MLP', choices: ['linear', 'mlp'], default: 'linear' },
    hidden: { describe: 'hidden units of the MLP head', type: 'number', default: 256, check: positiveInt },
    dropout: { describe: 'dropout before the class layer while training', type: 'number', default: 0, check: share },
    tower: { alias: 't', describe: `image model directory for features (head) or to start from (finetune); a family (${towerNamesText()}[:ALPHA]) for a fresh tower; "pixels" for raw pixels (head)`, type: 'string' },
    'tower-layer': { describe: 'tower layer the head reads', choices: ['pooled', 'projection', 'embedding'], default: 'pooled' },
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
    const sampleWeight = weightField ? readSampleWeights(set.records, weightField) : new Map<string, number>();
    const weightsOf = (part: Sample[]): tf.Tensor1D | undefined => (weightField ? tf.tensor1d(part.map((p) => sampleWeight.get(p.record.id)!)) : undefined);
    // Inputs first: a mistake is reported before the backend loads.
    if (args.features) await checkInputFile(args.features);
    if (args.tower && args.tower !== 'pixels' && !isTowerName(args.tower)) await loadMetadata(args.tower);
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const skips = createSkipCounter();
    const lr = args.lr ?? (args.mode === 'head' ? 0.01 : 0.001);
    const head: HeadConfig = { kind: args.head, hidden: args.hidden, dropout: args.dropout, seed: args.seed };

    // Inputs: feature rows (given or computed by a frozen tower) or decoded images for fine-tuning.
    const stn: StnSettings | undefined = args.stn ? { image: parseInputSize(args.stn, '--stn'), minScale: args['stn-min-scale'], maxScale: args['stn-max-scale'], classes: labels.length } : undefined;
    const { input, featureRows, featureDim, store, inputSize, towerNet, towerRecord, fresh, missing, ...opened } = await openClassifierInputs(args, set.records, skips, io, 'train-classifier', stn);
    const samples: Sample[] = opened.samples.map((s) => ({ ...s, split: 'train' }));
    writeSkipSummary(skips, io, 'train-classifier');
    if (samples.length === 0) throw new UsageError(`no usable record (${set.records.length} labelled, ${skips.total} corrupt images)`, { file: args.input });

    for (const s of samples) s.split = splitOf(s.record.group, args['test-fraction'], args['val-fraction']);
    const bySplit = { train: samples.filter((s) => s.split === 'train'), val: samples.filter((s) => s.split === 'val'), test: samples.filter((s) => s.split === 'test') };
    const trainCounts = classCounts(bySplit.train.map((s) => s.record.classIndex), labels.length);
    if (trainCounts.filter((c) => c > 0).length < 2) {
      throw new UsageError(`the training split holds ${trainCounts.filter((c) => c > 0).length} class(es); a classifier needs at least two`, { file: args.input, field: args['label-field'] });
    }
    const absent = labels.filter((_, c) => trainCounts[c] === 0);
    if (absent.length) warn(io, 'train-classifier', `no training example of ${absent.map((l) => `'${l}'`).join(', ')}: the model cannot learn them`);
    const classWeights = await classWeightsFor(args['class-weight'], trainCounts, labels);
    io.stderr.write(`atelier train-classifier: ${labels.length} classes, ${bySplit.train.length} train, ${bySplit.val.length} validation, ${bySplit.test.length} test records\n`);

    // The model: a head on feature rows, or an image model (tower + head) trained whole.
    const model = input === 'image' && args.mode === 'finetune'
      ? buildImageClassifier(towerNet!, labels.length, head)
      : buildFeatureClassifier(featureDim, labels.length, head);
    const logitsNet = logitsModel(model);
    // With --stn the loss adds the same cross-entropy on the transformer's class evidence, which trains where it looks.
    const evidence = stn ? stnParts(model).evidence : null;
    const trainingNet = evidence ? tf.model({ inputs: model.inputs, outputs: [logitsNet.outputs[0], evidence] }) : logitsNet;
    const boxesNet = stn ? transformModel(model) : null;
    // Head-then-fine-tune (report 2.5): the head alone for --head-epochs, then all; the tower may
    // have its own Adam at lr x --backbone-lr (Adam ignores a gradient's scale, so it needs its own).
    const headVars = headVariables(model);
    const headNames = new Set(headVars.map((v) => v.name));
    // Head first: tfjs's Adam keeps its moments by position, so the order must hold across phases.
    const allVars = [...headVars, ...model.trainableWeights.map((w) => w.read() as tf.Variable).filter((v) => !headNames.has(v.name))];
    const headPhase = (epoch: number) => args.mode === 'head' || epoch <= args['head-epochs'];
    const optimizer: tf.Optimizer = tf.train.adam(lr);
    const towerOptimizer: tf.Optimizer | null = args.mode === 'finetune' && args['backbone-lr'] !== 1 ? tf.train.adam(lr * args['backbone-lr']!) : null;
    const weightsTensor = tf.tensor1d(classWeights);
    // Fine-tuning on images: the batch's gradient from the training workers (--workers).
    // The workers' step knows the class loss only: --stn trains in this thread.
    const workers = store && args.mode === 'finetune' && !stn ? trainingWorkers(backend, args.workers, io.env) : 1;
    const parallel = workers > 1 ? await openClassifierParallel(model, store!, classWeights, workers) : null;

    const inputBatch = (part: Sample[], random?: Parameters<typeof batchPixels>[3]): tf.Tensor => {
      if (store) return tf.tensor4d(batchPixels(store, part.map((s) => s.slot), inputSize, random), [part.length, inputSides(inputSize).height, inputSides(inputSize).width, 3]);
      const x = new Float32Array(part.length * featureDim);
      part.forEach((s, i) => x.set(featureRows!.subarray(s.slot * featureDim, (s.slot + 1) * featureDim), i * featureDim));
      return tf.tensor2d(x, [part.length, featureDim]);
    };
    const logitsOf = async (part: Sample[]): Promise<Float32Array> => {
      const out = new Float32Array(part.length * labels.length);
      for (let start = 0; start < part.length; start += 128) {
        const chunk = part.slice(start, start + 128);
        const x = inputBatch(chunk);
        const y = logitsNet.predict(x) as tf.Tensor;
        x.dispose();
        out.set(await takeValues(y), start * labels.length);
      }
      return out;
    };

    /**
     * The transformer's crop of each image as fractions {x, y, w, h} of the stored image (the photo
     * itself when its aspect is the input's): the model sees the centre crop of the stored image.
     */
    const boxesOf = async (part: Sample[]): Promise<Array<Record<string, number>>> => {
      const boxes: Array<Record<string, number>> = [];
      const { height, width } = inputSides(inputSize);
      const storedH = store!.storedSize;
      const storedW = store!.storedWidth ?? store!.storedSize;
      const [x0, y0] = [(storedW - width) >> 1, (storedH - height) >> 1];
      const stored = (b: { x: number; y: number; w: number; h: number }) => ({ x: (b.x * width + x0) / storedW, y: (b.y * height + y0) / storedH, w: (b.w * width) / storedW, h: (b.h * height) / storedH });
      for (let start = 0; start < part.length; start += 128) {
        const x = inputBatch(part.slice(start, start + 128));
        const t = await takeValues(boxesNet!.predict(x) as tf.Tensor);
        x.dispose();
        for (let i = 0; i < t.length; i += 4) boxes.push(Object.fromEntries(Object.entries(stored(transformBox(t[i], t[i + 1], t[i + 2], t[i + 3]))).map(([k, v]) => [k, Number(v.toFixed(4))])));
      }
      return boxes;
    };

    const fingerprint = JSON.stringify({
      labels, field: args['label-field'], weightField: weightField ?? null, mode: args.mode, input, head, featureDim, inputSize, tower: args.tower ?? null, layer: args['tower-layer'],
      weights: Array.from(classWeights), lr, batch: args.batch, split: [args['test-fraction'], args['val-fraction']], n: [bySplit.train.length, bySplit.val.length, bySplit.test.length],
      // Only when set, so round-1 checkpoints keep their fingerprint.
      ...(fresh && args.tower !== 'small' ? { towerRecord } : {}),
      ...(args['head-epochs'] || args['backbone-lr'] !== 1 || args['freeze-bn'] ? { schedule: [args['head-epochs'], args['backbone-lr'], args['freeze-bn']] } : {}),
      ...(stn ? { stn } : {}),
    });
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/'], ...(towerOptimizer ? [[towerOptimizer, TOWER_OPTIMIZER] as [tf.Optimizer, string]] : [])];
    const { state, best } = await startOrResume({
      resume: args.resume, dir: checkpointDirOf(args), fingerprint, model, optimizers, fresh: () => initialTrainingState(args.seed, fingerprint), io, command: 'train-classifier',
    });
    const valTruth = bySplit.val.map((s) => s.record.classIndex);
    await trainLoop({
      model, state, best, maxEpochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], io, command: 'train-classifier',
      checkpoint: { dir: checkpointDirOf(args), kind: `${CLASSIFIER_MODEL_KIND}-checkpoint`, optimizers },
      batches: (random) => shuffledBatches(bySplit.train.length, args.batch, random).map((batch) => batch.map((i) => bySplit.train[i])),
      async step(part, random, epoch) {
        const onlyHead = headPhase(epoch);
        // A frozen tower (head phase) or frozen BatchNorm statistics: the model runs in inference mode.
        const training = args.mode === 'head' || !(onlyHead || args['freeze-bn']);
        const x = parallel ? null : inputBatch(part, store ? random : undefined);
        const y = tf.tensor1d(part.map((s) => s.record.classIndex), 'int32');
        const w = weightsOf(part);
        const { value, grads } = parallel
          ? await classifierGradients(parallel, onlyHead ? headVars : allVars, { slots: part.map((s) => s.slot), crops: drawCrops(store!, part.length, inputSize, random), labels: part.map((s) => s.record.classIndex), sampleWeights: weightField ? part.map((p) => sampleWeight.get(p.record.id)!) : undefined, classWeights }, { inputSize, training })
          : tf.variableGrads(() => tf.addN([trainingNet.apply(x!, { training })].flat().map((logits) => weightedCrossEntropy(logits as tf.Tensor2D, y, weightsTensor, w))) as tf.Scalar, onlyHead ? headVars : allVars);
        if (towerOptimizer && !onlyHead) {
          const towerGrads: tf.NamedTensorMap = {};
          for (const name of Object.keys(grads)) {
            if (headNames.has(name)) continue;
            towerGrads[name] = grads[name];
            delete grads[name];
          }
          towerOptimizer.applyGradients(towerGrads);
          tf.dispose(Object.values(towerGrads));
        }
        optimizer.applyGradients(grads);
        tf.dispose([...(x ? [x] : []), y, ...Object.values(grads), ...(w ? [w] : [])]);
        return value;
      },
      async validate() {
        if (bySplit.val.length === 0) return null;
        const logits = await logitsOf(bySplit.val);
        const valLoss = await takeScalar(tf.tidy(() => weightedCrossEntropy(tf.tensor2d(logits, [valTruth.length, labels.length]), tf.tensor1d(valTruth, 'int32'), weightsTensor, weightsOf(bySplit.val))));
        const predicted = valTruth.map((_, i) => argmax(logits, i * labels.length, labels.length));
        const report = multiClassReport(valTruth, predicted, labels);
        return { score: valLoss, metrics: { valLoss, valAccuracy: report.accuracy, valMacroF1: report.macroF1 } };
      },
      onEpoch(line, improved) {
        const entry = line as EpochLogEntry;
        const val = entry.valLoss === undefined ? '' : ` val loss ${entry.valLoss.toFixed(4)} val acc ${entry.valAccuracy!.toFixed(3)} val macro-F1 ${entry.valMacroF1!.toFixed(3)}`;
        io.stderr.write(`atelier train-classifier: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)}${val}${improved ? ' *' : ''}\n`);
      },
    });
    await parallel?.close();

    // Reports per split, predictions, the model.
    const reports: Record<string, unknown> = {};
    const predictionsOut = args.predictions ? await openAtomicWriteStream(args.predictions, io.outputs) : null;
    try {
      for (const split of ['train', 'val', 'test'] as const) {
        const part = bySplit[split];
        const logits = await logitsOf(part);
        const boxes = boxesNet ? await boxesOf(part) : null;
        const truth = part.map((s) => s.record.classIndex);
        const predicted = truth.map((_, i) => argmax(logits, i * labels.length, labels.length));
        reports[split] = reportJson(multiClassReport(truth, predicted, labels));
        if (predictionsOut) {
          let text = '';
          part.forEach((s, i) => {
            const image = s.record.record[args['image-field']];
            const recorded = typeof image === 'string' && image !== '' ? { image: recordedImagePath(image, s.record.file) } : {};
            const box = boxes ? { box: boxes[i] } : {};
            text += predictionLine({ id: s.record.id, ...recorded, split, truth: s.record.label, label: labels[predicted[i]], ...box }, labels, softmaxRow(logits.subarray(i * labels.length, (i + 1) * labels.length))) + '\n';
          });
          if (!predictionsOut.stream.write(text)) await new Promise((r) => predictionsOut.stream.once('drain', r));
        }
      }
      await predictionsOut?.commit();
    } catch (err) {
      await predictionsOut?.abort();
      throw err;
    }

    const metadata: ClassifierMetadata = {
      kind: CLASSIFIER_MODEL_KIND, labels, labelField: args['label-field'], input, mode: args.mode, head,
      inputDim: input === 'features' ? featureDim : inputSides(inputSize).height, classWeights: Array.from(classWeights),
      ...(towerRecord ? { tower: towerRecord, towerLayer: args['tower-layer'] } : {}),
      ...(stn ? { stn: { input: stn.image, minScale: stn.minScale, maxScale: stn.maxScale } } : {}),
      log: state.log, bestEpoch: state.bestEpoch,
    };
    // A head trained on features from a tower is saved with the tower in front: classify then reads images.
    let saved = model;
    if (input === 'image' && args.mode === 'head') {
      saved = buildImageClassifier(towerNet!, labels.length, head);
      copyMatchingWeights(model, saved);
    }
    await saveModel(saved, args.out, { metadata });
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
    weightsTensor.dispose();
    optimizer.dispose();
    towerOptimizer?.dispose();
  },
});

function checkArgs(args: Args): void {
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
