// teacher-score -> train-sizenet -> predict-sizenet -> rise on the fixture catalogue.
import { beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';
import { writeNpy } from '../../src/lib/io/npy.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { buildWeakModel } from '../../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../../src/lib/models/weak-files.js';
import { rocAuc } from '../../src/lib/metrics/classification.js';
import { COLOURS, PATTERNS, SILHOUETTES } from '../../fixtures/lib/factors.js';

let dir: string;
let catalogue: string;
let teacher: string;
let attrs: string;
let attrsNoFit: string;
const truth = new Map<string, Record<string, unknown>>();

/** The paper's attribute baseline: a k-hot matrix of catalogue attributes per article. */
async function writeAttributes(path: string, withFit: boolean, ids: string[]): Promise<void> {
  const rows: number[] = [];
  for (const id of ids) {
    const t = truth.get(id)!;
    rows.push(...SILHOUETTES.map((s) => Number(t.silhouette === s)), ...COLOURS.map((c) => Number(t.colour === c)), ...PATTERNS.map((p) => Number(t.pattern === p)));
    if (withFit) rows.push(Number(t.slim_cut));
  }
  await writeNpy(path, Float32Array.from(rows), [ids.length, rows.length / ids.length]);
  writeFileSync(path.replace(/\.npy$/, '.ids.ndjson'), ids.map((id) => JSON.stringify({ id })).join('\n') + '\n');
}

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  for (const t of parseNdjson(readFileSync(join(catalogue, 'truth.ndjson'), 'utf8'))) truth.set(String(t.id), t);
  teacher = join(dir, 'teacher.ndjson');
  const r = await runAtelier(['teacher-score', join(catalogue, 'sales', 'articles.ndjson'), '-o', teacher]);
  assert.equal(r.code, 0, r.stderr);
  const ids = [...truth.keys()];
  attrs = join(dir, 'attrs.npy');
  attrsNoFit = join(dir, 'attrs-nofit.npy');
  await writeAttributes(attrs, true, ids);
  await writeAttributes(attrsNoFit, false, ids);
});

function trainArgs(features: string, out: string, extra: string[] = []): string[] {
  return ['train-sizenet', '-f', features, '-t', teacher, '-o', out, '--epochs', '40', '--patience', '8', '--hidden', '32,16,8', '--seed', '2', ...extra];
}

test('the student learns size issues from attributes that show the fit, and not from ones that hide it', async () => {
  const withFit = await runAtelier([...trainArgs(attrs, join(dir, 'fit.model')), '--plots', join(dir, 'plots')]);
  assert.equal(withFit.code, 0, withFit.stderr);
  const report = JSON.parse(withFit.stdout);
  assert.ok(report.test.auc > 0.8, `test AUC with the fit attribute ${report.test.auc} > 0.8`);
  const newArticles = [...truth.values()].filter((t) => t.new_article).length;
  assert.ok(report.samples.test > 50, `${report.samples.test} test samples`);
  assert.equal(report.samples.unmatched, newArticles, 'only the new articles (no sales yet) lack a teacher score');
  assert.equal(report.quadrants.quadrants.length, 4);
  assert.ok(existsSync(join(dir, 'plots', 'roc.png')) && existsSync(join(dir, 'plots', 'probability-vs-weight.png')));

  const noFit = await runAtelier(trainArgs(attrsNoFit, join(dir, 'nofit.model')));
  assert.equal(noFit.code, 0, noFit.stderr);
  const blind = JSON.parse(noFit.stdout);
  assert.ok(report.test.auc > blind.test.auc + 0.15, `fit attribute ${report.test.auc} beats no fit attribute ${blind.test.auc} by 0.15`);
});

