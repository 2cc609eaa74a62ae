// Garment localisation as TiefVision does it after Overfeat (Sermanet et al. 2014): one tower looks
// at patches of the photo; a background/foreground head says how much of a patch shows the garment
// (its box) and a regression head where the box lies relative to the patch. At inference the
// classifier is slid over the photo and the box fitted to its map (models before it: windows at
// several scales scored and the boxes of the foreground windows merged).
// Boxes here are fractions of the image: {x, y, w, h} with x, y the top-left corner.
import { tf } from '../backend/tf.js';
import { takeAll } from '../backend/read.js';
import type { Random } from '../random.js';

export const LOCATE_MODEL_KIND = 'atelier-locate';
/** Output columns: the foreground logit, then the box edges (x0, y0, x1, y1) in units of the patch. */
export const LOCATE_OUTPUTS = 5;

export interface Box { x: number; y: number; w: number; h: number }

/** The tower (image -> pooled features) with one dense layer giving [logit, x0, y0, x1, y1]. */
export function buildLocateModel(tower: tf.LayersModel, seed: number): tf.LayersModel {
  const head = tf.layers.dense({ units: LOCATE_OUTPUTS, name: 'locate_head', kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const output = head.apply(tower.outputs[0]) as tf.SymbolicTensor;
  return tf.model({ inputs: tower.inputs, outputs: output, name: 'locate' });
}

export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.w * a.h + b.w * b.h - inter);
}

/** Share of the box inside the window. */
function shareOfBoxInside(window: Box, box: Box): number {
  const w = Math.min(window.x + window.w, box.x + box.w) - Math.max(window.x, box.x);
  const h = Math.min(window.y + window.h, box.y + box.h) - Math.max(window.y, box.y);
  return w > 0 && h > 0 ? (w * h) / (box.w * box.h) : 0;
}

/**
 * A patch is foreground when it holds most of the garment (its box can be read from the patch),
 * background when it holds under 30 % of it, even when it lies inside the garment: a window within
 * the dress shows none of its edges, so its box guess would only blur the merge.
 */
export function patchLabel(window: Box, box: Box): 1 | 0 | null {
  const ofBox = shareOfBoxInside(window, box);
  if (ofBox >= 0.7) return 1;
  if (ofBox < 0.3) return 0;
  return null;
}

/** The box's edges in units of the window (what the regression head predicts). */
export function boxInWindow(window: Box, box: Box): [number, number, number, number] {
  return [(box.x - window.x) / window.w, (box.y - window.y) / window.h, (box.x + box.w - window.x) / window.w, (box.y + box.h - window.y) / window.h];
}

/** Edges predicted in window units back to an image box. */
export function windowToImage(window: Box, edges: ArrayLike<number>): Box {
  const x0 = window.x + edges[0] * window.w;
  const y0 = window.y + edges[1] * window.h;
  const x1 = window.x + edges[2] * window.w;
  const y1 = window.y + edges[3] * window.h;
  return { x: x0, y: y0, w: Math.max(1e-3, x1 - x0), h: Math.max(1e-3, y1 - y0) };
}

/** A patch drawn for a training step: its classifier target (the share of it inside the box) and box edges, and which losses it takes part in (1 or 0). */
export interface LocatePatch { window: Box; target: number; classified: number; regressed: number; edges: number[] }

export interface TrainingPatch { window: Box; label: 1 | 0; edges: [number, number, number, number] }

/** A square window near the garment (centre inside its box, side 0.6-2x its larger side) or anywhere (side 0.2-1). */
function drawWindow(box: Box, random: Random, nearGarment: boolean): Box {
  if (nearGarment) {
    const side = Math.min(1, Math.max(box.w, box.h) * (0.6 + 1.4 * random.next()));
    const cx = box.x + box.w * random.next();
    const cy = box.y + box.h * random.next();
    return { x: clamp(cx - side / 2, 0, 1 - side), y: clamp(cy - side / 2, 0, 1 - side), w: side, h: side };
  }
  const side = 0.2 + 0.8 * random.next();
  return { x: (1 - side) * random.next(), y: (1 - side) * random.next(), w: side, h: side };
}

/**
 * `count` labelled windows of one image, half foreground and half background: drawn at random,
 * large garments gave nine foreground windows in ten and the classifier learnt to say foreground
 * everywhere. Background windows come half from near the garment (the hard ones), half from anywhere.
 */
