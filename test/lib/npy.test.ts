// .npy: our files load in NumPy and NumPy's (v1/v2/v3 headers, every dtype, 1-d to 3-d, empty) load
// in ours, byte for byte; row ranges read only their bytes (a 4 GiB sparse file); the streaming writer
// fixes the shape on close and leaves nothing when aborted or killed; stats match NumPy's.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { UsageError, formatPlace } from '../../src/lib/command.js';
import {
  NPY_DTYPES,
  decodeNpy,
  encodeNpy,
  encodeNpyHeader,
  iterateNpyRows,
  openNpyWriter,
  readNpy,
  readNpyHeader,
  readNpyRows,
  shortestFloat32,
  summarizeNpy,
  toNpyTypedArray,
  valueProblemForDtype,
  writeNpy,
  type NpyDtype,
  type NpyTypedArray,
  type ValueStats,
} from '../../src/lib/io/npy.js';
import { killWriterMidWrite } from './atomic-kill.js';

const PYTHON = '/usr/bin/python3';
const numpyAvailable = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
const NO_NUMPY = 'Debian python3-numpy is not installed (/usr/bin/python3 -c "import numpy" fails)';

/** Runs a Python script with NumPy; returns its stdout parsed as JSON. */
function python(script: string, ...args: string[]): unknown {
  const result = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

function numbers(data: NpyTypedArray): number[] {
  return Array.from(data as ArrayLike<number>);
}

function hexOf(data: NpyTypedArray): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

const NUMPY_DESCR: Record<NpyDtype, string> = {
  float32: '<f4', float64: '<f8', int8: '|i1', int16: '<i2', int32: '<i4', int64: '<i8',
  uint8: '|u1', uint16: '<u2', uint32: '<u4', uint64: '<u8', bool: '|b1',
};

const SHAPES: number[][] = [[7], [3, 4], [2, 3, 5], [0], [0, 3], [3, 0], []];

/** Deterministic values for a dtype, with the awkward ones (NaN, ±Infinity, -0, subnormals, extremes) first. */
function sampleValues(dtype: NpyDtype, count: number, seed: number): NpyTypedArray {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const values: Array<number | bigint> = [];
  const specials: Partial<Record<NpyDtype, Array<number | bigint>>> = {
    float32: [NaN, Infinity, -Infinity, -0, 1e-45, 3.4028234663852886e38, -1.1754943508222875e-38],
    float64: [NaN, Infinity, -Infinity, -0, 5e-324, Number.MAX_VALUE, -Number.MIN_VALUE],
    int8: [-128, 127],
    int16: [-32768, 32767],
    int32: [-2147483648, 2147483647],
    int64: [-(2n ** 63n), 2n ** 63n - 1n],
    uint8: [0, 255],
    uint16: [65535],
    uint32: [4294967295],
    uint64: [2n ** 64n - 1n],
    bool: [0, 1],
  };
  for (let i = 0; i < count; i++) {
    const special = specials[dtype]?.[i];
    if (special !== undefined) values.push(special);
    else if (dtype === 'float32' || dtype === 'float64') values.push((next() - 0.5) * 2000);
    else if (dtype === 'bool') values.push(next() < 0.5 ? 0 : 1);
    else if (dtype === 'int64' || dtype === 'uint64') values.push(BigInt(Math.floor(next() * 2 ** 40)) * (dtype === 'int64' && next() < 0.5 ? -1n : 1n));
    else {
      const ranges: Record<string, [number, number]> = { int8: [-128, 255], int16: [-32768, 65535], int32: [-2147483648, 4294967295], uint8: [0, 255], uint16: [0, 65535], uint32: [0, 4294967295] };
      const [low, span] = ranges[dtype]!;
      values.push(low + Math.floor(next() * span));
    }
  }
  return toNpyTypedArray(values, dtype);
}

function usageLine(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return formatPlace(err.message, err.place);
  }
  throw new Error('expected a UsageError');
}

async function usageLineAsync(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return formatPlace(err.message, err.place);
  }
  throw new Error('expected a UsageError');
}

