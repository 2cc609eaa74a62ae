import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { initialTrainingState, shuffledBatches, trainLoop } from '../lib/train/loop.js';
import { checkLoopOutputs, loopOptions, checkpointDirOf, type LoopArgs } from '../lib/train/loop-options.js';
import { tf } from '../lib/backend/tf.js';
import { takeScalar, takeValues } from '../lib/backend/read.js';
import { loadModel, saveModel, checkModelOutput, loadMetadata } from '../lib/backend/model-io.js';
import { readNdjson, requireId, requireObject } from '../lib/io/ndjson.js';
import { writeFileAtomic, checkFileOutput, checkDirOutput } from '../lib/io/atomic.js';
import { readFeatureMatrix } from '../lib/io/features.js';
import { splitOf } from '../lib/random.js';
import { buildImageStudentModel, buildStudentModel, studentLayers, studentLogits, weightedBinaryCrossEntropy, type StudentConfig } from '../lib/sizenet/student.js';
import { binaryReport, rocAuc, rocCurve } from '../lib/metrics/classification.js';
import { describeModel, imageFeatures } from '../lib/models/kinds.js';
import { quadrantAnalysis, SIZENET_MODEL_KIND, type SizenetMetadata } from '../lib/sizenet/evaluation.js';
import { nonNegativeNumber, positiveInt, positiveIntList, positiveNumber, probability, share } from '../lib/options.js';

interface Args extends LoopArgs {
  features: string;
  ids?: string;
  teacher: string;
  hidden: string;
  dropout: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  batch: number;
  tau: number;
  'val-fraction': number;
  'test-fraction': number;
  threshold: number;
  unweighted: boolean;
  report?: string;
  plots?: string;
  tower?: string;
  'tower-layer': 'pooled' | 'projection' | 'embedding';
  'image-model'?: string;
  backend: string;
}

interface Sample {
  row: number;
  id: string;
  label: number;
  w: number;
}

function teacherLabel(value: unknown): number | null {
  if (value === 'size issue' || value === true || value === 1 || value === 'size_issue' || value === 'size-issue') return 1;
  if (value === 'no size issue' || value === false || value === 0 || value === 'no_size_issue' || value === 'no-size-issue') return 0;
  return null;
}

