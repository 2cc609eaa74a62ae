// RISE (Petsiuk et al. 2018): saliency as the expected model output over random masks,
// S = Σ_i f(I ⊙ M_i) · M_i / (N · p1), and the deletion/insertion metrics of its evaluation.
import type { Random } from '../random.js';
import { rowProbabilities, type ModelOutput } from '../models/kinds.js';

export interface MaskSpec {
  count: number;
  /** Cells per side of the coarse binary grid. */
  grid: number;
  /** Probability that a cell is on (kept). */
  keepProbability: number;
  height: number;
  width: number;
}

/** Bilinear sample of an s×s grid at continuous cell coordinates (edges clamped). */
function sampleGrid(grid: Uint8Array, s: number, gy: number, gx: number): number {
  const y0 = Math.max(0, Math.min(s - 1, Math.floor(gy)));
  const x0 = Math.max(0, Math.min(s - 1, Math.floor(gx)));
  const y1 = Math.min(s - 1, y0 + 1);
  const x1 = Math.min(s - 1, x0 + 1);
  const fy = Math.max(0, Math.min(1, gy - y0));
  const fx = Math.max(0, Math.min(1, gx - x0));
  const top = grid[y0 * s + x0] * (1 - fx) + grid[y0 * s + x1] * fx;
  const bottom = grid[y1 * s + x0] * (1 - fx) + grid[y1 * s + x1] * fx;
  return top * (1 - fy) + bottom * fy;
}

/**
 * N masks as in the reference implementation: a binary s×s grid (cells on with p1), bilinearly
 * upsampled to (s+1)·cell pixels, then cropped H×W at a random shift within one cell, so the
 * smooth masks do not all share the grid's phase. Returns [N, H, W] row-major.
 */
export function generateMasks(spec: MaskSpec, random: Random): Float32Array {
  const { count, grid: s, keepProbability, height, width } = spec;
  const cellH = Math.ceil(height / s);
  const cellW = Math.ceil(width / s);
  const upH = (s + 1) * cellH;
  const upW = (s + 1) * cellW;
  const masks = new Float32Array(count * height * width);
  const grid = new Uint8Array(s * s);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < grid.length; c++) grid[c] = random.next() < keepProbability ? 1 : 0;
    const shiftY = random.int(cellH);
    const shiftX = random.int(cellW);
    const base = n * height * width;
    for (let y = 0; y < height; y++) {
      // Pixel centre of the upsampled image mapped back to grid coordinates ((s+1)·cell pixels span s cells).
      const gy = ((y + shiftY + 0.5) * s) / upH - 0.5;
      for (let x = 0; x < width; x++) {
        const gx = ((x + shiftX + 0.5) * s) / upW - 0.5;
        masks[base + y * width + x] = sampleGrid(grid, s, gy, gx);
      }
    }
  }
  return masks;
}

/** Runs a model on a batch: float32 data of `shape` in, its output out (any engine). */
export type ModelRun = (data: Float32Array, shape: number[]) => Promise<{ data: Float32Array; shape: number[] }>;

/** The probabilities of one class for `count` HWC images packed in `images`. */
export type ClassScorer = (images: Float32Array, count: number) => Promise<Float32Array>;

/**
 * The probability the model gives one class for each image: column `classIndex` of its [B, C]
 * output turned into probabilities per its declared output (models/kinds.ts), or the scalar of [B, 1].
 */
export function classScorer(run: ModelRun, output: ModelOutput, classIndex: number, height: number, width: number): ClassScorer {
  return async (images, count) => {
    const out = await run(images, [count, height, width, 3]);
    const columns = out.data.length / count;
    const scores = new Float32Array(count);
    for (let i = 0; i < count; i++) scores[i] = rowProbabilities(output, out.data.subarray(i * columns, (i + 1) * columns))[classIndex];
    return scores;
  };
}

/**
 * Saliency map [H·W] of one image (HWC floats): masked copies are scored in batches of
 * `batchSize`, and Σ f(I ⊙ M_i)·M_i accumulates in float64.
 */
