// Helpers for tests that run atelier as a user would: a spawned process, real files.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/lib/io/paths.js';

/** Repository root: the directory of package.json. */
export const repoRoot = packageRoot(import.meta.url);
export const atelierBin = join(repoRoot, 'bin', 'atelier');
/** Fixture catalogue made by `make fixtures`; tests that need it call `fixturesDir()`. */
export const defaultFixtures = join(repoRoot, 'fixtures', 'out');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `atelier ...args` with optional stdin text; resolves when it exits. */
export function runAtelier(
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [atelierBin, ...args], {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, ATELIER_BACKEND: process.env.ATELIER_BACKEND ?? 'wasm', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

const scratchDirs: string[] = [];
// One 'exit' handler for the process: the list empties after each file, so its length cannot say.
process.once('exit', () => removeScratchDirs());

/** A scratch directory, removed after the test file (test/setup.ts) or when the process exits. */
export function scratchDir(prefix = 'atelier-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

/** Removes every scratch directory made so far. vitest ends its worker processes without their
 * 'exit' handlers, so the setup file calls this after each test file. */
export function removeScratchDirs(): void {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Parses NDJSON text into objects (blank lines ignored). */
export function parseNdjson(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
