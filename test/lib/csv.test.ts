// CSV input: header columns, records with the line they start on (quoted newlines, CRLF, blank lines),
// errors at file:line, and the NDJSON-or-CSV reader choosing by extension or by sniffing stdin.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { scratchDir } from '../helpers.js';
import { UsageError, formatPlace } from '../../src/lib/command.js';
import { csvLine, readCsv, readCsvStream, readRecords, recordFormatFromPath, sniffRecordFormat } from '../../src/lib/io/csv.js';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return formatPlace(err.message, err.place);
  }
  throw new Error('expected a UsageError');
}

const csvText = (eol: string) =>
  ['\uFEFFid,title,price', 'a1,Robe rouge,19.90', '', `a2,"Jupe ""plissée""${eol}à pois",25`, 'a3,,0'].join(eol) + eol;

for (const [label, eol] of [
  ['LF', '\n'],
  ['CRLF', '\r\n'],
] as const) {
  test(`CSV records carry their header's columns and the line they start on (${label})`, async () => {
    const path = join(scratchDir(), 'items.csv');
    writeFileSync(path, csvText(eol));
    const records = await collect(readCsv(path));
    assert.deepEqual(records, [
      { value: { id: 'a1', title: 'Robe rouge', price: '19.90' }, line: 2, file: path },
      { value: { id: 'a2', title: `Jupe "plissée"${eol}à pois`, price: '25' }, line: 4, file: path },
      { value: { id: 'a3', title: '', price: '0' }, line: 6, file: path },
    ]);
  });
}

test('line numbers stay right past multi-line fields, blank lines and one-byte chunks', async () => {
  const text = 'id,text\n\n1,"a\nb\nc"\n\n\n2,plain\n3,"x\r\ny"\n4,last';
  const stream = Readable.from(Array.from(Buffer.from(text), (b) => Buffer.from([b])));
  const records = await collect(readCsvStream(stream, 'chunks.csv'));
  assert.deepEqual(
    records.map((r) => [r.value.id, r.line]),
    [
      ['1', 3],
      ['2', 8],
      ['3', 9],
      ['4', 11],
    ],
  );
});

test('a record with the wrong number of fields is a UsageError at its line, after the good ones', async () => {
  const path = join(scratchDir(), 'ragged.csv');
  writeFileSync(path, 'id,title\na,b\nc,d\ne\nf,g\n');
  const seen: string[] = [];
  const message = await failure(
    (async () => {
      for await (const r of readCsv(path)) seen.push(r.value.id!);
    })(),
  );
  assert.equal(message, `${path}:4: record has 1 fields, the header has 2`);
  assert.deepEqual(seen, ['a', 'c']);
});

test('an unclosed quote, a stray quote and a runaway record name the record line', async () => {
  const s = (text: string) => Readable.from([text]);
  assert.equal(await failure(collect(readCsvStream(s('id,t\n1,x\n2,"open\n3,y\n'), 'q.csv'))), 'q.csv:3: a quoted field starting in this record is never closed');
  assert.equal(await failure(collect(readCsvStream(s('id,t\n1,"x"y\n'), 'q.csv'))), 'q.csv:2: a quote inside a quoted field must be doubled ("")');
  assert.match(await failure(collect(readCsvStream(s(`id,t\n1,"${'z'.repeat(5000)}"\n`), 'q.csv', { maxRecordChars: 1000 }))), /^q\.csv:2: record is longer than 1000 characters/);
});

test('header problems: a duplicate or empty column name', async () => {
  const s = (text: string) => Readable.from([text]);
  assert.equal(await failure(collect(readCsvStream(s('id,id\n1,2\n'), 'h.csv'))), "h.csv:1: header names column 'id' twice");
  assert.equal(await failure(collect(readCsvStream(s('\n\nid,,x\n1,2,3\n'), 'h.csv'))), 'h.csv:3: header column 2 has no name');
});

test('an empty input yields no records; a header alone yields none', async () => {
  assert.deepEqual(await collect(readCsvStream(Readable.from(['']), 'e.csv')), []);
  assert.deepEqual(await collect(readCsvStream(Readable.from(['id,title\n']), 'e.csv')), []);
});

