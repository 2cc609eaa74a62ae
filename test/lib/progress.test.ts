// Progress: a bar only on a terminal, nothing on a pipe unless plain lines are asked for, and
// never a byte on stdout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'vitest';
import { startProgress } from '../../src/lib/progress.js';
import { repoRoot } from '../helpers.js';

/** A writable that keeps what it is given; `isTTY` as asked. */
function captureStream(isTTY: boolean): Writable & { text(): string; isTTY?: boolean; columns?: number } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { text(): string; isTTY?: boolean; columns?: number };
  if (isTTY) {
    stream.isTTY = true;
    stream.columns = 100;
  }
  stream.text = () => chunks.join('');
  return stream;
}

// Escape sequences (cursor moves, line clearing) removed, to read what a person sees.
const visible = (text: string): string => text.replace(/\x1b(\[[0-9;?]*[A-Za-z]|[78])/g, '');

describe('startProgress', () => {
  it('writes nothing when the stream is not a terminal', () => {
    const stream = captureStream(false);
    const progress = startProgress(stream, { total: 10, label: 'embed' });
    for (let i = 0; i < 10; i++) progress.tick(1, { loss: 0.5 });
    progress.update(10);
    progress.stop();
    assert.equal(stream.text(), '');
  });

  it('draws a bar with label, count and payload on a terminal, and ends the line on stop', () => {
    const stream = captureStream(true);
    const progress = startProgress(stream, { total: 10, label: 'embed' });
    progress.tick();
    progress.tick(2, { loss: '0.412' });
    progress.update(7, { loss: '0.300' });
    progress.stop();
    progress.stop();
    progress.tick();
    const shown = visible(stream.text());
    assert.match(shown, /embed \[[=-]+\] 70% \| 7\/10 \| ETA .*\| loss=0\.300/);
    assert.ok(shown.endsWith('\n'), 'stop ends the line');
    assert.equal(shown.split('\n').length, 2, 'one line, ended once');
    assert.doesNotMatch(shown, /8\/10/, 'ticks after stop are ignored');
  });

  it('shows a running count when the total is unknown', () => {
    const stream = captureStream(true);
    const progress = startProgress(stream, { label: 'crawl' });
    progress.tick(5);
    progress.stop();
    assert.match(visible(stream.text()), /crawl 5 done/);
  });

  it('writes occasional plain lines on a pipe when asked', () => {
    const everyTick = captureStream(false);
    const progress = startProgress(everyTick, { total: 4, label: 'train', plainLines: true, plainIntervalMs: 0 });
    progress.tick(1, { loss: 1.5 });
    progress.tick();
    progress.stop();
    const lines = everyTick.text().trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^train: 1\/4 \(25%\) \d+s \| loss=1\.5$/);
    assert.match(lines[2], /^train: 2\/4 \(50%\) \d+s \| loss=1\.5$/);
    assert.doesNotMatch(everyTick.text(), /\x1b/, 'no escape codes in plain lines');

    const rarely = captureStream(false);
    const slow = startProgress(rarely, { total: 100, label: 'train', plainLines: true });
    for (let i = 0; i < 100; i++) slow.tick();
    slow.stop();
    assert.deepEqual(rarely.text().trimEnd().split('\n').length, 1, 'only the final line within the interval');
  });

  it('never writes to stdout, even drawing on a terminal', () => {
    const original = process.stdout.write;
    let stdoutWrites = 0;
    process.stdout.write = ((...args: Parameters<typeof original>) => {
      stdoutWrites++;
      return original.apply(process.stdout, args);
    }) as typeof original;
    try {
      const stream = captureStream(true);
      const progress = startProgress(stream, { total: 3, label: 'x' });
      progress.tick(3);
      progress.stop();
      assert.ok(stream.text().length > 0);
    } finally {
      process.stdout.write = original;
    }
    assert.equal(stdoutWrites, 0);
  });

  it('is silent on a real piped stderr in a child process', async () => {
    const module = join(repoRoot, 'dist', 'src', 'lib', 'progress.js');
    const script = `
      const { startProgress } = await import(${JSON.stringify(module)});
      const p = startProgress(process.stderr, { total: 50, label: 'embed' });
      for (let i = 0; i < 50; i++) { p.tick(); await new Promise((r) => setTimeout(r, 1)); }
      p.stop();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    assert.equal(out, '');
    assert.equal(err, '');
  });
});
