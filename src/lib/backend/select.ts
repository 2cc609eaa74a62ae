// Chooses the compute backend: the best one that loads, or the one forced by flag/env.
// Order: tfjs-node-gpu (CUDA), tfjs-node (native CPU), wasm (our CPU workhorse), cpu (plain JS).
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { tf } from './tf.js';
import { UsageError } from '../command.js';

export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendChoice {
  /** tfjs backend name in use ('tensorflow' for both native packages). */
  backend: string;
  /** The atelier name asked for or found: tensorflow-gpu, tensorflow, wasm or cpu. */
  name: BackendName;
  /** Why this one: forced by flag/env, or which better ones failed to load and why. */
  reason: string;
  /** Threads the backend computes with in this process. */
  threads: number;
}

const require = createRequire(import.meta.url);

/** Aliases a user may type for a backend. */
function normaliseBackendName(raw: string): BackendName {
  const name = raw.trim().toLowerCase();
  const aliases: Record<string, BackendName> = {
    gpu: 'tensorflow-gpu', 'tfjs-node-gpu': 'tensorflow-gpu', cuda: 'tensorflow-gpu', 'tensorflow-gpu': 'tensorflow-gpu',
    node: 'tensorflow', native: 'tensorflow', 'tfjs-node': 'tensorflow', tensorflow: 'tensorflow',
    wasm: 'wasm', cpu: 'cpu', js: 'cpu',
  };
  const found = aliases[name];
  if (!found) throw new UsageError(`unknown backend '${raw}' (choose from gpu, tensorflow, wasm, cpu)`, { field: '--backend' });
  return found;
}

async function tryBackend(name: BackendName): Promise<string> {
  switch (name) {
    case 'tensorflow-gpu':
      // The native packages bring their own tfjs-core copy; they register 'tensorflow' on ours
      // only when versions agree, which package.json pins.
      require('@tensorflow/tfjs-node-gpu');
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return 'tensorflow';
    case 'tensorflow':
      require('@tensorflow/tfjs-node');
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return 'tensorflow';
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const { registerWasmKernels } = await import('./wasm-kernels.js');
      registerWasmKernels();
      void wasm;
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
      return 'wasm';
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not initialise');
      return 'cpu';
  }
}

function shortReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (/Cannot find (module|package)/.test(msg)) return 'not installed';
  return msg.split('\n')[0].slice(0, 160);
}

/**
 * Selects and initialises the backend. `requested` (flag) wins over ATELIER_BACKEND; when neither
 * is given the best loadable backend is used. Says which on stderr once, unless `quiet`.
 */
export async function selectBackend(opts: {
  requested?: string;
  env?: NodeJS.ProcessEnv;
  stderr?: NodeJS.WritableStream;
  quiet?: boolean;
}): Promise<BackendChoice> {
  const env = opts.env ?? process.env;
  const forcedRaw = opts.requested && opts.requested !== 'auto' ? opts.requested : env.ATELIER_BACKEND && env.ATELIER_BACKEND !== 'auto' ? env.ATELIER_BACKEND : undefined;
  let choice: BackendChoice;
  if (forcedRaw) {
    const name = normaliseBackendName(forcedRaw);
    const source = opts.requested && opts.requested !== 'auto' ? '--backend' : 'ATELIER_BACKEND';
    try {
      const backend = await tryBackend(name);
      choice = { backend, name, reason: `forced by ${source}=${forcedRaw}`, threads: backendThreads(name) };
    } catch (err) {
      throw new UsageError(`backend '${forcedRaw}' cannot be used: ${shortReason(err)}`, { field: source });
    }
  } else {
    const failures: string[] = [];
    let found: BackendChoice | undefined;
    for (const name of BACKEND_NAMES) {
      try {
        const backend = await tryBackend(name);
        found = { backend, name, reason: failures.length ? `best available (${failures.join('; ')})` : 'best available', threads: backendThreads(name) };
        break;
      } catch (err) {
        failures.push(`${name}: ${shortReason(err)}`);
      }
    }
    if (!found) throw new Error(`no compute backend could be loaded (${failures.join('; ')})`);
    choice = found;
  }
  if (!opts.quiet) opts.stderr?.write(`atelier: backend ${choice.name} (${choice.reason})\n`);
  return choice;
}

/** Threads one process computes with: WASM and plain CPU run one thread in Node. */
export function backendThreads(name: BackendName): number {
  return name === 'wasm' || name === 'cpu' ? 1 : cpus().length;
}

/** The common yargs option every computing command takes. */
export const backendOption = {
  backend: {
    describe: 'compute backend: auto, gpu, tensorflow, wasm or cpu (env ATELIER_BACKEND)',
    type: 'string' as const,
    default: 'auto',
  },
};
