// Runs once per vitest run, in the main process: a directory for inputs that several test files
// build the same way (sharedOnce in helpers.ts), removed when the run ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    sharedInputsDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'atelier-shared-'));
  project.provide('sharedInputsDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
