// The locator's box from its patch map (src/lib/models/locate.ts): the map a box would give, fitted
// back, returns the box, also after a gain and offset (an underfit classifier's map); the max-sum
// rectangle against a brute-force search.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { fitBoxToMap, iou, mapOffsets, mapWindows, maxSumRectangle, shareOfWindowInBox } from '../../src/lib/models/locate.js';
import { createRandom } from '../../src/lib/random.js';

test('the box fitted to the map a box would give is that box, also when it is smaller than a patch (the shares as they are)', () => {
  const random = createRandom(7);
  for (const side of [0.25, 0.375]) {
    const offsets = mapOffsets(side);
    const windows = mapWindows(side, offsets);
    let total = 0;
    for (let k = 0; k < 40; k++) {
      const w = 0.1 + 0.7 * random.next();
      const h = 0.1 + 0.7 * random.next();
      const box = { x: (1 - w) * random.next(), y: (1 - h) * random.next(), w, h };
      // With a free gain a box narrower than the patch and a wider, fainter one blur alike: the shares' own scale tells them apart.
      const fitted = fitBoxToMap(windows.map((win) => shareOfWindowInBox(win, box)), offsets, side, 'shares');
      // Coordinate descent can stall on a box a third of a patch wide, where the map is faint.
      assert.ok(iou(fitted, box) > 0.8, `side ${side}: ${JSON.stringify(box)} fitted as ${JSON.stringify(fitted)}`);
      total += iou(fitted, box);
    }
    assert.ok(total / 40 > 0.95, `side ${side}: mean IoU ${total / 40}`);
  }
});

test('the default fit finds a box at least a patch wide in a map squeezed towards its middle, as an underfit classifier gives it; fitting the shares as they are does not', () => {
  const random = createRandom(11);
  const side = 0.25;
  const offsets = mapOffsets(side);
  const windows = mapWindows(side, offsets);
  let affine = 0;
  let shares = 0;
  for (let k = 0; k < 40; k++) {
    const w = 0.3 + 0.5 * random.next();
    const h = 0.3 + 0.5 * random.next();
    const box = { x: (1 - w) * random.next(), y: (1 - h) * random.next(), w, h };
    // Background said 0.2, garment 0.7.
    const map = windows.map((win) => 0.2 + 0.5 * shareOfWindowInBox(win, box));
    const fitted = fitBoxToMap(map, offsets, side);
    assert.ok(iou(fitted, box) > 0.9, `${JSON.stringify(box)} fitted as ${JSON.stringify(fitted)}`);
    affine += iou(fitted, box) / 40;
    shares += iou(fitBoxToMap(map, offsets, side, 'shares'), box) / 40;
  }
  assert.ok(affine > 0.97, `mean IoU ${affine}`);
  assert.ok(shares < affine - 0.1, `the shares as they are: mean IoU ${shares} vs ${affine}`);
});

test('maxSumRectangle finds the rectangle a brute-force search finds', () => {
  const random = createRandom(3);
  const n = 6;
  for (let trial = 0; trial < 20; trial++) {
    const values = Array.from({ length: n * n }, () => random.next() - 0.6);
    let best = -Infinity;
    for (let r0 = 0; r0 < n; r0++) for (let r1 = r0; r1 < n; r1++) for (let c0 = 0; c0 < n; c0++) for (let c1 = c0; c1 < n; c1++) {
      let sum = 0;
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) sum += values[r * n + c];
      best = Math.max(best, sum);
    }
    const [r0, c0, r1, c1] = maxSumRectangle(values, n);
    let found = 0;
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) found += values[r * n + c];
    assert.ok(Math.abs(found - best) < 1e-9, `found ${found}, best ${best}`);
  }
});
