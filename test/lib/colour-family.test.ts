// The colour family of a free-text colour field: one family or none.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { COLOUR_FAMILIES, colourFamily } from '../../src/lib/text/colour-family.js';

test('a shop colour names one family through any of its words', () => {
  assert.equal(colourFamily('Onyx Black/ Stone'), 'black');
  assert.equal(colourFamily('Heather Grey'), 'grey');
  assert.equal(colourFamily('Navy'), 'blue');
  assert.equal(colourFamily('Off-White'), 'white');
  assert.equal(colourFamily('Multi-color'), 'multi');
  assert.equal(colourFamily('MULTICOLOURED'), 'multi');
});

test('none, or two families, is no label', () => {
  assert.equal(colourFamily('Black/White'), null);
  assert.equal(colourFamily('Stone'), null);
  assert.equal(colourFamily(''), null);
});

test('every colour word belongs to one family only', () => {
  const words = Object.values(COLOUR_FAMILIES).flat();
  assert.equal(new Set(words).size, words.length);
});
