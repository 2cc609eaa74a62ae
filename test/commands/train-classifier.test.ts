// train-classifier on the fixture catalogue, run as a user would: class weights, label order,
// the stable split, resume, and one-line errors for bad labels.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { fixtureCatalogue } from '../fixture-catalogue.js';

let dir: string;
let features: string;
let imbalanced: string;
let all: Array<Record<string, unknown>>;

interface ClassReport { label: string; f1: number; support: number }
interface Report { labels: string[]; epochs: number; test: { labels: string[]; perClass: ClassReport[]; confusion: number[][]; macroF1: number; accuracy: number } }
/** The adam head of the first test, the bar --solver lbfgs is held to (trained again when that test is left out). */
let adamBalanced: Report | undefined;

beforeAll(async () => {
  dir = scratchDir();
  const catalogue = await fixtureCatalogue();
  all = parseNdjson(readFileSync(join(catalogue, 'images.ndjson'), 'utf8'));
  // 4-pixel raw crops: weak enough features that an unweighted loss gives up on a rare class.
  features = join(dir, 'px4.npy');
  const embed = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', join(catalogue, 'images.ndjson'), '-o', features]);
  assert.equal(embed.code, 0, embed.stderr);
  // Skirts made rare: only one product in five keeps its images (~4% of the records).
  imbalanced = join(dir, 'imbalanced.ndjson');
  const kept = all.filter((r) => r.silhouette !== 'skirt' || Number(String(r.product).slice(1)) % 5 === 0);
  writeFileSync(imbalanced, kept.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

async function train(args: string[]): Promise<Report> {
  const r = await runAtelier(['train-classifier', '-f', features, '-l', 'silhouette', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}

test('balanced class weights raise the F1 of a rare class by at least 0.1 over the unweighted loss', async () => {
  const common = ['-i', imbalanced, '--test-fraction', '0.5', '--seed', '1'];
  const balanced = await train([...common, '--class-weight', 'balanced', '-o', join(dir, 'balanced.model')]);
  adamBalanced = balanced;
  const none = await train([...common, '--class-weight', 'none', '-o', join(dir, 'none.model')]);
  const skirt = (r: Report) => r.test.perClass.find((c) => c.label === 'skirt')!;
  assert.ok(skirt(balanced).support >= 30, `enough rare test images (${skirt(balanced).support})`);
  assert.ok(skirt(balanced).f1 >= skirt(none).f1 + 0.1, `skirt F1 balanced ${skirt(balanced).f1.toFixed(3)} vs unweighted ${skirt(none).f1.toFixed(3)}`);
  assert.ok(balanced.test.macroF1 > none.test.macroF1, 'macro F1 rises too');
  // Chance for 6 classes is a macro F1 near 1/6.
  assert.ok(balanced.test.macroF1 > 0.5, `macro F1 ${balanced.test.macroF1.toFixed(3)} well above chance`);
});

test('a custom label order is kept in the report, the model, the predictions, classify and eval-classifier', async () => {
  const order = ['trousers', 't-shirt', 'bag', 'skirt', 'dress', 'shoe'];
  const orderFile = join(dir, 'order.txt');
  writeFileSync(orderFile, `# silhouettes, most common first\n${order.join('\n')}\n`);
  const model = join(dir, 'ordered.model');
  const predictions = join(dir, 'ordered.predictions.ndjson');
  const report = await train(['-i', imbalanced, '--labels-order', orderFile, '-o', model, '--predictions', predictions, '--epochs', '3']);
  assert.deepEqual(report.labels, order);
  assert.deepEqual(report.test.labels, order);
  assert.deepEqual(report.test.perClass.map((c) => c.label), order);
  const meta = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).atelier.metadata;
  assert.deepEqual(meta.labels, order);
  const lines = parseNdjson(readFileSync(predictions, 'utf8'));
  assert.equal(lines.length, readFileSync(imbalanced, 'utf8').trim().split('\n').length, 'one prediction per record');
  for (const line of lines.slice(0, 20)) assert.deepEqual(Object.keys(line.probs as object), order);
  const classified = await runAtelier(['classify', '-m', model, '-f', features]);
  assert.equal(classified.code, 0, classified.stderr);
  const first = parseNdjson(classified.stdout)[0];
  assert.deepEqual(Object.keys(first.probs as object), order);
  assert.ok(Math.abs(Object.values(first.probs as Record<string, number>).reduce((a, b) => a + b, 0) - 1) < 1e-4, 'probabilities sum to 1');
  const evaluated = await runAtelier(['eval-classifier', '-p', predictions, '--split', 'test']);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const evaluation = JSON.parse(evaluated.stdout) as Report['test'];
  assert.deepEqual(evaluation.labels, order, 'eval-classifier takes the model order from the probs');
  assert.deepEqual(evaluation.confusion, report.test.confusion, 'eval-classifier agrees with the training report');
  const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ epoch: number; loss: number; valLoss: number }>;
  assert.equal(log.length, 3);
  assert.ok(log.every((e) => Number.isFinite(e.loss) && Number.isFinite(e.valLoss)));
});

test('the split of an image never changes when labels are added or corrected', async () => {
  const firstHalf = join(dir, 'half.ndjson');
  const half = all.slice(0, Math.floor(all.length / 2));
  writeFileSync(firstHalf, half.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const before = join(dir, 'half.predictions.ndjson');
  await train(['-i', firstHalf, '-o', join(dir, 'half.model'), '--predictions', before, '--epochs', '1']);
  // The full catalogue, with a few old labels corrected (shoes retagged as bags).
  const corrected = join(dir, 'corrected.csv');
  const rows = all.map((r, i) => [r.id, r.product, i < 200 && r.silhouette === 'shoe' ? 'bag' : r.silhouette].join(','));
  writeFileSync(corrected, ['id,product,silhouette', ...rows].join('\n') + '\n');
  const after = join(dir, 'full.predictions.ndjson');
  await train(['-i', corrected, '-o', join(dir, 'full.model'), '--predictions', after, '--epochs', '1']);
  const splitBefore = new Map(parseNdjson(readFileSync(before, 'utf8')).map((p) => [p.id, p.split]));
  const afterLines = parseNdjson(readFileSync(after, 'utf8'));
  assert.equal(afterLines.length, all.length);
  let same = 0;
  for (const p of afterLines) {
    if (!splitBefore.has(p.id)) continue;
    assert.equal(p.split, splitBefore.get(p.id), `${p.id} stays in its split`);
    same++;
  }
  assert.equal(same, half.length);
  // Views of one product share a split.
  const byProduct = new Map<string, Set<unknown>>();
  for (const p of afterLines) {
    const product = String(p.id).replace(/-\d+$/, '');
    if (!byProduct.has(product)) byProduct.set(product, new Set());
    byProduct.get(product)!.add(p.split);
  }
  assert.ok([...byProduct.values()].every((s) => s.size === 1));
});

test('--stop-after then --resume continues the same run to the end', async () => {
  const model = join(dir, 'resumed.model');
  const flags = ['-i', imbalanced, '-o', model, '--epochs', '4', '--patience', '100', '--head', 'mlp', '--hidden', '16'];
  const first = await runAtelier(['train-classifier', '-f', features, '-l', 'silhouette', ...flags, '--stop-after', '2']);
  assert.equal(first.code, 0, first.stderr);
  const resumed = await runAtelier(['train-classifier', '-f', features, '-l', 'silhouette', ...flags, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming after epoch 2/);
  const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ epoch: number }>;
  assert.deepEqual(log.map((e) => e.epoch), [1, 2, 3, 4]);
  const other = await runAtelier(['train-classifier', '-f', features, '-l', 'silhouette', ...flags, '--resume', '--lr', '0.5']);
  assert.equal(other.code, 2, 'a resume with other settings is refused');
});

test('bad labels exit 2 with one line naming file, line and field', async () => {
  const missing = join(dir, 'missing.ndjson');
  writeFileSync(missing, ['{"id":"p0001-1","silhouette":"shoe"}', '{"id":"p0002-1","silhouette":"dress"}', '{"id":"p0003-1","colour":"red"}'].join('\n') + '\n');
  let r = await runAtelier(['train-classifier', '-i', missing, '-f', features, '-l', 'silhouette', '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /missing\.ndjson:3: silhouette: /);

  const orderFile = join(dir, 'two.txt');
  writeFileSync(orderFile, 'shoe\ndress\n');
  const unknown = join(dir, 'unknown.ndjson');
  writeFileSync(unknown, ['{"id":"p0001-1","silhouette":"shoe"}', '{"id":"p0002-1","silhouette":"hat"}'].join('\n') + '\n');
  r = await runAtelier(['train-classifier', '-i', unknown, '-f', features, '-l', 'silhouette', '--labels-order', orderFile, '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown\.ndjson:2: silhouette: label 'hat' is not in the label order/);

  const single = join(dir, 'single.csv');
  writeFileSync(single, 'id,silhouette\np0001-1,shoe\np0002-1,shoe\n');
  r = await runAtelier(['train-classifier', '-i', single, '-f', features, '-l', 'silhouette', '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /single\.csv:3: silhouette: .*at least two classes/);

  const weighted = join(dir, 'weighted.ndjson');
  writeFileSync(weighted, ['{"id":"p0001-1","silhouette":"shoe","w":0.5}', '{"id":"p0002-1","silhouette":"dress","w":"heavy"}'].join('\n') + '\n');
  r = await runAtelier(['train-classifier', '-i', weighted, '-f', features, '-l', 'silhouette', '--weight-field', 'w', '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /weighted\.ndjson:2: w: expected a finite weight >= 0/);

  const teacher = join(dir, 'teacher.ndjson');
  writeFileSync(teacher, '{"id":"zz","label":"size issue","w":1}\n');
  r = await runAtelier(['train-classifier', '-i', weighted, '--join', teacher, '--join-key', 'id', '-f', features, '-l', 'label', '-o', join(dir, 'x.model')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /weighted\.ndjson: no record matched the joined file by 'id'/);
});

// Measured 2026-12-03 at this setting (the first test's: balanced weights, half the products in test): lbfgs test
// accuracy 0.934 (macro-F1 0.864, 1.9 s) against adam's 0.844 (0.769, 36 epochs, 4.2 s); lbfgs must not fall below
// adam (measured margin +0.09), and stays 0.3 above chance (1/6).
test('--solver lbfgs: the scikit-learn-style probe scores at least the adam head on the test split, and saves a head classify reads as before', async () => {
  const common = ['-i', imbalanced, '--test-fraction', '0.5', '--seed', '1', '--class-weight', 'balanced'];
  const adam = adamBalanced ?? (await train([...common, '-o', join(dir, 'balanced.model')]));
  const model = join(dir, 'lbfgs.model');
  const predictions = join(dir, 'lbfgs.predictions.ndjson');
  const lbfgs = await train([...common, '--solver', 'lbfgs', '-o', model, '--predictions', predictions]);
  assert.ok(lbfgs.test.accuracy >= adam.test.accuracy, `test accuracy lbfgs ${lbfgs.test.accuracy.toFixed(3)} vs adam ${adam.test.accuracy.toFixed(3)}`);
  assert.ok(lbfgs.test.accuracy >= 1 / 6 + 0.3, `well above chance 1/6 (${lbfgs.test.accuracy.toFixed(3)})`);
  const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ epoch: number; solver: string; l2: number; valAccuracy: number }>;
  assert.equal(log.length, 1);
  assert.equal(log[0].solver, 'lbfgs');
  assert.ok([0.1, 0.01, 0.001, 0.0001].includes(log[0].l2), `l2 ${log[0].l2} from the sweep`);
  // Without a validation split there is nothing to choose the penalty on: scikit-learn's default C = 1, λ = 1/n.
  const noVal = (await train([...common, '--val-fraction', '0', '--solver', 'lbfgs', '-o', join(dir, 'lbfgs-noval.model')])) as Report & { samples: { train: number } };
  const noValLog = JSON.parse(readFileSync(join(dir, 'lbfgs-noval.model.log.json'), 'utf8')) as Array<{ l2: number }>;
  assert.ok(Math.abs(noValLog[0].l2 - 1 / noVal.samples.train) < 1e-12, `l2 ${noValLog[0].l2}`);
  // The saved model is the usual dense softmax head: classify gives the probabilities training wrote.
  const classified = await runAtelier(['classify', '-m', model, '-f', features]);
  assert.equal(classified.code, 0, classified.stderr);
  const byId = new Map(parseNdjson(classified.stdout).map((r) => [r.id, r]));
  for (const p of parseNdjson(readFileSync(predictions, 'utf8')).slice(0, 50)) {
    const c = byId.get(p.id)!;
    assert.equal(c.label, p.label, String(p.id));
    for (const [label, prob] of Object.entries(p.probs as Record<string, number>)) assert.ok(Math.abs((c.probs as Record<string, number>)[label] - prob) < 1e-4);
  }
});

test('--solver mistakes: one line, exit 2', async () => {
  const catalogue = await fixtureCatalogue();
  const cases: Array<[string[], RegExp]> = [
    [['-f', features, '--solver', 'bogus'], /^atelier train-classifier: --solver: 'bogus' is not one of adam, lbfgs\n$/],
    [['--mode', 'finetune', '--solver', 'lbfgs'], /^atelier train-classifier: --solver: lbfgs fits a linear head on frozen features \(--mode head\); fine-tuning on images trains with --solver adam\n$/],
    [['-f', features, '--head', 'mlp', '--solver', 'lbfgs'], /^atelier train-classifier: --solver: lbfgs fits a linear head; /],
    [['-f', features, '--solver', 'lbfgs', '--resume'], /^atelier train-classifier: --resume: lbfgs fits in one pass/],
  ];
  for (const [args, message] of cases) {
    const r = await runAtelier(['train-classifier', '-i', join(catalogue, 'images.ndjson'), '-l', 'silhouette', '-o', join(dir, 'bad.model'), ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message);
  }
});
