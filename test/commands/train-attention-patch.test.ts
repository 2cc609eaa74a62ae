// train-attention's own recurrent attention branch on the patch fixture (a 16-px patch of stripes,
// dots or checks at a random place on 64-px noise; the label is the patch's pattern): with the
// class-evidence term the branch's crop closes on the patch on held-out images, as --stn does.
import { describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { writePatchImages } from '../../fixtures/lib/patches.js';
import { iou, type Box } from '../../src/lib/models/locate.js';

// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  test('the attention branch crops the patch on held-out images (mean IoU > 0.5)', { timeout: 300_000 }, async () => {
    const dir = scratchDir();
    const records = await writePatchImages(dir, 800, 3, 64, 16);
    const predictions = join(dir, 'predictions.ndjson');
    // One step; the deck's scale constraint keeps the crop near the patch's side (0.25 of the image).
    const trained = await runAtelier([
      'train-attention', '-i', records, '-l', 'pattern', '--input-shape', '64x64', '--width', '8', '--steps', '1', '--texture-dim', '16', '--hidden', '32',
      '--glimpse', '6', '--alpha', '0.3', '--beta', '0.22', '--localisation-weight', '1', '--epochs', '3', '--lr', '0.005', '--batch', '32',
      '--predictions', predictions, '-o', join(dir, 'model'),
    ], { timeoutMs: 280_000 });
    assert.equal(trained.code, 0, trained.stderr);
    assert.match(trained.stderr, /L_ev [\d.]+/);
    const truth = new Map(parseNdjson(readFileSync(records, 'utf8')).map((r) => [r.id, r.box as Box]));
    const held = parseNdjson(readFileSync(predictions, 'utf8')).filter((p) => p.split === 'test');
    assert.ok(held.length >= 100, `held-out images ${held.length}`);
    const ious = held.map((p) => iou((p.boxes as Box[])[0], truth.get(p.id)!));
    const mean = ious.reduce((a, b) => a + b, 0) / ious.length;
    const report = JSON.parse(trained.stdout) as { test: { microF1: number } };
    console.log(`attention branch: held-out mean IoU ${mean.toFixed(3)}, micro-F1 ${report.test.microF1}`);
    // Measured 0.64 at 8 epochs (88 % of crops above 0.5) and 0.642 at 6 and at 3 (micro-F1 0.986: the run
    // keeps its best validation epoch, the second; 3 epochs cost 19 s CPU, 6 cost 41 s); the deck's loss
    // alone, the same model: see bench/RESULTS.md.
    assert.ok(mean > 0.5, `mean IoU of the crops with the patches on ${held.length} held-out images: ${mean.toFixed(3)}`);
    // Chance is 1/3 of the three patterns.
    assert.ok(report.test.microF1 >= 0.8, `held-out micro-F1 ${report.test.microF1}`);
  });
});
