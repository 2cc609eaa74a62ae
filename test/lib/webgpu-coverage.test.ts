// The op coverage list: the kernels our trainers really run (recorded from training steps of every
// tower family and loss) against tfjs-backend-webgpu's registry, read without a GPU. The file in
// docs/ must match what the code finds today (regenerate with node dist/src/gen-webgpu-ops.js).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { expectedWebgpuOps, webgpuOpsFile } from '../../src/gen-webgpu-ops.js';
import { tf } from '../../src/lib/backend/tf.js';

test('docs/webgpu-ops.md lists every kernel a trainer runs and is up to date', { timeout: 300_000 }, async () => {
  const text = await expectedWebgpuOps();
  assert.equal(readFileSync(webgpuOpsFile, 'utf8'), text, 'docs/webgpu-ops.md is stale: run node dist/src/gen-webgpu-ops.js');
  const rows = text.split('\n').filter((l) => /^\| [A-Z_]/.test(l)).map((l) => l.split('|').map((c) => c.trim()).slice(1, 5));
  const kernels = rows.map((r) => r[0]);
  // What a conv net's step must hold: convolutions and their gradients, BN, pooling, the update.
  for (const k of ['FusedConv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropFilter', 'FusedBatchNorm', 'MaxPool', 'MaxPoolGrad', 'UnsortedSegmentSum', 'Sqrt']) {
    assert.ok(kernels.includes(k), `${k} missing from the list`);
  }
  // The file's verdicts are the registry's.
  const webgpu = new Set(tf.getKernelsForBackend('webgpu').map((k) => k.kernelName));
  for (const [kernel, , onWebgpu] of rows) assert.equal(onWebgpu === 'yes', webgpu.has(kernel), kernel);
  const gaps = rows.filter((r) => r[2] !== 'yes' || r[3] === '**no**').length;
  assert.match(text, new RegExp(`## Gaps: ${gaps}\\n`));
  // WebGPU in Node cannot read synchronously: none may come back on a path it runs.
  assert.match(text, /## Synchronous read-backs: 0 in 0 files\n/);
});
