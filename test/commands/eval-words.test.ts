// eval-words and train-word2vec on the fixture catalogue, run as a user runs them.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { crawlFixtureCatalogue, fixtureCatalogue } from '../fixture-catalogue.js';
import { COLOURS, PATTERNS, SILHOUETTES } from '../../fixtures/lib/factors.js';
import { readNpy, writeNpy } from '../../src/lib/io/npy.js';
import { splitOf } from '../../src/lib/random.js';

let dir: string;
let items: string;
let vocab: string;
let words: string[];

beforeAll(async () => {
  dir = scratchDir();
  ({ items, vocab } = await crawlFixtureCatalogue());
  words = parseNdjson(readFileSync(vocab, 'utf8')).map((r) => String(r.word));
});

/** Writes word vectors as embed --words does (rows + {id: word, row}). */
async function writeVectors(name: string, rows: Float32Array, dim: number, ids = words): Promise<string> {
  const path = join(dir, `${name}.npy`);
  await writeNpy(path, rows, [ids.length, dim]);
  writeFileSync(join(dir, `${name}.ids.ndjson`), ids.map((id, row) => JSON.stringify({ id, row })).join('\n') + '\n');
  return path;
}

async function evalWords(args: string[]): Promise<{ accuracy: number; triplets: number; random: { expected: number; measured: number }; byType: Record<string, { accuracy: number }> }> {
  const r = await runAtelier(['eval-words', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Word vectors grounded in the hidden truth: each word is the mean factor one-hot of the products whose bag holds it. */
async function truthVectors(): Promise<{ rows: Float32Array; dim: number }> {
  const catalogue = await fixtureCatalogue();
  const truth = new Map(parseNdjson(readFileSync(join(catalogue, 'truth.ndjson'), 'utf8')).map((t) => [String(t.id), t]));
  const factors = [...SILHOUETTES.map((s) => `s:${s}`), ...COLOURS.map((c) => `c:${c}`), ...PATTERNS.map((p) => `p:${p}`)];
  const dim = factors.length;
  const rows = new Float32Array(words.length * dim);
  const index = new Map(words.map((w, i) => [w, i]));
  for (const r of parseNdjson(readFileSync(items, 'utf8'))) {
    const t = truth.get(String(r.id).replace(/-\d+$/, ''))!;
    const on = [`s:${t.silhouette}`, `c:${t.colour}`, `p:${t.pattern}`].map((f) => factors.indexOf(f));
    for (const w of r.tokens as string[]) for (const f of on) rows[index.get(w)! * dim + f]++;
  }
  return { rows, dim };
}

test('eval-words: truth-grounded word vectors beat chance by 0.3; the same rows shuffled among words do not', async () => {
  const { rows, dim } = await truthVectors();
  const grounded = await evalWords(['--words', await writeVectors('truth', rows, dim), '--triplets', join(dir, 'scored.ndjson')]);
  // The thesaurus holds about half of the 237 fixture words (EN/FR/IT garments, colours, patterns, materials).
  assert.ok(grounded.triplets > 500, `${grounded.triplets} triplets`);
  assert.equal(grounded.random.expected, 0.5);
  assert.ok(Math.abs(grounded.random.measured - 0.5) < 0.06, `random vectors ${grounded.random.measured}`);
  assert.ok(grounded.accuracy >= 0.8, `grounded accuracy ${grounded.accuracy}`);
  assert.ok(grounded.byType.colour.accuracy >= 0.8, `colour ${grounded.byType.colour.accuracy}`);
  // Same rows, words permuted: the structure is gone, so chance again.
  const shuffled = [...words].reverse();
  const permuted = await evalWords(['--words', await writeVectors('shuffled', rows, dim, shuffled)]);
  assert.ok(Math.abs(permuted.accuracy - 0.5) < 0.1, `shuffled ${permuted.accuracy}`);
  const scored = parseNdjson(readFileSync(join(dir, 'scored.ndjson'), 'utf8'));
  assert.equal(scored.length, grounded.triplets);
  assert.deepEqual(Object.keys(scored[0]).sort(), ['closer', 'closerDepth', 'farther', 'fartherDepth', 'score', 'word']);
  // The same inputs give the same triplets.
  const again = await evalWords(['--words', join(dir, 'truth.npy')]);
  assert.equal(again.accuracy, grounded.accuracy);
});

test('eval-words: one line and exit 2 without vectors, with both sources, or with no thesaurus word', async () => {
  const none = await runAtelier(['eval-words']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^atelier eval-words: --words: give exactly one of --words and --model\n$/);
  const both = await runAtelier(['eval-words', '--words', 'a.npy', '-m', 'b']);
  assert.equal(both.code, 2);
  const odd = await writeVectors('odd', new Float32Array(6).fill(1), 2, ['zzz', 'yyy', 'xxx']);
  const r = await runAtelier(['eval-words', '--words', odd]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /odd\.npy: no triplet: 0 of the 3 words are in the thesaurus/);
});

test('train-word2vec: phrase partners are nearest words, languages cluster, same seed same bytes', async () => {
  const out = join(dir, 'w2v.npy');
  const r = await runAtelier(['train-word2vec', '-i', items, '--vocab', vocab, '-o', out, '--epochs', '20', '--dim', '64']);
  assert.equal(r.code, 0, r.stderr);
  const ids = parseNdjson(readFileSync(join(dir, 'w2v.ids.ndjson'), 'utf8')).map((x) => String(x.id));
  assert.deepEqual(ids, words);
  const { data } = await readNpy(out);
  const v = data as Float32Array;
  const dim = 64;
  const cos = (a: number, b: number): number => {
    let d = 0, na = 0, nb = 0;
    for (let k = 0; k < dim; k++) {
      d += v[a * dim + k] * v[b * dim + k];
      na += v[a * dim + k] ** 2;
      nb += v[b * dim + k] ** 2;
    }
    return d / Math.sqrt(na * nb);
  };
  const top = (w: string, k: number): string[] => {
    const i = ids.indexOf(w);
    return ids.map((x, j) => [j === i ? -2 : cos(i, j), x] as const).sort((a, b) => b[0] - a[0]).slice(0, k).map((x) => x[1]);
  };
  // Words the fixture shops only write together ("polka dot", "limited edition", "taglio aderente", ...).
  const pairs = [['polka', 'dot'], ['limited', 'edition'], ['taglio', 'aderente'], ['meilleure', 'vente'], ['best', 'seller'], ['tinta', 'unita']];
  let found = 0;
  for (const [a, b] of pairs) found += Number(top(a, 5).includes(b)) + Number(top(b, 5).includes(a));
  // Chance: 5 of 236 words, 0.25 of the 12 directions; measured 8+.
  assert.ok(found >= 6, `${found} of 12 partners in the top 5`);
  // Each shop page is in one language: French noise words sit closer to each other than to Italian ones.
  const fr = ['magnifique', 'acheter', 'nouveau', 'parfait', 'incontournable'].map((w) => ids.indexOf(w));
  const it = ['meraviglioso', 'compra', 'nuovo', 'perfetto', 'imperdibile'].map((w) => ids.indexOf(w));
  let same = 0, other = 0;
  for (const a of fr) for (const b of fr) if (a < b) same += cos(a, b) / 10;
  for (const a of fr) for (const b of it) other += cos(a, b) / 25;
  assert.ok(same - other > 0.2, `same language ${same.toFixed(3)}, across ${other.toFixed(3)}`);
  const twice = join(dir, 'w2v-again.npy');
  assert.equal((await runAtelier(['train-word2vec', '-i', items, '--vocab', vocab, '-o', twice, '--epochs', '20', '--dim', '64'])).code, 0);
  assert.ok(readFileSync(twice).equals(readFileSync(out)), 'same seed, same bytes');
});

test('train-word2vec --val-fraction: leaves out exactly the products train-weak holds out with the same share', async () => {
  const records = parseNdjson(readFileSync(items, 'utf8'));
  const products = [...new Set(records.map((r) => String(r.source ?? r.id)))];
  const expected = products.filter((p) => splitOf(p, 0, 0.3) === 'val').length;
  assert.ok(expected > 0 && expected < products.length, `${expected} of ${products.length}`);
  const out = join(dir, 'w2v-train-only.npy');
  const r = await runAtelier(['train-word2vec', '-i', items, '--vocab', vocab, '-o', out, '--epochs', '1', '--dim', '8', '--val-fraction', '0.3']);
  assert.equal(r.code, 0, r.stderr);
  const counted = /: (\d+) bags \((\d+) records, (\d+) held-out products left out\)/.exec(r.stderr);
  assert.ok(counted, r.stderr);
  assert.equal(Number(counted[3]), expected);
  assert.equal(Number(counted[1]) + expected, products.length, 'every product is either a bag or held out (each fixture bag has a vocabulary word)');
  const bad = await runAtelier(['train-word2vec', '-i', items, '--vocab', vocab, '-o', join(dir, 'x.npy'), '--val-fraction', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^atelier train-word2vec: --val-fraction: .*\n$/);
});
