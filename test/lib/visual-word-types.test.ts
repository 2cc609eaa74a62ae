// A word's type from the images that carry it (src/lib/models/visual-word-types.ts): the signature
// against a closed form, and the nearest typed word carrying types to words it was not told, on images
// whose factors are drawn independently (as the fixture catalogue draws colour, pattern and garment).
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { imageSignatures, mergedWordTypes, nearestTypedWord, visualTypesRecord } from '../../src/lib/models/visual-word-types.js';
import { createRandom } from '../../src/lib/random.js';

test('image signature: the mean of the word\'s standardised rows; no image, a zero row', () => {
  // One dimension, values 0, 2, 4, 6: mean 3, deviation √5. Word 0 on images 0 and 1, word 1 on image 3.
  const rows = Float32Array.from([0, 2, 4, 6]);
  const bags = [Int32Array.from([0]), Int32Array.from([0]), Int32Array.from([]), Int32Array.from([1])];
  const s = imageSignatures(rows, 1, bags, 3);
  assert.deepEqual(Array.from(s.images), [2, 1, 0]);
  assert.ok(Math.abs(s.signatures[0] - -2 / Math.sqrt(5)) < 1e-6, `${s.signatures[0]}`);
  assert.ok(Math.abs(s.signatures[1] - 3 / Math.sqrt(5)) < 1e-6);
  assert.equal(s.signatures[2], 0);
});

test('nearestTypedWord: words whose type is hidden get the type of their typed synonym, seen on other images', () => {
  // Three factors of four values each, drawn independently; the embedding sees each in two dimensions plus noise.
  const random = createRandom(7);
  const n = 600;
  const dim = 6;
  const factors = 3;
  const values = 4;
  const rows = new Float32Array(n * dim);
  const bags: Int32Array[] = [];
  // Word (f, v, s): factor f, value v, synonym s (one per image, as a shop writes in one language); synonym 0's type is known, 1's hidden.
  const wordOf = (f: number, v: number, s: number) => (f * values + v) * 2 + s;
  for (let i = 0; i < n; i++) {
    const bag: number[] = [];
    for (let f = 0; f < factors; f++) {
      const v = random.int(values);
      rows[i * dim + 2 * f] = v + 0.3 * (random.next() - 0.5);
      rows[i * dim + 2 * f + 1] = (v % 2) * 2 + 0.3 * (random.next() - 0.5);
      bag.push(wordOf(f, v, random.int(2)));
    }
    bags.push(Int32Array.from(bag.sort((a, b) => a - b)));
  }
  // The last word is on no image, as a vocabulary word training never saw.
  const vocabularySize = factors * values * 2 + 1;
  const known = Int32Array.from({ length: vocabularySize }, (_, w) => (w < factors * values * 2 && w % 2 === 0 ? Math.floor(w / 2 / values) : -1));
  // Four types, the fourth with no word: it never wins and the probabilities are over the other three.
  const typed = nearestTypedWord(imageSignatures(rows, dim, bags, vocabularySize), known, 4);
  for (let f = 0; f < factors; f++) {
    for (let v = 0; v < values; v++) {
      const w = wordOf(f, v, 1);
      assert.equal(typed.type[w], f, `hidden word of factor ${f} value ${v}`);
      assert.ok(typed.probability[w] > 1 / 3 && typed.probability[w] <= 1);
    }
  }
  assert.equal(typed.type[vocabularySize - 1], -1, 'no images, no type');
  assert.equal(typed.probability[vocabularySize - 1], 0);

  // As the model keeps it, and merged with the vector classifier's answer where there is no evidence.
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
