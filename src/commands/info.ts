import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { defineCommand } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { atelierVersion } from '../lib/version.js';
import { chooseEngine, engineOption, ortThreads } from '../lib/onnx/runtime.js';

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

export default defineCommand<{ backend: string; engine: string }>({
  name: 'info',
  summary: 'print the compute backend and inference engine chosen and why, threads and library versions as JSON',
  description:
    'Loads the best compute backend (or the one forced with --backend / ATELIER_BACKEND) and prints one JSON object on stdout: backend, the reason it was chosen (and why better ones were not), the inference engine embed, tag, classify and predict-sizenet use (onnxruntime or tfjs, --engine / ATELIER_ENGINE) and why, threads, cores, memory and the versions of atelier, tfjs, sharp and node.',
  options: { ...backendOption, ...engineOption },
  examples: [
    ['atelier info', 'show the backend the toolkit will use here'],
    ['ATELIER_BACKEND=cpu atelier info | jq .backend', 'check that forcing a backend works'],
  ],
  async run(args, io) {
    const choice = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr, quiet: true });
    const engine = await chooseEngine({ requested: args.engine, env: io.env, backend: choice });
    const sharp = (await import('sharp')).default;
    const report = {
      atelier: atelierVersion,
      backend: choice.name,
      tfjsBackend: tf.getBackend(),
      reason: choice.reason,
      threads: choice.threads,
      engine: engine.engine,
      engineReason: engine.reason,
      engineThreads: engine.engine === 'ort' ? ortThreads() : choice.threads,
      cores: availableParallelism?.() ?? cpus().length,
      memoryBytes: totalmem(),
      versions: {
        node: process.versions.node,
        tfjs: tf.version_core,
        'tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
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
