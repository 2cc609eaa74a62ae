// The report's preprocessing (§2.6) on EN/FR/IT text, the vocabulary counter and the site-specific words.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { bagOfWords, htmlToText, normalizeStopwords, productText, splitWords, tokenize } from '../../src/lib/text/tokenize.js';
import { parseStopwordList, stopwordSet, stopwordsOf } from '../../src/lib/text/stopwords.js';
import { addSiteProduct, createVocabularyCounter, siteSpecificWords, type SiteWordFrequencies } from '../../src/lib/text/vocabulary.js';
import { buildWeakLabels, stableId } from '../../src/lib/text/weak-labels.js';

const ALL = { stopwords: normalizeStopwords(stopwordSet(['en', 'fr', 'it'])), minLength: 2 };

test('English: lowercase, punctuation and stopwords gone, digits and words with digits dropped', () => {
  assert.deepEqual(tokenize('The Red Dress, with 3 buttons & a 2XL fit: size XL!', ALL), ['red', 'dress', 'buttons', 'fit', 'size', 'xl']);
});

test('French: accents kept, elisions split off, stopwords dropped', () => {
  assert.deepEqual(tokenize("L'écharpe écru en laine, idéale pour l'hiver et l'été", ALL), ['écharpe', 'écru', 'laine', 'idéale', 'hiver', 'été']);
});

test('Italian: articulated prepositions and elisions dropped', () => {
  assert.deepEqual(tokenize("Gonna blu dell'anno, nella taglia più piccola degli abiti", ALL), ['gonna', 'blu', 'anno', 'taglia', 'piccola', 'abiti']);
});

test('a hyphen inside a word is kept, other punctuation splits', () => {
  assert.deepEqual(tokenize('T-shirt bleu-marine / col V; v-neck', ALL), ['t-shirt', 'bleu-marine', 'col', 'v-neck']);
  assert.deepEqual(tokenize('2-pack 100% cotton', ALL), ['cotton']);
});

test('composed and decomposed accents give the same word; folding is opt-in and consistent with stopwords', () => {
  const decomposed = 'e\u0301cru';
  assert.deepEqual(tokenize(decomposed, ALL), ['écru']);
  const folded = { stopwords: normalizeStopwords(['très'], true), minLength: 2, foldAccents: true };
  assert.deepEqual(tokenize('Très Écru, Bleu Foncé', folded), ['ecru', 'bleu', 'fonce']);
});

test('min length counts characters, not bytes', () => {
  assert.deepEqual(tokenize('né xl à ça été', { stopwords: new Set(), minLength: 3 }), ['été']);
  assert.deepEqual(tokenize('né xl', { stopwords: new Set(), minLength: 2 }), ['né', 'xl']);
});

test('splitWords keeps everything before filtering; tokenize is deterministic', () => {
  assert.deepEqual(splitWords('Robe 3/4 noire'), ['robe', '3', '4', 'noire']);
  const text = 'Robe noire, robe longue. Vestido negro.';
  assert.deepEqual(tokenize(text, ALL), tokenize(text, ALL));
});

test('htmlToText: tags stripped, entities decoded, blocks and <br> break words, scripts dropped', () => {
  assert.equal(htmlToText('<p>Robe&nbsp;<b>écr</b>u</p><p>coton</p><ul><li>bleu</li><li>rouge</li></ul>'), 'Robe écru coton bleu rouge');
  assert.equal(htmlToText('Wash<br/>Care<script>var x = "hidden";</script><style>p{}</style>'), 'Wash Care');
  assert.equal(htmlToText('Mod&egrave;le &amp; co'), 'Modèle & co');
  assert.equal(htmlToText('  plain   text \n'), 'plain text');
});

test('bag of words is the set of tokens in order of first appearance, over the fields concatenated', () => {
  const text = productText(['Red dress', null, '<p>A red <em>silk</em> dress.</p>']);
  assert.deepEqual(bagOfWords(text, ALL), ['red', 'dress', 'silk']);
});

test('stopword lists: function words in, fashion words out', () => {
  const en = stopwordsOf('en');
  const fr = stopwordsOf('fr');
  const it = stopwordsOf('it');
  for (const w of ['the', 'and', 'with']) assert.ok(en.includes(w), w);
  for (const w of ['le', 'des', 'avec', 'était']) assert.ok(fr.includes(w), w);
  for (const w of ['della', 'nel', 'con', 'sono']) assert.ok(it.includes(w), w);
  const all = stopwordSet(['en', 'fr', 'it']);
  for (const w of ['down', 'col', 'été', 'red', 'rouge', 'rosso', 'dress', 'robe', 'gonna', 'top']) assert.ok(!all.has(w), w);
  assert.deepEqual(parseStopwordList('# shop words\nBuy, Collection\n\n  wonderful # noise\n'), ['buy', 'collection', 'wonderful']);
});

