// The one training loop every trainer runs: batches from a seeded generator, one step callback per
// batch (the trainer's single gradient call site), a validation score after each epoch, a plateau
// learning-rate schedule, early stopping with the best epoch's weights, a checkpoint after every
// epoch, bit-exact --resume and --stop-after.
import { tf } from '../backend/tf.js';
import { optimizerStateTensors, saveModel } from '../backend/model-io.js';
import { takeValues } from '../backend/read.js';
import { warn, type CommandIO } from '../command.js';
import { startProgress } from '../progress.js';
import { createRandom, type Random, type RandomState } from '../random.js';

/** One line of `<model>.log.json` (the default shape; a trainer may log its own). */
export interface EpochLogEntry {
  epoch: number;
  loss: number;
  seconds: number;
  samplesPerSecond: number;
  [metric: string]: number | undefined;
}

/** What a checkpoint keeps of the loop: enough to continue it exactly. */
export interface TrainingState {
  epoch: number;
  /** Best validation score so far (lower is better). */
  bestScore: number;
  bestEpoch: number;
  sinceBest: number;
  random: RandomState;
  log: object[];
  /** Data and settings the run was started with; a resume with others is refused. */
  fingerprint: string;
  /** Current learning rate and epochs since it last changed (plateau schedule only). */
  lr?: number;
  sinceDecay?: number;
}

export function initialTrainingState(seed: number, fingerprint: string, more: Partial<TrainingState> = {}): TrainingState {
  return { epoch: 0, bestScore: Infinity, bestEpoch: 0, sinceBest: 0, random: createRandom(seed).state(), log: [], fingerprint, ...more };
}

/** Reads a loop state saved by an earlier version (train-weak kept `best` = P@1, train-sizenet `bestLoss`). */
export function upgradeState(saved: TrainingState & { best?: number; bestLoss?: number }): TrainingState {
  const { best, bestLoss, ...state } = saved;
  if (state.bestScore === undefined) state.bestScore = bestLoss ?? (best !== undefined ? -best : Infinity);
  state.bestEpoch ??= 0;
  return state;
}

export interface Validation {
  /** Lower is better (a loss, or minus an accuracy). */
  score: number;
  /** Logged as they are (valLoss, valAccuracy, ...). */
  metrics: object;
}

/** Divide the learning rate by `factor` after `patience` epochs without a better score. */
export interface PlateauSchedule {
  optimizer: tf.Optimizer;
  patience: number;
  factor: number;
}

export interface CheckpointSpec {
  dir: string;
  /** metadata.kind of the checkpoint directory. */
  kind: string;
  /** Every optimizer with state, and the prefix of its tensors. */
  optimizers: Array<[tf.Optimizer, string]>;
  /** More metadata saved beside the loop state (e.g. the tower record). */
  metadata?: Record<string, unknown>;
}

export interface EpochSummary {
  epoch: number;
  loss: number;
  seconds: number;
  samples: number;
  /** The learning rate the epoch ran at (plateau schedule only). */
  lr?: number;
}

export interface TrainLoopOptions<Batch> {
  model: tf.LayersModel;
  state: TrainingState;
  maxEpochs: number;
  /** Epochs without a better validation score before stopping. */
  patience: number;
  /** End this run after so many epochs (the checkpoint stays). */
  stopAfter?: number;
  /** An epoch improves when its score is below the best by more than this; default 1e-9. */
  minDelta?: number;
  /** Keep the best epoch's weights and end with them (default); false ends with the last epoch's. */
  keepBest?: boolean;
  /** Best weights so far (from a checkpoint, or the starting model's); the loop owns and disposes them. */
  best?: tf.Tensor[] | null;
  schedule?: PlateauSchedule;
  checkpoint: CheckpointSpec;
  /** The epoch's batches, drawn from `random` (the loop saves its state after each epoch). */
  batches(random: Random, epoch: number): Batch[];
  /**
   * One optimisation step on a batch; returns its loss, as a number or as a scalar tensor that the
   * loop reads (and disposes) a few steps later, so a GPU is not made to wait for the CPU every step.
   */
  step(batch: Batch, random: Random, epoch: number): number | tf.Scalar | Promise<number | tf.Scalar>;
  /** Samples in a batch, for samples/s (default: its length). */
  samplesIn?(batch: Batch): number;
  /** null when there is no validation set: every epoch then counts as the best. */
  validate(): Promise<Validation | null> | Validation | null;
  /** The log line of an epoch (default: epoch, loss, the validation metrics, seconds, samples/s). */
  logEntry?(summary: EpochSummary, validation: Validation | null): object;
  onEpoch?(entry: object, improved: boolean, summary: EpochSummary): void;
  io: Pick<CommandIO, 'stderr'>;
  command: string;
}