export function sampleTrainingPatches(box: Box, count: number, random: Random): TrainingPatch[] {
  const out: TrainingPatch[] = [];
  for (let k = 0; k < count; k++) {
    const wanted = k % 2 === 0 ? 1 : 0;
    for (let tries = 0; tries < 50; tries++) {
      const window = drawWindow(box, random, wanted === 1 || random.next() < 0.5);
      if (patchLabel(window, box) !== wanted) continue;
      out.push({ window, label: wanted, edges: boxInWindow(window, box) });
      break;
    }
  }
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Square windows (in image fractions) at each scale on a half-window stride, the last one flush with the edge. */
export function windowGrid(scales: readonly number[]): Box[] {
  const out: Box[] = [];
  for (const side of scales) {
    const steps = Math.max(1, Math.ceil((1 - side) / (side / 2)) + 1);
    const at = (i: number) => (steps === 1 ? (1 - side) / 2 : ((1 - side) * i) / (steps - 1));
    for (let i = 0; i < steps; i++) for (let j = 0; j < steps; j++) out.push({ x: at(j), y: at(i), w: side, h: side });
  }
  return out;
}

/** Patches of images [n, H, W, 3] at windows, as [patches, size, size, 3] (bilinear, tf.image.cropAndResize). */
export function cropPatches(images: tf.Tensor4D, windows: Box[], imageIndex: number[], height: number, width: number): tf.Tensor4D {
  return tf.tidy(() => {
    const boxes = tf.tensor2d(windows.flatMap((w) => [w.y, w.x, w.y + w.h, w.x + w.w]), [windows.length, 4]);
    return tf.image.cropAndResize(images, boxes, tf.tensor1d(imageIndex, 'int32'), [height, width]);
  });
}

/**
 * Binary cross-entropy on the foreground logit (soft targets: a map patch's share inside the box) over
 * the patches with `classified` 1, plus, on those with `regressed` 1, the smooth-L1 box loss.
 */
export function locateLoss(output: tf.Tensor2D, targets: tf.Tensor1D, classified: tf.Tensor1D, regressed: tf.Tensor1D, edges: tf.Tensor2D, boxWeight: number): tf.Scalar {
  return tf.tidy(() => {
    const logit = output.slice([0, 0], [-1, 1]).reshape([-1]);
    const classification = tf.losses.sigmoidCrossEntropy(targets, logit, classified);
    const regression = tf.div(regressedBoxError(output, regressed, edges), tf.maximum(tf.sum(regressed), 1));
    return tf.add(classification, tf.mul(boxWeight, regression)) as tf.Scalar;
  });
}

/**
 * A shard's part of a batch's locateLoss, for training workers: its cross-entropy summed over the
 * batch's count of classified patches and its box error over the batch's count of regressed ones,
 * so the parts add up.
 */
export function locateLossPart(output: tf.Tensor2D, targets: tf.Tensor1D, classified: tf.Tensor1D, regressed: tf.Tensor1D, edges: tf.Tensor2D, boxWeight: number, batch: { classified: number; regressed: number }): tf.Scalar {
  return tf.tidy(() => {
    const logit = output.slice([0, 0], [-1, 1]).reshape([-1]);
    const classification = tf.div(tf.losses.sigmoidCrossEntropy(targets, logit, classified, undefined, tf.Reduction.SUM), Math.max(batch.classified, 1));
    const regression = tf.div(regressedBoxError(output, regressed, edges), Math.max(batch.regressed, 1));
    return tf.add(classification, tf.mul(boxWeight, regression)) as tf.Scalar;
  });
}

/** Smooth-L1 (Fast R-CNN) error of the predicted box edges, summed over the patches with `regressed` 1. */
function regressedBoxError(output: tf.Tensor2D, regressed: tf.Tensor1D, edges: tf.Tensor2D): tf.Scalar {
  const predicted = output.slice([0, 1], [-1, 4]);
  const diff = tf.abs(tf.sub(predicted, edges));
  // 0.5 d^2 below 1, d - 0.5 above, written with min so it has a gradient.
  const small = tf.minimum(diff, 1);
  const smoothL1 = tf.add(tf.mul(0.5, tf.square(small)), tf.sub(diff, small)).sum(1);
  return tf.sum(tf.mul(smoothL1, regressed));
}

/**
 * Overfeat-style merge of one image's windows: the boxes of the windows scored within `keep` of the
 * best, at most `top` of them, averaged with their probabilities as weights. Score: the best probability.
 */
export function mergeWindowBoxes(windows: Box[], probabilities: ArrayLike<number>, edges: ArrayLike<number>, options: { keep?: number; top?: number } = {}): Box & { score: number } {
  const order = windows.map((_, i) => i).sort((a, b) => probabilities[b] - probabilities[a]);
  const best = probabilities[order[0]];
  const chosen = order.filter((i) => probabilities[i] >= best * (options.keep ?? 0.5)).slice(0, options.top ?? 8);
  let total = 0;
  const sum = [0, 0, 0, 0];
  for (const i of chosen) {
    const b = windowToImage(windows[i], [edges[4 * i], edges[4 * i + 1], edges[4 * i + 2], edges[4 * i + 3]]);
    const p = probabilities[i];
    total += p;
    sum[0] += p * b.x; sum[1] += p * b.y; sum[2] += p * (b.x + b.w); sum[3] += p * (b.y + b.h);
  }
  const [x0, y0, x1, y1] = sum.map((v, k) => clamp(v / Math.max(total, 1e-12), 0, 1));
  return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0), score: best };
}

