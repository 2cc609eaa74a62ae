// Resuming a training run from its checkpoint directory: weights, optimizer moments and the loop's
// own state, refused when the checkpoint was made with other data or settings.
import { existsSync } from 'node:fs';
import { tf } from '../backend/tf.js';
import { loadModel, restoreOptimizerState, type LoadedModel } from '../backend/model-io.js';
import { UsageError, type CommandIO } from '../command.js';
import { upgradeState, type TrainingState } from './loop.js';

/** The checkpoint directory of a run writing `out`: `explicit` when given, else `<out>.checkpoint`. */
export function checkpointDirFor(out: string, explicit?: string): string {
  return explicit ?? `${out.replace(/\/+$/, '')}.checkpoint`;
}

/** Loads the checkpoint in `dir`; a missing one, or one made with another fingerprint, is a usage error naming it. */
export async function openCheckpoint<State extends { fingerprint: string }>(dir: string, fingerprint: string): Promise<LoadedModel & { state: State }> {
  if (!existsSync(dir)) throw new UsageError('no checkpoint to resume from', { file: dir, field: '--resume' });
  const loaded = await loadModel(dir);
  const saved = (loaded.metadata as { checkpoint?: State }).checkpoint;
  if (!saved || saved.fingerprint !== fingerprint) {
    loaded.model.dispose();
    tf.dispose(Object.values(loaded.extraTensors));
    throw new UsageError('checkpoint was made with other data or settings; remove it or drop --resume', { file: dir, field: '--resume' });
  }
  return { ...loaded, state: saved };
}

export interface ResumedRun<State> {
  state: State;
  /** Every extra tensor of the checkpoint (optimizer state included); the caller disposes them. */
  extraTensors: tf.NamedTensorMap;
}

/**
 * Loads the checkpoint in `dir` into `model` and `optimizer` and returns the saved loop state
 * (stored as `metadata.checkpoint`).
 */
export async function resumeFromCheckpoint<State extends { fingerprint: string }>(
  dir: string,
  fingerprint: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<ResumedRun<State>> {
  const loaded = await openCheckpoint<State>(dir, fingerprint);
  model.setWeights(loaded.model.getWeights());
  loaded.model.dispose();
  await restoreOptimizerState(optimizer, loaded.extraTensors);
  return { state: loaded.state, extraTensors: loaded.extraTensors };
}

export interface StartOptions {
  resume: boolean;
  dir: string;
  fingerprint: string;
  /** The model to load the checkpoint's weights into; null: use the checkpoint's own model. */
  model: tf.LayersModel | null;
  /** Every optimizer with state, and the prefix of its tensors in the checkpoint. */
  optimizers: Array<[tf.Optimizer, string]>;
  /** The state of a new run. */
  fresh(): TrainingState;
  io: Pick<CommandIO, 'stderr'>;
  command: string;
}

export interface StartedRun {
  state: TrainingState;
  model: tf.LayersModel;
  /** The best epoch's weights kept by the checkpoint (`best/0`, `best/1`, ...), or null. */
  best: tf.Tensor[] | null;
  /** The checkpoint's metadata ({} for a new run). */
  metadata: Record<string, unknown>;
}

/** A new run, or the run in the checkpoint when resuming: weights, every optimizer's state, best weights. */
export async function startOrResume(options: StartOptions): Promise<StartedRun> {
  if (!options.resume) return { state: options.fresh(), model: options.model!, best: null, metadata: {} };
  const loaded = await openCheckpoint<TrainingState>(options.dir, options.fingerprint);
  let model = loaded.model;
  if (options.model) {
    options.model.setWeights(loaded.model.getWeights());
    loaded.model.dispose();
    model = options.model;
  }
  for (const [optimizer, prefix] of options.optimizers) await restoreOptimizerState(optimizer, loaded.extraTensors, prefix);
  const names = Object.keys(loaded.extraTensors).filter((n) => n.startsWith('best/')).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const best = names.length ? names.map((n) => loaded.extraTensors[n].clone()) : null;
  tf.dispose(Object.values(loaded.extraTensors));
  const state = upgradeState(loaded.state);
  options.io.stderr.write(`atelier ${options.command}: resuming after epoch ${state.epoch}\n`);
  return { state, model, best, metadata: loaded.metadata as Record<string, unknown> };
}
