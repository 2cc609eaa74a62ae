// train-weak --attention types and tag --by-type / --word-types on the fixture catalogue (report 4.3).
// The types model is a small tower (64 px, width 8, 4,096 samples: about 20 s on 2 workers) on the whole
// catalogue: enough for the images to show stripes and dots, which the 0.9 on held-out words needs.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { crawlFixtureCatalogue } from '../fixture-catalogue.js';
import { COLOUR_WORDS, PATTERN_WORDS, SILHOUETTE_WORDS } from '../../fixtures/lib/factors.js';

let dir: string;
let items: string;
let vocab: string;
let model: string;
// --workers 2: the result depends on the worker count, and a machine's core count must not change it.
const TYPES_TRAINING = ['--input-size', '64', '--width', '8', '--batch', '32', '--epoch-size', '1024', '--epochs', '4', '--negatives', '10', '--projection', '8', '--workers', '2'];

/** Words the fixture generator draws from a factor: the ones the images can type. */
const visualWords = new Set<string>();
for (const table of [COLOUR_WORDS, PATTERN_WORDS, SILHOUETTE_WORDS]) for (const byLang of Object.values(table)) for (const list of Object.values(byLang)) for (const w of list) for (const part of w.split(' ')) visualWords.add(part);

type WordType = { word: string; type: string; p: number; evidence: 'images' | 'vector'; images: number | null; thesaurus: string | null; heldOut: boolean; disagrees: boolean };
let wordTypes: WordType[];
let tags: Array<{ id: string; types: Record<string, Array<{ word: string; score: number }>> }>;

beforeAll(async () => {
  dir = scratchDir();
  const crawled = await crawlFixtureCatalogue();
  const all = crawled.items;
  vocab = crawled.vocab;
  items = join(dir, 'head.ndjson');
  writeFileSync(items, readFileSync(all, 'utf8').split('\n').slice(0, 240).join('\n') + '\n');
  model = join(dir, 'types.model');
  // Trained on the whole catalogue (2,407 views): the word types come from the images that carry each word,
  // and the head alone has none of some held-out words (ivory, tote).
  const train = await runAtelier(['train-weak', '-i', all, '--vocab', vocab, '-o', model, ...TYPES_TRAINING, '--attention', 'types', '--held-out-types', '0.3', '--unknown-types', 'entropy'], { timeoutMs: 300_000 });
  assert.equal(train.code, 0, train.stderr);
  const typesFile = join(dir, 'types.ndjson');
  const out = join(dir, 'by-type.ndjson');
  const tag = await runAtelier(['tag', '-m', model, '-i', items, '--by-type', '--k', '3', '-o', out, '--word-types', typesFile]);
  assert.equal(tag.code, 0, tag.stderr);
  assert.match(tag.stderr, /of \d+ thesaurus words have another predicted type/);
  wordTypes = parseNdjson(readFileSync(typesFile, 'utf8')) as unknown as WordType[];
  tags = parseNdjson(readFileSync(out, 'utf8')) as unknown as typeof tags;
});

test('tag --word-types: every word once with its predicted type; the thesaurus type, held-out flag and disagreement beside it', () => {
  const vocabulary = parseNdjson(readFileSync(vocab, 'utf8')).map((r) => String(r.word));
  assert.deepEqual(wordTypes.map((w) => w.word), vocabulary);
  const types = ['clothing', 'colour', 'texture', 'style'];
  for (const w of wordTypes) {
    assert.ok(types.includes(w.type), w.type);
    assert.ok(w.p >= 0.25 - 1e-6 && w.p <= 1, `the predicted type is the most probable of 4 (${w.p})`);
    assert.equal(w.disagrees, w.thesaurus !== null && w.thesaurus !== w.type);
    if (w.heldOut) assert.ok(w.thesaurus !== null, 'only thesaurus words are held out');
  }
  assert.equal(wordTypes.find((w) => w.word === 'rouge')?.thesaurus, 'colour');
  assert.equal(wordTypes.find((w) => w.word === 'wonderful')?.thesaurus, null);
  // A stable 30% of the 123 fixture words the thesaurus knows.
  const heldOut = wordTypes.filter((w) => w.heldOut).length;
  assert.ok(heldOut > 20 && heldOut < 60, `${heldOut} held out`);
});

