// Chooses the compute backend: the best one that loads and passes a small probe (a conv forward
// and backward checked against WASM), or the one forced by flag/env.
// Order: webgpu (Dawn's Vulkan/Metal/D3D via the `webgpu` package), tfjs-node-gpu (CUDA 11.2),
// tfjs-node (native CPU), wasm (our CPU workhorse), cpu (plain JS, tfjs's reference kernels).
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { tf } from './tf.js';
import { UsageError } from '../command.js';
import { findLibraries, loaderLibraries } from './gpu-libs.js';
import { onRelease } from './release.js';

export const BACKEND_NAMES = ['webgpu', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface ProbeResult {
  passed: boolean;
  /** Largest |candidate - reference| over the conv output and both gradients, scaled by 1 + |reference|. */
  maxError: number;
  tolerance: number;
  /** Backend the results were checked against. */
  reference: string;
  ms: number;
}

/** What happened to one backend during selection. */
export interface BackendAttempt {
  name: BackendName;
  /** chosen; passed (works, a better one was chosen); not-installed; no-device; failed (loaded or probed and broke); not-tried. */
  status: 'chosen' | 'passed' | 'not-installed' | 'no-device' | 'failed' | 'not-tried';
  why: string;
  /** GPU name where the backend reports one. */
  device?: string;
  probe?: ProbeResult;
}

export interface BackendChoice {
  /** tfjs backend name in use ('tensorflow' for both native packages). */
  backend: string;
  /** The atelier name asked for or found. */
  name: BackendName;
  /** Why this one: forced by flag/env, or which better ones were passed over and why. */
  reason: string;
  /** Threads the backend computes with in this process. */
  threads: number;
  device?: string;
  /** Every backend considered, best first, with what became of it. */
  attempts: BackendAttempt[];
}

const require = createRequire(import.meta.url);

/** The backend cannot run here for want of a package or a device: the probe never ran. */
class Unavailable extends Error {
  constructor(
    message: string,
    readonly status: 'not-installed' | 'no-device',
  ) {
    super(message);
  }
}

/** Aliases a user may type for a backend. */
export function normaliseBackendName(raw: string): BackendName {
  const name = raw.trim().toLowerCase();
  const aliases: Record<string, BackendName> = {
    webgpu: 'webgpu', vulkan: 'webgpu', dawn: 'webgpu',
    gpu: 'tensorflow-gpu', 'tfjs-node-gpu': 'tensorflow-gpu', cuda: 'tensorflow-gpu', 'tensorflow-gpu': 'tensorflow-gpu',
    node: 'tensorflow', native: 'tensorflow', 'tfjs-node': 'tensorflow', tensorflow: 'tensorflow',
    wasm: 'wasm', cpu: 'cpu', js: 'cpu',
  };
  const found = aliases[name];
  if (!found) throw new UsageError(`unknown backend '${raw}' (choose from webgpu, gpu, tensorflow, wasm, cpu)`, { field: '--backend' });
  return found;
}

/**
 * ATELIER_PROBE_FAULT=webgpu:unavailable,wasm:mismatch — makes a backend fail as a broken one
 * would (tests): `unavailable` (no device), `throw` (a kernel fails), `mismatch` (wrong numbers),
 * `no-sync-read` (dataSync throws, as tfjs-backend-webgpu's does in Node: the probe reads asynchronously, so it passes).
 */
function probeFaults(env: NodeJS.ProcessEnv): Map<string, string> {
  const faults = new Map<string, string>();
  for (const item of (env.ATELIER_PROBE_FAULT ?? '').split(',').filter(Boolean)) {
    const [name, kind] = item.split(':');
    faults.set(normaliseBackendName(name), kind ?? 'throw');
  }
  return faults;
}

function isMissingModule(err: unknown): boolean {
  return /Cannot find (module|package)/.test(err instanceof Error ? err.message : String(err));
}

interface Loaded {
  backend: string;
  device?: string;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(descriptor: object): Promise<{ destroy(): void }>;
}

/** The WebGPU device in use, held here so `releaseWebGpu` can let go of it. */
let webgpuHeld: { device: { destroy(): void }; addedNavigator: boolean } | null = null;

/** Drops the WebGPU backend, device and navigator.gpu: Node does not exit while they are alive. */
export function releaseWebGpu(): void {
  if (!webgpuHeld) return;
  const { device, addedNavigator } = webgpuHeld;
  webgpuHeld = null;
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  device.destroy();
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (addedNavigator) delete g.navigator;
  else if (g.navigator) delete g.navigator.gpu;
}

async function loadWebGpu(env: NodeJS.ProcessEnv): Promise<Loaded> {
  let webgpu: { create(flags: string[]): { requestAdapter(o: object): Promise<GpuAdapterLike | null> }; globals: object };
  let WebGPUBackend: new (device: unknown, info: unknown) => tf.KernelBackend;
  try {
    require.resolve('webgpu');
    require.resolve('@tensorflow/tfjs-backend-webgpu');
  } catch {
    throw new Unavailable('not installed', 'not-installed');
  }
  // Checked before loading anything, so a CPU box pays little and gets our one reason, not
  // Dawn's warning about a missing loader.
  if (process.platform === 'linux' && findLibraries('libvulkan.so.1', loaderLibraries(env)).length === 0) {
    throw new Unavailable('libvulkan.so.1 not found (no Vulkan loader: install libvulkan1 and the GPU driver)', 'no-device');
  }
  // Imported before navigator.gpu exists, so the package registers no factory of its own.
  ({ WebGPUBackend } = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as { WebGPUBackend: typeof WebGPUBackend });
  webgpu = require('webgpu');
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Unavailable('no WebGPU adapter (the Vulkan driver lists no usable GPU)', 'no-device');
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    // tfjs-backend-webgpu asks for the adapter's own limits, as its browser factory does.
    requiredLimits: Object.fromEntries(
      ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup'].map((k) => [k, limits[k]]),
    ),
  });
  // WebGPUBackend checks navigator.gpu; Node 20 has no navigator at all.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  const addedNavigator = g.navigator === undefined;
  if (addedNavigator) g.navigator = { gpu };
  else g.navigator!.gpu = gpu;
  webgpuHeld = { device, addedNavigator };
  onRelease(releaseWebGpu);
  const info = adapter.info ?? {};
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(device, info));
  if (!(await tf.setBackend('webgpu'))) throw new Error('webgpu backend did not initialise');
  const name = [info.vendor, info.device || info.description, info.architecture].filter(Boolean).join(' ');
  return { backend: 'webgpu', device: name || 'unnamed adapter' };
}