// The dense map (Overfeat's sliding-window classifier read as a map). The classifier is trained on
// small patches to say what share of the patch lies inside the garment's box: an area, which the
// tower's global average pool can measure, where a position (a box edge) it cannot. Over a grid of
// patches that share is the box blurred by the patch, and the box is the one whose blur fits the map.

/** Share of the window's area inside the box. */
export function shareOfWindowInBox(window: Box, box: Box): number {
  const w = Math.min(window.x + window.w, box.x + box.w) - Math.max(window.x, box.x);
  const h = Math.min(window.y + window.h, box.y + box.h) - Math.max(window.y, box.y);
  return w > 0 && h > 0 ? (w * h) / (window.w * window.h) : 0;
}

/** Side of the map's patches (a fraction of the image): the tower's input at the photo's resolution, at most half the image. */
export function mapPatchSide(patchPixels: number, imagePixels: number): number {
  return Math.min(0.5, patchPixels / imagePixels);
}

/** Top-left offsets along one side of the map's square patches: inside the image, `perPatch` steps per patch side. */
export function mapOffsets(side: number, perPatch = 4): number[] {
  const steps = side >= 1 ? 1 : Math.ceil((1 - side) / (side / perPatch)) + 1;
  return Array.from({ length: steps }, (_, i) => (steps === 1 ? 0 : ((1 - side) * i) / (steps - 1)));
}

/** The map's windows, row by row (y, then x). */
export function mapWindows(side: number, offsets: readonly number[]): Box[] {
  return offsets.flatMap((y) => offsets.map((x) => ({ x, y, w: side, h: side })));
}

export interface MapPatch { window: Box; share: number }

/**
 * `count` patches of side `side` for the map, each with its share inside the box: half anywhere
 * (as the grid sees them), half centred near an edge of the box, where the map decides the box.
 */
export function sampleMapPatches(box: Box, count: number, side: number, random: Random): MapPatch[] {
  const out: MapPatch[] = [];
  for (let k = 0; k < count; k++) {
    let x: number;
    let y: number;
    if (random.next() < 0.5) {
      const edge = Math.floor(random.next() * 4);
      const across = (random.next() * 2 - 1) * side / 2;
      const along = random.next();
      const cx = edge === 0 ? box.x + across : edge === 1 ? box.x + box.w + across : box.x + along * box.w;
      const cy = edge === 2 ? box.y + across : edge === 3 ? box.y + box.h + across : box.y + along * box.h;
      x = clamp(cx - side / 2, 0, 1 - side);
      y = clamp(cy - side / 2, 0, 1 - side);
    } else {
      x = (1 - side) * random.next();
      y = (1 - side) * random.next();
    }
    const window = { x, y, w: side, h: side };
    out.push({ window, share: shareOfWindowInBox(window, box) });
  }
  return out;
}

/** Overlap of [a, a + side] with [lo, hi], as a share of side. */
function overlapShare(a: number, side: number, lo: number, hi: number): number {
  const o = Math.min(a + side, hi) - Math.max(a, lo);
  return o > 0 ? o / side : 0;
}

/** Squared error between the map and the shares a box [x0, y0, x1, y1] would give the grid's patches. */
function mapError(map: ArrayLike<number>, offsets: readonly number[], side: number, b: readonly number[]): number {
  const n = offsets.length;
  const ox = offsets.map((a) => overlapShare(a, side, b[0], b[2]));
  const oy = offsets.map((a) => overlapShare(a, side, b[1], b[3]));
  let e = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { const d = map[i * n + j] - oy[i] * ox[j]; e += d * d; }
  return e;
}

/**
 * The same error after the best gain and offset (map ~ a shares + c, 0 < a <= 1): the residual of the map's
 * regression on the box's shares. A classifier that never says 0 or 1 outright (it underfits) then
 * still places the box where its map changes, not where the map crosses fixed levels.
 */