test('vocabulary: count = samples with the word, df = products with it; top-k ordered by count, df, word', () => {
  const v = createVocabularyCounter();
  v.add(['red', 'dress'], 'p1');
  v.add(['red', 'dress'], 'p1');
  v.add(['red', 'skirt'], 'p2');
  v.add(['blue', 'skirt', 'skirt'], 'p3');
  assert.equal(v.samples, 4);
  assert.equal(v.products, 3);
  assert.equal(v.size, 4);
  assert.deepEqual(v.top(10), [
    { word: 'red', count: 3, df: 2 },
    { word: 'dress', count: 2, df: 1 },
    { word: 'skirt', count: 2, df: 2 },
    { word: 'blue', count: 1, df: 1 },
  ].sort((a, b) => b.count - a.count || b.df - a.df || (a.word < b.word ? -1 : 1)));
  assert.deepEqual(v.top(1).map((e) => e.word), ['red']);
});

test('site-specific words: frequent in one site only are removed; frequent everywhere are kept', () => {
  const sites = new Map<string, SiteWordFrequencies>();
  for (let i = 0; i < 20; i++) addSiteProduct(sites, 'nord', ['nord', 'dress', i % 2 ? 'red' : 'blue']);
  for (let i = 0; i < 20; i++) addSiteProduct(sites, 'sole', ['sole', 'dress', i % 3 ? 'nord' : 'gonna']);
  const words = siteSpecificWords(sites, { maxDf: 0.5, minProducts: 10 });
  assert.deepEqual(words.get('nord'), undefined, 'nord is frequent in both sites: kept');
  assert.deepEqual(words.get('sole'), ['sole']);
  const single = new Map([...sites].filter(([k]) => k === 'nord'));
  assert.equal(siteSpecificWords(single, { maxDf: 0.5, minProducts: 10 }).size, 0, 'one site: nothing to compare with');
  assert.equal(siteSpecificWords(sites, { maxDf: 1, minProducts: 10 }).size, 0, 'max-df 1 turns it off');
  assert.equal(siteSpecificWords(sites, { maxDf: 0.5, minProducts: 21 }).size, 0, 'small sites are left alone');
});

test('weak labels: one record per usable image with the same bag; ids stable; site words removed', () => {
  const products = Array.from({ length: 12 }, (_, i) => ({
    source: `http://shop/p${i}.html`,
    site: 'shop',
    title: `Acme ${i % 2 ? 'red' : 'blue'} dress`,
    category: null,
    description: null,
    images: [
      { url: `http://shop/${i}a.jpg`, ok: true, sha256: `a${i}`, path: `img/a${i}.jpg` },
      { url: `http://shop/${i}b.jpg`, ok: false },
      { url: `http://shop/${i}c.jpg`, ok: true, sha256: `c${i}`, path: `img/c${i}.jpg` },
    ],
  }));
  products.push({ source: 'http://shop/none.html', site: 'shop', title: 'Acme dress', category: null, description: null, images: [] });
  for (let i = 0; i < 12; i++) products.push({ source: `http://other/${i}`, site: 'other', title: 'Plain dress', category: null, description: null, images: [] });
  const set = buildWeakLabels(products, {
    tokenize: ALL,
    fields: ['title', 'category', 'description'],
    siteWords: { maxDf: 0.5, minProducts: 10 },
    textOnly: false,
  });
  assert.equal(set.records.length, 24);
  assert.equal(set.productsWithoutImages, 13);
  assert.deepEqual(set.siteWords.get('shop'), ['acme'], "'dress' is frequent in the other site too");
  assert.deepEqual(set.records[0]!.tokens, ['blue', 'dress']);
  assert.deepEqual(set.records[1]!.tokens, ['blue', 'dress']);
  assert.equal(set.records[0]!.id, stableId('http://shop/p0.html', 'http://shop/0a.jpg'));
  assert.notEqual(set.records[0]!.id, set.records[1]!.id);
  const withIds = buildWeakLabels([{ ...products[0]!, productId: '42' }], {
    tokenize: ALL,
    fields: ['title'],
    siteWords: { maxDf: 1, minProducts: 0 },
    textOnly: false,
  });
  assert.deepEqual(withIds.records.map((r) => r.id), ['42-1', '42-2']);
  const textOnly = buildWeakLabels([{ ...products[12]!, productId: '7' }], { tokenize: ALL, fields: ['title'], siteWords: { maxDf: 1, minProducts: 0 }, textOnly: true });
  assert.deepEqual(textOnly.records, [
    { id: '7', source: 'http://shop/none.html', url: null, image: null, sha256: null, title: 'Acme dress', category: null, description: null, tokens: ['acme', 'dress'] },
  ]);
});
