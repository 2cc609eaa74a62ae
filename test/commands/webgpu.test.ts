// On a machine with a WebGPU adapter (a GPU's Vulkan driver, or a software one such as Mesa 25's
// lavapipe named by VK_ICD_FILENAMES), a trainer and embed run on WebGPU as processes, and embed
// agrees with WASM. Without an adapter (CI, this project's usual machine) the test skips.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { readNpy } from '../../src/lib/io/npy.js';

let dir: string;
let images: string;

beforeAll(async () => {
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  const records = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).slice(0, 32);
  images = join(dir, 'images.ndjson');
  writeFileSync(images, records.map((r) => JSON.stringify({ ...r, image: join(catalogue, String(r.image)) })).join('\n') + '\n');
});

test('on a WebGPU adapter: train-classifier trains and embed matches WASM to 1e-4', { timeout: 600_000 }, async (t) => {
  const model = join(dir, 'c.model');
  const train = ['train-classifier', '-i', images, '-l', 'silhouette', '--mode', 'finetune', '--tower', 'small', '--input-size', '24', '--width', '4', '--stages', '2', '--epochs', '1', '--batch', '8', '-o', model];
  const trained = await runAtelier([...train, '--backend', 'webgpu'], { timeoutMs: 400_000 });
  const unusable = /backend 'webgpu' cannot be used: (.*)/.exec(trained.stderr);
  if (trained.code === 2 && unusable) return t.skip(`no WebGPU here: ${unusable[1]}`);
  assert.equal(trained.code, 0, trained.stderr);
  assert.match(trained.stderr, /atelier: backend webgpu on .* \(forced by --backend=webgpu\)/);
  const rows: Float32Array[] = [];
  for (const backend of ['webgpu', 'wasm']) {
    const out = join(dir, `${backend}.npy`);
    const r = await runAtelier(['embed', '-m', model, '-i', images, '-o', out, '--engine', 'tfjs', '--workers', '1', '--backend', backend], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    rows.push((await readNpy(out)).data as Float32Array);
  }
  assert.equal(rows[0].length, rows[1].length);
  let worst = 0;
  rows[0].forEach((v, i) => (worst = Math.max(worst, Math.abs(v - rows[1][i]))));
  assert.ok(worst < 1e-4, `largest WebGPU - WASM difference ${worst}`);
});
