// Backend selection with forced and failing backends: ATELIER_PROBE_FAULT breaks a backend the way
// a real one breaks (no device, a kernel that throws, wrong numbers), and the real probe and
// selection code must notice, say why in one line, and fall through to the next.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../src/lib/backend/select.js';
import { findLibraries, loaderLibraries } from '../../src/lib/backend/gpu-libs.js';
import { UsageError } from '../../src/lib/command.js';
import { scratchDir } from '../helpers.js';

/** Collects what selectBackend says on stderr. */
function collector(): { stream: NodeJS.WritableStream; lines(): string[] } {
  let text = '';
  const stream = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

// The GPU and native backends are made absent so the test means the same on a GPU box.
const noGpu = 'webgpu:unavailable,tensorflow-gpu:unavailable,tensorflow:unavailable';

test('auto: a backend whose probe gives wrong numbers says so in one line and the next one is chosen', async () => {
  const err = collector();
  const choice = await selectBackend({ env: { ATELIER_PROBE_FAULT: `${noGpu},wasm:mismatch` }, stderr: err.stream });
  assert.equal(choice.name, 'cpu');
  const lines = err.lines();
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.equal(lines[0], 'atelier: backend wasm failed: probe failed: conv forward/backward differs from cpu by 0.500 (tolerance 0.001); trying cpu');
  assert.match(lines[1], /^atelier: backend cpu \(best available \(webgpu: no device \(simulated by ATELIER_PROBE_FAULT\); tensorflow-gpu: .*; wasm: probe failed: conv forward\/backward differs/);
  const wasm = choice.attempts.find((a) => a.name === 'wasm')!;
  assert.equal(wasm.status, 'failed');
  assert.equal(wasm.probe?.passed, false);
  assert.ok(Math.abs(wasm.probe!.maxError - 0.5) < 0.01, String(wasm.probe?.maxError));
});

test('auto: a kernel that throws in the probe is a failed backend too; unavailable ones print no line of their own', async () => {
  const err = collector();
  const choice = await selectBackend({ env: { ATELIER_PROBE_FAULT: `${noGpu},wasm:throw` }, stderr: err.stream });
  assert.equal(choice.name, 'cpu');
  const lines = err.lines();
  assert.deepEqual(lines.map((l) => l.split(':')[1].trim()), ['backend wasm failed', 'backend cpu (best available (webgpu']);
  assert.equal(lines[0], 'atelier: backend wasm failed: probe failed: conv kernel failed (simulated by ATELIER_PROBE_FAULT); trying cpu');
});

test('auto: a healthy WASM passes its probe against plain JS and is chosen, quietly when asked', async () => {
  const err = collector();
  const choice = await selectBackend({ env: { ATELIER_PROBE_FAULT: noGpu }, stderr: err.stream, quiet: true });
  assert.equal(choice.name, 'wasm');
  assert.deepEqual(err.lines(), []);
  const wasm = choice.attempts.find((a) => a.name === 'wasm')!;
  assert.equal(wasm.status, 'chosen');
  assert.equal(wasm.probe?.reference, 'cpu');
  assert.ok(wasm.probe!.maxError < 1e-5, String(wasm.probe!.maxError));
  assert.deepEqual(
    choice.attempts.map((a) => [a.name, a.status]),
    [['webgpu', 'no-device'], ['tensorflow-gpu', 'no-device'], ['tensorflow', 'no-device'], ['wasm', 'chosen'], ['cpu', 'not-tried']],
  );
});

test('a backend that cannot read synchronously (WebGPU in Node) passes its probe: the probe reads with await', async () => {
  const err = collector();
  const choice = await selectBackend({ env: { ATELIER_PROBE_FAULT: `${noGpu},wasm:no-sync-read` }, stderr: err.stream });
  assert.equal(choice.name, 'wasm');
  assert.equal(choice.attempts.find((a) => a.name === 'wasm')?.probe?.passed, true);
  assert.match(err.lines()[0], /^atelier: backend wasm \(best available/);
  assert.equal(err.lines().length, 1);
});

test('forced: a failing or unavailable backend is a usage error naming it and why; env and flag both force', async () => {
  await assert.rejects(
    selectBackend({ requested: 'webgpu', env: { ATELIER_PROBE_FAULT: 'webgpu:unavailable' } }),
    (e: unknown) => e instanceof UsageError && e.message === "backend 'webgpu' cannot be used: no device (simulated by ATELIER_PROBE_FAULT)" && e.place?.field === '--backend',
  );
  // WASM and plain JS are the references: forcing one skips its probe.
  const wasm = await selectBackend({ requested: 'wasm', env: { ATELIER_PROBE_FAULT: 'wasm:mismatch' } });
  assert.equal(wasm.name, 'wasm');
  assert.equal(wasm.attempts[0].probe, undefined);
  await assert.rejects(
    selectBackend({ env: { ATELIER_BACKEND: 'webgpu', ATELIER_PROBE_FAULT: 'webgpu:unavailable' } }),
    (e: unknown) => e instanceof UsageError && e.message === "backend 'webgpu' cannot be used: no device (simulated by ATELIER_PROBE_FAULT)" && e.place?.field === 'ATELIER_BACKEND',
  );
  const forced = await selectBackend({ requested: 'cpu', env: { ATELIER_BACKEND: 'wasm' } });
  assert.equal(forced.name, 'cpu');
  assert.equal(forced.reason, 'forced by --backend=cpu');
});

test('webgpu on a machine without a Vulkan adapter is unavailable (no device), never a crash', async (t) => {
  const choice = await selectBackend({ env: { ...process.env, ATELIER_BACKEND: '', ATELIER_PROBE_FAULT: '' }, quiet: true });
  const webgpu = choice.attempts.find((a) => a.name === 'webgpu')!;
  if (webgpu.status === 'chosen') return t.skip(`a WebGPU adapter is present: ${webgpu.device}`);
  assert.ok(['no-device', 'not-installed', 'failed'].includes(webgpu.status), webgpu.status);
  assert.match(webgpu.why, /libvulkan|adapter|not installed|probe failed/);
});

test('library versions are read from the file a soname resolves to, in LD_LIBRARY_PATH too', () => {
  const dir = scratchDir('atelier-libs-');
  writeFileSync(join(dir, 'libcudnn.so.8.1.0'), '');
  symlinkSync('libcudnn.so.8.1.0', join(dir, 'libcudnn.so.8'));
  writeFileSync(join(dir, 'libcudart.so.11.2.152'), '');
  symlinkSync('libcudart.so.11.2.152', join(dir, 'libcudart.so.11.0'));
  const libs = loaderLibraries({ LD_LIBRARY_PATH: `/no/such/dir:${dir}` });
  assert.deepEqual(findLibraries('libcudnn.so.8', libs).map((l) => [l.soname, l.version]), [['libcudnn.so.8', '8.1.0']]);
  assert.deepEqual(findLibraries('libcudart.so.11', libs).map((l) => l.version), ['11.2.152']);
});
