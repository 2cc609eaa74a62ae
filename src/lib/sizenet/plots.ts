// The student's evaluation as pictures: the ROC curve and predicted probability vs teacher weight.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeChart, type Point } from '../plot/index.js';
import type { OutputGroup } from '../io/atomic.js';
import type { RocPoint } from '../metrics/classification.js';

export async function drawSizenetPlots(dir: string, roc: RocPoint[], probabilities: ArrayLike<number>, labels: ArrayLike<number>, weights: number[], auc: number, outputs?: OutputGroup): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeChart(join(dir, 'roc.png'), {
    title: `SizeNet student ROC (AUC ${auc.toFixed(3)})`,
    x: { label: 'false positive rate', min: 0, max: 1 },
    y: { label: 'true positive rate', min: 0, max: 1 },
    series: [
      { name: 'student', points: roc.map((p) => [p.fpr, p.tpr] as Point), kind: 'line' },
      { name: 'chance', points: [[0, 0], [1, 1]], kind: 'line', dashed: true },
    ],
  }, 1, outputs);
  const pointsWhere = (label: number): Point[] => weights.flatMap((w, i) => ((labels[i] === 1) === (label === 1) ? [[w, probabilities[i]] as Point] : []));
  await writeChart(join(dir, 'probability-vs-weight.png'), {
    title: 'size-issue probability vs teacher weight',
    x: { label: 'teacher weight w = ln(1 + s)' },
    y: { label: 'P(size issue)', min: 0, max: 1 },
    series: [
      { name: 'teacher: size issue', points: pointsWhere(1), kind: 'scatter' },
      { name: 'teacher: no size issue', points: pointsWhere(0), kind: 'scatter' },
    ],
  }, 1, outputs);
}
