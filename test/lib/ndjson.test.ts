// NDJSON reader and writer: line numbers through CRLF/BOM/blank lines and chunk boundaries, errors at
// file:line, bounded memory on a runaway line, streaming (records arrive before the input ends),
// backpressure, atomic file output, and the field helpers' errors.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { scratchDir } from '../helpers.js';
import { UsageError, formatPlace } from '../../src/lib/command.js';
import {
  describeJsonValue,
  openNdjsonWriter,
  readNdjson,
  readNdjsonStream,
  readTextLines,
  requireArray,
  requireId,
  requireNumber,
  requireObject,
  requireString,
  type NdjsonRecord,
} from '../../src/lib/io/ndjson.js';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Asserts `promise` rejects with a UsageError whose one-line form is `expected`. */
async function rejectsWithPlace(promise: Promise<unknown>, expected: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(formatPlace(err.message, err.place), expected);
    return true;
  });
}

test('reads records with their line numbers through BOM, CRLF, blank lines and a last line without newline', async () => {
  const dir = scratchDir();
  const path = join(dir, 'in.ndjson');
  writeFileSync(path, '\uFEFF{"id":"a"}\r\n\r\n  \n{"id":"b","n":2}\n[1,2]\r\n"text"\n\n{"id":"é"}');
  const records = await collect(readNdjson(path));
  assert.deepEqual(records, [
    { value: { id: 'a' }, line: 1, file: path },
    { value: { id: 'b', n: 2 }, line: 4, file: path },
    { value: [1, 2], line: 5, file: path },
    { value: 'text', line: 6, file: path },
    { value: { id: 'é' }, line: 8, file: path },
  ]);
});

test('lines split across chunks at every byte, multi-byte characters included, read the same', async () => {
  const text = '{"name":"robe à pois — 水玉"}\r\n\n{"emoji":"👗"}\n';
  const bytes = Buffer.from(text, 'utf8');
  const oneByteChunks = Readable.from(Array.from(bytes, (b) => Buffer.from([b])));
  const records = await collect(readNdjsonStream(oneByteChunks, 'chunks'));
  assert.deepEqual(
    records.map((r) => [r.value, r.line]),
    [
      [{ name: 'robe à pois — 水玉' }, 1],
      [{ emoji: '👗' }, 3],
    ],
  );
});

test('bad JSON is a UsageError at file:line', async () => {
  const path = join(scratchDir(), 'bad.ndjson');
  writeFileSync(path, '{"ok":1}\n\n{"broken": }\n{"ok":2}\n');
  await rejectsWithPlace(collect(readNdjson(path)), new RegExp(`^${path.replace(/[.]/g, '\\.')}:3: invalid JSON`));
});