function mapErrorAffine(map: ArrayLike<number>, offsets: readonly number[], side: number, b: readonly number[], mapSum: number, mapSquares: number): number {
  const n = offsets.length;
  const ox = offsets.map((a) => overlapShare(a, side, b[0], b[2]));
  const oy = offsets.map((a) => overlapShare(a, side, b[1], b[3]));
  // The shares are a product of row and column terms, so their sums are too.
  let sx = 0, sxx = 0, sy = 0, syy = 0, sms = 0;
  for (let j = 0; j < n; j++) { sx += ox[j]; sxx += ox[j] * ox[j]; }
  for (let i = 0; i < n; i++) {
    sy += oy[i]; syy += oy[i] * oy[i];
    if (oy[i] === 0) continue;
    let row = 0;
    for (let j = 0; j < n; j++) row += map[i * n + j] * ox[j];
    sms += oy[i] * row;
  }
  const count = n * n;
  const mm = mapSquares - (mapSum * mapSum) / count;
  const ss = sxx * syy - (sx * sy * sx * sy) / count;
  const ms = sms - (mapSum * sx * sy) / count;
  if (!(ss > 1e-12) || ms <= 0) return mm;
  // A gain above 1 would let a box narrower than the patch pass for a wider one (its blur only fainter).
  return ms < ss ? mm - (ms * ms) / ss : mm - 2 * ms + ss;
}

/** The grid rectangle [r0, c0, r1, c1] (inclusive) with the largest sum of `values` (Kadane over row pairs). */
export function maxSumRectangle(values: ArrayLike<number>, n: number): [number, number, number, number] {
  let best = -Infinity;
  let rect: [number, number, number, number] = [0, 0, 0, 0];
  const column = new Float64Array(n);
  for (let r0 = 0; r0 < n; r0++) {
    column.fill(0);
    for (let r1 = r0; r1 < n; r1++) {
      for (let c = 0; c < n; c++) column[c] += values[r1 * n + c];
      let run = 0;
      let start = 0;
      for (let c = 0; c < n; c++) {
        if (run <= 0) { run = column[c]; start = c; } else run += column[c];
        if (run > best) { best = run; rect = [r0, start, r1, c]; }
      }
    }
  }
  return rect;
}

/**
 * How the box is fitted to the map: the shares as they are ('shares', exact on an ideal map even for a box
 * smaller than the patch), or after a gain and offset ('affine': a fixture locator's map reads about
 * 0.08 + 0.73 x the true share, and held-out mean IoU rose from 0.64 to 0.69; bench/RESULTS.md).
 */
export type MapFit = 'shares' | 'affine';
export const DEFAULT_MAP_FIT: MapFit = 'affine';

/**
 * The box whose blur by the patch best fits the map (least squares, coordinate descent), started from
 * the rectangle of patch centres that maximises sum(p - t), t half the map's peak: a patch centred on
 * the edge of a box wider than it is half inside it; a box smaller than the patch never fills one.
 */
export function fitBoxToMap(map: ArrayLike<number>, offsets: readonly number[], side: number, fit: MapFit = DEFAULT_MAP_FIT): Box & { score: number } {
  const n = offsets.length;
  let peak = 0;
  let mapSum = 0;
  let mapSquares = 0;
  for (let i = 0; i < map.length; i++) { peak = Math.max(peak, map[i]); mapSum += map[i]; mapSquares += map[i] * map[i]; }
  const errorOf = fit === 'affine'
    ? (box: readonly number[]) => mapErrorAffine(map, offsets, side, box, mapSum, mapSquares)
    : (box: readonly number[]) => mapError(map, offsets, side, box);
  const [r0, c0, r1, c1] = maxSumRectangle(Array.from(map, (p) => p - peak / 2), n);
  // At least half a patch wide and high, so that each edge moves the fit.
  const grow = (lo: number, hi: number) => { const pad = Math.max(0, side / 2 - (hi - lo)) / 2; return [clamp(lo - pad, 0, 1), clamp(hi + pad, 0, 1)]; };
  const [x0, x1] = grow(offsets[c0] + side / 2, offsets[c1] + side / 2);
  const [y0, y1] = grow(offsets[r0] + side / 2, offsets[r1] + side / 2);
  const b = [x0, y0, x1, y1];
  let error = errorOf(b);
  for (let step = side / 4; step > 0.002; step /= 2) {
    for (let improved = true, rounds = 0; improved && rounds < 50; rounds++) {
      improved = false;
      for (let k = 0; k < 4; k++) {
        for (const sign of [-1, 1]) {
          const trial = b.slice();
          trial[k] = clamp(trial[k] + sign * step, 0, 1);
          if (trial[2] - trial[0] < 0.01 || trial[3] - trial[1] < 0.01) continue;
          const e = errorOf(trial);
          if (e < error) { error = e; b.splice(0, 4, ...trial); improved = true; }
        }
      }
    }
  }
  return { x: b[0], y: b[1], w: b[2] - b[0], h: b[3] - b[1], score: peak };
}