test('--tau drops low-confidence samples; --unweighted trains on the same split', async () => {
  const tau = await runAtelier(trainArgs(attrs, join(dir, 'tau.model'), ['--tau', '1.5']));
  assert.equal(tau.code, 0, tau.stderr);
  const t = JSON.parse(tau.stdout);
  assert.ok(t.samples.belowTau > 100, `${t.samples.belowTau} samples below tau`);
  const unweighted = await runAtelier(trainArgs(attrs, join(dir, 'uw.model'), ['--unweighted']));
  assert.equal(unweighted.code, 0, unweighted.stderr);
  const u = JSON.parse(unweighted.stdout);
  assert.equal(u.weighted, false);
  assert.equal(u.samples.test, JSON.parse((await runAtelier(trainArgs(attrs, join(dir, 'w2.model')))).stdout).samples.test);
});

test('same seed, same model; --resume continues a run to the same result', async () => {
  const a = await runAtelier(trainArgs(attrs, join(dir, 'a.model'), ['--epochs', '6', '--patience', '100']));
  const b = await runAtelier(trainArgs(attrs, join(dir, 'b.model'), ['--epochs', '3', '--patience', '100']));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const resumed = await runAtelier(trainArgs(attrs, join(dir, 'b.model'), ['--epochs', '6', '--patience', '100', '--resume', '--checkpoint', join(dir, 'b.model.checkpoint')]));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(readFileSync(join(dir, 'a.model', 'weights.bin')).equals(readFileSync(join(dir, 'b.model', 'weights.bin'))), 'resumed weights equal an uninterrupted run');
});

test('predict-sizenet gives day-one advice for new articles', async () => {
  const newIds = [...truth.values()].filter((t) => t.new_article).map((t) => String(t.id));
  assert.ok(newIds.length > 20);
  const features = join(dir, 'new.npy');
  await writeAttributes(features, true, newIds);
  const r = await runAtelier(['predict-sizenet', '-m', join(dir, 'fit.model'), '-f', features]);
  assert.equal(r.code, 0, r.stderr);
  const advice = parseNdjson(r.stdout);
  assert.equal(advice.length, newIds.length);
  const mean = (slim: boolean) => {
    const xs = advice.filter((a) => truth.get(String(a.id))!.slim_cut === slim).map((a) => a.p_size_issue as number);
    return xs.reduce((s, x) => s + x, 0) / xs.length;
  };
  assert.ok(mean(true) > mean(false) + 0.3, `slim-cut new articles ${mean(true).toFixed(2)} vs others ${mean(false).toFixed(2)}`);
});

// The model-quality tier (make test-quality; README "Tests"): minutes of training to show what the model learns.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  test('SizeNet end to end from photos: a 56-px tower fine-tuned on teacher labels weighted by w finds the size issues of unseen articles', async () => {
    // The weak features do not carry the small slim-cut mark (no word names it), so the student is
    // trained through the tower: train-classifier joins the teacher's label and w onto every photo.
    const model = join(dir, 'size-images.model');
    const predictions = join(dir, 'size-images.predictions.ndjson');
    const r = await runAtelier([
      'train-classifier', '-i', join(catalogue, 'images.ndjson'), '--join', teacher, '-l', 'label', '--weight-field', 'w', '--class-weight', 'none',
      '--mode', 'finetune', '--input-size', '56', '--width', '8', '--epochs', '5', '--patience', '3', '--lr', '0.002', '-o', model, '--predictions', predictions,
    ], { timeoutMs: 900_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /records without a match in .*teacher\.ndjson by product left out/, 'the new articles have no teacher score');
    const test = parseNdjson(readFileSync(predictions, 'utf8')).filter((p) => p.split === 'test');
    assert.ok(test.length > 200);
    const score = test.map((p) => (p.probs as Record<string, number>)['size issue']);
    const teacherAuc = rocAuc(score, test.map((p) => Number(p.truth === 'size issue')));
    const slimAuc = rocAuc(score, test.map((p) => Number(truth.get(String(p.id).replace(/-\d+$/, ''))!.slim_cut)));
    // Measured on seed-1 fixtures, 5 epochs, one thread (2026-12-03): at 56 px (kept) 0.862 against the
    // teacher and 0.981 against the hidden slim-cut truth, 39 s CPU; at 64 px 0.890 and 1.000, 48 s; at
    // 48 px 0.607 and 0.614 (the mark is lost). Earlier, at 64 px: 8 epochs 0.875 and 0.996, 4 epochs
    // 0.798 and 0.875.
    assert.ok(teacherAuc > 0.7, `test AUC against the teacher labels ${teacherAuc.toFixed(3)} > 0.7`);
    assert.ok(slimAuc > 0.75, `test AUC against the slim-cut truth ${slimAuc.toFixed(3)} > 0.75`);
  });
});

