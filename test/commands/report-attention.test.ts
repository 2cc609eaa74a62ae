// report --attention: the crops of train-attention (several steps) and train-classifier --stn (one)
// drawn over the copied photos, in percent of the image, held-out images first; a line without
// boxes is a one-line exit-2 error, as is a --boxes line without a whole box.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runAtelier, scratchDir } from '../helpers.js';

test('report --attention draws each crop over its photo, numbered by step, test split first', { timeout: 60_000 }, async () => {
  const dir = scratchDir();
  for (const name of ['a', 'b', 'c']) {
    await sharp({ create: { width: 64, height: 96, channels: 3, background: { r: 200, g: 180, b: 160 } } }).png().toFile(join(dir, `${name}.png`));
  }
  // train-attention --predictions: two steps per image; the train image is left out when test images exist.
  const attention = join(dir, 'attention.ndjson');
  writeFileSync(attention, [
    { id: 'a', image: 'a.png', split: 'train', labels: ['dress'], scores: { dress: 0.9, stripes: 0.2 }, boxes: [{ x: 0, y: 0, w: 0.5, h: 0.5 }, { x: 0.5, y: 0.5, w: 0.5, h: 0.5 }] },
    { id: 'b', image: 'b.png', split: 'test', labels: ['dress', 'stripes'], scores: { dress: 0.8, stripes: 0.7, dots: 0.1 }, boxes: [{ x: 0.125, y: 0.25, w: 0.25, h: 0.375 }, { x: 0.6, y: 0.1, w: 0.3, h: 0.2 }] },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = join(dir, 'report');
  const run = await runAtelier(['report', '-o', out, '--attention', attention]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /1 sections \(attention\), 1 images/);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  const section = html.slice(html.indexOf('<section id="attention"'), html.indexOf('</section>', html.indexOf('<section id="attention"')));
  assert.equal((section.match(/<img /g) ?? []).length, 1, 'the test image only');
  const src = /<img class="thumb" src="([^"]+)"/.exec(section)![1];
  assert.ok(existsSync(join(out, src)), `the photo is copied beside the page (${src})`);
  const crops = [...section.matchAll(/<span class="crop" data-step="(\d)" style="left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%/g)].map((m) => m.slice(1).map(Number));
  assert.deepEqual(crops, [[1, 12.5, 25, 25, 37.5], [2, 60, 10, 30, 20]]);
  assert.match(section, /<span class="predicted">dress, stripes<\/span>/);

  // train-classifier --stn --predictions: one box per image and its label.
  const stn = join(dir, 'stn.ndjson');
  writeFileSync(stn, JSON.stringify({ id: 'c', image: 'c.png', split: 'val', truth: 'dots', label: 'dots', box: { x: 0.5, y: 0.25, w: 0.25, h: 0.25 }, probs: { dots: 0.9, stripes: 0.1 } }) + '\n');
  const one = await runAtelier(['report', '-o', join(dir, 'report2'), '--attention', stn]);
  assert.equal(one.code, 0, one.stderr);
  const page = readFileSync(join(dir, 'report2', 'index.html'), 'utf8');
  assert.match(page, /<span class="crop" data-step="1" style="left:50.00%;top:25.00%;width:25.00%;height:25.00%;border-color:#D55E00"><\/span>/);
  assert.match(page, /<span class="predicted">dots<\/span>/);

  const bad = join(dir, 'bad.ndjson');
  writeFileSync(bad, JSON.stringify({ id: 'x', image: 'a.png', scores: {} }) + '\n');
  const refused = await runAtelier(['report', '-o', join(dir, 'report3'), '--attention', bad]);
  assert.equal(refused.code, 2);
  assert.equal(refused.stderr.trim(), `atelier report: ${bad}:1: boxes: expected boxes (train-attention --predictions) or box (train-classifier --stn --predictions), got nothing (field missing)`);
});

test('report --boxes: a line without a box or with a partial one is a one-line exit-2 error naming the line and field', async () => {
  const dir = scratchDir();
  const noBox = join(dir, 'no-box.ndjson');
  writeFileSync(noBox, JSON.stringify({ id: 'a', image: 'a.png', x: 1, y: 2, w: 3, h: 4 }) + '\n' + JSON.stringify({ id: 'b', image: 'b.png', score: 0.5 }) + '\n');
  const missing = await runAtelier(['report', '-o', join(dir, 'r1'), '--boxes', noBox]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr.trim(), `atelier report: ${noBox}:2: x: expected a box: x, y, w, h in pixels`);
  const partial = join(dir, 'partial.ndjson');
  writeFileSync(partial, JSON.stringify({ id: 'a', image: 'a.png', x: 1, y: 2, w: 0, h: 4 }) + '\n');
  const zero = await runAtelier(['report', '-o', join(dir, 'r2'), '--boxes', partial]);
  assert.equal(zero.code, 2);
  assert.equal(zero.stderr.trim(), `atelier report: ${partial}:1: w: box side must be positive, got 0`);
  assert.ok(!existsSync(join(dir, 'r1')) && !existsSync(join(dir, 'r2')), 'no report is written');
});
