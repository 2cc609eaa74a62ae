// Binary and multi-class classification metrics: ROC curve and AUC, accuracy, precision/recall,
// per-class F1 and the confusion matrix.

export interface RocPoint {
  threshold: number;
  fpr: number;
  tpr: number;
}

/** ROC curve from scores and 0/1 labels; one point per distinct score, from (0,0) to (1,1). */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>, weights?: ArrayLike<number>): RocPoint[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let positives = 0;
  let negatives = 0;
  for (let i = 0; i < labels.length; i++) {
    const w = weights ? weights[i] : 1;
    if (labels[i] === 1) positives += w;
    else negatives += w;
  }
  const points: RocPoint[] = [{ threshold: Infinity, fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let j = 0; j < order.length; j++) {
    const i = order[j];
    const w = weights ? weights[i] : 1;
    if (labels[i] === 1) tp += w;
    else fp += w;
    if (j === order.length - 1 || scores[order[j + 1]] !== scores[i]) {
      points.push({ threshold: scores[i], fpr: negatives ? fp / negatives : 0, tpr: positives ? tp / positives : 0 });
    }
  }
  return points;
}

/** Area under the ROC curve (trapezoids, so tied scores count one half); NaN when a class is missing. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>, weights?: ArrayLike<number>): number {
  const curve = rocCurve(scores, labels, weights);
  const last = curve[curve.length - 1];
  if (last.fpr === 0 || last.tpr === 0) return NaN;
  let area = 0;
  for (let i = 1; i < curve.length; i++) area += ((curve[i].fpr - curve[i - 1].fpr) * (curve[i].tpr + curve[i - 1].tpr)) / 2;
  return area;
}

export interface BinaryReport {
  threshold: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Confusion counts and rates of `score >= threshold` against 0/1 labels. */
export function binaryReport(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): BinaryReport {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i] >= threshold;
    if (predicted && labels[i] === 1) tp++;
    else if (predicted) fp++;
    else if (labels[i] === 1) fn++;
    else tn++;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    threshold,
    accuracy: scores.length ? (tp + tn) / scores.length : 0,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    tp, fp, tn, fn,
  };
}

export interface ClassReport {
  label: string;
  support: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface MultiClassReport {
  accuracy: number;
  macroF1: number;
  weightedF1: number;
  perClass: ClassReport[];
  /** confusion[true][predicted] counts, rows and columns in `labels` order. */
  confusion: number[][];
  labels: string[];
}

/** Per-class precision/recall/F1, macro and support-weighted F1, and the confusion matrix. */
export function multiClassReport(truth: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[]): MultiClassReport {
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    confusion[truth[i]][predicted[i]]++;
    if (truth[i] === predicted[i]) correct++;
  }
  const perClass = labels.map((label, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[c], 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    return { label, support, precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
  });
  const total = truth.length;
  return {
    accuracy: total ? correct / total : 0,
    macroF1: perClass.reduce((a, c) => a + c.f1, 0) / (k || 1),
    weightedF1: total ? perClass.reduce((a, c) => a + c.f1 * c.support, 0) / total : 0,
    perClass,
    confusion,
    labels,
  };
}
