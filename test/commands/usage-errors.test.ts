// A user's mistake, in any command, costs no time and prints one line: `atelier <cmd>: ...`, exit 2,
// before a backend is loaded or a progress line is drawn.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runAtelier, scratchDir } from '../helpers.js';
import { writeNpy } from '../../src/lib/io/npy.js';

const dir = scratchDir('atelier-usage-');
const at = (name: string) => join(dir, name);
const missing = at('missing');
const npy = at('x.npy');
const images = at('images.ndjson');
const teacher = at('teacher.ndjson');
const vocab = at('vocab.ndjson');
const jpg = at('a.jpg');
const outDir = at('out');
// Model directories whose model.json says they are of another kind: the kind is read before any weights.
const otherModel = at('other.model');
const sizenetModel = at('sizenet.model');
const classifierModel = at('classifier.model');
const notNpy = at('not.npy');

test('setup: small valid inputs beside the bad ones', async () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  await writeNpy(npy, new Float32Array([1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 2, 2, 3, 0, 0, 3]), [8, 2]);
  writeFileSync(at('x.npy.ids.ndjson'), ids.map((id) => JSON.stringify({ id })).join('\n') + '\n');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).jpeg().toFile(jpg);
  writeFileSync(images, ids.map((id, i) => JSON.stringify({ id, image: jpg, item: `i${i % 4}`, label: i % 2 ? 'x' : 'y', tokens: ['red'], source: id, product: id })).join('\n') + '\n');
  writeFileSync(teacher, ids.map((id, i) => JSON.stringify({ id, label: i % 2 ? 'size issue' : 'no size issue', w: 1 })).join('\n') + '\n');
  writeFileSync(vocab, ['red', 'blue'].map((word) => JSON.stringify({ word, count: 3, df: 3 })).join('\n') + '\n');
  writeFileSync(at('no-tokens.ndjson'), JSON.stringify({ id: 'a', image: jpg }) + '\n');
  mkdirSync(outDir, { recursive: true });
  const modelDir = (path: string, metadata: object) => {
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'model.json'), JSON.stringify({ atelier: { metadata } }));
  };
  modelDir(otherModel, { kind: 'atelier-other' });
  modelDir(sizenetModel, { kind: 'atelier-sizenet' });
  modelDir(classifierModel, { kind: 'atelier-classifier', labels: ['x', 'y'], input: 'features', inputDim: 2 });
  writeFileSync(notNpy, 'not a numpy file\n');
  writeFileSync(at('not.npy.ids.ndjson'), '{"id":"a"}\n');
});

