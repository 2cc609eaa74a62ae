// Garment localisation as TiefVision does it after Overfeat (Sermanet et al. 2014): one tower looks
// at patches of the photo; a background/foreground head says whether a patch shows the garment and
// a regression head says where the garment's box lies relative to the patch. At inference a grid of
// windows at several scales is scored and the boxes of the foreground windows are merged.
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

/** Binary cross-entropy on the foreground logit plus, on foreground patches only, the smooth-L1 box loss. */
export function locateLoss(output: tf.Tensor2D, labels: tf.Tensor1D, edges: tf.Tensor2D, boxWeight: number): tf.Scalar {
  return tf.tidy(() => {
    const logit = output.slice([0, 0], [-1, 1]).reshape([-1]);
    const classification = tf.losses.sigmoidCrossEntropy(labels, logit);
    const regression = tf.div(foregroundBoxError(output, labels, edges), tf.maximum(tf.sum(labels), 1));
    return tf.add(classification, tf.mul(boxWeight, regression)) as tf.Scalar;
  });
}

/**
 * A shard's part of a batch's locateLoss, for training workers: its cross-entropy summed over the
 * batch's patch count and its box error over the batch's foreground count, so the parts add up.
 */
export function locateLossPart(output: tf.Tensor2D, labels: tf.Tensor1D, edges: tf.Tensor2D, boxWeight: number, batch: { patches: number; foreground: number }): tf.Scalar {
  return tf.tidy(() => {
    const logit = output.slice([0, 0], [-1, 1]).reshape([-1]);
    const classification = tf.div(tf.losses.sigmoidCrossEntropy(labels, logit, undefined, undefined, tf.Reduction.SUM), batch.patches);
    const regression = tf.div(foregroundBoxError(output, labels, edges), Math.max(batch.foreground, 1));
    return tf.add(classification, tf.mul(boxWeight, regression)) as tf.Scalar;
  });
}

/** Smooth-L1 (Fast R-CNN) error of the predicted box edges, summed over the foreground patches. */
function foregroundBoxError(output: tf.Tensor2D, labels: tf.Tensor1D, edges: tf.Tensor2D): tf.Scalar {
  const predicted = output.slice([0, 1], [-1, 4]);
  const diff = tf.abs(tf.sub(predicted, edges));
  // 0.5 d^2 below 1, d - 0.5 above, written with min so it has a gradient.
  const small = tf.minimum(diff, 1);
  const smoothL1 = tf.add(tf.mul(0.5, tf.square(small)), tf.sub(diff, small)).sum(1);
  return tf.sum(tf.mul(smoothL1, labels));
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

/** Located boxes of images [n, H, W, 3]: every grid window through the model, merged per image. */
export async function locateInImages(model: tf.LayersModel, images: tf.Tensor4D, windows: Box[], patch: { height: number; width: number }, chunk = 256): Promise<Array<Box & { score: number }>> {
  const n = images.shape[0];
  const total = n * windows.length;
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
  return Array.from({ length: n }, (_, i) => mergeWindowBoxes(
    windows, probabilities.subarray(i * windows.length, (i + 1) * windows.length), edges.subarray(i * windows.length * 4, (i + 1) * windows.length * 4),
  ));
}

/** The window scales `locate` scores by default (fractions of the image side). */
export const DEFAULT_WINDOW_SCALES = [0.3, 0.45, 0.65, 0.9];
