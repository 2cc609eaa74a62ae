// `atelier npy` as a user runs it: NDJSON -> .npy -> info / NDJSON round trips, row ranges, NumPy
// agreeing on what was written, and bad input stopping with exit 2 and one line naming file:line.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atelierBin, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { readNpy, writeNpy } from '../../src/lib/io/npy.js';

const PYTHON = '/usr/bin/python3';
const numpyAvailable = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

/** Asserts a usage failure: exit 2, exactly one stderr line, equal to `line`, nothing on stdout. */
function assertUsageFailure(r: { code: number | null; stdout: string; stderr: string }, line: string | RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one stderr line, got: ${r.stderr}`);
  if (typeof line === 'string') assert.equal(lines[0], line);
  else assert.match(lines[0]!, line);
}

test('from-ndjson -> info -> to-ndjson round-trips values exactly (float32, NaN and infinities included)', async () => {
  const dir = scratchDir();
  const input = join(dir, 'rows.ndjson');
  const out = join(dir, 'rows.npy');
  writeFileSync(input, '[0.1, -2.5, 3]\n\n[1e-7, 65504, null]\r\n["Infinity", "-Infinity", "NaN"]\n[0, -0, 16777217]\n');
  const written = await runAtelier(['npy', 'from-ndjson', input, '-o', out]);
  assert.equal(written.code, 0, written.stderr);
  assert.equal(written.stdout, '');
  assert.match(written.stderr, /wrote .*rows\.npy: float32 \(4, 3\)/);

  const { header, data } = await readNpy(out);
  assert.deepEqual(header.shape, [4, 3]);
  assert.equal(header.dtype, 'float32');
  assert.deepEqual(Array.from(data as Float32Array).slice(0, 5), [0.1, -2.5, 3, 1e-7, 65504].map(Math.fround));

  const info = await runAtelier(['npy', 'info', out]);
  assert.equal(info.code, 0, info.stderr);
  const report = JSON.parse(info.stdout);
  assert.equal(report.version, '1.0');
  assert.equal(report.dtype, 'float32');
  assert.deepEqual(report.shape, [4, 3]);
  assert.equal(report.dataOffset % 64, 0);
  assert.equal(report.stats.count, 8);
  assert.equal(report.stats.nanCount, 2);
  assert.equal(report.stats.infCount, 2);
  assert.equal(report.stats.min, -2.5);
  assert.equal(report.stats.max, 16777216, 'float32 rounds 16777217 to 16777216');
  const finite = [0.1, -2.5, 3, 1e-7, 65504, 0, 0, 16777216].map(Math.fround);
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
  assert.ok(Math.abs(report.stats.mean - mean) < 1e-9 * Math.abs(mean));

  const back = await runAtelier(['npy', 'to-ndjson', out]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.stdout, '[0.1,-2.5,3]\n[1e-7,65504,"NaN"]\n["Infinity","-Infinity","NaN"]\n[0,0,16777216]\n');
});

test('to-ndjson --rows reads a range; --objects numbers the rows; from-ndjson --field reads them back', async () => {
  const dir = scratchDir();
  const source = join(dir, 'cube.npy');
  const values = Int32Array.from({ length: 5 * 2 * 3 }, (_, i) => i * 7 - 50);
  await writeNpy(source, values, [5, 2, 3]);

  const range = await runAtelier(['npy', 'to-ndjson', '--rows', '1:3', source]);
  assert.equal(range.code, 0, range.stderr);
  assert.equal(range.stdout, '[[-8,-1,6],[13,20,27]]\n[[34,41,48],[55,62,69]]\n');
  const single = await runAtelier(['npy', 'to-ndjson', '--rows', '4', '--objects', source]);
  assert.deepEqual(parseNdjson(single.stdout), [{ row: 4, values: [[118, 125, 132], [139, 146, 153]] }]);

  const objects = await runAtelier(['npy', 'to-ndjson', '--objects', '--rows', '3:', source]);
  assert.deepEqual(
    parseNdjson(objects.stdout).map((o) => o.row),
    [3, 4],
  );
  const copy = join(dir, 'copy.npy');
  const readBack = await runAtelier(['npy', 'from-ndjson', '--field', 'values', '--dtype', 'int32', '-o', copy], { input: objects.stdout });
  assert.equal(readBack.code, 0, readBack.stderr);
  const { header, data } = await readNpy(copy);
  assert.deepEqual(header.shape, [2, 2, 3]);
  assert.equal(header.dtype, 'int32');
  assert.deepEqual(Array.from(data as Int32Array), Array.from(values.subarray(18)));
});

test('a 1-d array is one number per line, and bare numbers make a 1-d array', async () => {
  const dir = scratchDir();
  const out = join(dir, 'scores.npy');
  const r = await runAtelier(['npy', 'from-ndjson', '-o', out, '--dtype', 'uint8'], { input: '3\n250\n0\n' });
  assert.equal(r.code, 0, r.stderr);
  const back = await runAtelier(['npy', 'to-ndjson', out]);
  assert.equal(back.stdout, '3\n250\n0\n');
  const info = JSON.parse((await runAtelier(['npy', 'info', '--columns', out])).stdout);
  assert.deepEqual(info.shape, [3]);
  assert.equal(info.descr, '|u1');
  assert.equal(info.columns.length, 1);
  assert.equal(info.columns[0].max, 250);
});

test('info --columns summarises each column; --no-stats reads only the header', async () => {
  const dir = scratchDir();
  const path = join(dir, 'm.npy');
  await writeNpy(path, new Float64Array([1, 10, 2, 20, 3, NaN]), [3, 2]);
  const withColumns = JSON.parse((await runAtelier(['npy', 'info', '--columns', path])).stdout);
  assert.deepEqual(withColumns.columns[0], { count: 3, nanCount: 0, infCount: 0, min: 1, max: 3, mean: 2, std: Math.sqrt(2 / 3) });
  assert.deepEqual(withColumns.columns[1], { count: 2, nanCount: 1, infCount: 0, min: 10, max: 20, mean: 15, std: 5 });
  const headerOnly = JSON.parse((await runAtelier(['npy', 'info', '--no-stats', path])).stdout);
  assert.equal(headerOnly.stats, undefined);
  assert.deepEqual(headerOnly.shape, [3, 2]);
  assert.equal(headerOnly.descr, '<f8');
});

test('NumPy reads what from-ndjson wrote, and to-ndjson prints NumPy\'s values as NumPy does', async (ctx) => {
  if (!numpyAvailable) ctx.skip('Debian python3-numpy not installed');
  const dir = scratchDir();
  const fromNumpy = join(dir, 'np.npy');
  const expected = spawnSync(
    PYTHON,
    [
      '-c',
      `
import sys, json, numpy as np
a = (np.random.default_rng(3).standard_normal((6, 4)) * 100).astype(np.float32)
np.save(sys.argv[1], a)
print(json.dumps([[float(str(v)) for v in row] for row in a]))
`,
      fromNumpy,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(expected.status, 0, expected.stderr);
  const ours = await runAtelier(['npy', 'to-ndjson', fromNumpy]);
  assert.deepEqual(parseNdjson(ours.stdout), JSON.parse(expected.stdout));

  const written = join(dir, 'ours.npy');
  const r = await runAtelier(['npy', 'from-ndjson', '-o', written, '--dtype', 'float64'], { input: ours.stdout });
  assert.equal(r.code, 0, r.stderr);
  const check = spawnSync(PYTHON, ['-c', 'import sys, json, numpy as np; a = np.load(sys.argv[1]); print(json.dumps({"dtype": a.dtype.str, "rows": a.tolist()}))', written], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  assert.deepEqual(JSON.parse(check.stdout), { dtype: '<f8', rows: JSON.parse(expected.stdout) });
});

test('bad rows stop with exit 2, one line naming file:line, and no output file', async () => {
  const dir = scratchDir();
  const out = join(dir, 'out.npy');
  const cases: Array<[string, string[], string]> = [
    ['[1,2,3]\n[4,5,6]\n\n[7,8]\n', [], 'rows.ndjson:4: row has 2 values, expected 3 (rows have shape (3,) like line 1)'],
    ['[[1,2],[3,4]]\n[[1,2],[3]]\n', [], 'rows.ndjson:2: [1]: array has 1 values, expected 2 (rows have shape (2, 2) like line 1)'],
    ['[1,2]\n[1,"x"]\n', [], 'rows.ndjson:2: [1]: expected a number (or null/"NaN"/"Infinity"), got a string ("x")'],
    ['[1,2]\n[3,[4]]\n', [], 'rows.ndjson:2: [1]: is an array, expected a number (rows have shape (2,) like line 1)'],
    ['[255]\n[256]\n', ['--dtype', 'uint8'], 'rows.ndjson:2: [0]: 256 is out of uint8 range [0, 255]'],
    ['[1.5]\n', ['--dtype', 'int32'], 'rows.ndjson:1: [0]: 1.5 is not an integer (dtype int32)'],
    ['[null]\n', ['--dtype', 'int32'], 'rows.ndjson:1: [0]: expected an integer (dtype int32), got null'],
    ['[1e39]\n', [], 'rows.ndjson:1: [0]: 1e+39 is out of float32 range'],
    ['{"v":[1]}\n{"w":[2]}\n', ['--field', 'v'], 'rows.ndjson:2: v: missing'],
    ['{"v":[1]}\n{"v":[1,2]}\n', ['--field', 'v'], 'rows.ndjson:2: v: row has 2 values, expected 1 (rows have shape (1,) like line 1)'],
    ['[1]\n[2]\n[3\n', [], 'rows.ndjson:3: invalid JSON'],
  ];
  // Run side by side: each spawn mostly waits on node's start-up.
  await Promise.all(
    cases.map(async ([text, flags, message], i) => {
      const caseDir = join(dir, `case${i}`);
      mkdirSync(caseDir);
      writeFileSync(join(caseDir, 'rows.ndjson'), text);
      const r = await runAtelier(['npy', 'from-ndjson', 'rows.ndjson', '-o', 'out.npy', ...flags], { cwd: caseDir });
      assert.equal(r.code, 2, `${JSON.stringify(text)}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]!.startsWith(`atelier npy: ${message}`), `${lines[0]} should start with ${message}`);
      assert.deepEqual(readdirSync(caseDir), ['rows.ndjson'], 'no output and no temp file left behind');
    }),
  );
  const fromStdin = await runAtelier(['npy', 'from-ndjson', '-o', out], { input: '[1]\n[1,2]\n' });
  assertUsageFailure(fromStdin, 'atelier npy: stdin:2: row has 2 values, expected 1 (rows have shape (1,) like line 1)');
});

