// Atomic outputs: nothing at the destination until commit, no leftovers after commit or abort, and a
// writer killed with SIGKILL mid-write leaves the old output (or none), never a truncated one.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runAtelier, scratchDir } from '../helpers.js';
import { UsageError } from '../../src/lib/command.js';
import { atomicDirectory, openAtomicFile, openAtomicWriteStream, writeFileAtomic } from '../../src/lib/io/atomic.js';
import { siblingTempPath } from '../../src/lib/io/paths.js';
import { killWriterMidWrite } from './atomic-kill.js';

function leftovers(dir: string, pid: number): string[] {
  return readdirSync(dir).filter((name) => name.includes(`.tmp-${pid}-`) || name.includes(`.old-${pid}-`));
}

test('temp names are hidden siblings carrying the pid', () => {
  const path = siblingTempPath('/data/out/model.npy');
  assert.match(path, new RegExp(`^/data/out/\\.model\\.npy\\.tmp-${process.pid}-[0-9a-f]{8}$`));
  assert.notEqual(siblingTempPath('/x/y'), siblingTempPath('/x/y'));
  assert.match(siblingTempPath('/x/y', 'old'), /^\/x\/\.y\.old-/);
});

test('writeFileAtomic creates and replaces a file and leaves no temp behind', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'out.txt');
  await writeFileAtomic(dest, 'first\n');
  assert.equal(readFileSync(dest, 'utf8'), 'first\n');
  await writeFileAtomic(dest, new Uint8Array([104, 105]));
  assert.equal(readFileSync(dest, 'utf8'), 'hi');
  assert.deepEqual(readdirSync(dir), ['out.txt']);
});

test('a missing output directory is a UsageError naming the output', async () => {
  const dest = join(scratchDir(), 'no', 'such', 'out.txt');
  await assert.rejects(writeFileAtomic(dest, 'x'), (err: unknown) => {
    assert.ok(err instanceof UsageError);
    assert.equal(err.place.file, dest);
    assert.match(err.message, /does not exist/);
    return true;
  });
});

test('an atomic stream shows nothing at the destination until commit', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'out.ndjson');
  writeFileSync(dest, 'old\n');
  const out = await openAtomicWriteStream(dest);
  assert.equal(out.tempPath.startsWith(join(dir, '.out.ndjson.tmp-')), true);
  for (let i = 0; i < 1000; i++) out.stream.write(`{"i":${i}}\n`);
  assert.equal(readFileSync(dest, 'utf8'), 'old\n');
  await out.commit();
  const lines = readFileSync(dest, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 1000);
  assert.equal(lines[999], '{"i":999}');
  assert.deepEqual(readdirSync(dir), ['out.ndjson']);
});

test('abort removes the temp file and keeps the old output', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'out.ndjson');
  writeFileSync(dest, 'old\n');
  const out = await openAtomicWriteStream(dest);
  out.stream.write('partial');
  await out.abort();
  await out.abort();
  assert.equal(readFileSync(dest, 'utf8'), 'old\n');
  assert.deepEqual(readdirSync(dir), ['out.ndjson']);

  const file = await openAtomicFile(join(dir, 'other.bin'));
  await file.handle.write('abc');
  await file.abort();
  assert.deepEqual(readdirSync(dir), ['out.ndjson']);
});

test('commit twice is an error, abort after commit does nothing', async () => {
  const dir = scratchDir();
  const file = await openAtomicFile(join(dir, 'a.txt'));
  await file.handle.write('a');
  await file.commit();
  await assert.rejects(file.commit(), /already committed/);
  await file.abort();
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'a');
});

test('atomicDirectory creates, replaces an old directory whole, and aborts cleanly', async () => {
  const parent = scratchDir();
  const dest = join(parent, 'model');
  const first = await atomicDirectory(dest);
  assert.equal(existsSync(dest), false);
  writeFileSync(join(first.tmpDir, 'model.json'), '{"v":1}');
  writeFileSync(join(first.tmpDir, 'stale.bin'), 'x');
  await first.commit();
  assert.deepEqual(readdirSync(dest).sort(), ['model.json', 'stale.bin']);

  const second = await atomicDirectory(dest);
  writeFileSync(join(second.tmpDir, 'model.json'), '{"v":2}');
  assert.equal(readFileSync(join(dest, 'model.json'), 'utf8'), '{"v":1}');
  await second.commit();
  // The old directory is replaced, not merged: its extra file is gone.
  assert.deepEqual(readdirSync(dest), ['model.json']);
  assert.equal(readFileSync(join(dest, 'model.json'), 'utf8'), '{"v":2}');
  assert.deepEqual(readdirSync(parent), ['model']);

  const third = await atomicDirectory(dest);
  writeFileSync(join(third.tmpDir, 'model.json'), '{"v":3}');
  await third.abort();
  assert.equal(readFileSync(join(dest, 'model.json'), 'utf8'), '{"v":2}');
  assert.deepEqual(readdirSync(parent), ['model']);
});