test('tag --by-type: per image, the k best words of each type, each word listed under its predicted type', () => {
  assert.equal(tags.length, 240);
  const typeOf = new Map(wordTypes.map((w) => [w.word, w.type]));
  for (const t of tags) {
    assert.deepEqual(Object.keys(t.types), ['clothing', 'colour', 'texture', 'style']);
    for (const [type, list] of Object.entries(t.types)) {
      assert.ok(list.length <= 3);
      for (const w of list) assert.equal(typeOf.get(w.word), type);
      for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].score >= list[i].score, 'best first');
    }
  }
});

test('attention mistakes: one line, exit 2', async () => {
  const noProjection = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'x.model'), '--attention', 'types']);
  assert.equal(noProjection.code, 2);
  assert.equal(noProjection.stderr, "atelier train-weak: --projection: --attention types needs the size of each type's sub-vector (the report: 400)\n");
  const badCap = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'y.model'), '--val-images', '-1']);
  assert.equal(badCap.code, 2);
  assert.match(badCap.stderr, /^atelier train-weak: --val-images: .*\n$/);
  const plain = join(dir, 'plain.model');
  const trained = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', plain, '--input-size', '16', '--width', '4', '--stages', '2', '--epochs', '1', '--epoch-size', '8', '--batch', '8', '--val-images', '7']);
  assert.equal(trained.code, 0, trained.stderr);
  // The cheap validation of big runs: 7 of the held-out images are scored (the log says how many).
  assert.match(trained.stderr, / validation images \(7 of them scored each epoch\)/);
  const logged = JSON.parse(readFileSync(join(dir, 'plain.model.log.json'), 'utf8'))[0];
  assert.equal(logged.validationImages, 7);
  assert.ok(logged.validationSeconds > 0 && logged.validationSeconds < 60, `validation took ${logged.validationSeconds} s`);
  const byType = await runAtelier(['tag', '-m', plain, '-i', items, '--by-type']);
  assert.equal(byType.code, 2);
  assert.match(byType.stderr, /^atelier tag: .*plain\.model: --by-type: the model was not trained with --attention types\n$/);
});

// The target. Measured 2026-12-04 on the fixture catalogue (2,407 views; --held-out-types 0.3 hides 33
// colour, pattern and garment words, 76 typed visual words train), accuracy on the held-out visual words:
// - this file's setting (seed 1, 2 workers): 0.970 (32 of 33; quadretti missed); seeds 2 and 3: 0.939, 0.909;
//   on 1 worker, seeds 1-5: 0.939, 0.939, 0.909, 0.939, 0.909. Chance is 0.25 (4 types).
// - what is missed: the three rarest check words (8-11 images; checks are 5% of the views) and, on some seeds,
//   a garment word the descriptions also use for another product ("wear it with a green bag").
// - before (the type of the typed word whose mean image is nearest, on the pooled features): 0.64 at 16 px,
//   width 4, 128 samples; the same tower with the type views: 0.73-0.79. bench/RESULTS.md has the table.
test('tag --word-types: the held-out colour, pattern and garment words take their type from their images, >= 0.9 (chance 0.25)', () => {
  const heldOut = wordTypes.filter((w) => w.heldOut && visualWords.has(w.word));
  assert.ok(heldOut.every((w) => w.evidence === 'images' && (w.images ?? 0) >= 2), 'every held-out visual word has images');
  const accuracy = heldOut.filter((w) => w.type === w.thesaurus).length / heldOut.length;
  assert.ok(accuracy >= 0.9, `held-out ${accuracy.toFixed(3)}; missed: ${heldOut.filter((w) => w.type !== w.thesaurus).map((w) => w.word).join(', ')}`);
});