test('the header is NumPy-shaped: magic, version, dict, 64-byte aligned data, room for the row count', () => {
  const header = encodeNpyHeader('float32', [3, 4], { reserveRowDigits: true });
  assert.equal(header.length % 64, 0);
  assert.deepEqual([...header.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  assert.equal(header.readUInt16LE(8), header.length - 10);
  const text = header.subarray(10).toString('latin1');
  assert.ok(text.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"));
  assert.ok(text.endsWith(' \n'));
  // 21 digits of row count fit in the same header length.
  const grown = encodeNpyHeader('float32', [10 ** 20, 4], { totalBytes: header.length });
  assert.equal(grown.length, header.length);
  assert.equal(encodeNpyHeader('uint8', [5]).subarray(10).toString('latin1').slice(0, 52), "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }".slice(0, 52));
  assert.ok(encodeNpyHeader('float64', []).toString('latin1').includes("'shape': ()"));
  const v2 = encodeNpyHeader('int32', [2], { version: 2 });
  assert.equal(v2[6], 2);
  assert.equal(v2.readUInt32LE(8), v2.length - 12);
});

test('encode/decode round-trips every dtype and shape exactly, bit patterns included', () => {
  for (const dtype of NPY_DTYPES) {
    for (const shape of SHAPES) {
      const count = shape.reduce((a, b) => a * b, 1);
      const data = sampleValues(dtype, count, 11);
      for (const version of [1, 2] as const) {
        const bytes = encodeNpy(data, shape, { dtype, version });
        const decoded = decodeNpy(bytes);
        assert.equal(decoded.header.dtype, dtype);
        assert.deepEqual(decoded.header.shape, shape);
        assert.deepEqual(decoded.header.version, [version, 0]);
        assert.equal(decoded.header.dataOffset % 64, 0);
        assert.equal(hexOf(decoded.data), hexOf(data), `${dtype} ${JSON.stringify(shape)} v${version}`);
      }
    }
  }
});

test('NumPy loads what we write: every dtype, 1-d to 3-d, empty, v1 and v2, streamed', async (ctx) => {
  if (!numpyAvailable) ctx.skip(String(NO_NUMPY));
  const dir = scratchDir();
  const expected: Record<string, { descr: string; shape: number[]; hex: string; version: number }> = {};
  let index = 0;
  for (const dtype of NPY_DTYPES) {
    for (const shape of SHAPES) {
      const data = sampleValues(dtype, shape.reduce((a, b) => a * b, 1), 100 + index);
      for (const version of [1, 2] as const) {
        const name = `case${index++}.npy`;
        await writeNpy(join(dir, name), data, shape, { dtype, version });
        expected[name] = { descr: NUMPY_DESCR[dtype], shape, hex: hexOf(data), version };
      }
    }
  }
  // A streamed file: 1000 rows of (4, 3) int16 arrive in uneven pieces through a small buffer.
  const streamed = await openNpyWriter(join(dir, 'streamed.npy'), { dtype: 'int16', rowShape: [4, 3], bufferBytes: 100 });
  const all = sampleValues('int16', 1000 * 12, 5) as Int16Array;
  for (let row = 0; row < 1000; ) {
    const take = Math.min(1000 - row, [1, 7, 250, 3][row % 4]!);
    await streamed.writeRows(all.subarray(row * 12, (row + take) * 12));
    row += take;
  }
  await streamed.close();
  expected['streamed.npy'] = { descr: '<i2', shape: [1000, 4, 3], hex: hexOf(all), version: 1 };

  const loaded = python(
    `
import sys, os, json, numpy as np
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
    a = np.load(path)
    m = np.load(path, mmap_mode='r')
    assert (a.tobytes() == m.tobytes())
    out[name] = {'descr': a.dtype.str, 'shape': list(a.shape), 'hex': a.tobytes().hex(), 'version': version[0], 'c': bool(a.flags.c_contiguous)}
print(json.dumps(out))
`,
    dir,
  ) as Record<string, { descr: string; shape: number[]; hex: string; version: number; c: boolean }>;
  assert.equal(Object.keys(loaded).length, Object.keys(expected).length);
  for (const [name, want] of Object.entries(expected)) {
    const got = loaded[name]!;
    assert.equal(got.descr, want.descr, `${name} dtype`);
    assert.deepEqual(got.shape, want.shape, `${name} shape`);
    assert.equal(got.version, want.version, `${name} version`);
    assert.equal(got.hex, want.hex, `${name} values`);
    assert.equal(got.c, true);
  }
});

test('we load what NumPy writes: every dtype, 1-d to 3-d, empty, v1/v2/v3 headers', async (ctx) => {
  if (!numpyAvailable) ctx.skip(String(NO_NUMPY));
  const dir = scratchDir();
  const manifest = python(
    `
import sys, os, json, numpy as np
out_dir = sys.argv[1]
rng = np.random.default_rng(7)
dtypes = ['<f4', '<f8', '|i1', '<i2', '<i4', '<i8', '|u1', '<u2', '<u4', '<u8', '|b1']
shapes = [(7,), (3, 4), (2, 3, 5), (0,), (0, 3), (3, 0), ()]
def sample(dt, shape):
    d = np.dtype(dt)
    n = int(np.prod(shape))
    if d.kind == 'f':
        a = (rng.standard_normal(n) * 1000).astype(d)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(d).tiny / 4, np.finfo(d).max, np.finfo(d).min], dtype=d)
        k = min(n, len(specials))
        a[:k] = specials[:k]
    elif d.kind == 'b':
        a = rng.integers(0, 2, n).astype(d)
    else:
        info = np.iinfo(d)
        a = rng.integers(info.min, info.max, n, dtype=d, endpoint=True)
    return a.reshape(shape)
cases = []
for dt in dtypes:
    for shape in shapes:
        for version in [(1, 0), (2, 0), (3, 0)]:
            a = sample(dt, shape)
            name = 'np%d.npy' % len(cases)
            with open(os.path.join(out_dir, name), 'wb') as f:
                np.lib.format.write_array(f, a, version=version)
            cases.append({'name': name, 'descr': a.dtype.str, 'shape': list(a.shape), 'version': version[0], 'hex': a.tobytes().hex()})
np.save(os.path.join(out_dir, 'saved.npy'), np.arange(12, dtype=np.float32).reshape(3, 4))
np.save(os.path.join(out_dir, 'fortran.npy'), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save(os.path.join(out_dir, 'bigendian.npy'), np.arange(3, dtype='>f4'))
np.save(os.path.join(out_dir, 'structured.npy'), np.zeros(2, dtype=[('a', '<f4')]))
np.save(os.path.join(out_dir, 'unicode.npy'), np.array(['ab', 'c']))
print(json.dumps(cases))
`,
    dir,
  ) as Array<{ name: string; descr: string; shape: number[]; version: number; hex: string }>;
  assert.equal(manifest.length, 11 * 7 * 3);
  for (const c of manifest) {
    const path = join(dir, c.name);
    const { header, data } = await readNpy(path);
    assert.deepEqual(header.shape, c.shape, `${c.name} shape`);
    assert.deepEqual(header.version, [c.version, 0], `${c.name} version`);
    assert.equal(header.descr, c.descr);
    assert.equal(hexOf(data), c.hex, `${c.name} (${c.descr} ${JSON.stringify(c.shape)} v${c.version}) values`);
    assert.equal((await readNpyHeader(path)).dataOffset, header.dataOffset);
    if (c.shape.length >= 1 && c.shape[0]! >= 2) {
      const rows = await readNpyRows(path, 1, 2);
      const rowBytes = header.rowLength * header.itemSize * 2;
      assert.equal(hexOf(rows.data), c.hex.slice(rowBytes, rowBytes * 2), `${c.name} row 1`);
    }
  }
  const saved = await readNpy(join(dir, 'saved.npy'));
  assert.deepEqual(Array.from(saved.data as Float32Array), Array.from({ length: 12 }, (_, i) => i));
  assert.equal(saved.header.dataOffset % 64, 0);

  const fortran = join(dir, 'fortran.npy');
  assert.equal((await readNpyHeader(fortran)).fortranOrder, true);
  assert.equal(await usageLineAsync(readNpy(fortran)), `${fortran}: Fortran-order arrays are not supported; save np.ascontiguousarray(a) instead`);
  assert.match(await usageLineAsync(readNpyHeader(join(dir, 'bigendian.npy'))), /big-endian dtype '>f4' is not supported/);
  assert.match(await usageLineAsync(readNpyHeader(join(dir, 'structured.npy'))), /structured \(record\) dtypes are not supported/);
  assert.match(await usageLineAsync(readNpyHeader(join(dir, 'unicode.npy'))), /dtype '<U2' is not supported/);
});

test('readNpyRows reads only the rows asked for: a 4 GiB sparse file, a few bytes read', async () => {
  const path = join(scratchDir(), 'huge.npy');
  const rows = 2 ** 28;
  const header = encodeNpyHeader('float32', [rows, 4], { reserveRowDigits: true });
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header, 0, header.length, 0);
    ftruncateSync(fd, header.length + rows * 16);
    const known = new Float32Array([1.5, -2.25, 3, 4e-3]);
    writeSync(fd, new Uint8Array(known.buffer), 0, 16, header.length + (rows - 2) * 16);
  } finally {
    closeSync(fd);
  }
  const info = statSync(path);
  assert.equal(info.size, header.length + 4 * 2 ** 30);
  const rssBefore = process.memoryUsage().rss;
  const slice = await readNpyRows(path, rows - 3, rows + 100);
  assert.equal(slice.start, rows - 3);
  assert.equal(slice.end, rows, 'the end is clamped like a Python slice');
  assert.deepEqual(Array.from(slice.data as Float32Array), [0, 0, 0, 0, 1.5, -2.25, 3, Math.fround(4e-3), 0, 0, 0, 0]);
  assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024, 'reading 3 rows did not load the file');
  const tail = [];
  for await (const chunk of iterateNpyRows(path, { start: rows - 5, chunkBytes: 32 })) tail.push([chunk.start, chunk.end]);
  assert.deepEqual(tail, [
    [rows - 5, rows - 3],
    [rows - 3, rows - 1],
    [rows - 1, rows],
  ]);
});

