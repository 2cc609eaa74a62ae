import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { createRandom, type Random } from '../../src/lib/random.js';
import {
  QuadTree,
  barnesHutGradient,
  calibrateRow,
  canvasPlacements,
  denseAffinities,
  exactGradient,
  exactKl,
  labelScatterSvg,
  nearestNeighbors,
  neighborLabelAgreement,
  neighborPreservation,
  renderThumbnailMap,
  sparseAffinities,
  trustworthiness,
  tsne,
} from '../../src/lib/tsne/index.js';

function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(random.next() + 1e-300)) * Math.cos(2 * Math.PI * random.next());
}

/** `perCluster` points around each of `clusters` random centres in `dim` dimensions. */
function gaussianClusters(clusters: number, perCluster: number, dim: number, spread: number, seed: number): { rows: Float32Array; labels: number[] } {
  const random = createRandom(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dim }, () => spread * gaussian(random)));
  const n = clusters * perCluster;
  const rows = new Float32Array(n * dim);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % clusters;
    labels.push(c);
    for (let d = 0; d < dim; d++) rows[i * dim + d] = centres[c][d] + gaussian(random);
  }
  return { rows, labels };
}

function randomPoints(n: number, seed: number, scale = 1): Float64Array {
  const random = createRandom(seed);
  return Float64Array.from({ length: 2 * n }, () => scale * gaussian(random));
}

test('calibrateRow finds the bandwidth whose row has the perplexity asked for', () => {
  const random = createRandom(5);
  const distances = Float64Array.from({ length: 90 }, () => 50 + 30 * random.next());
  for (const perplexity of [5, 30]) {
    const row = new Float64Array(distances.length);
    calibrateRow(distances, perplexity, row);
    const sum = row.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12);
    // Perplexity 2^H(P_i) with H in bits (2008, eq. 3), computed here from the probabilities alone.
    let bits = 0;
    for (const p of row) if (p > 0) bits -= p * Math.log2(p);
    assert.ok(Math.abs(2 ** bits - perplexity) < 1e-3, `perplexity ${2 ** bits} for ${perplexity}`);
    // Nearer points get more weight.
    const nearest = distances.indexOf(Math.min(...distances));
    const farthest = distances.indexOf(Math.max(...distances));
    assert.ok(row[nearest] > row[farthest]);
  }
});

test('sparse affinities over all neighbours equal the dense ones; both are symmetric and sum to 1', async () => {
  const { rows } = gaussianClusters(3, 10, 5, 3, 2);
  const n = 30, dim = 5, perplexity = 6;
  const dense = denseAffinities(rows, n, dim, perplexity);
  let total = 0;
  for (let i = 0; i < n; i++) {
    assert.equal(dense[i * n + i], 0);
    for (let j = 0; j < n; j++) {
      total += dense[i * n + j];
      assert.ok(Math.abs(dense[i * n + j] - dense[j * n + i]) < 1e-15);
    }
  }
  assert.ok(Math.abs(total - 1) < 1e-12);
  const { indices, squaredDistances } = await nearestNeighbors(rows, n, dim, n - 1);
  const sparse = sparseAffinities(indices, squaredDistances, n, n - 1, perplexity);
  assert.equal(sparse.values.length, n * (n - 1));
  for (let i = 0; i < n; i++) {
    for (let e = sparse.rowStart[i]; e < sparse.rowStart[i + 1]; e++) {
      // float32 neighbour distances against float64 ones: close, not identical.
      assert.ok(Math.abs(sparse.values[e] - dense[i * n + sparse.cols[e]]) < 1e-5 * dense[i * n + sparse.cols[e]] + 1e-9);
    }
  }
});

test('the exact gradient is the derivative of KL(P || Q) (central differences)', () => {
  const { rows } = gaussianClusters(2, 6, 4, 2, 3);
  const n = 12;
  const p = denseAffinities(rows, n, 4, 3);
  const y = randomPoints(n, 9);
  const grad = new Float64Array(2 * n);
  exactGradient(p, n, y, grad, 1);
  const h = 1e-6;
  for (let d = 0; d < 2 * n; d++) {
    const plus = Float64Array.from(y);
    const minus = Float64Array.from(y);
    plus[d] += h;
    minus[d] -= h;
    const numeric = (exactKl(p, n, plus) - exactKl(p, n, minus)) / (2 * h);
    assert.ok(Math.abs(numeric - grad[d]) < 1e-6 + 1e-4 * Math.abs(grad[d]), `coordinate ${d}: ${numeric} vs ${grad[d]}`);
  }
});

