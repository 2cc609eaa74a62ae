// crawl-tokenize (import) -> train-weak -> tag / embed on the fixture catalogue, run as a user would.
import { beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atelierBin, MODEL_QUALITY, parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { crawlFixtureCatalogue, fixtureCatalogue } from '../fixture-catalogue.js';
import { COLOUR_WORDS, COLOURS } from '../../fixtures/lib/factors.js';
import { readNpy } from '../../src/lib/io/npy.js';

let dir: string;
let catalogue: string;
let items: string;
let vocab: string;
let model: string;
const truthColour = new Map<string, string>();
const colourOfWord = new Map<string, string>();
for (const colour of COLOURS) for (const words of Object.values(COLOUR_WORDS[colour])) for (const w of words) for (const part of w.split(' ')) colourOfWord.set(part, colour);

// Small tower and images so the suite stays fast: 32 px, width 16 (the demo's setting; width 8 gave
// features that did not beat raw pixels on every split). At width 8 the full softmax at lr 0.05
// gave the true colour in the top 5 for 57-76% of images over three splits/seeds, sampled softmax
// 41-58% (see the closing note of issue 6).
// 8 epochs (10 before 2026-12-03: every assertion below also passed at 8, for a fifth less CPU).
const EPOCHS = 8;
const TRAIN_FLAGS = ['--input-size', '32', '--width', '16', '--negatives', '20', '--epoch-size', '2048', '--batch', '32', '--seed', '3', '--loss', 'full', '--lr', '0.05'];

beforeAll(async () => {
  dir = scratchDir();
  catalogue = await fixtureCatalogue();
  ({ items, vocab } = await crawlFixtureCatalogue());
  for (const line of parseNdjson(readFileSync(join(catalogue, 'truth.ndjson'), 'utf8'))) truthColour.set(String(line.id), String(line.colour));
});

function productOf(recordId: string): string {
  return recordId.replace(/-\d+$/, '');
}

// The model-quality tier (make test-quality; README "Tests"): a 32-px tower trained for 8 epochs, about a
// minute of CPU, and what it must learn.
describe.runIf(MODEL_QUALITY)('model quality', () => {
  beforeAll(async () => {
    model = join(dir, 'weak.model');
    const train = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', model, ...TRAIN_FLAGS, '--epochs', String(EPOCHS)], { timeoutMs: 600_000 });
    assert.equal(train.code, 0, train.stderr);
  });

  test('train-weak: validation precision@1 is at least 3x a random word, loss falls, P@k and R@k are logged', () => {
    const log = JSON.parse(readFileSync(`${model}.log.json`, 'utf8')) as Array<{ precision: Record<string, number>; recall: Record<string, number>; baselinePrecision1: number; loss: number }>;
    assert.equal(log.length, EPOCHS);
    const last = log[log.length - 1];
    assert.ok(last.loss < log[0].loss, `training loss falls (${log[0].loss} -> ${last.loss})`);
    for (const k of ['1', '5', '10', '15']) assert.ok(last.precision[k] > 0 && last.recall[k] > 0, `P@${k} and R@${k} are logged`);
    // A random vocabulary word is in a bag with probability (mean bag size / K).
    const bags = parseNdjson(readFileSync(items, 'utf8')).map((r) => (r.tokens as string[]).length);
    const vocabularySize = readFileSync(vocab, 'utf8').trim().split('\n').length;
    const chance = bags.reduce((a, b) => a + b, 0) / bags.length / vocabularySize;
    const best = Math.max(...log.map((e) => e.precision['1']));
    assert.ok(best >= 3 * chance, `validation P@1 ${best.toFixed(3)} >= 3 x chance ${chance.toFixed(3)}`);
    // Uniform word sampling gives up the frequent non-visual words ("cm" is in ~40% of bags), so a
    // constant most-frequent-word guess keeps a higher P@1 on these bags; the log reports it beside.
    assert.ok(last.baselinePrecision1 > 0);
    assert.ok(existsSync(join(model, 'model.json')));
  });

  // Two small towers (16 px, width 8, 2 stages, 4 epochs: a tenth of the CPU of the model above) that
  // differ only in --sampling. Measured at 6 epochs: rare-word recall@10 uniform 0.106 / 0.135 vs
  // frequency 0.000 / 0.003 (seeds 3 / 4); at width 16, 0.132 vs 0.018. At 4 epochs (seed 3, kept for
  // a third less CPU) 0.094 vs 0.000; at 3, 0.075 vs 0.000.
  test('uniform word sampling beats frequency sampling on rare words', async () => {
    const smallModel = async (sampling: string): Promise<string> => {
      const out = join(dir, `${sampling}-small.model`);
      const flags = ['--input-size', '16', '--width', '8', '--stages', '2', '--negatives', '20', '--epoch-size', '2048', '--batch', '32', '--seed', '3', '--loss', 'full', '--lr', '0.05'];
      const train = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', out, ...flags, '--epochs', '4', '--sampling', sampling], { timeoutMs: 600_000 });
      assert.equal(train.code, 0, train.stderr);
      return out;
    };
    const vocabulary = parseNdjson(readFileSync(vocab, 'utf8'));
    const sortedDf = vocabulary.map((v) => v.df as number).sort((a, b) => a - b);
    const rareDf = sortedDf[Math.floor(sortedDf.length / 2)];
    const rare = new Set(vocabulary.filter((v) => (v.df as number) <= rareDf).map((v) => String(v.word)));
    const bags = new Map(parseNdjson(readFileSync(items, 'utf8')).map((r) => [String(r.id), new Set(r.tokens as string[])]));
    const rareRecall = async (m: string): Promise<number> => {
      const r = await runAtelier(['tag', '-m', m, '-i', items, '--k', '10']);
      assert.equal(r.code, 0, r.stderr);
      let found = 0;
      let total = 0;
      for (const t of parseNdjson(r.stdout)) {
        const bag = bags.get(String(t.id))!;
        const top = new Set((t.words as Array<{ word: string }>).map((w) => w.word));
        for (const w of bag) {
          if (!rare.has(w)) continue;
          total++;
          if (top.has(w)) found++;
        }
      }
      return found / total;
    };
    const uniform = await rareRecall(await smallModel('uniform'));
    const frequency = await rareRecall(await smallModel('frequency'));
    assert.ok(uniform > frequency + 0.05, `rare-word recall@10: uniform ${uniform.toFixed(3)} > frequency ${frequency.toFixed(3)} + 0.05`);
  });

  test('tag: the top-5 words of most images include their true colour (any language)', async () => {
    const r = await runAtelier(['tag', '-m', model, '-i', items, '--k', '5']);
    assert.equal(r.code, 0, r.stderr);
    const tagged = parseNdjson(r.stdout);
    assert.equal(tagged.length, readFileSync(items, 'utf8').trim().split('\n').length);
    let hits = 0;
    for (const t of tagged) {
      const colour = truthColour.get(productOf(String(t.id)));
      const words = (t.words as Array<{ word: string; score: number }>).map((w) => w.word);
      assert.equal(words.length, 5);
      if (words.some((w) => colourOfWord.get(w) === colour)) hits++;
    }
    const share = hits / tagged.length;
    // Chance: 5 random words of ~240 hit one of a colour's ~3 words about 6% of the time.
    assert.ok(share > 0.5, `true colour in the top 5 for ${(share * 100).toFixed(1)}% of images (need > 50%)`);
  });

  test('tag --word ranks the images that show the word first', async () => {
    const r = await runAtelier(['tag', '-m', model, '-i', items, '--word', 'rouge', '--top', '50']);
    assert.equal(r.code, 0, r.stderr);
    const ranked = parseNdjson(r.stdout);
    assert.equal(ranked.length, 50);
    for (let i = 1; i < ranked.length; i++) assert.ok((ranked[i - 1].score as number) >= (ranked[i].score as number));
    const red = ranked.filter((x) => truthColour.get(productOf(String(x.id))) === 'red').length;
    // 1 in 8 products is red.
    assert.ok(red / ranked.length > 0.5, `${red} of the 50 most "rouge" images are red`);
  });

  test('retrieval on the fixture In-Shop split: weak features beat raw pixels on top-20 accuracy (the In-Shop headline)', async () => {
    const topk = async (model: string, name: string): Promise<Record<string, number>> => {
      const npy = join(dir, `${name}.npy`);
      const e = await runAtelier(['embed', '-m', model, '-i', join(catalogue, 'images.ndjson'), '-o', npy]);
      assert.equal(e.code, 0, e.stderr);
      const r = await runAtelier(['eval-retrieval', '-p', join(catalogue, 'list_eval_partition.txt'), '-e', npy, '--id-field', 'image', '--baseline', 'random']);
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout);
      assert.ok(result.topk['20'] > 5 * result.baselines.random.topk['20'], `${name} beats the random baseline`);
      return result.topk;
    };
    const weak = await topk(model, 'weak');
    const pixels = await topk('pixels', 'pixels');
    // Measured on seed 1 fixtures: weak 0.88 vs pixels 0.79 (16-px pixels beat these 32-px features at top-1).
    assert.ok(weak['20'] > pixels['20'] + 0.04, `top-20: weak ${weak['20']} > pixels ${pixels['20']} + 0.04`);
  });

  test('embed writes one row per image with ids, and --words the word matrix whose colour words neighbour colours', async () => {
    const out = join(dir, 'emb.npy');
    const r = await runAtelier(['embed', '-m', model, '-i', items, '-o', out, '--normalize']);
    assert.equal(r.code, 0, r.stderr);
    const emb = await readNpy(out);
    const ids = parseNdjson(readFileSync(join(dir, 'emb.ids.ndjson'), 'utf8'));
    assert.equal(emb.header.shape[0], ids.length);
    const row0 = Array.from(emb.data as Float32Array).slice(0, emb.header.shape[1]);
    assert.ok(Math.abs(Math.hypot(...row0) - 1) < 1e-4, 'rows are unit length with --normalize');

    const wordsOut = join(dir, 'words.npy');
    const w = await runAtelier(['embed', '-m', model, '--words', '-o', wordsOut, '--normalize']);
    assert.equal(w.code, 0, w.stderr);
    const matrix = await readNpy(wordsOut);
    const words = parseNdjson(readFileSync(join(dir, 'words.ids.ndjson'), 'utf8')).map((x) => String(x.id));
    const dim = matrix.header.shape[1];
    const data = matrix.data as Float32Array;
    const vector = (i: number) => data.subarray(i * dim, (i + 1) * dim);
    const colourIndices = words.map((word, i) => (colourOfWord.has(word) ? i : -1)).filter((i) => i >= 0);
    assert.ok(colourIndices.length >= 12, 'the vocabulary holds colour words');
    let colourNeighbours = 0;
    let total = 0;
    for (const i of colourIndices) {
      const sims = words.map((_, j) => (j === i ? -Infinity : vector(i).reduce((a, v, d) => a + v * vector(j)[d], 0)));
      const top = sims.map((s, j) => [s, j] as const).sort((a, b) => b[0] - a[0]).slice(0, 5);
      for (const [, j] of top) {
        total++;
        if (colourOfWord.has(words[j])) colourNeighbours++;
      }
    }
    const share = colourNeighbours / total;
    const base = colourIndices.length / words.length;
    assert.ok(share > 3 * base, `nearest words of colour words are colours ${(share * 100).toFixed(0)}% of the time (base rate ${(base * 100).toFixed(0)}%)`);
  });
});