export async function riseSaliency(score: ClassScorer, image: Float32Array, height: number, width: number, masks: Float32Array, maskCount: number, keepProbability: number, batchSize: number): Promise<Float32Array> {
  const pixels = height * width;
  const sum = new Float64Array(pixels);
  for (let start = 0; start < maskCount; start += batchSize) {
    const b = Math.min(batchSize, maskCount - start);
    const masked = new Float32Array(b * pixels * 3);
    for (let i = 0; i < b; i++) {
      const m = (start + i) * pixels;
      for (let p = 0, o = i * pixels * 3; p < pixels; p++, o += 3) {
        const keep = masks[m + p];
        masked[o] = image[p * 3] * keep;
        masked[o + 1] = image[p * 3 + 1] * keep;
        masked[o + 2] = image[p * 3 + 2] * keep;
      }
    }
    const scores = await score(masked, b);
    for (let i = 0; i < b; i++) {
      const m = (start + i) * pixels;
      const f = scores[i];
      for (let p = 0; p < pixels; p++) sum[p] += f * masks[m + p];
    }
  }
  const saliency = new Float32Array(pixels);
  for (let p = 0; p < pixels; p++) saliency[p] = sum[p] / (maskCount * keepProbability);
  return saliency;
}

/** Where the map peaks, and the share of (positive) saliency held by the top 10% pixels. */
export function saliencySummary(map: Float32Array, width: number): { peak: { x: number; y: number }; topShare: number } {
  let peak = 0;
  for (let i = 1; i < map.length; i++) if (map[i] > map[peak]) peak = i;
  let min = Infinity;
  for (const v of map) if (v < min) min = v;
  const shifted = Array.from(map, (v) => v - min).sort((a, b) => b - a);
  const total = shifted.reduce((a, b) => a + b, 0);
  const top = shifted.slice(0, Math.max(1, Math.round(map.length * 0.1))).reduce((a, b) => a + b, 0);
  return { peak: { x: peak % width, y: Math.floor(peak / width) }, topShare: total > 0 ? top / total : 0 };
}

/** Separable Gaussian blur of an HWC image (the insertion metric's substrate). */
export function gaussianBlur(image: Float32Array, height: number, width: number, sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(sigma * 3));
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const norm = kernel.reduce((a, b) => a + b, 0);
  const k = kernel.map((v) => v / norm);
  const pass = (src: Float32Array, horizontal: boolean): Float32Array => {
    const dst = new Float32Array(src.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < 3; c++) {
          let acc = 0;
          for (let t = -radius; t <= radius; t++) {
            const yy = horizontal ? y : Math.max(0, Math.min(height - 1, y + t));
            const xx = horizontal ? Math.max(0, Math.min(width - 1, x + t)) : x;
            acc += k[t + radius] * src[(yy * width + xx) * 3 + c];
          }
          dst[(y * width + x) * 3 + c] = acc;
        }
      }
    }
    return dst;
  };
  return pass(pass(image, true), false);
}

export interface CausalCurve {
  /** Share of pixels changed at each point, 0..1. */
  fraction: number[];
  score: number[];
  /** Trapezoid area under score vs fraction. */
  auc: number;
}

/**
 * RISE's causal metrics: deletion removes the most salient pixels first (to zero), insertion adds
 * them first onto a blurred copy; a good map makes deletion fall fast (low AUC) and insertion rise
 * fast (high AUC). `steps` points after the start.
 */
export async function causalCurves(score: ClassScorer, image: Float32Array, height: number, width: number, saliency: Float32Array, steps: number, batchSize: number): Promise<{ deletion: CausalCurve; insertion: CausalCurve }> {
  const pixels = height * width;
  const order = Array.from({ length: pixels }, (_, i) => i).sort((a, b) => saliency[b] - saliency[a] || a - b);
  const blurred = gaussianBlur(image, height, width, Math.max(1, width / 16));
  const curve = async (start: Float32Array, finish: Float32Array): Promise<CausalCurve> => {
    const frames: Float32Array[] = [];
    const current = Float32Array.from(start);
    const fraction: number[] = [];
    for (let step = 0; step <= steps; step++) {
      const upto = Math.round((step / steps) * pixels);
      const from = step === 0 ? 0 : Math.round(((step - 1) / steps) * pixels);
      for (let j = from; j < upto; j++) {
        const p = order[j];
        for (let c = 0; c < 3; c++) current[p * 3 + c] = finish[p * 3 + c];
      }
      frames.push(Float32Array.from(current));
      fraction.push(upto / pixels);
    }
    const scores: number[] = [];
    for (let s = 0; s < frames.length; s += batchSize) {
      const group = frames.slice(s, s + batchSize);
      const batch = new Float32Array(group.length * pixels * 3);
      group.forEach((f, i) => batch.set(f, i * pixels * 3));
      scores.push(...(await score(batch, group.length)));
    }
    let auc = 0;
    for (let i = 1; i < scores.length; i++) auc += ((fraction[i] - fraction[i - 1]) * (scores[i] + scores[i - 1])) / 2;
    return { fraction, score: scores, auc };
  };
  return { deletion: await curve(image, new Float32Array(image.length)), insertion: await curve(blurred, image) };
}