test('invalid UTF-8 is a UsageError at its line', async () => {
  const stream = Readable.from([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
  await rejectsWithPlace(collect(readNdjsonStream(stream, 'x.ndjson')), /^x\.ndjson:2: not valid UTF-8/);
});

test('`-` reads the stdin stream given, named stdin in errors', async () => {
  const stdin = Readable.from(['{"a":1}\n', 'nope\n']);
  const seen: NdjsonRecord[] = [];
  await rejectsWithPlace(
    (async () => {
      for await (const r of readNdjson('-', { stdin })) seen.push(r);
    })(),
    /^stdin:2: invalid JSON/,
  );
  assert.deepEqual(seen, [{ value: { a: 1 }, line: 1, file: 'stdin' }]);
});

test('a missing file is a UsageError naming it', async () => {
  const path = join(scratchDir(), 'absent.ndjson');
  await rejectsWithPlace(collect(readNdjson(path)), /absent\.ndjson: no such file$/);
});

test('a line past the limit fails at its line without buffering the rest of it', async () => {
  let produced = 0;
  // 1 GiB of "a" with no newline, produced lazily: the reader must stop long before the end.
  const endless = Readable.from(
    (function* () {
      yield Buffer.from('{"ok":true}\n');
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let i = 0; i < 16 * 1024; i++) {
        produced += chunk.length;
        yield chunk;
      }
    })(),
  );
  await rejectsWithPlace(collect(readNdjsonStream(endless, 'big.ndjson', { maxLineBytes: 1024 * 1024 })), /^big\.ndjson:2: line is longer than 1048576 bytes/);
  assert.ok(produced < 4 * 1024 * 1024, `read ${produced} bytes before failing`);
});

test('the limit counts a line exactly: at the limit is fine, one byte over is not', async () => {
  const line = `"${'x'.repeat(98)}"`; // 100 bytes
  const ok = await collect(readTextLines(Readable.from([line + '\n']), 't', { maxLineBytes: 100 }));
  assert.equal(ok[0]!.text, line);
  await rejectsWithPlace(collect(readTextLines(Readable.from([line + 'y\n']), 't', { maxLineBytes: 100 })), /^t:1: line is longer/);
});

test('records arrive while the input is still open (streaming, not slurping)', async () => {
  const input = new PassThrough();
  const reader = readNdjsonStream(input, 'live')[Symbol.asyncIterator]();
  input.write('{"n":1}\n{"n":');
  const first = await reader.next();
  assert.deepEqual(first.value, { value: { n: 1 }, line: 1, file: 'live' });
  input.end('2}\n');
  assert.deepEqual((await reader.next()).value, { value: { n: 2 }, line: 2, file: 'live' });
  assert.equal((await reader.next()).done, true);
});

test('the writer to a file is atomic: nothing appears until close, abort leaves nothing', async () => {
  const dir = scratchDir();
  const path = join(dir, 'out.ndjson');
  const writer = await openNdjsonWriter(path, { batchChars: 10 });
  for (let i = 0; i < 100; i++) await writer.write({ i, s: 'x' });
  assert.equal(existsSync(path), false);
  await writer.close();
  const lines = readFileSync(path, 'utf8').split('\n');
  assert.equal(lines.length, 101);
  assert.equal(lines[0], '{"i":0,"s":"x"}');
  assert.equal(lines[100], '');
  assert.equal(writer.count, 100);

  const aborted = await openNdjsonWriter(join(dir, 'never.ndjson'));
  await aborted.write({ a: 1 });
  await aborted.abort();
  assert.deepEqual(readdirSync(dir), ['out.ndjson']);
  await assert.rejects(aborted.write({ a: 2 }), /closed/);
});

test('the writer to stdout waits for a slow consumer (backpressure) and keeps order', async () => {
  let maxBuffered = 0;
  const received: string[] = [];
  const slow = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, callback) {
      received.push(chunk.toString());
      setTimeout(callback, 1);
    },
  });
  const writer = await openNdjsonWriter('-', { stdout: slow, batchChars: 512 });
  for (let i = 0; i < 2000; i++) {
    await writer.write({ i });
    maxBuffered = Math.max(maxBuffered, slow.writableLength);
  }
  await writer.close();
  await new Promise<void>((resolve) => slow.end(resolve));
  const lines = received.join('').trimEnd().split('\n');
  assert.equal(lines.length, 2000);
  assert.deepEqual(lines.slice(0, 2), ['{"i":0}', '{"i":1}']);
  assert.equal(lines[1999], '{"i":1999}');
  // Without awaiting drain, 2000 records (~20 kB) would pile up in the stream's buffer.
  assert.ok(maxBuffered <= 1024 + 512 + 16, `buffered ${maxBuffered} bytes`);
});

test('the writer refuses values that are not JSON', async () => {
  const sink = new PassThrough();
  const writer = await openNdjsonWriter('-', { stdout: sink });
  await assert.rejects(writer.write(undefined), TypeError);
});

test('field helpers return typed values or UsageErrors at file:line: field', () => {
  const place = { file: 'items.ndjson', line: 7 };
  const record = { id: 'a1', n: 3, x: 1.5, ok: true, tags: ['a'], v: [1, 2.5], nothing: null };
  assert.equal(requireString(record, 'id', place), 'a1');
  assert.equal(requireNumber(record, 'x', place), 1.5);
  assert.deepEqual(requireArray(record, 'tags', place), ['a']);
  assert.equal(requireId(record, 'id', place), 'a1');
  assert.equal(requireId(record, 'n', place), '3');

  const line = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof UsageError);
      return formatPlace(err.message, err.place);
    }
    throw new Error('expected a UsageError');
  };
  assert.equal(line(() => requireString(record, 'n', place)), 'items.ndjson:7: n: expected a string, got a number (3)');
  assert.equal(line(() => requireString(record, 'title', place)), 'items.ndjson:7: title: expected a string, got missing');
  assert.equal(line(() => requireNumber({ x: null }, 'x', place)), 'items.ndjson:7: x: expected a number, got null');
  assert.equal(line(() => requireId({ id: true }, 'id', place)), 'items.ndjson:7: id: expected a string or number id, got a boolean (true)');
  assert.equal(line(() => requireArray({ tokens: 'a b' }, 'tokens', place)), 'items.ndjson:7: tokens: expected an array, got a string ("a b")');
  assert.equal(line(() => requireObject([1], place)), 'items.ndjson:7: expected a JSON object, got an array of 1');
  assert.equal(line(() => requireString('just text', 'id', place)), 'items.ndjson:7: expected a JSON object, got a string ("just text")');
  assert.equal(describeJsonValue('y'.repeat(100)).length < 60, true);
});
