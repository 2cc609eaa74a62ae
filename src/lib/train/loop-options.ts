// The flags of the training loop, shared by every trainer: how long, when to stop early, the seed,
// the checkpoint and --resume / --stop-after. Defaults differ per trainer; names and wording do not.
import { anyInt, positiveInt } from '../options.js';
import { checkModelOutput } from '../backend/model-io.js';
import { checkpointDirFor } from './checkpoint.js';

export interface LoopArgs {
  out: string;
  epochs: number;
  patience: number;
  seed: number;
  checkpoint?: string;
  resume: boolean;
  'stop-after'?: number;
}

export interface LoopDefaults {
  epochs: number;
  patience: number;
  /** What a better epoch is, e.g. 'a lower validation loss'. */
  better: string;
  /** What the seed drives, e.g. 'initialisation, shuffling, augmentation'. */
  seeds: string;
  /** What --patience does when the run has a plateau schedule (default: stop). */
  patienceAction?: string;
}

/** The loop's options for a trainer's option table. */
export function loopOptions(d: LoopDefaults) {
  return {
    epochs: { describe: 'maximum epochs', type: 'number' as const, default: d.epochs, check: positiveInt },
    patience: { describe: `epochs without ${d.better} before ${d.patienceAction ?? 'stopping'}`, type: 'number' as const, default: d.patience, check: positiveInt },
    seed: { describe: `random seed (${d.seeds})`, type: 'number' as const, default: 1, check: anyInt },
    checkpoint: { describe: 'checkpoint directory (default: <out>.checkpoint)', type: 'string' as const },
    resume: { describe: 'continue from the checkpoint', type: 'boolean' as const, default: false },
    'stop-after': { describe: 'end the run after this many epochs (the checkpoint stays; for staged runs)', type: 'number' as const, check: positiveInt },
  };
}

/** The run's checkpoint directory. */
export function checkpointDirOf(args: Pick<LoopArgs, 'out' | 'checkpoint'>): string {
  return checkpointDirFor(args.out, args.checkpoint);
}

/** --out and the checkpoint checked before any work. */
export async function checkLoopOutputs(args: Pick<LoopArgs, 'out' | 'checkpoint'>): Promise<void> {
  await checkModelOutput(args.out, '--out');
  await checkModelOutput(checkpointDirOf(args), '--checkpoint');
}

/** `<out>.log.json`, where every trainer writes its epoch log. */
export function logPathOf(out: string): string {
  return `${out.replace(/\/+$/, '')}.log.json`;
}
