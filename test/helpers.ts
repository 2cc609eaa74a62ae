// Helpers for tests that run atelier as a user would: a spawned process, real files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { inject } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/lib/io/paths.js';

/** Repository root: the directory of package.json. */
export const repoRoot = packageRoot(import.meta.url);
export const atelierBin = join(repoRoot, 'bin', 'atelier');
/** Fixture catalogue made by `make fixtures`; tests that need it call `fixturesDir()`. */
export const defaultFixtures = join(repoRoot, 'fixtures', 'out');

/**
 * The model-quality tier: the few tests that train for a minute or more to show a model learns what
 * it must, by a stated margin (`describe.runIf(MODEL_QUALITY)('model quality', ...)`). `make test`
 * lists them as skipped; `make test-quality` (ATELIER_TEST_QUALITY=1, `-t 'model quality'`) runs them,
 * and CI runs both.
 */
export const MODEL_QUALITY = process.env.ATELIER_TEST_QUALITY === '1';

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

/**
 * The directory `build` fills, built once per vitest run however many test files ask for `key`:
 * the first caller builds it (holding a lock directory), the others wait for its `.done` mark. For
 * inputs that are not under test in the files that share them (e.g. the crawled fixture catalogue).
 */
export async function sharedOnce(key: string, build: (dir: string) => Promise<void>): Promise<string> {
  const root = inject('sharedInputsDir');
  const dir = join(root, key);
  const done = join(dir, '.done');
  const lock = join(root, `${key}.lock`);
  const deadline = Date.now() + 30 * 60_000;
  while (!existsSync(done)) {
    let mine = false;
    try {
      mkdirSync(lock);
      mine = true;
    } catch {
      // Another file is building it.
    }
    if (mine) {
      try {
        if (!existsSync(done)) {
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir);
          await build(dir);
          writeFileSync(done, '');
        }
      } finally {
        rmSync(lock, { recursive: true, force: true });
      }
    } else {
      if (Date.now() > deadline) throw new Error(`shared input '${key}' was not built within 30 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  return dir;
}

/** Parses NDJSON text into objects (blank lines ignored). */
export function parseNdjson(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A usage error as the project promises it: exit 2 and one line on stderr matching `message`. */
export function oneLineExit2(r: { code: number | null; stderr: string }, message: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], message);
}
