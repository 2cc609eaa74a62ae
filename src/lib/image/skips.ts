// Bad images are skipped, never fatal: one warning line each as they happen, one summary line at
// the end of the run ("skipped 3 corrupt images: 2 truncated, 1 not an image").
import { warn } from '../command.js';
import type { ImageFailure, ImageSkipReason } from './decode.js';

/** Words for each reason, as they read in warnings and the summary. */
export const SKIP_REASON_WORDS: Readonly<Record<ImageSkipReason, string>> = {
  truncated: 'truncated',
  'not-an-image': 'not an image',
  empty: 'empty file',
  'too-large': 'over the pixel limit',
  unreadable: 'unreadable',
  corrupt: 'corrupt',
};

export interface SkippedImage {
  /** File path, URL or id the caller knows the image by. */
  source: string;
  reason: ImageSkipReason;
  message: string;
}

export interface SkipCounter {
  /** Notes one skipped image. */
  record(source: string, failure: Pick<ImageFailure, 'reason' | 'message'>): void;
  /** Number of images skipped so far. */
  readonly total: number;
  /** Skipped images in the order they were recorded. */
  readonly skipped: readonly SkippedImage[];
  /** Count per reason, only reasons that occurred. */
  countsByReason(): Map<ImageSkipReason, number>;
  /** The end-of-run line, or undefined when nothing was skipped. */
  summary(): string | undefined;
}

export function createSkipCounter(): SkipCounter {
  const skipped: SkippedImage[] = [];
  const countsByReason = (): Map<ImageSkipReason, number> => {
    const counts = new Map<ImageSkipReason, number>();
    for (const s of skipped) counts.set(s.reason, (counts.get(s.reason) ?? 0) + 1);
    return counts;
  };
  return {
    record(source, failure) {
      skipped.push({ source, reason: failure.reason, message: failure.message });
    },
    get total() {
      return skipped.length;
    },
    get skipped() {
      return skipped;
    },
    countsByReason,
    summary() {
      if (skipped.length === 0) return undefined;
      const parts = [...countsByReason()]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([reason, n]) => `${n} ${SKIP_REASON_WORDS[reason]}`);
      const noun = skipped.length === 1 ? 'image' : 'images';
      return `skipped ${skipped.length} corrupt ${noun}: ${parts.join(', ')}`;
    },
  };
}

/** The warning text for one skipped image: `<source>: skipped, <reason> (<decoder message>)`. */
export function describeSkip(source: string, failure: Pick<ImageFailure, 'reason' | 'message'>): string {
  const detail = failure.message.replace(/\s+/g, ' ').trim();
  const words = SKIP_REASON_WORDS[failure.reason];
  return detail === '' ? `${source}: skipped, ${words}` : `${source}: skipped, ${words} (${detail})`;
}

/** Records a skipped image and writes its one warning line to stderr. */
export function skipImage(
  counter: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  commandName: string,
  source: string,
  failure: Pick<ImageFailure, 'reason' | 'message'>,
): void {
  counter.record(source, failure);
  warn(io, commandName, describeSkip(source.replace(/[\r\n]+/g, ' '), failure));
}

/** Writes the end-of-run summary line to stderr when anything was skipped. */
export function writeSkipSummary(counter: SkipCounter, io: { stderr: NodeJS.WritableStream }, commandName: string): void {
  const line = counter.summary();
  if (line !== undefined) warn(io, commandName, line);
}