test('Barnes-Hut with theta 0 gives the exact gradient; theta 0.5 stays close', async () => {
  const { rows } = gaussianClusters(4, 25, 6, 3, 4);
  const n = 100, dim = 6;
  const { indices, squaredDistances } = await nearestNeighbors(rows, n, dim, n - 1);
  const sparse = sparseAffinities(indices, squaredDistances, n, n - 1, 10);
  const dense = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let e = sparse.rowStart[i]; e < sparse.rowStart[i + 1]; e++) dense[i * n + sparse.cols[e]] = sparse.values[e];
  const y = randomPoints(n, 11, 5);
  const exact = new Float64Array(2 * n);
  const zExact = exactGradient(dense, n, y, exact, 1);
  const bh0 = new Float64Array(2 * n);
  const z0 = barnesHutGradient(sparse, y, bh0, 1, 0);
  assert.ok(Math.abs(z0 - zExact) < 1e-9 * zExact);
  for (let d = 0; d < 2 * n; d++) assert.ok(Math.abs(bh0[d] - exact[d]) < 1e-10, `coordinate ${d}`);
  const bh = new Float64Array(2 * n);
  const z = barnesHutGradient(sparse, y, bh, 1, 0.5);
  assert.ok(Math.abs(z - zExact) < 0.02 * zExact, `Z ${z} vs ${zExact}`);
  let errorNorm = 0, norm = 0;
  for (let d = 0; d < 2 * n; d++) {
    errorNorm += (bh[d] - exact[d]) ** 2;
    norm += exact[d] ** 2;
  }
  assert.ok(Math.sqrt(errorNorm / norm) < 0.05, `relative gradient error ${Math.sqrt(errorNorm / norm)}`);
});

test('the quadtree counts coincident points once each and never a point against itself', () => {
  // Three copies of one point and one other point.
  const y = Float64Array.from([0, 0, 0, 0, 0, 0, 3, 4]);
  const tree = new QuadTree();
  tree.build(y, 4);
  const force = new Float64Array(8);
  const sumQ0 = tree.repulsion(0, 0, force);
  // Two copies at distance 0 (q = 1 each) and one point at distance 5 (q = 1/26).
  assert.ok(Math.abs(sumQ0 - (2 + 1 / 26)) < 1e-12);
  assert.ok(Math.abs(force[0] - (1 / 26) ** 2 * -3) < 1e-12);
  const sumQ3 = tree.repulsion(3, 0, force);
  assert.ok(Math.abs(sumQ3 - 3 / 26) < 1e-12);
  assert.ok(Math.abs(force[6] - 3 * (1 / 26) ** 2 * 3) < 1e-12);
});

test('t-SNE separates Gaussian clusters, lowers KL, and is deterministic with a seed', async () => {
  const { rows, labels } = gaussianClusters(6, 100, 20, 2.5, 7);
  const n = 600;
  const run = (seed: number) => tsne(rows, n, 20, { perplexity: 30, iterations: 500, theta: 0.5, exact: false, random: createRandom(seed), reportEvery: 25 });
  const a = await run(1);
  const b = await run(1);
  const c = await run(2);
  assert.deepEqual(a.coordinates, b.coordinates);
  assert.notDeepEqual(a.coordinates, c.coordinates);
  // Chance is 1/6: the map's 10 nearest neighbours of a point share its cluster almost always.
  const agreement = neighborLabelAgreement(a.coordinates, labels, 10);
  assert.ok(agreement > 0.95, `neighbour label agreement ${agreement}`);
  // After early exaggeration (250 iterations) KL only falls, up to tree noise.
  const after = a.klHistory.filter((h) => h.iteration > 250);
  assert.ok(after.length >= 9);
  for (let i = 1; i < after.length; i++) assert.ok(after[i].kl <= after[i - 1].kl + 1e-3, `KL rose at ${after[i].iteration}: ${after[i - 1].kl} -> ${after[i].kl}`);
  assert.ok(a.klHistory[a.klHistory.length - 1].kl < a.klHistory[0].kl);
  const trust = trustworthiness(rows, 20, a.coordinates, n, 10);
  assert.ok(trust > 0.9, `trustworthiness ${trust}`);
  for (let d = 0; d < 2 * n; d++) assert.ok(Number.isFinite(a.coordinates[d]));
});