async function loadWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmKernels } = await import('./wasm-kernels.js');
  registerWasmKernels();
}

async function loadBackend(name: BackendName, env: NodeJS.ProcessEnv): Promise<Loaded> {
  if (probeFaults(env).get(name) === 'unavailable') throw new Unavailable('no device (simulated by ATELIER_PROBE_FAULT)', 'no-device');
  switch (name) {
    case 'webgpu':
      return loadWebGpu(env);
    case 'tensorflow-gpu':
    case 'tensorflow':
      try {
        // The native packages bring their own tfjs-core copy; they register 'tensorflow' on ours
        // only when versions agree, which package.json pins.
        require(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
      } catch (err) {
        if (isMissingModule(err)) throw new Unavailable('not installed', 'not-installed');
        throw err;
      }
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return { backend: 'tensorflow' };
    case 'wasm':
      await loadWasm();
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
      return { backend: 'wasm' };
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not initialise');
      return { backend: 'cpu' };
  }
}

/** A conv layer's forward pass and both gradients on fixed inputs, read back (asynchronously) as plain arrays. */
async function convStep(): Promise<Float32Array[]> {
  const value = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + 0.3) * 0.5);
  const tensors = tf.tidy(() => {
    const x = tf.tensor4d(value(2 * 9 * 9 * 3, 0.7), [2, 9, 9, 3]);
    const w = tf.tensor4d(value(3 * 3 * 3 * 8, 1.3), [3, 3, 3, 8]);
    const target = tf.tensor4d(value(2 * 5 * 5 * 8, 0.4), [2, 5, 5, 8]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')), target));
    const y = tf.relu(tf.conv2d(x, w, 2, 'same'));
    const [dx, dw] = tf.grads(f)([x, w]);
    return [y, dx, dw];
  });
  const arrays = (await Promise.all(tensors.map((t) => t.data()))) as Float32Array[];
  tf.dispose(tensors);
  return arrays;
}

