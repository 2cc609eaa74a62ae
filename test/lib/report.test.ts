import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { scratchDir } from '../helpers.js';
import { multiClassReport } from '../../src/lib/metrics/classification.js';
import {
  buildReportPage,
  escapeHtml,
  parseClassifierEvaluation,
  parseRetrievalRun,
  parseTrainingLog,
  readFalseNegatives,
  readKnn,
  readRise,
  readTsne,
  retrievalExamples,
  spreadSample,
  writeReport,
  type ReportContent,
} from '../../src/lib/report/index.js';

const LABELS = ['dress', 'shoe', 'bag'];

/** A classifier evaluation as eval-classifier writes it (the library's multi-class report). */
function evaluation() {
  // dress: 3 right, 1 called shoe; shoe: 2 right; bag: 1 right, 1 called dress.
  const truth = [0, 0, 0, 0, 1, 1, 2, 2];
  const predicted = [0, 0, 0, 1, 1, 1, 2, 0];
  return { name: 'silhouette', ...multiClassReport(truth, predicted, LABELS) };
}

const src = (path: string | null) => (path === null ? null : `img/${path.replace(/[^a-z0-9.]/gi, '_')}`);

/** Section ids in page order. */
function sectionsOf(html: string): string[] {
  return [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]);
}

/** The HTML of one section. */
function sectionHtml(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  assert.ok(start >= 0, `no section ${id}`);
  return html.slice(start, html.indexOf('</section>', start));
}

function fullContent(): ReportContent {
  return {
    title: 'Report <1>',
    inputs: [{ what: 'classifier evaluation', path: 'eval & co.json' }],
    classifier: parseClassifierEvaluation(evaluation(), 'eval.json'),
    falseNegatives: {
      perClass: 10,
      labels: LABELS,
      records: [
        { id: 'a1', image: 'photos/a1.jpg', truth: 'dress', predicted: 'shoe', probability: 0.8 },
        { id: 'b2', image: 'photos/b2.jpg', truth: 'bag', predicted: 'dress', probability: null },
      ],
    },
    retrieval: {
      runs: [parseRetrievalRun({ name: 'trained', topk: { 1: 0.5, 5: 0.8, 20: 0.9 }, map: 0.4, queries: 10, baselines: { random: { topk: { 1: 0.01, 5: 0.05, 20: 0.2 } } } }, 'r.json')],
      examples: [
        {
          query: { id: 'q1', image: 'q1.jpg', item: 'item1' },
          neighbors: [
            { id: 'g1', image: 'g1.jpg', score: 0.9, correct: true },
            { id: 'g2', image: 'g2.jpg', score: 0.8, correct: false },
            { id: 'g3', image: null, score: 0.7, correct: false },
          ],
        },
      ],
    },
    training: [parseTrainingLog([{ epoch: 1, loss: 1, valLoss: 1.2, valAuc: 0.6 }, { epoch: 2, loss: 0.5, valLoss: 0.9, valAuc: 0.7 }], 'sizenet.log.json')],
    rise: { records: [{ id: 'r1', image: 'r1.jpg', overlay: 'r1-overlay.png', className: '0', score: 0.734 }] },
    tsne: { points: [{ id: 't1', x: 0, y: 0, label: 'dress', image: 't1.jpg' }, { id: 't2', x: 1, y: 2, label: 'shoe', image: null }], total: 5 },
  };
}

