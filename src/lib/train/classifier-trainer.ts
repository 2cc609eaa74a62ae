// The training of a facet classifier: a class-weighted cross-entropy (with --stn, the same loss on the
// transformer's class evidence too), Adam, the head alone first when asked (report 2.5), gradients from
// training workers when fine-tuning on images, early stopping on the validation loss.
import { tf } from '../backend/tf.js';
import { takeScalar } from '../backend/read.js';
import type { CommandIO } from '../command.js';
import { drawCrops } from '../image/batch.js';
import { multiClassReport } from '../metrics/classification.js';
import { CLASSIFIER_LAYER, CLASSIFIER_MODEL_KIND, headVariables, weightedCrossEntropy, type ClassifierNets } from '../facets/classifier-model.js';
import { chooseLinearProbe, fitLinearProbe, type ProbeData } from '../facets/linear-probe.js';
import type { SplitSample, SplitSamples } from '../facets/classifier-data.js';
import { classifierInputBatch, classifierLogits, type ClassifierFeed } from '../facets/classifier-predict.js';
import { argmax } from '../facets/evaluation.js';
import { startOrResume } from './checkpoint.js';
import { classifierGradients, openClassifierParallel } from './classifier-parallel.js';
import { initialTrainingState, shuffledBatches, trainLoop, type EpochLogEntry, type TrainingState } from './loop.js';

/** Prefix of the tower's own optimizer state in checkpoints (--backbone-lr other than 1). */
const TOWER_OPTIMIZER = 'tower-optimizer/';

export interface ClassifierTrainingSettings {
  mode: 'head' | 'finetune';
  /** Finetune: epochs that train the head alone, the tower frozen. */
  headEpochs: number;
  /** Finetune: the tower's learning rate as a multiple of `lr`; other than 1, the tower has its own Adam. */
  backboneLr: number;
  /** Finetune: keep the tower's BatchNorm statistics (inference mode). */
  freezeBn?: boolean;
  lr: number;
  batch: number;
  classWeights: Float32Array;
  /** Per-record loss weights by id, or null for none. */
  sampleWeights: Map<string, number> | null;
  /** Training workers for the gradient (1: this thread). */
  workers: number;
  epochs: number;
  patience: number;
  stopAfter?: number;
  seed: number;
  resume: boolean;
  checkpointDir: string;
  /** What a checkpoint must have been written for to be resumed. */
  fingerprint: string;
}

/** Trains `model` on the train split, stopping early on the validation loss; returns the run's state (log, best epoch). */
export async function trainClassifier(
  model: tf.LayersModel,
  nets: ClassifierNets,
  feed: ClassifierFeed,
  bySplit: SplitSamples,
  labels: string[],
  s: ClassifierTrainingSettings,
  io: Pick<CommandIO, 'stderr'>,
  command: string,
): Promise<TrainingState> {
  const { store, inputSize } = feed;
  const { classWeights, sampleWeights } = s;
  const weightsOf = (part: SplitSample[]): tf.Tensor1D | undefined => (sampleWeights ? tf.tensor1d(part.map((p) => sampleWeights.get(p.record.id)!)) : undefined);
  // Head-then-fine-tune (report 2.5): the head alone for --head-epochs, then all; the tower may
  // have its own Adam at lr x --backbone-lr (Adam ignores a gradient's scale, so it needs its own).
  const headVars = headVariables(model);
  const headNames = new Set(headVars.map((v) => v.name));
  // Head first: tfjs's Adam keeps its moments by position, so the order must hold across phases.
  const allVars = [...headVars, ...model.trainableWeights.map((w) => w.read() as tf.Variable).filter((v) => !headNames.has(v.name))];
  const headPhase = (epoch: number) => s.mode === 'head' || epoch <= s.headEpochs;
  const optimizer: tf.Optimizer = tf.train.adam(s.lr);
  const towerOptimizer: tf.Optimizer | null = s.mode === 'finetune' && s.backboneLr !== 1 ? tf.train.adam(s.lr * s.backboneLr) : null;
  const weightsTensor = tf.tensor1d(classWeights);
  const parallel = s.workers > 1 ? await openClassifierParallel(model, store!, classWeights, s.workers, nets.boxesNet !== null) : null;

  const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/'], ...(towerOptimizer ? [[towerOptimizer, TOWER_OPTIMIZER] as [tf.Optimizer, string]] : [])];
  const { state, best } = await startOrResume({
    resume: s.resume, dir: s.checkpointDir, fingerprint: s.fingerprint, model, optimizers, fresh: () => initialTrainingState(s.seed, s.fingerprint), io, command,
  });
  const valTruth = bySplit.val.map((v) => v.record.classIndex);
  await trainLoop({
    model, state, best, maxEpochs: s.epochs, patience: s.patience, stopAfter: s.stopAfter, io, command,
    checkpoint: { dir: s.checkpointDir, kind: `${CLASSIFIER_MODEL_KIND}-checkpoint`, optimizers },
    batches: (random) => shuffledBatches(bySplit.train.length, s.batch, random).map((batch) => batch.map((i) => bySplit.train[i])),
    async step(part, random, epoch) {
      const onlyHead = headPhase(epoch);
      // A frozen tower (head phase) or frozen BatchNorm statistics: the model runs in inference mode.
      const training = s.mode === 'head' || !(onlyHead || s.freezeBn);
      const x = parallel ? null : classifierInputBatch(feed, part, store ? random : undefined);
      const y = tf.tensor1d(part.map((p) => p.record.classIndex), 'int32');
      const w = weightsOf(part);
      const { value, grads } = parallel
        ? await classifierGradients(parallel, onlyHead ? headVars : allVars, { slots: part.map((p) => p.slot), crops: drawCrops(store!, part.length, inputSize, random), labels: part.map((p) => p.record.classIndex), sampleWeights: sampleWeights ? part.map((p) => sampleWeights.get(p.record.id)!) : undefined, classWeights }, { inputSize, training })
        : tf.variableGrads(() => tf.addN([nets.trainingNet.apply(x!, { training })].flat().map((logits) => weightedCrossEntropy(logits as tf.Tensor2D, y, weightsTensor, w))) as tf.Scalar, onlyHead ? headVars : allVars);
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
      const logits = await classifierLogits(nets.logitsNet, feed, bySplit.val, labels.length);
      const valLoss = await takeScalar(tf.tidy(() => weightedCrossEntropy(tf.tensor2d(logits, [valTruth.length, labels.length]), tf.tensor1d(valTruth, 'int32'), weightsTensor, weightsOf(bySplit.val))));
      const predicted = valTruth.map((_, i) => argmax(logits, i * labels.length, labels.length));
      const report = multiClassReport(valTruth, predicted, labels);
      return { score: valLoss, metrics: { valLoss, valAccuracy: report.accuracy, valMacroF1: report.macroF1 } };
    },
    onEpoch(line, improved) {
      const entry = line as EpochLogEntry;
      const val = entry.valLoss === undefined ? '' : ` val loss ${entry.valLoss.toFixed(4)} val acc ${entry.valAccuracy!.toFixed(3)} val macro-F1 ${entry.valMacroF1!.toFixed(3)}`;
      io.stderr.write(`atelier ${command}: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)}${val}${improved ? ' *' : ''}\n`);
    },
  });
  await parallel?.close();
  weightsTensor.dispose();
  optimizer.dispose();
  towerOptimizer?.dispose();
  return state;
}