/**
 * Runs the conv probe on `candidate` (already loaded) and on `reference`, and compares, reading
 * with awaited reads only (atelier reads no tensor synchronously on the paths a GPU runs; WebGPU in
 * Node cannot). Leaves `candidate` as the active backend. `fault` simulates a broken backend (tests).
 */
export async function probeBackend(candidate: string, reference: string, fault?: string, tolerance = 1e-3): Promise<ProbeResult> {
  const start = performance.now();
  if (!(await tf.setBackend(reference))) throw new Error(`reference backend ${reference} did not initialise`);
  // tfjs-backend-cpu greets Node users on its first write; checking against it is not using it.
  const referenceBackend = tf.backend() as { firstUse?: boolean };
  if (reference === 'cpu' && 'firstUse' in referenceBackend) referenceBackend.firstUse = false;
  const expected = await convStep();
  if (!(await tf.setBackend(candidate))) throw new Error(`${candidate} did not initialise`);
  if (fault === 'throw') throw new Error('conv kernel failed (simulated by ATELIER_PROBE_FAULT)');
  const engine = tf.engine() as unknown as { readSync: (dataId: object) => unknown };
  // What tfjs-backend-webgpu does in Node (tests).
  if (fault === 'no-sync-read') engine.readSync = () => { throw new ReferenceError('OffscreenCanvas is not defined'); };
  let got: Float32Array[];
  try {
    got = await convStep();
  } finally {
    if (fault === 'no-sync-read') delete (engine as { readSync?: unknown }).readSync;
  }
  if (fault === 'mismatch') got[2] = got[2].map((v) => v + 0.5);
  let maxError = 0;
  for (let t = 0; t < expected.length; t++) {
    if (got[t].length !== expected[t].length) return { passed: false, maxError: Infinity, tolerance, reference, ms: performance.now() - start };
    for (let i = 0; i < expected[t].length; i++) {
      const e = Math.abs(got[t][i] - expected[t][i]) / (1 + Math.abs(expected[t][i]));
      maxError = Number.isNaN(e) ? Infinity : Math.max(maxError, e);
    }
  }
  return { passed: maxError <= tolerance, maxError, tolerance, reference, ms: performance.now() - start };
}

/** The backend a candidate's probe is checked against: WASM, or plain JS for WASM itself. */
async function referenceFor(name: BackendName): Promise<string | null> {
  if (name === 'cpu') return null; // tfjs's reference kernels: nothing to check them against
  if (name === 'wasm') return 'cpu';
  try {
    await loadWasm();
    return 'wasm';
  } catch {
    return 'cpu';
  }
}

function shortReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (isMissingModule(err)) return 'not installed';
  return msg.split('\n')[0].slice(0, 200);
}

/** Loads `name` and probes it; throws Unavailable, or an Error saying why it cannot be used. */
async function loadAndProbe(name: BackendName, env: NodeJS.ProcessEnv, probe: boolean): Promise<{ loaded: Loaded; probe?: ProbeResult }> {
  const loaded = await loadBackend(name, env);
  const reference = probe ? await referenceFor(name) : null;
  if (!reference) return { loaded };
  let result: ProbeResult;
  try {
    result = await probeBackend(loaded.backend, reference, probeFaults(env).get(name));
  } catch (err) {
    throw new Error(`probe failed: ${shortReason(err)}`);
  }
  if (!result.passed) {
    const e = new Error(`probe failed: conv forward/backward differs from ${reference} by ${result.maxError.toPrecision(3)} (tolerance ${result.tolerance})`);
    (e as Error & { probe?: ProbeResult }).probe = result;
    throw e;
  }
  return { loaded, probe: result };
}

/**
 * Selects and initialises the backend. `requested` (flag) wins over ATELIER_BACKEND and must pass
 * its probe too, except WASM and plain JS; when neither
 * is given the best backend that loads and passes its probe is used, and each one that is
 * installed and finds a device but fails says why in one line on stderr (one that is not
 * installed or finds no device is only named in the reason). Says which was chosen once, unless
 * `quiet`. `probe: false` skips the probes (a pool worker whose parent already probed);
 * `survey: true` also loads and probes the backends after the chosen one (atelier info).
 */
