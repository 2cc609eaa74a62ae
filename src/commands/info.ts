import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { defineCommand } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { atelierVersion } from '../lib/version.js';

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

export default defineCommand<{ backend: string }>({
  name: 'info',
  summary: 'print the compute backend chosen and why, threads and library versions as JSON',
  description:
    'Loads the best compute backend (or the one forced with --backend / ATELIER_BACKEND) and prints one JSON object on stdout: backend, the reason it was chosen (and why better ones were not), threads, cores, memory and the versions of atelier, tfjs, sharp and node.',
  options: { ...backendOption },
  examples: [
    ['atelier info', 'show the backend the toolkit will use here'],
    ['ATELIER_BACKEND=cpu atelier info | jq .backend', 'check that forcing a backend works'],
  ],
  async run(args, io) {
    const choice = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr, quiet: true });
    const sharp = (await import('sharp')).default;
    const report = {
      atelier: atelierVersion,
      backend: choice.name,
      tfjsBackend: tf.getBackend(),
      reason: choice.reason,
      threads: choice.threads,
      cores: availableParallelism?.() ?? cpus().length,
      memoryBytes: totalmem(),
      versions: {
        node: process.versions.node,
        tfjs: tf.version_core,
        'tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
        'tfjs-node': packageVersion('@tensorflow/tfjs-node'),
        'tfjs-node-gpu': packageVersion('@tensorflow/tfjs-node-gpu'),
        sharp: sharp.versions.sharp ?? packageVersion('sharp'),
        libvips: sharp.versions.vips,
      },
    };
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
  },
});