/**
 * How `locate` reads a model: the map's patches (side and offsets; `refine` > 0 blends that share of
 * the regressor's box from windows around the fitted one), or for older models the window grid.
 */
export type LocatePlan = { kind: 'map'; side: number; offsets: number[]; refine: number; fit?: MapFit } | { kind: 'windows'; windows: Box[] };

/** Outputs of `model` on every window of every image, chunked: sigmoid probabilities and edges. */
export async function scoreWindows(model: tf.LayersModel, images: tf.Tensor4D, windows: Box[], patch: { height: number; width: number }, chunk: number): Promise<{ probabilities: Float32Array; edges: Float32Array }> {
  const total = images.shape[0] * windows.length;
  const probabilities = new Float32Array(total);
  const edges = new Float32Array(total * 4);
  for (let start = 0; start < total; start += chunk) {
    const count = Math.min(chunk, total - start);
    const index = Array.from({ length: count }, (_, k) => Math.floor((start + k) / windows.length));
    const which = Array.from({ length: count }, (_, k) => windows[(start + k) % windows.length]);
    const [p, e] = await takeAll(tf.tidy(() => {
      const output = model.predict(cropPatches(images, which, index, patch.height, patch.width)) as tf.Tensor2D;
      return [tf.sigmoid(output.slice([0, 0], [-1, 1])), output.slice([0, 1], [-1, 4])];
    }));
    probabilities.set(p, start);
    edges.set(e, start * 4);
  }
  return { probabilities, edges };
}

/** Located boxes of images [n, H, W, 3]: the map fitted per image, or (older models) every grid window's box merged. */
export async function locateInImages(model: tf.LayersModel, images: tf.Tensor4D, plan: LocatePlan, patch: { height: number; width: number }, chunk = 256): Promise<Array<Box & { score: number }>> {
  const n = images.shape[0];
  const windows = plan.kind === 'map' ? mapWindows(plan.side, plan.offsets) : plan.windows;
  const { probabilities, edges } = await scoreWindows(model, images, windows, patch, chunk);
  const m = windows.length;
  const boxes = Array.from({ length: n }, (_, i) => plan.kind === 'map'
    ? fitBoxToMap(probabilities.subarray(i * m, (i + 1) * m), plan.offsets, plan.side, plan.fit)
    : mergeWindowBoxes(windows, probabilities.subarray(i * m, (i + 1) * m), edges.subarray(i * m * 4, (i + 1) * m * 4)));
  if (plan.kind !== 'map' || !(plan.refine > 0)) return boxes;
  const refine = plan.refine;
  // Regress again from windows around the fitted box (the regressor's training windows hold most of the box).
  const scales = [1.1, 1.3, 1.6];
  const around = boxes.flatMap((b) => scales.map((f) => {
    const side = Math.min(1, Math.max(b.w, b.h) * f);
    return { x: clamp(b.x + b.w / 2 - side / 2, 0, 1 - side), y: clamp(b.y + b.h / 2 - side / 2, 0, 1 - side), w: side, h: side };
  }));
  const k = scales.length;
  const index = around.map((_, j) => Math.floor(j / k));
  const [e] = await takeAll(tf.tidy(() => [(model.predict(cropPatches(images, around, index, patch.height, patch.width)) as tf.Tensor2D).slice([0, 1], [-1, 4])]));
  return boxes.map((b, i) => {
    const sum = [0, 0, 0, 0];
    for (let j = i * k; j < (i + 1) * k; j++) {
      const r = windowToImage(around[j], e.subarray(4 * j, 4 * j + 4));
      sum[0] += r.x / k; sum[1] += r.y / k; sum[2] += (r.x + r.w) / k; sum[3] += (r.y + r.h) / k;
    }
    const x0 = clamp(refine * sum[0] + (1 - refine) * b.x, 0, 1);
    const y0 = clamp(refine * sum[1] + (1 - refine) * b.y, 0, 1);
    const x1 = clamp(refine * sum[2] + (1 - refine) * (b.x + b.w), 0, 1);
    const y1 = clamp(refine * sum[3] + (1 - refine) * (b.y + b.h), 0, 1);
    return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0), score: b.score };
  });
}

/** The window scales `locate` scores by default (fractions of the image side). */
export const DEFAULT_WINDOW_SCALES = [0.3, 0.45, 0.65, 0.9];
