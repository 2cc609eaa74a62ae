// `atelier info` per backend, forced and failing backends seen from outside, and every run exiting
// on its own once the work is done (the GPU device released), with a timeout guard.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, runAtelier, scratchDir } from '../helpers.js';

// No exit guard: a process that needs it to end would hang here until the test's own timeout.
const noGuard = { ATELIER_EXIT_GRACE_MS: '600000' };
const noGpu = 'webgpu:unavailable,tensorflow-gpu:unavailable,tensorflow:unavailable';

interface InfoBackend {
  name: string;
  installed: boolean;
  status: string;
  why: string;
  probe: { passed: boolean; maxError: number; reference: string } | null;
}

test('info: each backend with installed, status, probe and why; a broken one is passed over', async () => {
  const r = await runAtelier(['info'], { env: { ...noGuard, ATELIER_BACKEND: 'auto', ATELIER_PROBE_FAULT: `${noGpu},wasm:mismatch` }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'info tells in its JSON, not on stderr');
  const info = JSON.parse(r.stdout) as { backend: string; backends: InfoBackend[]; gpu: object; versions: Record<string, string | null> };
  assert.equal(info.backend, 'cpu');
  const by = Object.fromEntries(info.backends.map((b) => [b.name, b]));
  assert.deepEqual(Object.keys(by), ['webgpu', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
  assert.equal(by.wasm.installed, true);
  assert.equal(by.wasm.status, 'failed');
  assert.equal(by.wasm.probe?.passed, false);
  assert.match(by.wasm.why, /^probe failed: conv forward\/backward differs from cpu by 0\.500/);
  assert.equal(by.cpu.status, 'chosen');
  assert.equal(by.webgpu.installed, true, 'webgpu and tfjs-backend-webgpu come with npm ci');
  assert.equal(by.webgpu.status, 'no-device');
  assert.equal(info.versions['tfjs-backend-webgpu'], '4.22.0');
  for (const key of ['nvidiaDriver', 'cudaRuntime', 'cudnn', 'vulkanLoader', 'vulkanIcds']) assert.ok(key in info.gpu, key);
});

test('info: a healthy auto run probes every backend; the ones after the chosen say they work', async () => {
  const r = await runAtelier(['info'], { env: { ...noGuard, ATELIER_BACKEND: 'auto', ATELIER_PROBE_FAULT: noGpu }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { backend: string; backends: InfoBackend[] };
  assert.equal(info.backend, 'wasm');
  const wasm = info.backends.find((b) => b.name === 'wasm')!;
  assert.equal(wasm.status, 'chosen');
  assert.ok(wasm.probe!.passed && wasm.probe!.maxError < 1e-5);
  assert.equal(info.backends.find((b) => b.name === 'cpu')!.status, 'passed');
});

test('info: CUDA and cuDNN versions are read from the libraries the loader would find', async () => {
  const dir = scratchDir();
  writeFileSync(join(dir, 'libcudnn.so.8.1.0'), '');
  symlinkSync('libcudnn.so.8.1.0', join(dir, 'libcudnn.so.8'));
  writeFileSync(join(dir, 'libcudart.so.11.2.152'), '');
  symlinkSync('libcudart.so.11.2.152', join(dir, 'libcudart.so.11.0'));
  const r = await runAtelier(['info', '--backend', 'cpu'], { env: { LD_LIBRARY_PATH: dir } });
  assert.equal(r.code, 0, r.stderr);
  const gpu = JSON.parse(r.stdout).gpu as { cudnn: Array<{ soname: string; version: string }>; cudaRuntime: Array<{ soname: string; version: string }> };
  assert.deepEqual(gpu.cudnn.find((l) => l.soname === 'libcudnn.so.8')?.version, '8.1.0');
  assert.deepEqual(gpu.cudaRuntime.find((l) => l.soname === 'libcudart.so.11.0')?.version, '11.2.152');
});

test('a forced backend that cannot be used: one line, exit 2; a forced WASM is not probed', async () => {
  const r = await runAtelier(['info', '--backend', 'webgpu'], { env: { ATELIER_PROBE_FAULT: 'webgpu:unavailable' } });
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "atelier info: --backend: backend 'webgpu' cannot be used: no device (simulated by ATELIER_PROBE_FAULT)\n");
  const wasm = await runAtelier(['info'], { env: { ATELIER_BACKEND: 'wasm', ATELIER_PROBE_FAULT: 'wasm:throw' } });
  assert.equal(wasm.code, 0, wasm.stderr);
  assert.equal(JSON.parse(wasm.stdout).backends.find((b: InfoBackend) => b.name === 'wasm').probe, null);
});

test('gpu-check runs each backend in its own process and reports img/s beside WASM', async () => {
  const out = join(scratchDir(), 'gpu-check.json');
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'bench', 'gpu-check.js'), '--backends', 'webgpu,wasm', '--family', 'small', '--size', '32', '--batch', '2', '--wasm-train-steps', '1', '--wasm-images', '4', '--out', out], { env: { ...process.env, ATELIER_PROBE_FAULT: 'webgpu:unavailable' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(r.code, 0, r.stderr);
  const results = (JSON.parse(readFileSync(out, 'utf8')) as { results: Array<{ backend: string; ok: boolean; why?: string; train?: { imagesPerSecond: number }; embed?: { images: number; imagesPerSecond: number } }> }).results;
  assert.equal(results[0].backend, 'webgpu');
  assert.equal(results[0].ok, false);
  assert.match(results[0].why!, /backend 'webgpu' cannot be used: no device/);
  assert.ok(results[1].ok && results[1].train!.imagesPerSecond > 0 && results[1].embed!.images === 4, JSON.stringify(results[1]));
  assert.match(r.stdout, /^wasm .* 1\.0 /m);
});

test('every backend that works here exits on its own when the work is done (timeout guard 60 s)', async () => {
  for (const backend of ['auto', 'webgpu', 'wasm', 'cpu']) {
    const started = Date.now();
    const r = await runAtelier(['info', '--backend', backend], { env: { ...noGuard, ATELIER_BACKEND: '' }, timeoutMs: 60_000 });
    assert.equal(r.signal, null, `${backend}: still running after 60 s (killed): something holds the event loop`);
    if (backend === 'webgpu' && r.code === 2) {
      assert.match(r.stderr, /^atelier info: --backend: backend 'webgpu' cannot be used: (libvulkan|no WebGPU adapter|not installed|probe failed)/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      continue;
    }
    assert.equal(r.code, 0, `${backend}: ${r.stderr}`);
    assert.ok(Date.now() - started < 60_000);
  }
});
