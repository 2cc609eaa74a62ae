// The attention branch's maths: the bilinear sampler and the Deep TEN encoding against plain loops
// and their gradients against central differences, on the CPU backend and on WASM with our kernels;
// the deck's loss terms against hand-computed values; Deep TEN against average pooling on the patterns.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { tf } from '../../src/lib/backend/tf.js';
import { registerWasmKernels } from '../../src/lib/backend/wasm-kernels.js';
import { bilinearSample } from '../../src/lib/models/attention/sampler.js';
import { textureEncoding } from '../../src/lib/models/attention/encoding.js';
import { anchorPoints, attentionLoss, transformBox } from '../../src/lib/models/attention/model.js';
import { createRandom } from '../../src/lib/random.js';
import { PATCH_PATTERNS, patchImages, type PatchImage } from '../../fixtures/lib/patches.js';

function values(size: number, seed: number, scale = 1): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: size }, () => (random.next() * 2 - 1) * scale);
}

/** Central differences of f at x, one element at a time. */
function numericGradient(f: (x: Float32Array) => number, x: Float32Array, eps: number): Float32Array {
  return Float32Array.from(x, (_, i) => {
    const plus = x.slice();
    const minus = x.slice();
    plus[i] += eps;
    minus[i] -= eps;
    return (f(plus) - f(minus)) / (2 * eps);
  });
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  assert.ok(worst <= tolerance, `${what}: worst relative difference ${worst.toExponential(2)} > ${tolerance}`);
}

/** Bilinear sampling by plain loops (zeros outside), the reference for the tensor version. */
function referenceSample(u: Float32Array, [n, h, w, c]: number[], theta: Float32Array, outH: number, outW: number): Float32Array {
  const out = new Float32Array(n * outH * outW * c);
  for (let b = 0; b < n; b++) {
    const t = theta.subarray(b * 6, b * 6 + 6);
    for (let i = 0; i < outH; i++) {
      for (let j = 0; j < outW; j++) {
        const xt = -1 + (2 * j + 1) / outW;
        const yt = -1 + (2 * i + 1) / outH;
        const px = ((t[0] * xt + t[1] * yt + t[2] + 1) * w - 1) / 2;
        const py = ((t[3] * xt + t[4] * yt + t[5] + 1) * h - 1) / 2;
        for (let yy = Math.floor(py); yy <= Math.floor(py) + 1; yy++) {
          for (let xx = Math.floor(px); xx <= Math.floor(px) + 1; xx++) {
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            const weight = (1 - Math.abs(px - xx)) * (1 - Math.abs(py - yy));
            for (let ch = 0; ch < c; ch++) out[((b * outH + i) * outW + j) * c + ch] += weight * u[((b * h + yy) * w + xx) * c + ch];
          }
        }
      }
    }
  }
  return out;
}

