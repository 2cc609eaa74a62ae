// The CLI as a user meets it: top-level help, per-command help, man pages, bin links, exit codes.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { atelierBin, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { loadCommands } from '../../src/commands/index.js';

const commands = await loadCommands();
import { expectedBinEntries, expectedManPages } from '../../src/gen-man.js';

test('atelier --help lists every command with its summary', async () => {
  const r = await runAtelier(['--help']);
  assert.equal(r.code, 0);
  for (const c of commands) assert.match(r.stdout, new RegExp(`^  ${c.name}\\s+${c.summary.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
});

test('atelier with no command prints help and exits 2', async () => {
  const r = await runAtelier([]);
  assert.equal(r.code, 2);
  assert.match(r.stdout, /Commands:/);
});

test('every command --help shows its options with defaults and an example', async () => {
  for (const c of commands) {
    const r = await runAtelier([c.name, '--help']);
    assert.equal(r.code, 0, `${c.name} --help exit code`);
    assert.match(r.stdout, new RegExp(`^atelier ${c.name}`), `${c.name} usage line`);
    assert.match(r.stdout, /Examples:/, `${c.name} has examples`);
    assert.ok(c.examples.length > 0, `${c.name} defines an example`);
    for (const [name, option] of Object.entries(c.options)) {
      assert.ok(option.describe, `${c.name} --${name} has a description`);
      const flag = name.length === 1 ? `-${name}` : `--${name}`;
      assert.ok(r.stdout.includes(flag), `${c.name} --help shows ${flag}`);
      if (option.default !== undefined && option.type !== 'boolean') {
        assert.ok(r.stdout.includes(`[default: ${JSON.stringify(option.default)}]`) || r.stdout.includes(`[default: ${String(option.default)}]`), `${c.name} --${name} shows its default`);
      }
    }
  }
});

test('man pages are generated from the command definitions and are not stale', () => {
  for (const [name, text] of expectedManPages()) {
    let onDisk = '';
    try {
      onDisk = readFileSync(join(repoRoot, 'man', name), 'utf8');
    } catch {
      assert.fail(`man/${name} is missing (run make man)`);
    }
    assert.equal(onDisk, text, `man/${name} is stale (run make man)`);
  }
});

test('package.json has an atelier-<cmd> bin entry for every command', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.deepEqual(pkg.bin, expectedBinEntries());
});

test('atelier-<cmd> link runs that command', () => {
  const dir = scratchDir();
  const link = join(dir, 'atelier-info');
  symlinkSync(atelierBin, link);
  const r = spawnSync(process.execPath, [link, '--backend', 'cpu'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).backend, 'cpu');
});

test('unknown command and unknown option are usage errors: one line, exit 2', async () => {
  const a = await runAtelier(['no-such-command']);
  assert.equal(a.code, 2);
  assert.equal(a.stderr.trim().split('\n').length, 1);
  const b = await runAtelier(['info', '--bogus']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /^atelier info: .*bogus/);
  assert.equal(b.stderr.trim().split('\n').length, 1);
  assert.doesNotMatch(b.stderr, /\bat .*\.js:\d+/);
});

test('info reports the backend, why, threads and versions as JSON', async () => {
  const r = await runAtelier(['info'], { env: { ATELIER_BACKEND: 'wasm' } });
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.backend, 'wasm');
  assert.match(info.reason, /ATELIER_BACKEND/);
  assert.equal(typeof info.threads, 'number');
  assert.equal(info.versions.tfjs, '4.22.0');
  assert.ok(info.versions.sharp);
  assert.equal(info.versions.node, process.versions.node);
  const flag = await runAtelier(['info', '--backend', 'cpu'], { env: { ATELIER_BACKEND: 'wasm' } });
  assert.equal(JSON.parse(flag.stdout).backend, 'cpu', 'the flag wins over the environment');
  const auto = await runAtelier(['info'], { env: { ATELIER_BACKEND: 'auto' } });
  assert.match(JSON.parse(auto.stdout).reason, /best available/);
});

test('a backend that cannot load is a usage error naming it', async () => {
  const r = await runAtelier(['info', '--backend', 'gpu'], { env: { ATELIER_BACKEND: '' } });
  if (r.code === 0) return; // a CUDA box with tfjs-node-gpu installed
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^atelier info: --backend: backend 'gpu' cannot be used/);
  const bad = await runAtelier(['info', '--backend', 'quantum']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown backend 'quantum'/);
});