test('killed mid-stream: the old file stays whole; with no old file, none appears', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'out.bin');
  writeFileSync(dest, 'old content\n');
  const pid = await killWriterMidWrite('stream', dest);
  assert.equal(readFileSync(dest, 'utf8'), 'old content\n');
  const temps = leftovers(dir, pid);
  assert.equal(temps.length, 1, 'the killed writer had a temp file');
  assert.ok(statSync(join(dir, temps[0]!)).size > 1024 * 1024, 'and the kill landed after bytes were written');

  const fresh = join(dir, 'fresh.bin');
  await killWriterMidWrite('stream', fresh);
  assert.equal(existsSync(fresh), false);
});

test('killed during repeated writeFileAtomic: the file is the old one or a complete new one', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'big.bin');
  for (const afterMs of [0, 15, 40, 90]) {
    writeFileSync(dest, 'old');
    await killWriterMidWrite('file', dest, afterMs);
    const content = readFileSync(dest);
    const whole = content.toString() === 'old' || (content.length === 16 * 1024 * 1024 && content.every((b) => b === 0x6e));
    assert.ok(whole, `after ${afterMs} ms: ${content.length} bytes is neither the old nor the complete new file`);
  }
});

test('killed while filling a model directory: the old directory is untouched', async () => {
  const parent = scratchDir();
  const dest = join(parent, 'model');
  mkdirSync(dest);
  writeFileSync(join(dest, 'model.json'), 'old');
  const pid = await killWriterMidWrite('dir', dest, 30);
  assert.deepEqual(readdirSync(dest), ['model.json']);
  assert.equal(readFileSync(join(dest, 'model.json'), 'utf8'), 'old');
  assert.equal(leftovers(parent, pid).length, 1);
});

test('killed during repeated directory commits: the directory is complete or absent, never half', async () => {
  const parent = scratchDir();
  const dest = join(parent, 'model');
  for (const afterMs of [0, 10, 30]) {
    await killWriterMidWrite('dirs', dest, afterMs);
    if (!existsSync(dest)) continue; // killed between moving the old one aside and renaming the new one in
    assert.deepEqual(readdirSync(dest).sort(), ['a.txt', 'b.txt']);
    assert.equal(readFileSync(join(dest, 'a.txt'), 'utf8'), readFileSync(join(dest, 'b.txt'), 'utf8'));
  }
});

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

test('the next run removes the temp files and directories of killed runs, and only those', async () => {
  const dir = scratchDir();
  const dest = join(dir, 'out.npy');
  const killed = await killWriterMidWrite('npy', dest);
  assert.equal(leftovers(dir, killed).length, 1);
  // A live process's temp (this one's) and other names are left alone.
  const live = siblingTempPath(dest);
  writeFileSync(live, 'in progress');
  writeFileSync(join(dir, '.out.npy.tmp-notes'), 'not ours');
  const input = join(dir, 'rows.ndjson');
  writeFileSync(input, '[1,2]\n[3,4]\n');
  const r = await runAtelier(['npy', 'from-ndjson', input, '-o', dest]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(leftovers(dir, killed), []);
  assert.deepEqual(readdirSync(dir).sort(), ['.out.npy.tmp-notes', live.slice(dir.length + 1), 'out.npy', 'rows.ndjson'].sort());
});

test('a model moved aside by a run killed mid-commit is put back at the next run; stale temp dirs go', async () => {
  const parent = scratchDir();
  const dest = join(parent, 'weak.model');
  const gone = deadPid();
  const aside = join(parent, `.weak.model.old-${gone}-0a1b2c3d`);
  mkdirSync(aside);
  writeFileSync(join(aside, 'model.json'), 'old');
  mkdirSync(join(parent, `.weak.model.tmp-${gone}-0a1b2c3e`));
  const first = await killWriterMidWrite('dir', dest, 20);
  assert.equal(readFileSync(join(dest, 'model.json'), 'utf8'), 'old');
  assert.deepEqual(readdirSync(parent).filter((n) => n.includes(`-${gone}-`)), []);
  assert.equal(leftovers(parent, first).length, 1);
  await killWriterMidWrite('dir', dest, 20);
  assert.deepEqual(leftovers(parent, first), []);
});
