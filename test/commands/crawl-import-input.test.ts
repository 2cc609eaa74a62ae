// crawl-tokenize --import with a bad row: one line naming file:line, exit 2, before any work starts
// (no image fetched, no state file), also when the bad row comes from stdin behind rows whose images are in flight.
import { test, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();
let requests = 0;
const jpeg = sharp({ create: { width: 24, height: 24, channels: 3, background: { r: 200, g: 30, b: 60 } } }).jpeg().toBuffer();
// Slow images, so the rows before a bad one are still being fetched when it is read.
const server = createServer((req, res) => {
  requests++;
  if (req.url === '/robots.txt') {
    res.writeHead(404).end();
    return;
  }
  void jpeg.then((body) => setTimeout(() => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(body), 400));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
afterAll(() => server.close());

const FAST = ['--host-delay', '0', '--per-host', '8', '--retries', '0', '--timeout', '5000'];

function ndjsonRows(count: number): string[] {
  return Array.from({ length: count }, (_, i) => JSON.stringify({ title: `red dress ${i}`, category: 'dress', description: 'cotton', image: `${base}/img/${i}.jpg` }));
}

const cases: Array<{ name: string; file: string; text: string; line: number; message: RegExp }> = [
  { name: 'malformed NDJSON line', file: 'rows.ndjson', text: [...ndjsonRows(12), '{"title":"oops"', ...ndjsonRows(2)].join('\n') + '\n', line: 13, message: /invalid JSON/ },
  {
    name: 'ragged CSV row',
    file: 'rows.csv',
    text: ['title,category,description,image', ...Array.from({ length: 12 }, (_, i) => `dress ${i},dress,cotton,${base}/img/${i}.jpg`), 'short,row', 'x,y,z,w'].join('\n') + '\n',
    line: 14,
    message: /has 2 fields, the header has 4/,
  },
  {
    name: 'unterminated CSV quote',
    file: 'quote.csv',
    text: ['title,category,description,image', ...Array.from({ length: 12 }, (_, i) => `dress ${i},dress,cotton,${base}/img/${i}.jpg`), '"never closed,dress,cotton,x.jpg', 'a,b,c,d'].join('\n') + '\n',
    line: 14,
    message: /never closed/,
  },
];

for (const c of cases) {
  test(`crawl-tokenize --import: a ${c.name} is exit 2 with file:line, before any image is fetched`, async () => {
    const work = join(dir, c.name.replace(/\W+/g, '-'));
    const input = join(dir, `${c.name.replace(/\W+/g, '-')}-${c.file}`);
    writeFileSync(input, c.text);
    requests = 0;
    const out = join(work + '-out.ndjson');
    const r = await runAtelier(['crawl-tokenize', '--import', input, '--image-field', 'image', '--images', work, '-o', out, ...FAST]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^atelier crawl-tokenize: ${input.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${c.line}: `));
    assert.match(r.stderr, c.message);
    assert.equal(requests, 0, 'no image requested');
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.state`), false, 'no state file left behind');
  });

  test(`crawl-tokenize --import - (stdin): a ${c.name} behind rows in flight is exit 2 with stdin:line, no stack trace`, async () => {
    const work = join(dir, `stdin-${c.name.replace(/\W+/g, '-')}`);
    const out = join(work + '-out.ndjson');
    const r = await runAtelier(['crawl-tokenize', '--import', '-', '--image-field', 'image', '--images', work, '-o', out, ...FAST], { input: c.text });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^atelier crawl-tokenize: stdin:${c.line}: `));
    assert.equal(existsSync(out), false);
  });
}
