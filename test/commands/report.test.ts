import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { makeReportInputs, type ReportInputs } from './report-fixture.js';

const dir = scratchDir('atelier-report-cmd-');
let inputs: ReportInputs;

/** The HTML of one section of the page. */
function sectionHtml(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  assert.ok(start >= 0, `no section ${id}`);
  return html.slice(start, html.indexOf('</section>', start));
}

function count(text: string, pattern: RegExp): number {
  return (text.match(pattern) ?? []).length;
}

test('setup: fixture outputs from embed, knn, eval-retrieval, eval-classifier and tsne', async () => {
  inputs = await makeReportInputs(dir);
});

test('report gathers every output into one directory with all sections', async () => {
  const out = join(dir, 'report');
  const result = await runAtelier([
    'report', '-o', out, '--title', 'Fixture <report>',
    '--classifier', inputs.classifier, '--false-negatives', inputs.falseNegatives,
    '--retrieval', inputs.retrieval, '--knn', inputs.knn, '--images', inputs.images, '--examples', '5', '--top', '8',
    '--train-log', inputs.trainLog, '--rise', inputs.rise, '--tsne', inputs.tsne, '--tsne-max', '200', '--per-class', '6',
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, join(out, 'index.html') + '\n');
  assert.match(result.stderr, /6 sections \(classification, false-negatives, retrieval, training, rise, tsne\)/);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.ok(html.includes('<title>Fixture &lt;report&gt;</title>'));

  // F1 table: one row per silhouette of the slice, values as eval-classifier computed them.
  const evaluation = JSON.parse(readFileSync(inputs.classifier, 'utf8')) as { perClass: Array<{ label: string; f1: number }>; labels: string[] };
  const f1 = sectionHtml(html, 'classification');
  for (const c of evaluation.perClass) assert.ok(f1.includes(`<td data-sort="${c.label}">${c.label}</td>`) && f1.includes(`>${c.f1.toFixed(3)}</td>`), c.label);
  assert.equal(count(sectionHtml(html, 'classification').split('id="confusion-matrix"')[1], /<th scope="row"/g), evaluation.labels.length);

  // False negatives: per class at most --per-class images, each captioned with its prediction.
  const falseNegatives = parseNdjson(readFileSync(inputs.falseNegatives, 'utf8'));
  assert.ok(falseNegatives.length > 0, 'the kNN vote should miss some images');
  const fn = sectionHtml(html, 'false-negatives');
  const perClass = new Map<string, number>();
  for (const r of falseNegatives) perClass.set(String(r.label ?? r.truth), (perClass.get(String(r.label ?? r.truth)) ?? 0) + 1);
  const expectedImages = [...perClass.values()].reduce((a, n) => a + Math.min(6, n), 0);
  assert.equal(count(fn, /<img /g), expectedImages);
  assert.equal(count(fn, /class="fn-class"/g), perClass.size);
  assert.equal(count(fn, /predicted: /g), expectedImages);

  // Retrieval: the curve, and 5 queries with 8 neighbours each; correct marks agree with the catalogue's items.
  const retrieval = sectionHtml(html, 'retrieval');
  assert.match(retrieval, /id="topk-chart"><svg/);
  assert.match(retrieval, /raw pixels \[\d+\.\d%\]/);
  assert.equal(count(retrieval, /class="retrieval-example"/g), 5);
  assert.equal(count(retrieval, /<img /g), 5 * 9);
  const item = new Map(inputs.records.map((r) => [r.id as string, r.item as string]));
  const knn = parseNdjson(readFileSync(inputs.knn, 'utf8'));
  const shown = [0, 1, 2, 3, 4].map((i) => knn[Math.floor((i * knn.length) / 5)]);
  const expectedCorrect = shown.reduce((a, q) => a + (q.neighbors as Array<{ id: string }>).slice(0, 8).filter((n) => item.get(n.id) === item.get(q.id as string)).length, 0);
  assert.equal(count(retrieval, /class="card neighbor correct"/g), expectedCorrect);
  assert.equal(count(retrieval, /class="card neighbor wrong"/g), 5 * 8 - expectedCorrect);

  const training = sectionHtml(html, 'training');
  assert.equal(count(training, /<svg /g), 2);
  assert.match(training, /sizenet\.model/);

  // RISE: each photo beside its overlay (found beside rise.ndjson), with P(size issue).
  const rise = sectionHtml(html, 'rise');
  assert.equal(count(rise, /class="rise-pair"/g), 3);
  assert.equal(count(rise, /<img /g), 6);
  assert.match(rise, /P\(size issue\) = 0\.500/);

  const tsne = sectionHtml(html, 'tsne');
  assert.equal(count(tsne, /class="tsne-point"/g), 200);
  assert.match(tsne, /200 of 360 points shown/);

  // Every image the page shows is a file in the report directory; nothing points outside it.
  const sources = [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]);
  for (const s of sources) {
    assert.match(s, /^img\/[\w.-]+\.jpg$/);
    assert.ok(existsSync(join(out, s)), s);
  }
  const manifest = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { images: number; missingImages: string[] };
  assert.equal(manifest.images, readdirSync(join(out, 'img')).length);
  assert.deepEqual(manifest.missingImages, []);
});

