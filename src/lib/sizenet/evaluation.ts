// The SizeNet paper's analysis of the student against its teacher: predicted size-issue probability
// vs teacher weight w, cut into four quadrants (probability above/below the threshold, w above/below
// its median), with how often the student agrees with the teacher's label in each.

export const SIZENET_MODEL_KIND = 'atelier-sizenet';

export interface SizenetMetadata {
  kind: typeof SIZENET_MODEL_KIND;
  config: { inputDim: number; hidden: number[]; dropout: number; seed: number };
  features: string;
  evaluation: { auc: number; accuracy: number };
}

export interface Quadrant {
  /** e.g. "high p, high w". */
  name: string;
  count: number;
  /** Share of the quadrant whose teacher label is "size issue". */
  teacherSizeIssueShare: number;
  /** Share where the student's thresholded prediction equals the teacher's label. */
  agreement: number;
}

export interface QuadrantAnalysis {
  probabilityThreshold: number;
  weightThreshold: number;
  quadrants: Quadrant[];
}

/** Median of a list (0 for an empty one). */
function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function quadrantAnalysis(probabilities: ArrayLike<number>, labels: ArrayLike<number>, weights: number[], threshold: number): QuadrantAnalysis {
  const weightThreshold = median(weights);
  const cells = new Map<string, { count: number; positive: number; agree: number }>();
  for (const p of ['high p', 'low p']) for (const w of ['high w', 'low w']) cells.set(`${p}, ${w}`, { count: 0, positive: 0, agree: 0 });
  for (let i = 0; i < probabilities.length; i++) {
    const predicted = probabilities[i] >= threshold ? 1 : 0;
    const key = `${predicted ? 'high p' : 'low p'}, ${weights[i] >= weightThreshold ? 'high w' : 'low w'}`;
    const cell = cells.get(key)!;
    cell.count++;
    cell.positive += labels[i];
    if (predicted === labels[i]) cell.agree++;
  }
  return {
    probabilityThreshold: threshold,
    weightThreshold,
    quadrants: [...cells].map(([name, c]) => ({
      name,
      count: c.count,
      teacherSizeIssueShare: c.count ? c.positive / c.count : 0,
      agreement: c.count ? c.agree / c.count : 0,
    })),
  };
}
