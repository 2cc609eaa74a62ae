// What GILT's results app shows for a facet model: per-class F1, the confusion matrix (as a heat
// map), and the "false negatives view": per class, the images of it the model called something else.
import { escapeXml } from '../plot/chart.js';
import type { MultiClassReport } from '../metrics/classification.js';

export interface ScoredPrediction {
  id: string;
  /** Class index of the truth and of the prediction. */
  truth: number;
  predicted: number;
  /** Probabilities in label order, when the predictions carried them. */
  probs?: number[];
  /** Extra fields to carry into the false-negative records (image path, split). */
  extra?: Record<string, unknown>;
}

export interface FalseNegative {
  /** The true class the model missed. */
  label: string;
  id: string;
  predicted: string;
  /** Probability the model gave its (wrong) prediction and the true class, when known. */
  predictedProbability?: number;
  trueProbability?: number;
  [field: string]: unknown;
}

/**
 * False negatives per class, classes in label order; within a class the most confident mistakes
 * first (the ones most worth a look: often a wrong tag, GILT "Image Tagging Refining").
 */
export function falseNegativesByClass(predictions: ScoredPrediction[], labels: string[]): FalseNegative[] {
  const out: FalseNegative[] = [];
  for (let c = 0; c < labels.length; c++) {
    const missed = predictions.filter((p) => p.truth === c && p.predicted !== c);
    missed.sort((a, b) => (b.probs?.[b.predicted] ?? 0) - (a.probs?.[a.predicted] ?? 0) || a.id.localeCompare(b.id));
    for (const p of missed) {
      out.push({
        label: labels[c],
        id: p.id,
        predicted: labels[p.predicted],
        ...(p.probs ? { predictedProbability: p.probs[p.predicted], trueProbability: p.probs[c] } : {}),
        ...(p.extra ?? {}),
      });
    }
  }
  return out;
}

/** Shade of a cell: white for 0 through blue for the largest share of its row. */
function cellColour(share: number): string {
  const t = Math.max(0, Math.min(1, share));
  const mix = (from: number, to: number) => Math.round(from + (to - from) * t);
  return `rgb(${mix(255, 8)},${mix(255, 69)},${mix(255, 148)})`;
}

/**
 * The confusion matrix as an SVG heat map: rows are the truth, columns the prediction, both in
 * label order; each cell shows its count, shaded by its share of the row (the class's recall on
 * the diagonal), and each row ends with the class's F1.
 */
export function confusionMatrixSvg(report: MultiClassReport, title: string): string {
  const k = report.labels.length;
  const cell = Math.max(28, Math.min(64, Math.floor(640 / Math.max(k, 1))));
  const longest = Math.max(...report.labels.map((l) => l.length), 4);
  const labelWidth = Math.min(220, 12 + longest * 7);
  const top = 60 + Math.min(160, longest * 6);
  const left = labelWidth + 10;
  const width = left + k * cell + 90;
  const height = top + k * cell + 50;
  const font = 'DejaVu Sans, Helvetica, Arial, sans-serif';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" font-family="${font}" font-size="15" text-anchor="middle">${escapeXml(title)}</text>`,
    `<text x="${left + (k * cell) / 2}" y="42" font-family="${font}" font-size="12" text-anchor="middle" fill="#444">predicted</text>`,
    `<text x="14" y="${top + (k * cell) / 2}" font-family="${font}" font-size="12" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${top + (k * cell) / 2})">true</text>`,
    `<text x="${left + k * cell + 45}" y="${top - 8}" font-family="${font}" font-size="12" text-anchor="middle" fill="#444">F1</text>`,
  ];
  const fontSize = Math.max(9, Math.min(13, cell / 3));
  report.labels.forEach((label, c) => {
    const x = left + c * cell + cell / 2;
    parts.push(`<text x="${x}" y="${top - 8}" font-family="${font}" font-size="${fontSize}" transform="rotate(-45 ${x} ${top - 8})">${escapeXml(label)}</text>`);
  });
  report.confusion.forEach((row, r) => {
    const y = top + r * cell;
    const total = row.reduce((a, b) => a + b, 0);
    parts.push(`<text x="${left - 6}" y="${y + cell / 2 + 4}" font-family="${font}" font-size="${fontSize}" text-anchor="end">${escapeXml(report.labels[r])}</text>`);
    row.forEach((count, c) => {
      const share = total ? count / total : 0;
      const x = left + c * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${cellColour(share)}" stroke="#ccc"/>`);
      parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" font-family="${font}" font-size="${fontSize}" text-anchor="middle" fill="${share > 0.5 ? 'white' : 'black'}">${count}</text>`);
    });
    parts.push(`<text x="${left + k * cell + 45}" y="${y + cell / 2 + 4}" font-family="${font}" font-size="${fontSize}" text-anchor="middle">${report.perClass[r].f1.toFixed(2)}</text>`);
  });
  parts.push(
    `<text x="${left + (k * cell) / 2}" y="${height - 16}" font-family="${font}" font-size="12" text-anchor="middle" fill="#444">accuracy ${report.accuracy.toFixed(3)} · macro F1 ${report.macroF1.toFixed(3)} · weighted F1 ${report.weightedF1.toFixed(3)}</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n');
}

/** A report as JSON-ready data, with the confusion rows named. */
export function reportJson(report: MultiClassReport): Record<string, unknown> {
  return {
    labels: report.labels,
    accuracy: report.accuracy,
    macroF1: report.macroF1,
    weightedF1: report.weightedF1,
    support: report.confusion.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0),
    perClass: report.perClass,
    confusion: report.confusion,
  };
}

/** Index of the largest value (the first on ties). */
/** Probabilities of one row of logits (softmax, shifted by the row's maximum for range). */
export function softmaxRow(row: Float32Array): Float32Array {
  const max = Math.max(...row);
  const e = Float32Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

export function argmax(values: ArrayLike<number>, start = 0, length = values.length - start): number {
  let best = 0;
  for (let j = 1; j < length; j++) if (values[start + j] > values[start + best]) best = j;
  return best;
}

/**
 * One prediction line with `probs` as an object in label order. JSON.stringify of a JS object puts
 * integer-like keys first, so the line is assembled here to keep a custom label order intact.
 */
export function predictionLine(fields: Record<string, unknown>, labels: string[], probs: ArrayLike<number>, digits = 6): string {
  const head = JSON.stringify(fields).slice(0, -1);
  const body = labels.map((l, j) => `${JSON.stringify(l)}:${Number(probs[j].toFixed(digits))}`).join(',');
  return `${head}${head.length > 1 ? ',' : ''}"probs":{${body}}}`;
}
