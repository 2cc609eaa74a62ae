// The test suite: vitest runs test/**/*.test.ts from source; spawned CLI processes and worker threads
// run the JavaScript tsc writes to dist/ (see README "Tests").
import { defineConfig } from 'vitest/config';

// End-to-end files (they train models, run a command dozens of times, read the real data sets or
// drive chromium): `vitest --project fast` (make test-fast) leaves them out.
const heavy = [
  'test/commands/{attention,weak-pipeline,weak-words,eval-words,towers-trainers,train-*,sizenet,locate,rise,classify}.test.ts',
  'test/commands/{engine,export,import-backbone,model-files,duplicate-ids,knn,outputs,crawl-tokenize,cli,usage-errors}.test.ts',
  'test/commands/{real-data,real-hires-crawl,report-browser,review-browser}.test.ts',
  'test/commands/{shard-*,remote,no-sync-read,review,knn-index}.test.ts',
  'test/lib/{webgpu-coverage,knn,fixtures,tsne}.test.ts',
];

export default defineConfig({
  test: {
    // Three files at a time in their own processes on the 2-core machine: with two, 7% of the CPU
    // sat idle (process start-up, file I/O, the tail of a file); tests within a file in order.
    pool: 'forks',
    // Removes each file's scratch directories when the file ends (vitest skips 'exit' handlers).
    setupFiles: ['test/setup.ts'],
    // One directory per run for inputs several files share (helpers.ts sharedOnce).
    globalSetup: ['test/global-setup.ts'],
    maxWorkers: 3,
    // Each file trains in one thread unless a test asks for --workers (the data-parallel tests do).
    env: { ATELIER_TRAIN_WORKERS: process.env.ATELIER_TRAIN_WORKERS ?? '1' },
    // As under node:test: no limit unless a test sets its own `timeout` (a trainer's before-hook can take
    // many minutes on a loaded machine).
    testTimeout: 0,
    hookTimeout: 0,
    // Every test on its own line, skips with their reason, annotations (screenshots) under their test.
    reporters: ['verbose'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reportsDirectory: 'coverage',
      reporter: ['text-summary', 'json-summary', 'html'],
      // A report also when a test failed: the numbers still say what ran.
      reportOnFailure: true,
    },
    projects: [
      { extends: true, test: { name: 'fast', include: ['test/**/*.test.ts'], exclude: heavy } },
      { extends: true, test: { name: 'e2e', include: heavy } },
    ],
  },
});