test('bad input: ids that do not overlap, a bad label, wrong feature width -> one line, exit 2', async () => {
  const other = join(dir, 'other.ndjson');
  writeFileSync(other, '{"id":"zz1","label":"size issue","w":1}\n{"id":"zz2","label":"maybe","w":1}\n');
  const a = await runAtelier(['train-sizenet', '-f', attrs, '-t', other, '-o', join(dir, 'x')]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /other\.ndjson:2: label: expected "size issue" or "no size issue"/);
  writeFileSync(other, '{"id":"zz1","label":"size issue","w":1}\n');
  const b = await runAtelier(['train-sizenet', '-f', attrs, '-t', other, '-o', join(dir, 'x')]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /other\.ndjson: id: no id of .* is in/);
  const c = await runAtelier(['predict-sizenet', '-m', join(dir, 'fit.model'), '-f', attrsNoFit]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /attrs-nofit\.npy: rows of 18 features, but the student .*fit\.model was trained on 19 \(.*attrs\.npy\)/);
});

test('train-sizenet --image-model: rise on the image model explains the probability predict-sizenet gives the same photo', async () => {
  // A small weak tower written as train-weak writes it; its features for one view per article.
  await tf.setBackend('cpu');
  const config = { inputSize: 32, width: 4, blocksPerStage: 1, stages: 2, projection: 0, vocabularySize: 3, seed: 1 };
  const tower = join(dir, 'weak-tower.model');
  await saveModel(buildWeakModel(config), tower, { metadata: { kind: WEAK_MODEL_KIND, vocabulary: ['a', 'b', 'c'], config, backend: 'cpu', log: [] } });
  const views = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8')).filter((r) => r.view === 1).slice(0, 300);
  const list = join(dir, 'views.ndjson');
  writeFileSync(list, views.map((r) => JSON.stringify({ id: r.product, image: join(catalogue, String(r.image)) })).join('\n') + '\n');
  const features = join(dir, 'tower.npy');
  const embedded = await runAtelier(['embed', '-m', tower, '-i', list, '-o', features, '--workers', '1']);
  assert.equal(embedded.code, 0, embedded.stderr);
  const student = join(dir, 'tower-student.model');
  const imageModel = join(dir, 'tower-student-image.model');
  const trained = await runAtelier(['train-sizenet', '-f', features, '-t', teacher, '-o', student, '--epochs', '3', '--tower', tower, '--image-model', imageModel]);
  assert.equal(trained.code, 0, trained.stderr);
  const advice = await runAtelier(['predict-sizenet', '-m', student, '-f', features]);
  assert.equal(advice.code, 0, advice.stderr);
  const [first] = parseNdjson(advice.stdout);
  const explained = await runAtelier(['rise', '-m', imageModel, '--n', '20', join(catalogue, String(views[0].image))]);
  assert.equal(explained.code, 0, explained.stderr);
  const [summary] = parseNdjson(explained.stdout);
  assert.equal(first.id, views[0].product);
  assert.ok(Math.abs((summary.score as number) - (first.p_size_issue as number)) < 1e-5, `rise ${String(summary.score)} = predict-sizenet ${String(first.p_size_issue)}`);
});
