// Test helper: runs atomic-writer-child.js and SIGKILLs it once it has bytes on disk.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compiledSibling } from '../../src/lib/io/paths.js';

// A plain `node` child runs JavaScript only: the copy tsc wrote to dist/.
const childScript = fileURLToPath(compiledSibling(import.meta.url, './atomic-writer-child.js'));

/** Starts the child writer in `mode`, waits until it says bytes are on disk, waits `afterMs`, then SIGKILLs it; returns its pid. */
export async function killWriterMidWrite(mode: string, dest: string, afterMs = 0): Promise<number> {
  const child = spawn(process.execPath, [childScript, mode, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('writing')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
  });
  if (afterMs > 0) await new Promise((resolve) => setTimeout(resolve, afterMs));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  return child.pid!;
}
