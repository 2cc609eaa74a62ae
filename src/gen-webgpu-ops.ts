// Writes docs/webgpu-ops.md: the kernels our trainers run and which WebGPU lacks.
// `--check` only says whether the file is stale (exit 1).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from './lib/backend/tf.js';
import { renderCoverage, trainerKernels, webgpuCoverage } from './lib/train/webgpu-coverage.js';

export async function expectedWebgpuOps(): Promise<string> {
  // The plain JS backend records the kernels the same everywhere (no fused or replaced kernels).
  await tf.setBackend('cpu');
  return renderCoverage(await webgpuCoverage(await trainerKernels()));
}

export const webgpuOpsFile = join(new URL('../../', import.meta.url).pathname, 'docs', 'webgpu-ops.md');

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
