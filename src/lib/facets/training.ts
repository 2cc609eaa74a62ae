// The epoch loop train-classifier and train-triplet share: shuffled passes, a validation score
// after each epoch, early stopping with the best weights kept, a checkpoint after every epoch.
import { tf } from '../backend/tf.js';
import { createRandom, type Random, type RandomState } from '../random.js';

/** One line of `<model>.log.json` (an array of these, as train-weak writes). */
export interface EpochLogEntry {
  epoch: number;
  loss: number;
  seconds: number;
  samplesPerSecond: number;
  [metric: string]: number | undefined;
}

export interface TrainingState {
  epoch: number;
  /** Best validation score so far (lower is better). */
  bestScore: number;
  bestEpoch: number;
  sinceBest: number;
  random: RandomState;
  log: EpochLogEntry[];
  /** Data and settings the run was started with; a resume with others is refused. */
  fingerprint: string;
}

export function initialTrainingState(seed: number, fingerprint: string): TrainingState {
  return { epoch: 0, bestScore: Infinity, bestEpoch: 0, sinceBest: 0, random: createRandom(seed).state(), log: [], fingerprint };
}

export interface EpochResult {
  loss: number;
  samples: number;
}

export interface Validation {
  /** Lower is better (a loss, or minus an accuracy). */
  score: number;
  /** Logged as they are (valLoss, valAccuracy, ...). */
  metrics: Record<string, number>;
}

export interface EpochLoopOptions {
  state: TrainingState;
  maxEpochs: number;
  /** Epochs without a better validation score before stopping. */
  patience: number;
  /** End this run after so many epochs (the checkpoint stays). */
  stopAfter?: number;
  runEpoch(random: Random, epoch: number): Promise<EpochResult>;
  /** null when there is no validation set: every epoch then counts as the best. */
  validate(): Promise<Validation | null>;
  /** Called when an epoch is the best so far: keep its weights. */
  onBest(): void;
  /** Called after every epoch with the state to store. */
  saveCheckpoint(state: TrainingState): Promise<void>;
  onEpoch?(entry: EpochLogEntry, improved: boolean): void;
}

/** Runs epochs until maxEpochs, patience or stopAfter; returns how many ran in this call. */
export async function runEpochs(options: EpochLoopOptions): Promise<number> {
  const { state } = options;
  let ran = 0;
  while (state.epoch < options.maxEpochs && state.sinceBest < options.patience && ran < (options.stopAfter ?? Infinity)) {
    const epoch = state.epoch + 1;
    const random = createRandom(state.random);
    const started = Date.now();
    const result = await options.runEpoch(random, epoch);
    const seconds = (Date.now() - started) / 1000;
    const validation = await options.validate();
    const entry: EpochLogEntry = { epoch, loss: result.loss, ...(validation?.metrics ?? {}), seconds, samplesPerSecond: result.samples / Math.max(seconds, 1e-6) };
    const score = validation ? validation.score : -epoch;
    const improved = score < state.bestScore - 1e-9;
    if (improved) {
      state.bestScore = score;
      state.bestEpoch = epoch;
      state.sinceBest = 0;
      options.onBest();
    } else state.sinceBest++;
    state.epoch = epoch;
    state.random = random.state();
    state.log.push(entry);
    options.onEpoch?.(entry, improved);
    await options.saveCheckpoint(state);
    ran++;
  }
  return ran;
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

/** Copies of a model's weights (the best epoch's), to restore at the end or store in a checkpoint. */
export function snapshotWeights(model: tf.LayersModel): tf.Tensor[] {
  return model.getWeights().map((t) => t.clone());
}

/** Best weights as named tensors for a checkpoint's extraTensors. */
export function namedSnapshot(weights: tf.Tensor[] | null, prefix = 'best/'): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  weights?.forEach((t, i) => (out[`${prefix}${i}`] = t));
  return out;
}