/** Sets an optimizer's learning rate (SGD and momentum cache it as a scalar, so use their setter). */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { setLearningRate?(lr: number): void; learningRate: number };
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Steps whose losses are read back together: one GPU->CPU read per so many steps. */
const LOSS_READ_EVERY = 16;

/**
 * Runs epochs until maxEpochs, patience or stopAfter, checkpointing each; ends with the best weights
 * set in the model (keepBest). Returns how many epochs ran in this call.
 */
export async function trainLoop<Batch>(options: TrainLoopOptions<Batch>): Promise<number> {
  const { state, model, schedule } = options;
  const keepBest = options.keepBest ?? true;
  const minDelta = options.minDelta ?? 1e-9;
  let best = options.best ?? null;
  let ran = 0;
  try {
    while (state.epoch < options.maxEpochs && state.sinceBest < options.patience && ran < (options.stopAfter ?? Infinity)) {
      const epoch = state.epoch + 1;
      const random = createRandom(state.random);
      if (schedule) setLearningRate(schedule.optimizer, state.lr!);
      const started = Date.now();
      const batches = options.batches(random, epoch);
      const bar = startProgress(options.io.stderr, { total: batches.length, label: `epoch ${epoch}` });
      let lossSum = 0;
      let samples = 0;
      // Losses still on the device, added in step order (the sum is the same as reading each at once).
      let pending: tf.Scalar[] = [];
      const readPending = async () => {
        if (pending.length === 0) return;
        const stacked = tf.stack(pending);
        tf.dispose(pending);
        pending = [];
        for (const loss of await takeValues(stacked)) lossSum += loss;
      };
      try {
        for (const batch of batches) {
          const loss = await options.step(batch, random, epoch);
          if (typeof loss === 'number') {
            await readPending();
            lossSum += loss;
          } else {
            pending.push(loss);
            if (pending.length >= LOSS_READ_EVERY) await readPending();
          }
          samples += options.samplesIn ? options.samplesIn(batch) : (batch as unknown as ArrayLike<unknown>).length;
          bar.tick(1);
        }
        await readPending();
      } finally {
        tf.dispose(pending);
        bar.stop();
      }
      const seconds = (Date.now() - started) / 1000;
      const summary: EpochSummary = { epoch, loss: lossSum / Math.max(batches.length, 1), seconds, samples, ...(schedule ? { lr: state.lr } : {}) };
      const validation = await options.validate();
      const entry = options.logEntry
        ? options.logEntry(summary, validation)
        : { epoch, ...(schedule ? { lr: summary.lr } : {}), loss: summary.loss, ...(validation?.metrics ?? {}), seconds, samplesPerSecond: samples / Math.max(seconds, 1e-6) };
      const score = validation ? validation.score : -epoch;
      const improved = score < state.bestScore - minDelta;
      if (improved) {
        state.bestScore = score;
        state.bestEpoch = epoch;
        state.sinceBest = 0;
        if (schedule) state.sinceDecay = 0;
        if (keepBest) {
          best?.forEach((t) => t.dispose());
          best = model.getWeights().map((t) => t.clone());
        }
      } else {
        state.sinceBest++;
        if (schedule) {
          state.sinceDecay = (state.sinceDecay ?? 0) + 1;
          if (state.sinceDecay >= schedule.patience) {
            state.lr! /= schedule.factor;
            state.sinceDecay = 0;
          }
        }
      }
      state.epoch = epoch;
      state.random = random.state();
      state.log.push(entry);
      options.onEpoch?.(entry, improved, summary);
      await saveCheckpoint(model, state, best, options.checkpoint);
      ran++;
    }
    if (ran === 0 && state.epoch > 0) warn(options.io, options.command, `nothing left to train (stopped after epoch ${state.epoch}); model written from the checkpoint`);
    if (keepBest && best) model.setWeights(best);
  } finally {
    best?.forEach((t) => t.dispose());
  }
  return ran;
}

async function saveCheckpoint(model: tf.LayersModel, state: TrainingState, best: tf.Tensor[] | null, spec: CheckpointSpec): Promise<void> {
  const extraTensors: tf.NamedTensorMap = {};
  for (const [optimizer, prefix] of spec.optimizers) Object.assign(extraTensors, await optimizerStateTensors(optimizer, prefix));
  best?.forEach((t, i) => (extraTensors[`best/${i}`] = t));
  await saveModel(model, spec.dir, { extraTensors, metadata: { kind: spec.kind, checkpoint: state, ...spec.metadata } });
}

/** Indices 0..n-1 in a random order (Fisher–Yates), cut into batches of `size`. */
export function shuffledBatches(n: number, size: number, random: Random): number[][] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const out: number[][] = [];
  for (let start = 0; start < n; start += size) out.push(order.slice(start, start + size));
  return out;
}