test('row ranges behave like Python slices and refuse negative bounds', async () => {
  const path = join(scratchDir(), 'small.npy');
  await writeNpy(path, new Int32Array([0, 1, 2, 3, 4, 5]), [3, 2]);
  assert.deepEqual(numbers((await readNpyRows(path, 1, 3)).data), [2, 3, 4, 5]);
  assert.deepEqual(numbers((await readNpyRows(path, 2, 1)).data), []);
  assert.deepEqual(numbers((await readNpyRows(path, 9, 12)).data), []);
  assert.match(await usageLineAsync(readNpyRows(path, -1, 2)), /row range -1:2 must be non-negative integers/);
});

test('the streaming writer: nothing at the destination until close, the shape fixed on close, abort leaves nothing', async () => {
  const dir = scratchDir();
  const path = join(dir, 'emb.npy');
  const writer = await openNpyWriter(path, { dtype: 'float32', rowShape: [3] });
  await writer.writeRows([1, 2, 3]);
  await writer.writeRows(new Float64Array([4.5, 5, 6, 7, 8, 9]));
  await writer.writeRows(new Float32Array(0));
  assert.equal(existsSync(path), false);
  assert.equal(readdirSync(dir).length, 1);
  assert.match(readdirSync(dir)[0]!, /^\.emb\.npy\.tmp-\d+-[0-9a-f]{8}$/);
  await assert.rejects(writer.writeRows([1, 2]), /not whole rows of 3/);
  const header = await writer.close();
  assert.deepEqual(header.shape, [3, 3]);
  const { header: read, data } = await readNpy(path);
  assert.deepEqual(read.shape, [3, 3]);
  assert.equal(read.dataOffset, header.dataOffset);
  assert.deepEqual(numbers(data), [1, 2, 3, 4.5, 5, 6, 7, 8, 9]);
  assert.deepEqual(readdirSync(dir), ['emb.npy']);

  const empty = await openNpyWriter(join(dir, 'empty.npy'), { dtype: 'uint8', rowShape: [5] });
  await empty.close();
  assert.deepEqual((await readNpyHeader(join(dir, 'empty.npy'))).shape, [0, 5]);

  const aborted = await openNpyWriter(join(dir, 'aborted.npy'), { dtype: 'float64' });
  await aborted.writeRows([1, 2, 3]);
  await aborted.abort();
  assert.deepEqual(readdirSync(dir).sort(), ['emb.npy', 'empty.npy']);
});