// [command, args]: every case is a mistake the user can fix.
const cases: Array<[string, string[]]> = [
  ['info', ['--bogus']],
  ['npy', ['info', missing]],
  ['npy', ['to-ndjson', npy, '--rows', 'abc']],
  ['train-weak', ['-i', missing, '--vocab', vocab, '-o', at('w.model')]],
  ['train-weak', ['-i', images, '--vocab', missing, '-o', at('w.model')]],
  ['train-weak', ['-i', images, '--vocab', vocab, '-o', at('w.model'), '--top-k', '-1']],
  ['train-weak', ['-i', images, '--vocab', vocab, '-o', at('w.model'), '--loss', 'hinge']],
  ['train-weak', ['-i', images, '--vocab', vocab, '-o', at('w.model'), '--lr', '0']],
  ['train-weak', ['-i', images, '--vocab', vocab, '-o', at('w.model'), '--init', missing]],
  ['tag', ['-m', missing, jpg]],
  ['tag', ['-m', otherModel, jpg]],
  ['tag', ['-m', otherModel, '-i', missing]],
  ['tag', ['-m', missing, '--top', '-1', jpg]],
  ['tag', ['-m', missing, '--workers', '-1', jpg]],
  ['tag', ['-m', missing, '--k', '0', jpg]],
  ['embed', ['-m', missing, '-o', at('e.npy'), jpg]],
  ['embed', ['-m', 'pixels', '-o', at('e.npy'), '-i', missing]],
  ['embed', ['-m', 'pixels', '-o', at('e.npy'), '--pixels-size', '0', jpg]],
  ['embed', ['-m', 'pixels', '-o', at('e.npy'), '--pixels-size', '100000', jpg]],
  ['embed', ['-m', 'pixels', '-o', at('e.npy'), '--layer', 'logits', jpg]],
  ['embed', ['-m', 'pixels', '-o', at('e.npy'), '--batch', '1.5', jpg]],
  ['teacher-score', [missing]],
  ['teacher-score', ['--bucket', 'year', images]],
  ['teacher-score', ['--prior-strength', '0', images]],
  ['crawl-tokenize', ['--import', missing]],
  ['crawl-tokenize', ['--import', images, '--max-df', '2']],
  ['crawl-tokenize', ['--import', images, '--concurrency', '0']],
  ['train-sizenet', ['-f', missing, '-t', teacher, '-o', at('s.model')]],
  ['train-sizenet', ['-f', npy, '-t', missing, '-o', at('s.model')]],
  ['train-sizenet', ['-f', npy, '-t', teacher, '-o', at('s.model'), '--threshold', '2']],
  ['train-sizenet', ['-f', npy, '-t', teacher, '-o', at('s.model'), '--optimizer', 'rmsprop']],
  ['train-sizenet', ['-f', npy, '-t', teacher, '-o', at('s.model'), '--hidden', '8,x,2']],
  ['train-sizenet', ['-f', npy, '-t', teacher, '-o', at('s.model'), '--tower', missing, '--image-model', at('si.model')]],
  ['predict-sizenet', ['-m', missing, '-f', npy]],
  ['predict-sizenet', ['-m', otherModel, '-f', npy]],
  ['predict-sizenet', ['-m', sizenetModel, '-f', notNpy]],
  ['predict-sizenet', ['-m', sizenetModel, '-f', npy, '--ids', missing]],
  ['rise', ['-m', missing, jpg]],
  ['rise', ['-m', missing, '--steps', '0', jpg]],
  ['rise', ['-m', missing, '--p1', '0', jpg]],
  ['knn', ['-q', missing]],
  ['knn', ['-q', npy, '--metric', 'manhattan']],
  ['knn', ['-q', npy, '--k', '0']],
  ['knn', ['-q', npy, '--memory', '12Q']],
  ['knn', ['-q', npy, '--index', 'ivf']],
  ['eval-retrieval', ['-p', missing, '-e', npy]],
  ['eval-retrieval', ['-p', images, '-e', npy, '--baseline', 'oracle']],
  ['eval-retrieval', ['-p', images, '-e', npy, '--k', '0,5']],
  ['train-classifier', ['-i', missing, '-l', 'label', '-f', npy, '-o', at('c.model')]],
  ['train-classifier', ['-i', images, '-l', 'label', '-f', missing, '-o', at('c.model')]],
  ['train-classifier', ['-i', images, '-l', 'label', '--tower', missing, '-o', at('c.model')]],
  ['train-classifier', ['-i', images, '-l', 'label', '-f', npy, '-o', at('c.model'), '--mode', 'scratch']],
  ['train-classifier', ['-i', images, '-l', 'label', '-f', npy, '-o', at('c.model'), '--class-weight', missing]],
  ['train-classifier', ['-i', images, '-l', 'label', '-f', npy, '-o', at('c.model'), '--labels-order', missing]],
  ['train-classifier', ['-i', images, '-l', 'label', '-f', npy, '-o', at('c.model'), '--dropout', '1']],
  ['classify', ['-m', missing, jpg]],
  ['classify', ['-m', otherModel, jpg]],
  ['classify', ['-m', classifierModel, '--rank', 'z', '-f', npy]],
  ['classify', ['-m', classifierModel, '--top', '3', '-f', npy]],
  ['classify', ['-m', classifierModel, '-f', missing]],
  ['classify', ['-m', missing, '-i', missing]],
  ['classify', ['-m', missing, '--batch', '0', jpg]],
  ['eval-classifier', ['-p', missing]],
  ['eval-classifier', ['-p', images, '--truth', missing]],
  ['train-triplet', ['-i', missing, '-o', at('t.model')]],
  ['train-triplet', ['-i', images, '-o', at('t.model'), '--tower', missing]],
  ['train-weak', ['-i', images, '--vocab', vocab, '-o', at('w.model'), '--init', missing, '--epochs', '1']],
  ['train-weak', ['-i', at('no-tokens.ndjson'), '--vocab', vocab, '-o', at('w.model')]],
  ['train-triplet', ['-i', images, '-o', at('t.model'), '--margin', '0']],
  ['train-triplet', ['-i', images, '-o', at('t.model'), '--tower-layer', 'logits']],
  ['tsne', [missing]],
  ['tsne', [npy, '--style', 'dots']],
  ['tsne', [npy, '--perplexity', '0']],
  ['tsne', [npy, '--images', missing]],
  ['report', ['--classifier', missing, '-o', at('r')]],
  ['report', ['--top', '0', '-o', at('r')]],
];

/** Runs the cases a few at a time (each is a short process). */
async function runAll<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  }));
  return results;
}

test('every command: a bad option or a missing input is one line on stderr, exit 2, before any work', async () => {
  const results = await runAll(cases, 3, ([command, args]) => runAtelier([command, ...args], { cwd: dir }));
  const failures: string[] = [];
  for (const [i, [command, args]] of cases.entries()) {
    const r = results[i];
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    const ok = r.code === 2 && lines.length === 1 && lines[0].startsWith(`atelier ${command}: `) && r.stdout === '';
    if (!ok) failures.push(`atelier ${command} ${args.join(' ').replaceAll(dir, '.')}: exit ${r.code}, stderr:\n${r.stderr.replaceAll(dir, '.')}`);
  }
  assert.deepEqual(failures, []);
});

test('option values are checked in one wording', async () => {
  const checks: Array<[string[], string]> = [
    [['tag', '-m', missing, '--top', '-1', jpg], "atelier tag: --top: '-1' is not a positive integer"],
    [['knn', '-q', npy, '--metric', 'manhattan'], "atelier knn: --metric: 'manhattan' is not one of cosine, euclidean, dot"],
    [['train-sizenet', '-f', npy, '-t', teacher, '-o', at('s.model'), '--threshold', '2'], "atelier train-sizenet: --threshold: '2' is not a probability in [0, 1]"],
    [['knn', '-q', npy, '--k=abc'], "atelier knn: --k: 'abc' is not a positive integer"],
    [['knn', '-q'], 'atelier knn: --query: needs a value'],
  ];
  for (const [args, line] of checks) {
    const r = await runAtelier(args, { cwd: dir });
    assert.equal(r.stderr, line + '\n', args.join(' '));
    assert.equal(r.code, 2);
  }
});
