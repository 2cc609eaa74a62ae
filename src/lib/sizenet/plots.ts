// The student's evaluation as pictures: the ROC curve and predicted probability vs teacher weight.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { renderChartPng, type ChartSpec } from '../plot/chart.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { RocPoint } from '../metrics/classification.js';

export async function drawSizenetPlots(dir: string, roc: RocPoint[], probabilities: ArrayLike<number>, labels: ArrayLike<number>, weights: number[], auc: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const rocChart: ChartSpec = {
    title: `SizeNet student ROC (AUC ${auc.toFixed(3)})`,
    xLabel: 'false positive rate',
    yLabel: 'true positive rate',
    xRange: [0, 1],
    yRange: [0, 1],
    lines: [
      { name: 'student', points: roc.map((p) => [p.fpr, p.tpr] as [number, number]) },
      { name: 'chance', points: [[0, 0], [1, 1]], dashed: true },
    ],
  };
  const scatter: ChartSpec = {
    title: 'size-issue probability vs teacher weight',
    xLabel: 'teacher weight w = ln(1 + s)',
    yLabel: 'P(size issue)',
    yRange: [0, 1],
    scatter: [
      { name: 'teacher: size issue', points: Array.from(weights.keys()).filter((i) => labels[i] === 1).map((i) => [weights[i], probabilities[i]] as [number, number]) },
      { name: 'teacher: no size issue', points: Array.from(weights.keys()).filter((i) => labels[i] !== 1).map((i) => [weights[i], probabilities[i]] as [number, number]) },
    ],
  };
  await writeFileAtomic(join(dir, 'roc.png'), await renderChartPng(rocChart));
  await writeFileAtomic(join(dir, 'probability-vs-weight.png'), await renderChartPng(scatter));
}
