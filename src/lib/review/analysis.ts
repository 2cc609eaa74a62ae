// What the review app computes from the current labels and one model's predictions: per-class
// P/R/F1 with the confusion matrix, false negatives and false positives per class, and the
// "needs review" queue (GILT "Image Tagging Refining": the confident mistakes are often wrong tags).
import { multiClassReport, type MultiClassReport } from '../metrics/classification.js';
import type { ScoredImage } from './db.js';

/** The report of predictions against the current labels; labels outside `labels` are added at the end. */
export function currentReport(images: ScoredImage[], labels: string[]): MultiClassReport {
  const all = [...labels];
  for (const im of images) for (const l of [im.label, im.predicted]) if (!all.includes(l)) all.push(l);
  const index = new Map(all.map((l, i) => [l, i]));
  return multiClassReport(images.map((im) => index.get(im.label)!), images.map((im) => index.get(im.predicted)!), all);
}

export interface Mistake {
  id: string;
  path: string;
  split: string;
  label: string;
  predicted: string;
  /** P(predicted) and P(label) under the model, when it gave probabilities. */
  predictedProbability: number | null;
  labelProbability: number | null;
  /** How confidently the model disagrees: P(predicted) - P(label), 1 without probabilities. */
  disagreement: number;
}

export function mistakeOf(im: ScoredImage): Mistake {
  const pp = im.probs?.[im.predicted] ?? null;
  const pl = im.probs ? (im.probs[im.label] ?? 0) : null;
  return {
    id: im.id, path: im.path, split: im.split, label: im.label, predicted: im.predicted,
    predictedProbability: pp, labelProbability: pl,
    disagreement: pp !== null && pl !== null ? pp - pl : 1,
  };
}

function byDisagreement(a: Mistake, b: Mistake): number {
  return b.disagreement - a.disagreement || a.id.localeCompare(b.id);
}

/** Images of `label` the model called something else (false negatives of the class), most confident first. */
export function falseNegatives(images: ScoredImage[], label: string): Mistake[] {
  return images.filter((im) => im.label === label && im.predicted !== label).map(mistakeOf).sort(byDisagreement);
}

/** Images the model called `label` that carry another label (false positives of the class). */
export function falsePositives(images: ScoredImage[], label: string): Mistake[] {
  return images.filter((im) => im.predicted === label && im.label !== label).map(mistakeOf).sort(byDisagreement);
}

/** Every disagreement, the most confident first: the queue of tags to look at. */
export function needsReview(images: ScoredImage[]): Mistake[] {
  return images.filter((im) => im.predicted !== im.label).map(mistakeOf).sort(byDisagreement);
}
