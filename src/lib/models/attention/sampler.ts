// The spatial transformer's sampler (Jaderberg et al. 2015, "Spatial transformer networks" §3.2-3.3):
// an affine grid over the output, then bilinear interpolation of the input at those points. Built
// from differentiable tfjs ops (gather, multiply), so gradients reach both the input and theta.
import { lazyOp, tf } from '../../backend/tf.js';

/** Identity in value, zero gradient: the integer corners index the input, they do not move it. */
const detached = lazyOp(() => tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({ value: (args[0] as tf.Tensor).clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })));

/**
 * Rows of `table` [R, C] at float row numbers `rows` [P] (whole numbers): tf.gather whose index
 * input gets a zero gradient, since tfjs refuses the integer gradient tf.gather gives its indices.
 */
const gatherRows = lazyOp(() => tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [table, rows, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  const index = tf.cast(rows, 'int32');
  save([index]);
  return {
    value: tf.gather(table, index),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.unsortedSegmentSum(dy, saved[0] as tf.Tensor1D, table.shape[0]), tf.zerosLike(rows)],
  };
}));

/**
 * Normalised coordinates of the centres of an n-cell axis: -1 and 1 are the outer edges of the
 * first and last cells (align_corners = false), so a map and its image share one frame.
 */
export function cellCentres(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => -1 + (2 * i + 1) / n);
}

/**
 * The cell centres of an h x w map flattened in row order, as [1, h * w] tensors of x and y: a
 * softmax over the cells times these, summed, is the expected centre (a soft argmax).
 */
export function cellCentreGrid(h: number, w: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const xs = cellCentres(w);
  const ys = cellCentres(h);
  const x = new Float32Array(h * w);
  const y = new Float32Array(h * w);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) [x[i * w + j], y[i * w + j]] = [xs[j], ys[i]];
  return { x: tf.tensor2d(x, [1, h * w]), y: tf.tensor2d(y, [1, h * w]) };
}

/**
 * Samples `input` [N, H, W, C] at the affine grid of `theta` [N, 2, 3] (target (x, y, 1) -> source
 * (x, y), normalised coordinates) into [N, outH, outW, C]. Points outside the input read zeros.
 */
export function bilinearSample(input: tf.Tensor4D, theta: tf.Tensor3D, outH: number, outW: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = input.shape;
    const points = outH * outW;
    const xs = cellCentres(outW);
    const ys = cellCentres(outH);
    const grid = new Float32Array(points * 3);
    for (let i = 0; i < outH; i++) {
      for (let j = 0; j < outW; j++) grid.set([xs[j], ys[i], 1], (i * outW + j) * 3);
    }
    const base = tf.tile(tf.tensor3d(grid, [1, points, 3]), [n, 1, 1]);
    const source = tf.matMul(base, theta, false, true); // [N, P, 2]
    const [sx, sy] = tf.split(source, 2, 2).map((t) => tf.reshape(t, [n, points]));
    // Normalised -> pixel coordinates (pixel centres at integers).
    const px = tf.div(tf.sub(tf.mul(tf.add(sx, 1), w), 1), 2);
    const py = tf.div(tf.sub(tf.mul(tf.add(sy, 1), h), 1), 2);
    const x0 = detached(tf.floor(px)) as tf.Tensor2D;
    const y0 = detached(tf.floor(py)) as tf.Tensor2D;
    const fx = tf.sub(px, x0);
    const fy = tf.sub(py, y0);
    const flat = tf.reshape(input, [n * h * w, c]);
    const batchOffset = tf.reshape(tf.mul(tf.range(0, n), h * w), [n, 1]);
    const inRange = (v: tf.Tensor, size: number): tf.Tensor => tf.mul(tf.cast(tf.greaterEqual(v, 0), 'float32'), tf.cast(tf.greaterEqual(tf.sub(size - 1, v), 0), 'float32'));
    let out: tf.Tensor | null = null;
    for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
      const cx = tf.add(x0, dx);
      const cy = tf.add(y0, dy);
      const weight = tf.mul(tf.mul(dx ? fx : tf.sub(1, fx), dy ? fy : tf.sub(1, fy)), tf.mul(inRange(cx, w), inRange(cy, h)));
      const index = tf.add(batchOffset, tf.add(tf.mul(tf.clipByValue(cy, 0, h - 1), w), tf.clipByValue(cx, 0, w - 1)));
      const values = gatherRows(flat, tf.reshape(index, [n * points]));
      const term = tf.mul(values, tf.reshape(weight, [n * points, 1]));
      out = out ? tf.add(out, term) : term;
    }
    return tf.reshape(out!, [n, outH, outW, c]) as tf.Tensor4D;
  });
}

/** theta [N, 2, 3] of the scale-and-translate transforms the attention branch predicts: [[sx, 0, tx], [0, sy, ty]]. */
export function scaleTranslateTheta(sx: tf.Tensor1D, sy: tf.Tensor1D, tx: tf.Tensor1D, ty: tf.Tensor1D): tf.Tensor3D {
  return tf.tidy(() => {
    const zero = tf.zerosLike(sx);
    return tf.reshape(tf.stack([sx, zero, tx, zero, sy, ty], 1), [sx.shape[0], 2, 3]) as tf.Tensor3D;
  });
}
