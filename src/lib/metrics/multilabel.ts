// Multi-label scores against label sets: ROC AUC per label (chance 0.5 whatever the label's
// frequency), its macro mean, and the micro F1 of the labels scored at least 0.5.
import { rocAuc } from './classification.js';

export interface MultiLabelReport {
  images: number;
  /** Mean of the per-label AUCs that are defined (labels with positives and negatives here); null when none is. */
  macroAuc: number | null;
  microF1: number;
  perLabel: Array<{ label: string; auc: number | null; support: number }>;
}

/** scores row-major [truth.length, labels.length]; truth the label indices of each image. */
export function multiLabelReport(scores: Float32Array, truth: number[][], labels: string[]): MultiLabelReport {
  const n = truth.length;
  const c = labels.length;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const perLabel = labels.map((label, j) => {
    const column = new Float32Array(n);
    const positive = new Uint8Array(n);
    for (let i = 0; i < n; i++) column[i] = scores[i * c + j];
    truth.forEach((set, i) => set.includes(j) && (positive[i] = 1));
    let support = 0;
    for (let i = 0; i < n; i++) {
      support += positive[i];
      const predicted = column[i] >= 0.5;
      if (predicted && positive[i]) tp++;
      else if (predicted) fp++;
      else if (positive[i]) fn++;
    }
    const auc = support > 0 && support < n ? Number(rocAuc(column, positive).toFixed(4)) : null;
    return { label, auc, support };
  });
  const defined = perLabel.filter((p) => p.auc !== null).map((p) => p.auc!);
  return {
    images: n,
    macroAuc: defined.length ? Number((defined.reduce((a, b) => a + b, 0) / defined.length).toFixed(4)) : null,
    microF1: tp === 0 ? 0 : Number(((2 * tp) / (2 * tp + fp + fn)).toFixed(4)),
    perLabel,
  };
}
