// Resuming a training run from its checkpoint directory: weights, optimizer moments and the loop's
// own state, refused when the checkpoint was made with other data or settings.
import { existsSync } from 'node:fs';
import { tf } from '../backend/tf.js';
import { loadModel, restoreOptimizerState } from '../backend/model-io.js';
import { UsageError } from '../command.js';

/** The checkpoint directory of a run writing `out`: `explicit` when given, else `<out>.checkpoint`. */
export function checkpointDirFor(out: string, explicit?: string): string {
  return explicit ?? `${out.replace(/\/+$/, '')}.checkpoint`;
}

export interface ResumedRun<State> {
  state: State;
  /** Every extra tensor of the checkpoint (optimizer state included); the caller disposes them. */
  extraTensors: tf.NamedTensorMap;
}

/**
 * Loads the checkpoint in `dir` into `model` and `optimizer` and returns the saved loop state
 * (stored as `metadata.checkpoint`). A missing checkpoint or one whose fingerprint differs is a
 * usage error naming `dir`.
 */
export async function resumeFromCheckpoint<State extends { fingerprint: string }>(
  dir: string,
  fingerprint: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<ResumedRun<State>> {
  if (!existsSync(dir)) throw new UsageError('no checkpoint to resume from', { file: dir, field: '--resume' });
  const loaded = await loadModel(dir);
  const saved = (loaded.metadata as { checkpoint?: State }).checkpoint;
  if (!saved || saved.fingerprint !== fingerprint) {
    loaded.model.dispose();
    tf.dispose(Object.values(loaded.extraTensors));
    throw new UsageError('checkpoint was made with other data or settings; remove it or drop --resume', { file: dir, field: '--resume' });
  }
  model.setWeights(loaded.model.getWeights());
  loaded.model.dispose();
  await restoreOptimizerState(optimizer, loaded.extraTensors);
  return { state: saved, extraTensors: loaded.extraTensors };
}

/**
 * Resumes a run whose checkpoint also keeps the best weights so far as extra tensors `best/0`,
 * `best/1`, ... (early stopping); returns the loop state and those weights (null when none).
 */
export async function resumeWithBest<State extends { fingerprint: string }>(
  dir: string,
  fingerprint: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  /** Further optimizers saved under their own prefix (e.g. a tower's own Adam). */
  moreOptimizers: Array<[tf.Optimizer, string]> = [],
): Promise<{ state: State; best: tf.Tensor[] | null }> {
  const { state, extraTensors } = await resumeFromCheckpoint<State>(dir, fingerprint, model, optimizer);
  for (const [other, prefix] of moreOptimizers) await restoreOptimizerState(other, extraTensors, prefix);
  const names = Object.keys(extraTensors).filter((n) => n.startsWith('best/')).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const best = names.length ? names.map((n) => extraTensors[n].clone()) : null;
  tf.dispose(Object.values(extraTensors));
  return { state, best };
}