export default defineCommand<Args>({
  name: 'train-sizenet',
  summary: "SizeNet's student: learn size issues from image features with the teacher's weighted labels",
  description: `Karessli et al. 2019. Joins a feature matrix (.npy + ids NDJSON, from embed, or a k-hot attribute matrix for the paper's baseline) with teacher-score's output by id and trains an MLP of 4 fully connected layers (three hidden ReLU layers and a sigmoid output) with binary cross-entropy weighted per sample by the teacher's w = ln(1 + s) (--unweighted: all weights 1, for comparison). --tau drops samples whose w is below tau (the paper's weight-importance study). An article scored twice in the teacher file is an error (exit 2) naming both lines; an article may have several feature rows (one per image).

Articles are split by a stable hash of their id into train, validation (early stopping: training stops after --patience epochs without a lower validation loss and the best weights are kept) and test. Each epoch writes a checkpoint; --resume continues from it. The same --seed gives the same model.

The evaluation on the test split (ROC AUC, accuracy, precision and recall at --threshold, and the paper's four quadrants of predicted probability vs teacher weight) goes to stdout as JSON and to --report; --plots DIR writes roc.png and probability-vs-weight.png. With --tower MODEL (the model whose embed produced the features, and --tower-layer as given to embed) --image-model DIR also saves image -> tower -> student as one model, which rise explains from pixels.`,
  options: {
    features: { alias: 'f', describe: 'feature matrix .npy (rows = images or articles)', type: 'string', demandOption: true },
    ids: { describe: 'ids NDJSON of the features (default: <features>.ids.ndjson)', type: 'string' },
    teacher: { alias: 't', describe: 'teacher-score NDJSON ({id, label, w})', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'student model directory to write', type: 'string', demandOption: true },
    hidden: { describe: 'widths of the three hidden layers, comma-separated', type: 'string', default: '256,128,64', check: positiveIntList },
    dropout: { describe: 'dropout after each hidden layer during training', type: 'number', default: 0.2, check: share },
    optimizer: { describe: 'adam or sgd (momentum 0.9)', choices: ['adam', 'sgd'], default: 'adam' },
    lr: { describe: 'learning rate', type: 'number', default: 0.001, check: positiveNumber },
    batch: { describe: 'samples per step', type: 'number', default: 64, check: positiveInt },
    ...loopOptions({ epochs: 100, patience: 10, better: 'a lower validation loss', seeds: 'initialisation, shuffling, dropout' }),
    tau: { describe: 'drop samples whose teacher weight w is below tau', type: 'number', default: 0, check: nonNegativeNumber },
    'val-fraction': { describe: 'share of articles for early stopping', type: 'number', default: 0.15, check: share },
    'test-fraction': { describe: 'share of articles held out for the evaluation', type: 'number', default: 0.2, check: share },
    threshold: { describe: 'probability threshold for accuracy, precision and recall', type: 'number', default: 0.5, check: probability },
    unweighted: { describe: 'ignore the teacher weights (every sample weighs 1)', type: 'boolean', default: false },
    report: { describe: 'also write the evaluation JSON to this file', type: 'string' },
    plots: { describe: 'directory for roc.png and probability-vs-weight.png', type: 'string' },
    tower: { describe: 'image model whose features these are (with --image-model)', type: 'string' },
    'tower-layer': { describe: 'the --layer embed used for the features', choices: ['pooled', 'projection', 'embedding'], default: 'embedding' },
    'image-model': { describe: 'also save image -> tower -> student here (needs --tower)', type: 'string' },
    ...backendOption,
  },
  examples: [
    ['atelier train-sizenet -f emb.npy -t teacher.ndjson -o sizenet.model --plots plots/', 'train the student and plot its evaluation'],
    ['for t in 0 0.5 1; do atelier train-sizenet -f emb.npy -t teacher.ndjson -o s$t --tau $t | jq .test.auc; done', "the paper's weight-importance study"],
    ['atelier train-sizenet -f emb.npy -t teacher.ndjson -o s --tower weak.model --image-model sizenet-image.model', 'a model rise can explain'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    const hidden = args.hidden.split(',').map((s) => Number(s.trim()));
    if (hidden.length !== 3 || hidden.some((h) => !Number.isInteger(h) || h < 1)) throw new UsageError(`expected three positive integers, got '${args.hidden}'`, { field: '--hidden' });
    if (args['image-model'] && !args.tower) throw new UsageError('--image-model needs --tower (the model that made the features)', { field: '--image-model' });
    if (args.tower) await loadMetadata(args.tower);

    const features = await readFeatureMatrix(args.features, args.ids);
    const teacher = new Map<string, { label: number; w: number; line: number }>();
    for await (const { value, file, line } of readNdjson(args.teacher)) {
      const record = requireObject(value, { file, line });
      const id = requireId(record, 'id', { file, line });
      // teacher-score writes one line per article; a second would silently replace the first.
      const earlier = teacher.get(String(id));
      if (earlier) throw new UsageError(`article ${JSON.stringify(String(id))} is already scored on line ${earlier.line}`, { file, line, field: 'id' });
      const label = teacherLabel(record.label);
      if (label === null) throw new UsageError(`expected "size issue" or "no size issue", got ${JSON.stringify(record.label)}`, { file, line, field: 'label' });
      const w = record.w;
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw new UsageError(`expected a non-negative number, got ${JSON.stringify(w)}`, { file, line, field: 'w' });
      teacher.set(String(id), { label, w, line });
    }
    const samples: Sample[] = [];
    let unmatched = 0;
    let belowTau = 0;
    const matchedIds = new Set<string>();
    features.ids.forEach((id, row) => {
      const t = teacher.get(id);
      if (!t) return void unmatched++;
      matchedIds.add(id);
      if (t.w < args.tau) return void belowTau++;
      samples.push({ row, id, label: t.label, w: args.unweighted ? 1 : t.w });
    });
    if (matchedIds.size === 0) throw new UsageError(`no id of ${args.features} is in ${args.teacher} (e.g. '${features.ids[0]}' vs '${teacher.keys().next().value}')`, { file: args.teacher, field: 'id' });
    const split = { train: [] as Sample[], val: [] as Sample[], test: [] as Sample[] };
    for (const s of samples) split[splitOf(`split:${s.id}`, args['test-fraction'], args['val-fraction'])].push(s);
    if (split.train.length === 0 || split.val.length === 0 || split.test.length === 0) {
      throw new UsageError(`too few samples to split (train ${split.train.length}, validation ${split.val.length}, test ${split.test.length})`, { file: args.features });
    }
    for (const part of ['train', 'test'] as const) {
      const labels = new Set(split[part].map((s) => s.label));
      if (labels.size < 2) throw new UsageError(`the ${part} split has only one label; a classifier needs both`, { file: args.teacher, field: 'label' });
    }

    // Said once the inputs are known to be usable, so a mistake prints only its error.
    io.stderr.write(`atelier train-sizenet: ${samples.length} samples of ${matchedIds.size} articles; ${unmatched} feature rows without a teacher score, ${teacher.size - matchedIds.size} teacher articles without features, ${belowTau} below tau ${args.tau}\n`);
    await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const config: StudentConfig = { inputDim: features.dim, hidden, dropout: args.dropout, seed: args.seed };
    const layers = studentLayers(config);
    const model = buildStudentModel(config, layers);
    const optimizer: tf.Optimizer = args.optimizer === 'adam' ? tf.train.adam(args.lr) : tf.train.momentum(args.lr, 0.9);
    const variables = () => model.trainableWeights.map((v) => v.read() as tf.Variable);
    const fingerprint = JSON.stringify({ config, args: [args.optimizer, args.lr, args.batch, args.tau, args.unweighted, args['val-fraction'], args['test-fraction']], n: samples.length });
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/']];
    const { state, best } = await startOrResume({
      resume: args.resume, dir: checkpointDirOf(args), fingerprint, model, optimizers, fresh: () => initialTrainingState(args.seed, fingerprint), io, command: 'train-sizenet',
    });

    const tensorsOf = (part: Sample[]) => {
      const x = new Float32Array(part.length * features.dim);
      part.forEach((s, i) => x.set(features.rows.subarray(s.row * features.dim, (s.row + 1) * features.dim), i * features.dim));
      return { x, y: Float32Array.from(part, (s) => s.label), w: Float32Array.from(part, (s) => s.w) };
    };
    const val = tensorsOf(split.val);
    const predict = async (part: Sample[]): Promise<Float32Array> => {
      const { x } = tensorsOf(part);
      return Float32Array.from(await takeValues(tf.tidy(() => model.predict(tf.tensor2d(x, [part.length, features.dim])) as tf.Tensor)));
    };
    const validationLoss = (): Promise<number> =>
      takeScalar(tf.tidy(() => weightedBinaryCrossEntropy(studentLogits(layers, tf.tensor2d(val.x, [split.val.length, features.dim]), 0, null), tf.tensor1d(val.y), tf.tensor1d(val.w))));

    await trainLoop({
      model, state, best, maxEpochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], minDelta: 1e-6, io, command: 'train-sizenet',
      checkpoint: { dir: checkpointDirOf(args), kind: 'atelier-sizenet-checkpoint', optimizers },
      batches: (random) => shuffledBatches(split.train.length, args.batch, random).map((batch) => batch.map((i) => split.train[i])),
      step(part, random) {
        const { x, y, w } = tensorsOf(part);
        const xt = tf.tensor2d(x, [part.length, features.dim]);
        const yt = tf.tensor1d(y);
        const wt = tf.tensor1d(w);
        const { value, grads } = tf.variableGrads(() => weightedBinaryCrossEntropy(studentLogits(layers, xt, args.dropout, random), yt, wt), variables());
        optimizer.applyGradients(grads);
        tf.dispose([xt, yt, wt, ...Object.values(grads)]);
        return value;
      },
      async validate() {
        const valLoss = await validationLoss();
        return { score: valLoss, metrics: { valLoss, valAuc: rocAuc(await predict(split.val), val.y) } };
      },
      logEntry: (epoch, validation) => ({ epoch: epoch.epoch, loss: epoch.loss, ...validation!.metrics }),
      onEpoch(line, improved) {
        const entry = line as { epoch: number; loss: number; valLoss: number; valAuc: number };
        if (entry.epoch % 10 === 0 || improved) {
          io.stderr.write(`atelier train-sizenet: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)} val loss ${entry.valLoss.toFixed(4)} val AUC ${entry.valAuc.toFixed(3)}\n`);
        }
      },
    });

    const testScores = await predict(split.test);
    const test = tensorsOf(split.test);
    const teacherWeights = split.test.map((s) => teacher.get(s.id)!.w);
    const evaluation = {
      samples: { train: split.train.length, val: split.val.length, test: split.test.length, unmatched, belowTau },
      tau: args.tau,
      weighted: !args.unweighted,
      bestEpoch: state.bestEpoch,
      epochs: state.epoch,
      test: { auc: rocAuc(testScores, test.y), ...binaryReport(testScores, test.y, args.threshold) },
      quadrants: quadrantAnalysis(testScores, test.y, teacherWeights, args.threshold),
      log: state.log,
    };
    const metadata: SizenetMetadata = { kind: SIZENET_MODEL_KIND, config, features: args.features, evaluation: { auc: evaluation.test.auc, accuracy: evaluation.test.accuracy } };
    await saveModel(model, args.out, { metadata: metadata as unknown as Record<string, unknown>, outputs: io.outputs });
    if (args['image-model'] && args.tower) {
      const loaded = await loadModel(args.tower);
      // The same features embed computed for the student: the registry picks the tower's feature layer.
      const features = imageFeatures(describeModel(loaded.model, loaded.metadata, args.tower), loaded.model, args['tower-layer']);
      const imageModel = buildImageStudentModel(features, model);
      // The tower's record (input, resize mode) travels with it, so rise fits images the same way.
      const record = loaded.metadata.tower;
      const towerField = record && typeof record === 'object' ? { ...(record as Record<string, unknown>), source: args.tower } : args.tower;
      await saveModel(imageModel, args['image-model'], { metadata: { ...metadata, kind: SIZENET_MODEL_KIND, tower: towerField, towerLayer: args['tower-layer'] }, outputs: io.outputs });
    }
    const json = JSON.stringify(evaluation, null, 2) + '\n';
    if (args.report) await writeFileAtomic(args.report, json, io.outputs);
    if (args.plots) await (await import('../lib/sizenet/plots.js')).drawSizenetPlots(args.plots, rocCurve(testScores, test.y), testScores, test.y, teacherWeights, evaluation.test.auc, io.outputs);
    io.stdout.write(json);
    optimizer.dispose();
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkLoopOutputs(args);
  await checkModelOutput(args['image-model'], '--image-model');
  await checkFileOutput(args.report, '--report');
  await checkDirOutput(args.plots, '--plots');
}