for (const backend of ['cpu', 'wasm']) {
  test(`bilinear sampler (${backend}): identity and a shift, loops, gradients w.r.t. input and theta`, async () => {
    if (backend === 'wasm') registerWasmKernels();
    assert.equal(await tf.setBackend(backend), true);
    const shape = [2, 5, 6, 3];
    const u = values(2 * 5 * 6 * 3, 1);
    const input = tf.tensor4d(u, shape as [number, number, number, number]);
    // The identity transform at the input's own size gives the input back.
    const identity = bilinearSample(input, tf.tensor3d([1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0], [2, 2, 3]), 5, 6);
    assertClose(identity.dataSync(), u, 1e-5, 'identity');
    // Moving by one column (2/W in normalised units) reads the next column; the last reads zeros.
    const shifted = bilinearSample(input, tf.tensor3d([1, 0, 2 / 6, 0, 1, 0, 1, 0, 2 / 6, 0, 1, 0], [2, 2, 3]), 5, 6).arraySync() as number[][][][];
    const original = input.arraySync() as number[][][][];
    assert.ok(Math.abs(shifted[1][2][3][1] - original[1][2][4][1]) < 1e-5, 'shift by one column');
    assert.ok(Math.abs(shifted[1][2][5][1]) < 1e-6, 'beyond the edge reads zeros');

    // A general affine transform (rotation, shear, zoom, partly outside) against the loops.
    const theta = Float32Array.from([0.61, -0.23, 0.137, 0.19, 0.74, -0.211, 0.83, 0.31, -0.42, -0.17, 0.52, 0.353]);
    const outH = 4;
    const outW = 3;
    const sampled = bilinearSample(input, tf.tensor3d(theta, [2, 2, 3]), outH, outW);
    assertClose(sampled.dataSync(), referenceSample(u, shape, theta, outH, outW), 1e-5, 'against loops');

    // Gradients of sum(R * sample(U, theta)) against central differences of the loops (float64).
    const r = values(2 * outH * outW * 3, 2);
    const objective = (uu: Float32Array, tt: Float32Array) => referenceSample(uu, shape, tt, outH, outW).reduce((s, v, i) => s + v * r[i], 0);
    const rTensor = tf.tensor4d(r, [2, outH, outW, 3]);
    const [du, dtheta] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(bilinearSample(a as tf.Tensor4D, b as tf.Tensor3D, outH, outW), rTensor)))([input, tf.tensor3d(theta, [2, 2, 3])]);
    assertClose(du.dataSync(), numericGradient((x) => objective(x, theta), u, 1e-3), 1e-4, 'd/dU');
    assertClose(dtheta.dataSync(), numericGradient((x) => objective(u, x), theta, 1e-4), 1e-3, 'd/dtheta');
    assert.ok(Math.max(...Array.from(dtheta.dataSync(), Math.abs)) > 0.05, 'theta gradient is not trivially zero');
  });

  test(`texture encoding (${backend}): loops and gradients w.r.t. features, codewords and smoothing`, async () => {
    assert.equal(await tf.setBackend(backend), true);
    const [b, m, d, k] = [2, 5, 3, 4];
    const x = values(b * m * d, 3);
    const c = values(k * d, 4, 0.5);
    const s = Float32Array.from(values(k, 5), (v) => 1 + 0.5 * v);
    // Deep TEN by loops: a_ik = softmax_k(-s_k |x_i - c_k|^2), e_k = (1/M) sum_i a_ik (x_i - c_k).
    const reference = (xx: Float32Array, cc: Float32Array, ss: Float32Array): Float64Array => {
      const e = new Float64Array(b * k * d);
      for (let bi = 0; bi < b; bi++) {
        for (let i = 0; i < m; i++) {
          const logits = Array.from({ length: k }, (_, kk) => -ss[kk] * Array.from({ length: d }, (_, j) => (xx[(bi * m + i) * d + j] - cc[kk * d + j]) ** 2).reduce((p, q) => p + q, 0));
          const top = Math.max(...logits);
          const z = logits.reduce((p, l) => p + Math.exp(l - top), 0);
          for (let kk = 0; kk < k; kk++) {
            const a = Math.exp(logits[kk] - top) / z;
            for (let j = 0; j < d; j++) e[(bi * k + kk) * d + j] += (a * (xx[(bi * m + i) * d + j] - cc[kk * d + j])) / m;
          }
        }
      }
      return e;
    };
    const xt = tf.tensor3d(x, [b, m, d]);
    const ct = tf.tensor2d(c, [k, d]);
    const st = tf.tensor1d(s);
    assertClose(textureEncoding(xt, ct, st).dataSync(), reference(x, c, s), 1e-5, 'against loops');
    const r = values(b * k * d, 6);
    const rTensor = tf.tensor3d(r, [b, k, d]);
    const objective = (xx: Float32Array, cc: Float32Array, ss: Float32Array) => reference(xx, cc, ss).reduce((p, v, i) => p + v * r[i], 0);
    const [dx, dc, ds] = tf.grads((a: tf.Tensor, bb: tf.Tensor, cc: tf.Tensor) => tf.sum(tf.mul(textureEncoding(a as tf.Tensor3D, bb as tf.Tensor2D, cc as tf.Tensor1D), rTensor)))([xt, ct, st]);
    assertClose(dx.dataSync(), numericGradient((v) => objective(v, c, s), x, 1e-4), 1e-3, 'd/dx');
    assertClose(dc.dataSync(), numericGradient((v) => objective(x, v, s), c, 1e-4), 1e-3, 'd/dcodewords');
    assertClose(ds.dataSync(), numericGradient((v) => objective(x, c, v), s, 1e-4), 1e-3, 'd/dsmoothing');
  });
}