export async function selectBackend(opts: {
  requested?: string;
  env?: NodeJS.ProcessEnv;
  stderr?: NodeJS.WritableStream;
  quiet?: boolean;
  probe?: boolean;
  survey?: boolean;
}): Promise<BackendChoice> {
  const env = opts.env ?? process.env;
  const probe = opts.probe ?? true;
  const say = (line: string) => {
    if (!opts.quiet) opts.stderr?.write(line + '\n');
  };
  const forcedRaw = opts.requested && opts.requested !== 'auto' ? opts.requested : env.ATELIER_BACKEND && env.ATELIER_BACKEND !== 'auto' ? env.ATELIER_BACKEND : undefined;
  let choice: BackendChoice;
  if (forcedRaw) {
    const name = normaliseBackendName(forcedRaw);
    const source = opts.requested && opts.requested !== 'auto' ? '--backend' : 'ATELIER_BACKEND';
    try {
      // Our CPU backends are what the probes check against, and the suite tests them: forcing one
      // skips the probe (it would cost every forced-WASM run ~0.1 s). GPU and native ones are probed.
      const { loaded, probe: result } = await loadAndProbe(name, env, probe && name !== 'wasm' && name !== 'cpu');
      const reason = `forced by ${source}=${forcedRaw}`;
      choice = { backend: loaded.backend, name, reason, threads: backendThreads(name), device: loaded.device, attempts: [{ name, status: 'chosen', why: reason, device: loaded.device, probe: result }] };
    } catch (err) {
      if (name === 'webgpu') releaseWebGpu();
      throw new UsageError(`backend '${forcedRaw}' cannot be used: ${shortReason(err)}`, { field: source });
    }
  } else {
    const attempts: BackendAttempt[] = [];
    let found: BackendChoice | undefined;
    for (const [i, name] of BACKEND_NAMES.entries()) {
      if (found && !opts.survey) {
        attempts.push({ name, status: 'not-tried', why: `${found.name} was chosen first` });
        continue;
      }
      if (found) {
        try {
          const { loaded, probe: result } = await loadAndProbe(name, env, probe);
          attempts.push({ name, status: 'passed', why: `works, but ${found.name} comes first`, device: loaded.device, probe: result });
        } catch (err) {
          const unavailable = err instanceof Unavailable;
          attempts.push({ name, status: unavailable ? err.status : 'failed', why: shortReason(err), probe: (err as { probe?: ProbeResult }).probe });
        }
        continue;
      }
      try {
        const { loaded, probe: result } = await loadAndProbe(name, env, probe);
        const passedOver = attempts.map((a) => `${a.name}: ${a.why}`);
        const reason = passedOver.length ? `best available (${passedOver.join('; ')})` : 'best available';
        attempts.push({ name, status: 'chosen', why: result ? `probe passed against ${result.reference}` : 'loaded', device: loaded.device, probe: result });
        found = { backend: loaded.backend, name, reason, threads: backendThreads(name), device: loaded.device, attempts };
      } catch (err) {
        if (name === 'webgpu') releaseWebGpu();
        if (err instanceof Unavailable) {
          attempts.push({ name, status: err.status, why: err.message });
          continue;
        }
        const why = shortReason(err);
        attempts.push({ name, status: 'failed', why, probe: (err as { probe?: ProbeResult }).probe });
        const next = BACKEND_NAMES[i + 1];
        say(`atelier: backend ${name} failed: ${why}${next ? `; trying ${next}` : ''}`);
      }
    }
    if (!found) throw new Error(`no compute backend could be loaded (${attempts.map((a) => `${a.name}: ${a.why}`).join('; ')})`);
    if (opts.survey) await tf.setBackend(found.backend);
    choice = found;
  }
  say(`atelier: backend ${choice.name}${choice.device ? ` on ${choice.device}` : ''} (${choice.reason})`);
  return choice;
}

/** Threads one process computes with: WASM and plain CPU run one thread in Node. */
export function backendThreads(name: BackendName): number {
  return name === 'wasm' || name === 'cpu' ? 1 : cpus().length;
}

/** The common yargs option every computing command takes. */
export const backendOption = {
  backend: {
    describe: 'compute backend: auto, webgpu, gpu (tfjs-node-gpu, CUDA 11.2), tensorflow, wasm or cpu (env ATELIER_BACKEND)',
    type: 'string' as const,
    default: 'auto',
  },
};