test('usage mistakes and unreadable files exit 2 with one line', async () => {
  const dir = scratchDir();
  const notNpy = join(dir, 'notes.npy');
  writeFileSync(notNpy, 'plain text');
  const good = join(dir, 'good.npy');
  await writeNpy(good, new Float32Array([1, 2]));
  const cases: Array<[string[], string | undefined, string | RegExp]> = [
    [['npy', 'frobnicate', good], undefined, "atelier npy: unknown verb 'frobnicate' (use info, to-ndjson, from-ndjson)"],
    [['npy', 'info'], undefined, 'atelier npy: missing argument <file> (the .npy to inspect)'],
    [['npy', 'info', join(dir, 'absent.npy')], undefined, `atelier npy: ${join(dir, 'absent.npy')}: no such file`],
    [['npy', 'info', notNpy], undefined, `atelier npy: ${notNpy}: not a .npy file (no \\x93NUMPY magic)`],
    [['npy', 'to-ndjson', '--rows', 'a:b', good], undefined, "atelier npy: --rows: 'a:b' is not a row range (use START:END, START:, :END or N; rows count from 0)"],
    [['npy', 'to-ndjson', '-'], undefined, 'atelier npy: stdin: npy to-ndjson reads a .npy file by offset and cannot read stdin; give a file name'],
    [['npy', 'from-ndjson'], '[1]\n', 'atelier npy: --output: from-ndjson needs -o OUT.npy'],
    [['npy', 'from-ndjson', '-o', '-'], '[1]\n', /^atelier npy: --output: a \.npy cannot be streamed to stdout/],
    [
      ['npy', 'from-ndjson', '-o', join(dir, 'x.npy'), '--dtype', 'float16'],
      '[1]\n',
      "atelier npy: --dtype: unknown dtype 'float16' (choose from float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool)",
    ],
    [
      ['npy', 'from-ndjson', '-o', join(dir, 'no', 'x.npy')],
      '[1]\n',
      `atelier npy: ${join(dir, 'no', 'x.npy')}: --output: cannot write here: directory '${join(dir, 'no')}' does not exist`,
    ],
  ];
  const results = await Promise.all(cases.map(([args, input]) => runAtelier(args, { input })));
  results.forEach((r, i) => assertUsageFailure(r, cases[i]![2]));
});

test('an empty input writes an empty array with a warning', async () => {
  const out = join(scratchDir(), 'empty.npy');
  const r = await runAtelier(['npy', 'from-ndjson', '-o', out], { input: '\n\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: no rows in stdin/);
  assert.deepEqual((await readNpy(out)).header.shape, [0]);
});

test('to-ndjson into `head` stops quietly with exit 0 (EPIPE)', async () => {
  const path = join(scratchDir(), 'long.npy');
  await writeNpy(path, Float32Array.from({ length: 200_000 * 8 }, (_, i) => i / 8), [200_000, 8]);
  const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${atelierBin}" npy to-ndjson "${path}" | head -n 2`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '[0,0.125,0.25,0.375,0.5,0.625,0.75,0.875]\n[1,1.125,1.25,1.375,1.5,1.625,1.75,1.875]\n');
  assert.equal(r.stderr, '');
});
