// Writes docs/webgpu-ops.md: the kernels our trainers run and which WebGPU lacks.
// `--check` only says whether the file is stale (exit 1).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from './lib/io/paths.js';
import { tf } from './lib/backend/tf.js';
import { renderCoverage, trainerKernels, webgpuCoverage } from './lib/train/webgpu-coverage.js';

const root = packageRoot(import.meta.url);
export const webgpuOpsFile = join(root, 'docs', 'webgpu-ops.md');

/** Files whose synchronous reads never run on WebGPU. */
const NOT_ON_WEBGPU = [
  join('lib', 'backend', 'kernels'), // our WASM kernels
  join('lib', 'backend', 'pool-worker.ts'), // the WASM worker pool
  join('lib', 'backend', 'pool-protocol.ts'),
  join('lib', 'train', 'parallel-gradients.ts'), // the training workers: WASM only (trainingWorkers)
  join('lib', 'train', 'parallel-worker.ts'),
  join('lib', 'train', 'webgpu-coverage.ts'), // runs on the plain JS backend
];

/** dataSync()/arraySync() calls per source file under src/, those that never run on WebGPU left out. */
export function synchronousReads(dir = join(root, 'src')): Array<{ file: string; count: number }> {
  const found: Array<{ file: string; count: number }> = [];
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    const file = join(dir, entry);
    if (!entry.endsWith('.ts') || NOT_ON_WEBGPU.some((p) => entry.startsWith(p))) continue;
    const count = (readFileSync(file, 'utf8').match(/\.(dataSync|arraySync)\(\)/g) ?? []).length;
    if (count) found.push({ file: relative(root, file), count });
  }
  return found;
}

export async function expectedWebgpuOps(): Promise<string> {
  // The plain JS backend records the kernels the same everywhere (no fused or replaced kernels).
  await tf.setBackend('cpu');
  return renderCoverage(await webgpuCoverage(await trainerKernels()), synchronousReads());
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'))) {
  const text = await expectedWebgpuOps();
  let onDisk = '';
  try {
    onDisk = readFileSync(webgpuOpsFile, 'utf8');
  } catch {
    // not written yet
  }
  if (process.argv.includes('--check')) {
    if (onDisk !== text) {
      process.stderr.write(`${webgpuOpsFile} is stale: run node dist/src/gen-webgpu-ops.js\n`);
      process.exitCode = 1;
    }
  } else {
    mkdirSync(join(webgpuOpsFile, '..'), { recursive: true });
    writeFileSync(webgpuOpsFile, text);
    process.stdout.write(`wrote ${webgpuOpsFile}\n`);
  }
}
