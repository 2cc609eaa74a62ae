// A facet classifier's samples split into train, validation and test, and the checks on what the
// training split holds.
import { UsageError } from '../command.js';
import { splitOf, type SplitName } from '../random.js';
import type { ClassifierSample } from './classifier-inputs.js';
import { classCounts } from './labels.js';

/** One training example: its labelled record, its split and where its input is (feature row or stored image). */
export interface SplitSample extends ClassifierSample {
  split: SplitName;
}

export type SplitSamples = Record<SplitName, SplitSample[]>;

/** Each sample's split from a hash of its group, so an image never changes sides between runs. */
export function splitSamples(samples: readonly ClassifierSample[], testFraction: number, valFraction: number): SplitSamples {
  const split: SplitSample[] = samples.map((s) => ({ ...s, split: splitOf(s.record.group, testFraction, valFraction) }));
  return { train: split.filter((s) => s.split === 'train'), val: split.filter((s) => s.split === 'val'), test: split.filter((s) => s.split === 'test') };
}

/**
 * Training examples per class; a training split of fewer than two classes is a usage error (`where`
 * names the input and its label field). `absent` are the labels the model cannot learn.
 */
export function trainingClassCounts(train: readonly SplitSample[], labels: string[], where: { file: string; field: string }): { counts: Float64Array; absent: string[] } {
  const counts = classCounts(train.map((s) => s.record.classIndex), labels.length);
  const present = counts.filter((c) => c > 0).length;
  if (present < 2) throw new UsageError(`the training split holds ${present} class(es); a classifier needs at least two`, where);
  return { counts, absent: labels.filter((_, c) => counts[c] === 0) };
}