test('exact t-SNE on a small set agrees with the Barnes-Hut result on cluster structure', async () => {
  const { rows, labels } = gaussianClusters(3, 20, 8, 3, 8);
  const exact = await tsne(rows, 60, 8, { perplexity: 10, iterations: 400, theta: 0.5, exact: true, random: createRandom(3) });
  const bh = await tsne(rows, 60, 8, { perplexity: 10, iterations: 400, theta: 0.5, exact: false, random: createRandom(3) });
  assert.ok(neighborLabelAgreement(exact.coordinates, labels, 5) > 0.95);
  assert.ok(neighborLabelAgreement(bh.coordinates, labels, 5) > 0.95);
  // The perplexity is capped at (n - 1) / 3 for tiny sets.
  const tiny = await tsne(rows.subarray(0, 10 * 8), 10, 8, { perplexity: 30, iterations: 50, theta: 0.5, exact: false, random: createRandom(1) });
  assert.equal(tiny.perplexity, 3);
});

test('trustworthiness and neighbour preservation are 1 for a faithful map and lower for a scrambled one', () => {
  const n = 80;
  const points = randomPoints(n, 12);
  assert.ok(Math.abs(trustworthiness(points, 2, points, n, 5) - 1) < 1e-12);
  assert.equal(neighborPreservation(points, 2, points, n, 5), 1);
  const scrambled = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const j = (i * 37) % n;
    scrambled[2 * i] = points[2 * j];
    scrambled[2 * i + 1] = points[2 * j + 1];
  }
  assert.ok(trustworthiness(points, 2, scrambled, n, 5) < 0.8);
  assert.ok(neighborPreservation(points, 2, scrambled, n, 5) < 0.3);
  assert.equal(neighborLabelAgreement(Float64Array.from([0, 0, 0, 1, 10, 10, 10, 11]), ['a', 'a', 'b', 'b'], 1), 1);
});

test('the thumbnail map puts each image at its coordinates; the scatter colours labels', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atelier-tsne-'));
  try {
    const red = join(dir, 'red.png');
    const blue = join(dir, 'blue.png');
    await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toFile(red);
    await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 0, g: 0, b: 255 } } }).png().toFile(blue);
    // Red at the bottom-left of the map, blue at the top-right, one point without an image.
    const coordinates = Float64Array.from([-1, -1, 1, 1, 0, 0]);
    const placements = canvasPlacements(coordinates, 3, 200, 20);
    assert.deepEqual(placements[0], { left: 0, top: 180 });
    assert.deepEqual(placements[1], { left: 180, top: 0 });
    const map = await renderThumbnailMap(coordinates, [red, blue, null], { size: 200, thumbnail: 20 });
    assert.equal(map.drawn, 2);
    assert.equal(map.missing, 1);
    const { data, info } = await sharp(map.png).raw().toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3));
    assert.deepEqual(pixel(10, 190), [255, 0, 0]);
    assert.deepEqual(pixel(190, 10), [0, 0, 255]);
    assert.deepEqual(pixel(100, 100), [255, 255, 255]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const svg = labelScatterSvg(Float64Array.from([0, 0, 1, 1, 2, 2]), ['dress', 'dress', '<shoe>'], { title: 'map' });
  // Data dots carry fill-opacity (legend swatches do not); one colour per label, the largest group first.
  const dots = [...svg.matchAll(/<circle [^>]*fill="([^"]+)" fill-opacity/g)].map((m) => m[1]);
  assert.equal(dots.length, 3);
  assert.equal(new Set(dots).size, 2);
  assert.equal(dots[0], dots[1]);
  assert.ok(svg.includes('&lt;shoe&gt;'));
});