test('the deck\'s loss terms on a hand-computed case', async () => {
  assert.equal(await tf.setBackend('cpu'), true);
  // One image, two labels, K = 2 steps over 2 cells.
  const logits = tf.tensor2d([[0, Math.log(3)]]); // p = (0.5, 0.75)
  const targets = tf.tensor2d([[1, 0]]);
  const maps = tf.tensor3d([[[0.25, 0.75], [0.5, 0.5]]]);
  const [a0, a1] = anchorPoints(2);
  // Step 1: scales 0.7 (over alpha 0.5 by 0.2) and 0.05 (under beta 0.1 by 0.05), at its anchor; step 2: scales 0.3, 0.3, 0.1 off its anchor in x.
  const transforms = tf.tensor3d([[[0.7, 0.05, a0[0], a0[1]], [0.3, 0.3, a1[0] + 0.1, a1[1]]]]);
  const w = { diversity: 0.01, localisation: 0.1, anchor: 0.5, positive: 2, alpha: 0.5, beta: 0.1, evidence: 0.5 };
  // Class evidence logits (0, 0): p = (0.5, 0.5) against (1, 0).
  const loss = attentionLoss(logits, targets, maps, transforms, tf.tensor2d([[0, 0]]), w);
  const cls = 0.25 + 0.5625;
  const div = 0.25 * 0.5 + 0.75 * 0.5;
  const loc = 0.2 ** 2 + w.anchor * 0.5 * 0.1 ** 2 + w.positive * 0.05;
  assert.ok(Math.abs(loss.classification.dataSync()[0] - cls) < 1e-6, 'L_cls');
  assert.ok(Math.abs(loss.diversity.dataSync()[0] - div) < 1e-6, 'L_div');
  assert.ok(Math.abs(loss.localisation.dataSync()[0] - loc) < 1e-6, `L_loc ${loss.localisation.dataSync()[0]} vs ${loc}`);
  assert.ok(Math.abs(loss.evidence.dataSync()[0] - 0.5) < 1e-6, 'L_ev');
  assert.ok(Math.abs(loss.total.dataSync()[0] - (cls + 0.01 * div + 0.1 * loc + 0.5 * 0.5)) < 1e-6, 'L');
  assert.deepEqual(transformBox(0.5, 0.25, 0, 0.5), { x: 0.25, y: 0.625, w: 0.5, h: 0.25 });
});

test('texture encoding separates the fixture patterns (stripes, dots, checks) better than global average pooling', { timeout: 120_000 }, async () => {
  registerWasmKernels();
  assert.equal(await tf.setBackend('wasm'), true);
  // 12 x 12 images that are all pattern (random phase, orientation, ink and paper levels), as
  // 3 x 3 grey neighbourhoods: the same local features for both, pooled two ways.
  const side = 12;
  const cells = (side - 2) ** 2;
  const features = (images: PatchImage[]) => {
    const x = new Float32Array(images.length * cells * 9);
    let o = 0;
    for (const im of images) {
      for (let y = 1; y < side - 1; y++) for (let xx = 1; xx < side - 1; xx++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) x[o++] = im.pixels[((y + dy) * side + xx + dx) * 3];
    }
    return { x: tf.tensor3d(x, [images.length, cells, 9]), y: tf.oneHot(tf.tensor1d(images.map((im) => PATCH_PATTERNS.indexOf(im.pattern)), 'int32'), 3) };
  };
  const train = features(patchImages(200, 21, side, side));
  const held = features(patchImages(200, 22, side, side));
  const random = createRandom(5);
  const k = 8;
  const codewords = tf.variable(tf.tensor2d(Float32Array.from({ length: k * 9 }, () => random.next()), [k, 9]));
  const smoothing = tf.variable(tf.ones([k]) as tf.Tensor1D);
  const encoded = (x: tf.Tensor3D) => {
    const e = tf.reshape(textureEncoding(x, codewords, smoothing), [x.shape[0], k * 9]);
    return tf.div(e, tf.add(tf.norm(e, 'euclidean', 1, true), 1e-6)) as tf.Tensor2D;
  };
  const pooled = (x: tf.Tensor3D) => tf.mean(x, 1) as tf.Tensor2D;
  /** A linear classifier on the pooled vectors, trained 120 full-batch Adam steps; its held-out accuracy. */
  const accuracyOf = (pool: (x: tf.Tensor3D) => tf.Tensor2D, dim: number, extra: tf.Variable[]) => {
    const w = tf.variable(tf.zeros([dim, 3]));
    const b = tf.variable(tf.zeros([3]));
    const optimizer = tf.train.adam(0.05);
    const logits = (x: tf.Tensor3D) => tf.add(tf.matMul(pool(x), w), b) as tf.Tensor2D;
    for (let step = 0; step < 120; step++) optimizer.minimize(() => tf.losses.softmaxCrossEntropy(train.y, logits(train.x as tf.Tensor3D)) as tf.Scalar, false, [w, b, ...extra]);
    return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits(held.x as tf.Tensor3D), 1), tf.argMax(held.y, 1)), 'float32')).dataSync()[0]);
  };
  const gap = accuracyOf(pooled, 9, []);
  const ten = accuracyOf(encoded, k * 9, [codewords, smoothing]);
  console.log(`held-out accuracy: texture encoding ${ten.toFixed(3)}, global average pooling ${gap.toFixed(3)} (chance 0.333)`);
  assert.ok(ten >= 0.9, `texture encoding ${ten.toFixed(3)}`);
  assert.ok(ten >= gap + 0.2, `texture encoding ${ten.toFixed(3)} vs global average pooling ${gap.toFixed(3)}`);
});
