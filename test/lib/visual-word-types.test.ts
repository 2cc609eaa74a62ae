// A word's type from the images that carry it (src/lib/models/visual-word-types.ts): each type's view of
// the images carrying types to words it was not told, on images whose factors are drawn independently
// (as the fixture catalogue draws colour, pattern and garment).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mergedWordTypes, typesFromImageViews, visualTypesRecord } from '../../src/lib/models/visual-word-types.js';
import { createRandom } from '../../src/lib/random.js';

/** Three factors of four values each, drawn independently per image; the features see each factor (a value's own
 * pattern over two dimensions, plus noise) and `extra` columns of noise. Word (f, v, s): factor f, value v, synonym s
 * (one per image, as a shop writes in one language); synonym 0's type is known, 1's hidden. The next word is on a
 * random third of the images (a word no factor explains), the last on no image. */
function factorCatalogue(extra: number) {
  const random = createRandom(7);
  const n = 600;
  const factors = 3;
  const values = 4;
  const dim = 2 * factors + extra;
  const rows = new Float32Array(n * dim);
  const bags: Int32Array[] = [];
  const wordOf = (f: number, v: number, s: number) => (f * values + v) * 2 + s;
  const unexplained = factors * values * 2;
  for (let i = 0; i < n; i++) {
    const bag: number[] = [];
    for (let f = 0; f < factors; f++) {
      const v = random.int(values);
      rows[i * dim + 2 * f] = v + 0.3 * (random.next() - 0.5);
      rows[i * dim + 2 * f + 1] = (v % 2) * 2 + 0.3 * (random.next() - 0.5);
      bag.push(wordOf(f, v, random.int(2)));
    }
    for (let e = 0; e < extra; e++) rows[i * dim + 2 * factors + e] = random.next();
    if (random.int(3) === 0) bag.push(unexplained);
    bags.push(Int32Array.from(bag.sort((a, b) => a - b)));
  }
  const vocabularySize = unexplained + 2;
  const known = Int32Array.from({ length: vocabularySize }, (_, w) => (w < unexplained && w % 2 === 0 ? Math.floor(w / 2 / values) : -1));
  return { rows, dim, bags, known, vocabularySize, wordOf, factors, values, unexplained };
}

test('typesFromImageViews: words whose type is hidden get the type whose view their images score on, seen on other images', () => {
  const c = factorCatalogue(0);
  // Four types, the fourth with no word: it never wins and the probabilities are over the other three.
  const typed = typesFromImageViews(c.rows, c.dim, c.bags, c.known, 4);
  for (let f = 0; f < c.factors; f++) {
    for (let v = 0; v < c.values; v++) {
      const w = c.wordOf(f, v, 1);
      assert.equal(typed.type[w], f, `hidden word of factor ${f} value ${v}`);
      assert.ok(typed.probability[w] > 0.9 && typed.probability[w] <= 1, `${typed.probability[w]}`);
      // Its own factor's view: far above what a random draw of its images gives (z about N(0, 1)); the others near it.
      assert.ok(typed.enrichment[w * 4 + f] > 5, `z ${typed.enrichment[w * 4 + f]}`);
      for (let g = 0; g < c.factors; g++) if (g !== f) assert.ok(typed.enrichment[w * 4 + g] < 3.5, `z ${typed.enrichment[w * 4 + g]} on factor ${g}`);
      assert.equal(typed.enrichment[w * 4 + 3], -Infinity);
    }
  }
  // The word no factor explains: a type, but no z a factor word reaches, and no confidence.
  assert.ok(Math.max(...[0, 1, 2].map((t) => typed.enrichment[c.unexplained * 4 + t])) < 3.5);
  assert.ok(typed.probability[c.unexplained] < 0.9, `${typed.probability[c.unexplained]}`);
  assert.equal(typed.type[c.vocabularySize - 1], -1, 'no images, no type');
  assert.equal(typed.probability[c.vocabularySize - 1], 0);
  assert.deepEqual([typed.images[c.unexplained] > 150, typed.images[c.vocabularySize - 1]], [true, 0]);
});

test('typesFromImageViews: more than 512 feature columns are projected first, with the same answers', () => {
  const c = factorCatalogue(600);
  const typed = typesFromImageViews(c.rows, c.dim, c.bags, c.known, 4);
  for (let f = 0; f < c.factors; f++) for (let v = 0; v < c.values; v++) assert.equal(typed.type[c.wordOf(f, v, 1)], f);
});

test('typesFromImageViews: the model record, and merged with the vector classifier where there is no evidence', () => {
  const c = factorCatalogue(0);
  const typed = typesFromImageViews(c.rows, c.dim, c.bags, c.known, 4);
  const { wordOf, vocabularySize } = c;
  const names = ['clothing', 'colour', 'texture', 'style'];
  const record = visualTypesRecord(typed, names);
  assert.equal(record.type[wordOf(1, 2, 1)], 'colour');
  assert.equal(record.type[vocabularySize - 1], null);
  const byVector = { type: new Int32Array(vocabularySize).fill(3), probability: new Float32Array(vocabularySize).fill(0.4) };
  const merged = mergedWordTypes(record, byVector, names);
  assert.equal(merged.type[wordOf(2, 0, 1)], 2);
  assert.equal(merged.evidence[wordOf(2, 0, 1)], 'images');
  assert.equal(merged.type[vocabularySize - 1], 3);
  assert.equal(merged.evidence[vocabularySize - 1], 'vector');
  assert.ok(Math.abs(merged.probability[vocabularySize - 1] - 0.4) < 1e-6);
});