test('the page holds every section in order, with tables, charts and images', () => {
  const html = buildReportPage(fullContent(), src);
  assert.deepEqual(sectionsOf(html), ['classification', 'false-negatives', 'retrieval', 'training', 'rise', 'tsne']);
  const f1 = sectionHtml(html, 'classification');
  // dress: precision 3/4, recall 3/4; bag: precision 1, recall 1/2, F1 2/3.
  assert.match(f1, /<tr><td data-sort="dress">dress<\/td><td data-sort="0.75">0.750<\/td><td data-sort="0.75">0.750<\/td>/);
  assert.match(f1, /<td data-sort="bag">bag<\/td><td data-sort="1">1.000<\/td><td data-sort="0.5">0.500<\/td><td data-sort="0.6666666666666666">0.667<\/td><td data-sort="2">2<\/td>/);
  assert.match(f1, /id="confusion-matrix" class="sortable confusion"/);
  // The bag row of the confusion matrix: 1 called dress, 0 shoe, 1 bag.
  assert.match(f1, /<th scope="row" data-sort="bag">bag<\/th><td data-sort="1"[^>]*>1<\/td><td data-sort="0"[^>]*>0<\/td><td data-sort="1" class="diagonal"/);
  const fn = sectionHtml(html, 'false-negatives');
  assert.equal((fn.match(/<img /g) ?? []).length, 2);
  assert.match(fn, /data-label="dress"[\s\S]*predicted: shoe \(0.80\)/);
  assert.match(fn, /data-label="bag"[\s\S]*predicted: dress</);
  // Classes are in label order, empty ones left out.
  assert.ok(fn.indexOf('data-label="dress"') < fn.indexOf('data-label="bag"'));
  assert.ok(!fn.includes('data-label="shoe"'));
  const retrieval = sectionHtml(html, 'retrieval');
  assert.match(retrieval, /<svg[\s\S]*trained \[90.0%\][\s\S]*random/);
  assert.equal((retrieval.match(/class="card neighbor correct"/g) ?? []).length, 1);
  assert.equal((retrieval.match(/class="card neighbor wrong"/g) ?? []).length, 2);
  assert.equal((retrieval.match(/<img /g) ?? []).length, 3);
  assert.equal((retrieval.match(/no image/g) ?? []).length, 1);
  const training = sectionHtml(html, 'training');
  assert.equal((training.match(/<svg /g) ?? []).length, 2);
  assert.match(training, /valLoss/);
  assert.match(training, /valAuc/);
  // Each chart's clip path is its own.
  const clips = [...html.matchAll(/<clipPath id="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(clips).size, clips.length);
  const rise = sectionHtml(html, 'rise');
  assert.match(rise, /P\(size issue\) = 0.734/);
  assert.equal((rise.match(/<img /g) ?? []).length, 2);
  const tsne = sectionHtml(html, 'tsne');
  assert.equal((tsne.match(/class="tsne-point"/g) ?? []).length, 1);
  assert.equal((tsne.match(/class="tsne-dot"/g) ?? []).length, 1);
  assert.match(tsne, /2 of 5 points shown/);
  // t1 at the left bottom, t2 at the right top (y grows upwards on the map).
  assert.match(tsne, /t1 \(dress\)" style="left:0.00%;top:96.00%/);
  assert.match(tsne, /t2 \(shoe\)" style="left:96.00%;top:0.00%/);
});

test('sections without inputs are left out, not shown empty', () => {
  const only = buildReportPage({ title: 't', inputs: [], tsne: fullContent().tsne }, src);
  assert.deepEqual(sectionsOf(only), ['tsne']);
  assert.ok(!only.includes('href="#classification"'));
  const empty = buildReportPage({ title: 't', inputs: [], falseNegatives: { records: [], perClass: 5 }, rise: { records: [] }, retrieval: { runs: [], examples: [] }, training: [{ name: 'x', epochs: [] }] }, src);
  assert.deepEqual(sectionsOf(empty), []);
  assert.match(empty, /nothing to show/);
});

test('everything from the inputs is escaped and the page asks for nothing outside itself', () => {
  const content = fullContent();
  content.classifier!.classes[0].label = '<script>alert(1)</script>';
  content.falseNegatives!.records[0] = { id: '"><img src=x onerror=alert(1)>', image: 'a.jpg', truth: 'dress', predicted: '<b>shoe</b>', probability: null };
  content.tsne!.points[0].label = "it's & <odd>";
  const html = buildReportPage(content, src);
  assert.ok(!html.includes('<script>alert'));
  assert.ok(!html.includes('<img src=x'));
  assert.ok(!html.includes('<b>shoe</b>'));
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('it&#39;s &amp; &lt;odd&gt;'));
  assert.ok(html.includes('<title>Report &lt;1&gt;</title>'));
  assert.ok(html.includes('eval &amp; co.json'));
  // Only our one inline script, and no URL with a scheme or protocol-relative host, outside SVG namespaces.
  assert.equal((html.match(/<script>/g) ?? []).length, 1);
  const urls = [...html.matchAll(/(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
  for (const url of urls) assert.ok(!/^[a-z]+:|^\/\//i.test(url), url);
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('the input readers accept what the commands write and name the line of what they cannot use', async () => {
  const dir = scratchDir('atelier-report-lib-');
  // eval-classifier may nest the report and give the confusion as {labels, matrix}.
  const nested = parseClassifierEvaluation({ test: { perClass: evaluation().perClass, confusion: { labels: LABELS, matrix: evaluation().confusion }, macroF1: 0.7 } }, 'x.json');
  assert.deepEqual(nested.confusion?.matrix, evaluation().confusion);
  assert.equal(nested.macroF1, 0.7);
  const fieldIs = (field: string) => (err: Error & { place?: { field?: string } }) => err.place?.field === field;
  assert.throws(() => parseClassifierEvaluation({ perClass: [{ label: 'a', precision: 'high' }] }, 'e.json'), fieldIs('perClass[0].precision'));
  assert.throws(() => parseClassifierEvaluation({ perClass: evaluation().perClass, confusion: [[1, 2]] }, 'e.json'), fieldIs('confusion'));

  const fnPath = join(dir, 'fn.ndjson');
  writeFileSync(fnPath, ['{"label":"dress","id":"a","predicted":"shoe","predictedProbability":0.6,"image":"a.jpg"}', '{"id":"b","truth":"bag","predicted":"dress","probs":{"dress":0.7,"bag":0.2}}', '{"id":"c","truth":"bag","predicted":"shoe","probs":[0.1,0.6,0.3]}'].join('\n') + '\n');
  const fns = await readFalseNegatives(fnPath, LABELS);
  assert.deepEqual(fns.map((f) => [f.truth, f.predicted, f.probability]), [['dress', 'shoe', 0.6], ['bag', 'dress', 0.7], ['bag', 'shoe', 0.6]]);
  writeFileSync(fnPath, '{"id":"a","truth":"dress","predicted":"shoe"}\n{"id":"b","truth":"dress"}\n');
  await assert.rejects(readFalseNegatives(fnPath), (err: Error & { place?: { line?: number; field?: string } }) => err.place?.line === 2 && err.place.field === 'predicted');

  const knnPath = join(dir, 'knn.ndjson');
  writeFileSync(knnPath, '{"id":"q1","neighbors":[{"id":"g1","score":0.9},{"id":"g2","score":0.5}]}\n{"id":"q2","neighbors":[{"id":"g2","score":0.8}]}\n');
  const knn = await readKnn(knnPath);
  const catalogue = new Map([
    ['q1', { image: 'q1.jpg', item: 'A', label: null }],
    ['g1', { image: 'g1.jpg', item: 'A', label: null }],
    ['g2', { image: 'g2.jpg', item: 'B', label: null }],
  ]);
  const examples = retrievalExamples(knn, catalogue, 5, 10);
  assert.deepEqual(examples[0].neighbors.map((n) => n.correct), [true, false]);
  // q2 has no item in the catalogue: its neighbours cannot be marked.
  assert.deepEqual(examples[1].neighbors.map((n) => n.correct), [null]);

  const risePath = join(dir, 'rise.ndjson');
  writeFileSync(risePath, '{"id":"r","image":"r.jpg","class":"0","score":0.25,"peak":{"x":1,"y":2},"topShare":0.3,"overlay":"ov/00000-r.png"}\n');
  mkdirSync(join(dir, 'ov'));
  writeFileSync(join(dir, 'ov', '00000-r.png'), '');
  const [rise] = await readRise(risePath);
  assert.equal(rise.score, 0.25);
  assert.equal(rise.className, '0');
  // Paths that do not exist from here are taken from the file's directory.
  assert.equal(rise.overlay, join(dir, 'ov/00000-r.png'));

  const tsnePath = join(dir, 'map.ndjson');
  writeFileSync(tsnePath, '{"id":"a","x":1,"y":2,"label":"dress"}\n{"id":"b","x":"far","y":0}\n');
  await assert.rejects(readTsne(tsnePath), (err: Error & { place?: { line?: number; field?: string } }) => err.place?.line === 2 && err.place.field === 'x');

  // train-weak's log nests precision@k; train-sizenet's --report holds the log under "log".
  const weak = parseTrainingLog([{ epoch: 1, lr: 0.1, loss: 2, precision: { 1: 0.2, 5: 0.4 }, recall: { 5: 0.3 } }], 'weak.model.log.json');
  assert.equal(weak.name, 'weak.model');
  assert.deepEqual(weak.epochs[0], { epoch: 1, lr: 0.1, loss: 2, 'precision@1': 0.2, 'precision@5': 0.4, 'recall@5': 0.3 });
  assert.equal(parseTrainingLog({ log: [{ loss: 1 }, { loss: 0.5 }] }, 'r.json').epochs[1].epoch, 2);
  assert.throws(() => parseTrainingLog({ epochs: 3 }, 'bad.json'), /not a training log/);
  assert.throws(() => parseRetrievalRun({ map: 1 }, 'bad.json'), /no "topk"/);

  assert.deepEqual(spreadSample([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3), [1, 4, 7]);
  assert.deepEqual(spreadSample([1, 2], 3), [1, 2]);
});

test('writeReport copies each image once as a small JPEG, writes atomically and refuses to replace a foreign directory', async () => {
  const dir = scratchDir('atelier-report-write-');
  const photo = join(dir, 'photo.png');
  await sharp({ create: { width: 400, height: 200, channels: 4, background: { r: 200, g: 10, b: 10, alpha: 1 } } }).png().toFile(photo);
  const content: ReportContent = {
    title: 'r',
    inputs: [],
    falseNegatives: { perClass: 5, records: [{ id: 'a', image: photo, truth: 'x', predicted: 'y', probability: null }, { id: 'b', image: join(dir, 'nope.jpg'), truth: 'x', predicted: 'y', probability: null }] },
    tsne: { points: [{ id: 'a', x: 0, y: 0, label: null, image: photo }], total: 1 },
  };
  const out = join(dir, 'report');
  const summary = await writeReport(out, content, { thumbnailSize: 100 });
  assert.deepEqual(summary.sections, ['false-negatives', 'tsne']);
  assert.equal(summary.images, 1);
  assert.deepEqual(summary.missingImages, [join(dir, 'nope.jpg')]);
  const files = readdirSync(join(out, 'img'));
  assert.equal(files.length, 1);
  const meta = await sharp(join(out, 'img', files[0])).metadata();
  assert.equal(meta.format, 'jpeg');
  assert.equal(meta.width, 100);
  assert.equal(meta.height, 50);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.equal((html.match(new RegExp(`src="img/${files[0]}"`, 'g')) ?? []).length, 2);
  assert.match(html, /no image/);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).sections, ['false-negatives', 'tsne']);
  // Re-running replaces the earlier report; no temporary directory is left behind.
  await writeReport(out, { ...content, tsne: undefined }, { thumbnailSize: 100 });
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).sections, ['false-negatives']);
  assert.deepEqual(readdirSync(dir).sort(), ['photo.png', 'report']);
  const foreign = join(dir, 'project');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'keep me');
  await assert.rejects(writeReport(foreign, content, { thumbnailSize: 100 }), /not an atelier report/);
  assert.ok(existsSync(join(foreign, 'notes.txt')));
});