test('a TSV delimiter', async () => {
  const records = await collect(readCsvStream(Readable.from(['id\ttitle\nx\tRobe, longue\n']), 't.tsv', { delimiter: '\t' }));
  assert.deepEqual(records[0]!.value, { id: 'x', title: 'Robe, longue' });
});

test('stopping early does not hang or leak (a break out of a big input)', async () => {
  const lines = ['id,n', ...Array.from({ length: 50_000 }, (_, i) => `r${i},${i}`)].join('\n');
  let count = 0;
  for await (const r of readCsvStream(Readable.from([lines]), 'big.csv')) {
    count += 1;
    if (r.value.id === 'r9') break;
  }
  assert.equal(count, 10);
});

test('formats by extension and by sniffing', () => {
  assert.equal(recordFormatFromPath('a/items.CSV'), 'csv');
  assert.equal(recordFormatFromPath('items.tsv'), 'tsv');
  assert.equal(recordFormatFromPath('items.jsonl'), 'ndjson');
  assert.equal(recordFormatFromPath('items.ndjson'), 'ndjson');
  assert.equal(recordFormatFromPath('items.txt'), null);
  assert.equal(sniffRecordFormat(Buffer.from('\uFEFF  \n{"id":1}\n')), 'ndjson');
  assert.equal(sniffRecordFormat(Buffer.from('id,title\n')), 'csv');
  assert.equal(sniffRecordFormat(Buffer.from('id\ttitle\n')), 'tsv');
});

test('readRecords reads NDJSON or CSV files and sniffs stdin, with the same record shape', async () => {
  const dir = scratchDir();
  const csvPath = join(dir, 'items.csv');
  const ndjsonPath = join(dir, 'items.ndjson');
  const unknownPath = join(dir, 'items.txt');
  writeFileSync(csvPath, 'id,title\n1,Robe\n');
  writeFileSync(ndjsonPath, '{"id":"1","title":"Robe"}\n');
  writeFileSync(unknownPath, '\n{"id":"1","title":"Robe"}\n');
  const expected = { id: '1', title: 'Robe' };
  assert.deepEqual(await collect(readRecords(csvPath)), [{ value: expected, line: 2, file: csvPath }]);
  assert.deepEqual(await collect(readRecords(ndjsonPath)), [{ value: expected, line: 1, file: ndjsonPath }]);
  assert.deepEqual(await collect(readRecords(unknownPath)), [{ value: expected, line: 2, file: unknownPath }]);

  const fromStdin = (chunks: string[]) => collect(readRecords('-', { stdin: Readable.from(chunks) }));
  assert.deepEqual(await fromStdin(['id,ti', 'tle\n1,Robe\n']), [{ value: expected, line: 2, file: 'stdin' }]);
  assert.deepEqual(await fromStdin(['  ', '{"id":"1",', '"title":"Robe"}\n']), [{ value: expected, line: 1, file: 'stdin' }]);
  assert.deepEqual(await fromStdin(['id\ttitle\n1\tRobe']), [{ value: expected, line: 2, file: 'stdin' }]);
  assert.deepEqual(await fromStdin([]), []);
  assert.equal(await failure(fromStdin(['{"id":1}\n[1,2]\n'])), 'stdin:2: expected a JSON object, got an array of 2');
  // A forced format wins over the extension: NDJSON read as CSV is a CSV error.
  assert.equal(await failure(collect(readRecords(ndjsonPath, { format: 'csv' }))), `${ndjsonPath}:1: a quote inside an unquoted field: quote the whole field and double inner quotes ("")`);
});

test('csvLine quotes only the fields that need it, and csv-parse reads every field back as written', async () => {
  const rows = [['id', 'colour'], ['B01,2', 'red'], ['say "hi"', 'multi\nline'], ['plain', ''], ['cr\r', ' spaced ']];
  const lines = rows.map(csvLine);
  assert.equal(lines[0], 'id,colour');
  assert.equal(lines[1], '"B01,2",red');
  assert.equal(lines[2], '"say ""hi""","multi\nline"');
  const path = join(scratchDir(), 'quoted.csv');
  writeFileSync(path, lines.join('\n') + '\n');
  const read = await collect(readCsv(path));
  assert.deepEqual(read.map((r) => [r.value.id, r.value.colour]), rows.slice(1));
});