test('--resume after a kill gives the same weights as an uninterrupted run', async () => {
  const small = join(dir, 'small.ndjson');
  writeFileSync(small, readFileSync(items, 'utf8').split('\n').slice(0, 300).join('\n') + '\n');
  const flags = ['-i', small, '--vocab', vocab, '--input-size', '16', '--stages', '2', '--width', '4', '--negatives', '5', '--epoch-size', '256', '--epochs', '3', '--seed', '5'];
  const straight = await runAtelier(['train-weak', ...flags, '-o', join(dir, 'straight.model')]);
  assert.equal(straight.code, 0, straight.stderr);

  const killedOut = join(dir, 'killed.model');
  const child = spawn(process.execPath, [atelierBin, 'train-weak', ...flags, '-o', killedOut], { env: { ...process.env, ATELIER_BACKEND: 'wasm' }, stdio: 'ignore' });
  const checkpoint = join(`${killedOut}.checkpoint`, 'model.json');
  const started = Date.now();
  while (!existsSync(checkpoint) && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  assert.ok(existsSync(checkpoint), 'a checkpoint was written before the kill');
  assert.ok(!existsSync(join(killedOut, 'model.json')), 'the run was killed before it finished');
  const resumed = await runAtelier(['train-weak', ...flags, '-o', killedOut, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming after epoch/);
  const a = readFileSync(join(dir, 'straight.model', 'weights.bin'));
  const b = readFileSync(join(killedOut, 'weights.bin'));
  assert.ok(a.equals(b), 'weights are byte-identical');
});

test('bad input is one line naming the file, line and field, exit 2', async () => {
  const noImages = join(dir, 'no-images.ndjson');
  writeFileSync(noImages, '{"id":"a","tokens":["rouge"]}\n');
  const a = await runAtelier(['train-weak', '-i', noImages, '--vocab', vocab, '-o', join(dir, 'x')]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /no-images\.ndjson:1: image: expected an image path/);

  const emptyVocab = join(dir, 'empty-vocab.ndjson');
  writeFileSync(emptyVocab, '');
  const b = await runAtelier(['train-weak', '-i', items, '--vocab', emptyVocab, '-o', join(dir, 'x')]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /empty-vocab\.ndjson: the vocabulary has 0 word/);

  const c = await runAtelier(['train-weak', '-i', items, '--vocab', vocab, '-o', join(dir, 'x'), '--input-size', '16']);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--input-size: input size 16 is smaller than the tower's minimum 32/);
  for (const r of [a, b, c]) assert.equal(r.stderr.trim().split('\n').filter((l) => !l.startsWith('atelier: backend')).length, 1, r.stderr);
});
