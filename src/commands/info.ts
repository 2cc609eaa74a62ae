import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { defineCommand } from '../lib/command.js';
import { BACKEND_NAMES, backendOption, selectBackend, type BackendName } from '../lib/backend/select.js';
import { scanGpuSystem } from '../lib/backend/gpu-libs.js';
import { tf } from '../lib/backend/tf.js';
import { atelierVersion } from '../lib/version.js';
import { chooseEngine, engineOption } from '../lib/onnx/runtime.js';
import { ortThreads } from '../lib/onnx/session.js';

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

/** The npm packages each backend needs. */
const BACKEND_PACKAGES: Record<BackendName, string[]> = {
  webgpu: ['webgpu', '@tensorflow/tfjs-backend-webgpu'],
  'tensorflow-gpu': ['@tensorflow/tfjs-node-gpu'],
  tensorflow: ['@tensorflow/tfjs-node'],
  wasm: ['@tensorflow/tfjs-backend-wasm'],
  cpu: ['@tensorflow/tfjs-core'],
};

/** onnxruntime-node's version and execution providers, where it is installed. */
async function onnxruntimeInfo(): Promise<{ version: string; providers: string[] | null } | null> {
  const version = packageVersion('onnxruntime-node');
  if (!version) return null;
  try {
    const ort = (await import('onnxruntime-node' as string)) as { listSupportedBackends?: () => Array<{ name: string }> };
    return { version, providers: ort.listSupportedBackends ? ort.listSupportedBackends().map((b) => b.name) : null };
  } catch {
    return { version, providers: null };
  }
}

export default defineCommand<{ backend: string; engine: string }>({
  name: 'info',
  summary: 'print each compute backend (installed, probe, device, why chosen or not), GPU libraries and versions as JSON',
  description:
    'Loads the best compute backend (or the one forced with --backend / ATELIER_BACKEND) and prints one JSON object on stdout: backend, the reason it was chosen, and for each backend whether its packages are installed, its probe result (a conv forward and backward checked against WASM), the device it found and why it was or was not chosen; then the GPU stack found without loading it (NVIDIA driver, CUDA runtime, cuDNN, Vulkan loader and ICDs, from ldconfig -p and LD_LIBRARY_PATH), onnxruntime-node\'s providers where installed, the inference engine embed, tag, classify, rise and predict-sizenet use (onnxruntime or tfjs, --engine / ATELIER_ENGINE) and why, threads, cores, memory and library versions. Without a forced backend every backend is probed, so this is the one look that tells what to fix on a GPU box.',
  options: { ...backendOption, ...engineOption },
  examples: [
    ['atelier info', 'show the backend the toolkit will use here, and why the others were not'],
    ['atelier info | jq ".backends[] | {name, status, why}"', 'one line per backend'],
    ['ATELIER_BACKEND=cpu atelier info | jq .backend', 'check that forcing a backend works'],
  ],
  async run(args, io) {
    const choice = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr, quiet: true, survey: true });
    const engine = await chooseEngine({ requested: args.engine, env: io.env, backend: choice });
    const sharp = (await import('sharp')).default;
    const backends = BACKEND_NAMES.map((name) => {
      const attempt = choice.attempts.find((a) => a.name === name);
      const packages = Object.fromEntries(BACKEND_PACKAGES[name].map((p) => [p, packageVersion(p)]));
      return {
        name,
        installed: Object.values(packages).every((v) => v !== null),
        packages,
        status: attempt?.status ?? 'not-tried',
        why: attempt?.why ?? `${choice.name} was ${choice.reason}`,
        device: attempt?.device ?? null,
        probe: attempt?.probe
          ? { passed: attempt.probe.passed, maxError: attempt.probe.maxError, tolerance: attempt.probe.tolerance, reference: attempt.probe.reference, ms: Math.round(attempt.probe.ms) }
          : null,
      };
    });
    const report = {
      atelier: atelierVersion,
      backend: choice.name,
      tfjsBackend: tf.getBackend(),
      reason: choice.reason,
      device: choice.device ?? null,
      threads: choice.threads,
      engine: engine.engine,
      engineReason: engine.reason,
      engineThreads: engine.engine === 'ort' ? ortThreads() : choice.threads,
      cores: availableParallelism?.() ?? cpus().length,
      memoryBytes: totalmem(),
      backends,
      gpu: scanGpuSystem(io.env),
      onnxruntime: await onnxruntimeInfo(),
      versions: {
        node: process.versions.node,
        tfjs: tf.version_core,
        'tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
        'tfjs-backend-webgpu': packageVersion('@tensorflow/tfjs-backend-webgpu'),
        webgpu: packageVersion('webgpu'),
        'tfjs-node': packageVersion('@tensorflow/tfjs-node'),
        'tfjs-node-gpu': packageVersion('@tensorflow/tfjs-node-gpu'),
        'onnxruntime-node': engine.ort?.env.versions.node ?? packageVersion('onnxruntime-node'),
        sharp: sharp.versions.sharp ?? packageVersion('sharp'),
        libvips: sharp.versions.vips,
      },
    };
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
  },
});