/** The L2 penalties --solver lbfgs tries, strongest first; the validation split picks one (bench/probe.ts's sweep). */
export const LBFGS_L2S = [1e-1, 1e-2, 1e-3, 1e-4];

/**
 * --solver lbfgs: the linear head fitted to convergence as scikit-learn's LogisticRegression (src/lib/facets/
 * linear-probe.ts: standardised features, L2 chosen by validation accuracy; without a validation split
 * sklearn's default C = 1, λ = 1/n) instead of Adam epochs. The fit lands in the model's class layer, so
 * the model saved is the same dense softmax head. One log entry, as one epoch.
 */
export async function fitClassifierLbfgs(
  model: tf.LayersModel, nets: ClassifierNets, feed: ClassifierFeed, bySplit: SplitSamples, labels: string[],
  s: Pick<ClassifierTrainingSettings, 'classWeights' | 'sampleWeights'>, io: Pick<CommandIO, 'stderr'>, command: string,
): Promise<Pick<TrainingState, 'epoch' | 'bestEpoch' | 'log'>> {
  const { featureRows, featureDim } = feed;
  const rowsOf = (part: SplitSample[]): ProbeData => {
    const x = new Float32Array(part.length * featureDim);
    part.forEach((p, i) => x.set(featureRows!.subarray(p.slot * featureDim, (p.slot + 1) * featureDim), i * featureDim));
    return { x, labels: part.map((p) => p.record.classIndex), dim: featureDim };
  };
  const started = performance.now();
  const train = rowsOf(bySplit.train);
  const options = { classes: labels.length, classWeights: s.classWeights, sampleWeights: s.sampleWeights ? bySplit.train.map((p) => s.sampleWeights!.get(p.record.id)!) : undefined };
  const chosen = bySplit.val.length
    ? await chooseLinearProbe(train, rowsOf(bySplit.val), { ...options, l2s: LBFGS_L2S })
    : { fit: await fitLinearProbe(train, { ...options, l2: 1 / Math.max(1, bySplit.train.length) }), sweep: [] };
  const { fit } = chosen;
  const fitted = [tf.tensor2d(fit.weights, [featureDim, labels.length]), tf.tensor1d(fit.bias)];
  model.getLayer(CLASSIFIER_LAYER.logits).setWeights(fitted);
  tf.dispose(fitted);
  const entry: Record<string, unknown> = { epoch: 1, loss: fit.loss, solver: 'lbfgs', l2: fit.l2, iterations: fit.iterations, gradientMax: fit.gradientMax, sweep: chosen.sweep };
  if (bySplit.val.length) {
    const valTruth = bySplit.val.map((v) => v.record.classIndex);
    const logits = await classifierLogits(nets.logitsNet, feed, bySplit.val, labels.length);
    const weights = s.sampleWeights ? tf.tensor1d(bySplit.val.map((p) => s.sampleWeights!.get(p.record.id)!)) : undefined;
    const valLoss = await takeScalar(tf.tidy(() => weightedCrossEntropy(tf.tensor2d(logits, [valTruth.length, labels.length]), tf.tensor1d(valTruth, 'int32'), tf.tensor1d(s.classWeights), weights)));
    weights?.dispose();
    const report = multiClassReport(valTruth, valTruth.map((_, i) => argmax(logits, i * labels.length, labels.length)), labels);
    Object.assign(entry, { valLoss, valAccuracy: report.accuracy, valMacroF1: report.macroF1 });
  }
  entry.seconds = (performance.now() - started) / 1000;
  const sweep = chosen.sweep.map((p) => `${p.l2}: val acc ${p.valAccuracy.toFixed(3)} in ${p.iterations} it`).join(', ');
  io.stderr.write(`atelier ${command}: lbfgs l2 ${fit.l2} in ${fit.iterations} iterations (largest gradient ${fit.gradientMax.toExponential(1)})${sweep ? ` (${sweep})` : ''}\n`);
  return { epoch: 1, bestEpoch: 1, log: [entry] };
}