test('sections without inputs are left out; images missing on disk become grey boxes with a warning', async () => {
  const out = join(dir, 'small');
  const tsneCopy = join(dir, 'map-broken.ndjson');
  const lines = readFileSync(inputs.tsne, 'utf8').trim().split('\n').slice(0, 10);
  lines[0] = JSON.stringify({ ...JSON.parse(lines[0]), image: '/nonexistent/photo.jpg' });
  writeFileSync(tsneCopy, lines.join('\n') + '\n');
  const result = await runAtelier(['report', '-o', out, '--tsne', tsneCopy, '--retrieval', inputs.retrieval]);
  assert.equal(result.code, 0, result.stderr);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.deepEqual([...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]), ['retrieval', 'tsne']);
  assert.ok(!html.includes('class="retrieval-example"'));
  assert.match(result.stderr, /warning: 1 images could not be read/);
  assert.equal(count(html, /class="tsne-point"/g), 9);
  assert.equal(count(html, /class="tsne-dot"/g), 1);
});

test('report refuses bad input with one line and exit 2, and never replaces a directory that is not a report', async () => {
  const none = await runAtelier(['report', '-o', join(dir, 'none')]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^atelier report: nothing to report/);

  const project = join(dir, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'keep.txt'), 'mine');
  const foreign = await runAtelier(['report', '-o', project, '--tsne', inputs.tsne]);
  assert.equal(foreign.code, 2);
  assert.match(foreign.stderr, /not an atelier report/);
  assert.equal(readFileSync(join(project, 'keep.txt'), 'utf8'), 'mine');

  const badJson = join(dir, 'bad.json');
  writeFileSync(badJson, '{"perClass": [{"label": "a", "precision": 1, "recall": 1, "f1": "x", "support": 3}]}');
  const bad = await runAtelier(['report', '-o', join(dir, 'bad'), '--classifier', badJson]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /bad\.json: perClass\[0\]\.f1: expected a number/);
  assert.ok(!existsSync(join(dir, 'bad')));
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
});

test('training curves: throughput (samples/s) gets its own panel, so the 0..1 validation metrics are not flattened by it', async () => {
  const model = join(dir, 'silhouette.model');
  const trained = await runAtelier(['train-classifier', '-i', inputs.images, '-l', 'silhouette', '-f', inputs.embeddings, '--epochs', '4', '-o', model]);
  assert.equal(trained.code, 0, trained.stderr);
  const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<Record<string, number>>;
  const throughput = Object.keys(log[0]).filter((k) => /PerSecond$/.test(k));
  const metrics = Object.keys(log[0]).filter((k) => /^val/.test(k) && !/loss/i.test(k));
  assert.ok(throughput.length > 0 && metrics.length > 0, `log fields: ${Object.keys(log[0]).join(', ')}`);
  const out = join(dir, 'report-training');
  const built = await runAtelier(['report', '-o', out, '--train-log', `${model}.log.json`]);
  assert.equal(built.code, 0, built.stderr);
  const training = sectionHtml(readFileSync(join(out, 'index.html'), 'utf8'), 'training');
  const panels = new Map([...training.matchAll(/<div class="chart" data-panel="(\w+)">(.*?)<\/svg>/gs)].map((m) => [m[1], m[2]]));
  assert.deepEqual([...panels.keys()], ['loss', 'validation', 'throughput']);
  const plotted = (panel: string, key: string) => new RegExp(`>${key}</text>`).test(panels.get(panel)!);
  for (const key of throughput) {
    assert.ok(plotted('throughput', key), `${key} in the throughput panel`);
    assert.ok(!plotted('validation', key) && !plotted('loss', key), `${key} only in the throughput panel`);
  }
  for (const key of metrics) assert.ok(plotted('validation', key), `${key} in the validation panel`);
});