test('a streaming writer killed mid-write leaves no .npy (and keeps an old one whole)', async () => {
  const dir = scratchDir();
  const fresh = join(dir, 'fresh.npy');
  await killWriterMidWrite('npy', fresh);
  assert.equal(existsSync(fresh), false);
  const old = join(dir, 'old.npy');
  await writeNpy(old, new Float32Array([1, 2, 3]));
  const before = readFileSync(old);
  await killWriterMidWrite('npy', old, 20);
  assert.deepEqual(readFileSync(old), before);
  assert.deepEqual(numbers((await readNpy(old)).data), [1, 2, 3]);
});

test('broken files are UsageErrors naming the file', async () => {
  const dir = scratchDir();
  const good = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const variant = (name: string, bytes: Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const patch = (from: string, to: string) => Buffer.from(good.toString('latin1').replace(from, to), 'latin1');
  const notNpy = variant('text.npy', Buffer.from('hello world, not numpy'));
  assert.equal(await usageLineAsync(readNpy(notNpy)), `${notNpy}: not a .npy file (no \\x93NUMPY magic)`);
  const truncated = variant('truncated.npy', good.subarray(0, good.length - 5));
  assert.equal(
    await usageLineAsync(readNpyRows(truncated, 0, 1)),
    `${truncated}: file is truncated: shape (2, 3) of <f4 needs 24 data bytes, the file has 19`,
  );
  assert.match(await usageLineAsync(readNpyHeader(variant('cut.npy', good.subarray(0, 30)))), /truncated/);
  const fortran = variant('fortran.npy', patch("'fortran_order': False", "'fortran_order': True "));
  assert.match(await usageLineAsync(readNpy(fortran)), /Fortran-order arrays are not supported/);
  const fortran1d = variant('fortran1d.npy', Buffer.from(encodeNpy(new Float32Array([1, 2]), [2, 1]).toString('latin1').replace('False', 'True '), 'latin1'));
  assert.deepEqual(numbers((await readNpy(fortran1d)).data), [1, 2], 'one long axis: Fortran and C order are the same bytes');
  assert.match(await usageLineAsync(readNpy(variant('f2.npy', patch('<f4', '<f2')))), /dtype '<f2' is not supported/);
  const v9 = Buffer.from(good);
  v9[6] = 9;
  assert.match(await usageLineAsync(readNpy(variant('v9.npy', v9))), /format version 9\.0 is not supported/);
  assert.match(await usageLineAsync(readNpy(variant('garbled.npy', patch("'shape': (2, 3)", "'shape': (2, x)")))), /unreadable \.npy header/);
  assert.match(await usageLineAsync(readNpy(join(dir, 'absent.npy'))), /absent\.npy: no such file$/);
  assert.equal(await usageLineAsync(readNpyHeader(dir)), `${dir}: is a directory, not a file`);
  assert.match(usageLine(() => decodeNpy(good.subarray(0, 20), 'mem')), /^mem: file ends inside the \.npy header/);
});

test('values that do not fit a dtype are named', () => {
  assert.equal(valueProblemForDtype(1e39, 'float32'), '1e+39 is out of float32 range');
  assert.equal(valueProblemForDtype(3.4028235e38, 'float32'), null);
  assert.equal(valueProblemForDtype(NaN, 'float32'), null);
  assert.equal(valueProblemForDtype(256, 'uint8'), '256 is out of uint8 range [0, 255]');
  assert.equal(valueProblemForDtype(-1, 'uint32'), '-1 is out of uint32 range [0, 4294967295]');
  assert.equal(valueProblemForDtype(1.5, 'int32'), '1.5 is not an integer (dtype int32)');
  assert.equal(valueProblemForDtype(2147483647, 'int32'), null);
  assert.equal(valueProblemForDtype(2, 'bool'), '2 is out of bool range [0, 1]');
});

test('shortestFloat32 reads back to the same float32 and matches NumPy\'s shortest repr', (ctx) => {
  if (!numpyAvailable) ctx.skip(String(NO_NUMPY));
  const bits = new Uint32Array(3000);
  let state = 12345;
  for (let i = 0; i < bits.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bits[i] = (state ^ (state << 13)) >>> 0;
  }
  const floats = Array.from(new Float32Array(bits.buffer)).filter(Number.isFinite);
  floats.push(0.1, 1 / 3, 1e-45, 3.4028234663852886e38, 16777216, 0.5);
  const values = Array.from(new Float32Array(floats));
  const result = spawnSync(PYTHON, ['-c', 'import sys, json, numpy as np\nvals = np.array(json.loads(sys.stdin.read()), dtype=np.float64).astype(np.float32)\nprint(json.dumps([np.format_float_scientific(v, unique=True) for v in vals]))'], {
    input: JSON.stringify(values),
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  const reprs = JSON.parse(result.stdout) as string[];
  for (let i = 0; i < values.length; i++) {
    const shortest = shortestFloat32(values[i]!);
    assert.equal(Math.fround(shortest), values[i], `${values[i]} reads back`);
    assert.equal(shortest, Number(reprs[i]), `${values[i]}: ours ${shortest}, NumPy ${reprs[i]}`);
  }
});

function naiveStats(values: number[]): ValueStats {
  const finite = values.filter(Number.isFinite);
  const nanCount = values.filter(Number.isNaN).length;
  if (finite.length === 0) return { count: 0, nanCount, infCount: values.length - nanCount, min: null, max: null, mean: null, std: null };
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
  const variance = finite.reduce((a, b) => a + (b - mean) ** 2, 0) / finite.length;
  return { count: finite.length, nanCount, infCount: values.length - finite.length - nanCount, min: Math.min(...finite), max: Math.max(...finite), mean, std: Math.sqrt(variance) };
}

function assertStatsClose(got: ValueStats, want: ValueStats, label: string): void {
  assert.equal(got.count, want.count, `${label} count`);
  assert.equal(got.nanCount, want.nanCount, `${label} nanCount`);
  assert.equal(got.infCount, want.infCount, `${label} infCount`);
  assert.equal(got.min, want.min, `${label} min`);
  assert.equal(got.max, want.max, `${label} max`);
  for (const key of ['mean', 'std'] as const) {
    const a = got[key]!;
    const b = want[key]!;
    assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${label} ${key}: ${a} vs ${b}`);
  }
}

test('statistics over chunks match a direct computation and NumPy (NaN and infinities counted apart)', async () => {
  const path = join(scratchDir(), 'stats.npy');
  const rows = 1001;
  const cols = 7;
  const data = new Float32Array(rows * cols);
  let state = 99;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = 100 + (state / 2 ** 32 - 0.5) * 50;
  }
  data[3] = NaN;
  data[10] = Infinity;
  data[cols * 500 + 3] = NaN;
  for (let r = 0; r < rows; r++) data[r * cols + 6] = NaN; // a column with no finite value
  await writeNpy(path, data, [rows, cols]);
  for (const chunkBytes of [28, 1000, 1 << 20]) {
    const summary = await summarizeNpy(path, { columns: true, chunkBytes });
    assertStatsClose(summary.stats, naiveStats(Array.from(data)), `all (chunks of ${chunkBytes} bytes)`);
    assert.equal(summary.columns!.length, cols);
    for (let c = 0; c < cols; c++) {
      const column = Array.from({ length: rows }, (_, r) => data[r * cols + c]!);
      assertStatsClose(summary.columns![c]!, naiveStats(column), `column ${c}`);
    }
    assert.deepEqual(summary.columns![6], { count: 0, nanCount: rows, infCount: 0, min: null, max: null, mean: null, std: null });
  }
  if (!numpyAvailable) return;
  const reference = python(
    `
import sys, json, numpy as np
a = np.load(sys.argv[1]).astype(np.float64)
f = a[np.isfinite(a)]
print(json.dumps({'count': int(f.size), 'min': float(f.min()), 'max': float(f.max()), 'mean': float(f.mean()), 'std': float(f.std()), 'nan': int(np.isnan(a).sum()), 'inf': int(np.isinf(a).sum())}))
`,
    path,
  ) as { count: number; min: number; max: number; mean: number; std: number; nan: number; inf: number };
  const summary = await summarizeNpy(path, { chunkBytes: 4096 });
  assertStatsClose(summary.stats, { ...reference, nanCount: reference.nan, infCount: reference.inf }, 'vs NumPy');
});

test('int64 and bool arrays summarise as numbers', async () => {
  const dir = scratchDir();
  await writeNpy(join(dir, 'i8.npy'), new BigInt64Array([-5n, 10n, 2n ** 40n]));
  const s = await summarizeNpy(join(dir, 'i8.npy'));
  assert.equal(s.stats.min, -5);
  assert.equal(s.stats.max, 2 ** 40);
  await writeNpy(join(dir, 'b.npy'), new Uint8Array([1, 0, 1, 1]), [4], { dtype: 'bool' });
  const b = await summarizeNpy(join(dir, 'b.npy'));
  assert.equal(b.header.dtype, 'bool');
  assert.equal(b.stats.mean, 0.75);
});
