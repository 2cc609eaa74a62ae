// train-triplet --stn (GILT's spatial transformer attachment, as train-classifier --stn): the
// transformer in front of the tower trains from the triplet loss alone (its score and scale heads
// start at zero and leave it), is saved in the model, and embed reads 64-px images through it;
// crossed scale bounds are a one-line exit-2 error.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAtelier, scratchDir } from '../helpers.js';
import { writePatchImages } from '../../fixtures/lib/patches.js';

let dir: string;
let records: string;

beforeAll(async () => {
  dir = scratchDir();
  records = await writePatchImages(dir, 240, 3, 64, 16);
});

/** The saved float32 values of one weight of a tfjs model directory. */
function savedWeight(model: string, name: string): Float32Array {
  const manifest = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).weightsManifest as Array<{ paths: string[]; weights: Array<{ name: string; shape: number[] }> }>;
  assert.equal(manifest.length, 1);
  const bytes = readFileSync(join(model, manifest[0].paths[0]));
  let offset = 0;
  for (const w of manifest[0].weights) {
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (w.name === name) return new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + 4 * size));
    offset += 4 * size;
  }
  throw new Error(`no weight ${name}`);
}

test('--stn: the transformer trains with the triplet loss, is saved, and embed reads images of its size', { timeout: 120_000 }, async () => {
  const model = join(dir, 'stn.model');
  const trained = await runAtelier([
    'train-triplet', '-i', records, '--positive-field', 'pattern', '--stn', '64', '--stn-min-scale', '0.25', '--stn-max-scale', '0.5',
    '--input-size', '16', '--stages', '2', '--width', '8', '--epochs', '2', '--val-fraction', '0', '--lr', '0.003', '-o', model,
  ], { timeoutMs: 100_000 });
  assert.equal(trained.code, 0, trained.stderr);
  // No validation split: no validation score to report (it once printed the epoch count).
  assert.equal(JSON.parse(trained.stdout).valTop1, null);
  const meta = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).atelier.metadata;
  assert.deepEqual(meta.stn, { input: { height: 64, width: 64 }, minScale: 0.25, maxScale: 0.5 });
  // Zero at initialisation (a centred crop at the middle scale): moved by the triplet gradient.
  for (const head of ['stn_score/kernel', 'stn_scale/kernel']) {
    const values = savedWeight(model, head);
    assert.ok(values.some((v) => v !== 0), `${head} still all zero`);
  }
  const embedded = await runAtelier(['embed', '-m', model, '-i', records, '-o', join(dir, 'stn.npy')]);
  assert.equal(embedded.code, 0, embedded.stderr);
  assert.match(embedded.stderr, /240 rows/);
});

test('--stn with crossed scale bounds is a one-line exit-2 error', async () => {
  const r = await runAtelier(['train-triplet', '-i', records, '--positive-field', 'pattern', '--stn', '64', '--stn-min-scale', '0.5', '--stn-max-scale', '0.3', '-o', join(dir, 'x')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), 'atelier train-triplet: --stn-min-scale: 0.5 is above --stn-max-scale 0.3');
});
