// The trainers with --workers 2 as a user runs them: the same seed and worker count give
// byte-identical models, and a run stopped after an epoch and resumed equals an uninterrupted one.
// Whether the parallel runs learn is asserted in each trainer's own test file, which trains with
// --workers 2 (train-triplet, train-locate's locate.test.ts, train-attention).
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAtelier, scratchDir } from '../helpers.js';
import { crawlFixtureCatalogue, fixtureCatalogue } from '../fixture-catalogue.js';
import { generateScenes } from '../../fixtures/lib/scenes.js';

let dir: string;
let flags: string[];

beforeAll(async () => {
  dir = scratchDir();
  const { items, vocab } = await crawlFixtureCatalogue();
  const small = join(dir, 'small.ndjson');
  writeFileSync(small, readFileSync(items, 'utf8').split('\n').slice(0, 300).join('\n') + '\n');
  flags = ['-i', small, '--vocab', vocab, '--input-size', '16', '--stages', '2', '--width', '4', '--negatives', '5', '--epoch-size', '192', '--epochs', '2', '--seed', '5', '--workers', '2', '--backend', 'wasm'];
});

function weightsOf(model: string): Buffer {
  return readFileSync(join(model, 'weights.bin'));
}

test('train-weak --workers 2: the same seed gives the same model; --resume is bit-exact', async () => {
  await sameAndResumed('train-weak', flags, 'weak');
  // One worker is another run (per-shard BatchNorm), not a broken one: its loss is close.
  const single = await runAtelier(['train-weak', ...flags.slice(0, -4), '--workers', '1', '-o', join(dir, 'one.model')], { timeoutMs: 300_000 });
  assert.equal(single.code, 0, single.stderr);
  const loss = (stderr: string) => Number(/epoch 1 loss ([\d.]+)/.exec(stderr)?.[1]);
  const log = JSON.parse(readFileSync(join(dir, 'weak-a.model.log.json'), 'utf8')) as Array<{ loss: number }>;
  assert.ok(Math.abs(log[0].loss - loss(single.stderr)) < 0.05, `epoch 1 loss ${log[0].loss} with 2 workers, ${loss(single.stderr)} with 1`);
});

/** The first `count` images of the fixture catalogue, with absolute image paths. */
async function firstImages(count: number): Promise<string> {
  const catalogue = await fixtureCatalogue();
  const images = join(dir, `images${count}.ndjson`);
  const lines = readFileSync(join(catalogue, 'images.ndjson'), 'utf8').split('\n').slice(0, count);
  writeFileSync(images, lines.map((l) => l.replace('"image":"site', `"image":"${catalogue}/site`)).join('\n') + '\n');
  return images;
}

test('train-classifier --mode finetune --workers 2: the same seed gives the same model; --resume is bit-exact', async () => {
  const images = await firstImages(200);
  await sameAndResumed('train-classifier', ['-i', images, '-l', 'colour', '--mode', 'finetune', '--tower', 'small', '--input-size', '32x24', '--width', '4', '--stages', '3', '--epochs', '2', '--head-epochs', '1', '--seed', '2', '--workers', '2', '--backend', 'wasm'], 'classifier');
});

/**
 * One uninterrupted run of `command` with `common` flags beside one stopped after epoch 1 and
 * resumed: two separate executions, so equal weights show both that the seed fixes the run and that
 * --resume is bit-exact (a third run would only repeat the first comparison).
 */
async function sameAndResumed(command: string, common: string[], name: string): Promise<void> {
  const staged = join(dir, `${name}-staged.model`);
  const [whole, first] = await Promise.all([
    runAtelier([command, ...common, '-o', join(dir, `${name}-a.model`)], { timeoutMs: 300_000 }),
    runAtelier([command, ...common, '--stop-after', '1', '-o', staged], { timeoutMs: 300_000 }),
  ]);
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(first.code, 0, first.stderr);
  const rest = await runAtelier([command, ...common, '--resume', '-o', staged], { timeoutMs: 300_000 });
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stderr, /resuming after epoch 1/);
  assert.ok(weightsOf(staged).equals(weightsOf(join(dir, `${name}-a.model`))), 'a run stopped and resumed equals an uninterrupted one, byte for byte');
}

test('train-triplet --workers 2: the same seed gives the same model; --resume is bit-exact', async () => {
  const catalogue = await fixtureCatalogue();
  const train = join(dir, 'triplet-train.ndjson');
  const rows = readFileSync(join(catalogue, 'images.ndjson'), 'utf8').split('\n').filter((l) => l.includes('"split":"train"')).slice(0, 64);
  writeFileSync(train, rows.map((l) => l.replace('"image":"site', `"image":"${catalogue}/site`)).join('\n') + '\n');
  // No validation split: every epoch is kept, so the weights written are the trained ones.
  await sameAndResumed('train-triplet', ['-i', train, '--input-size', '16', '--width', '4', '--stages', '2', '--groups', '4', '--per-group', '2', '--val-fraction', '0', '--epochs', '2', '--seed', '3', '--workers', '2', '--backend', 'wasm'], 'triplet');
});

test('train-locate --workers 2: the same seed gives the same model; --resume is bit-exact', async () => {
  await generateScenes({ out: join(dir, 'scenes'), seed: 7, products: 20, variant: 'varied' });
  await sameAndResumed('train-locate', [
    '-i', join(dir, 'scenes', 'scenes.ndjson'), '--image-size', '32', '--input-size', '16', '--width', '4', '--stages', '2', '--batch', '4', '--patches', '4',
    '--val-fraction', '0', '--epochs', '2', '--seed', '3', '--workers', '2', '--backend', 'wasm',
  ], 'locate');
});

test('train-weak --attention types --workers 2: the workers hold the type targets; same seed, same model; --resume is bit-exact', async () => {
  const small = flags[flags.indexOf('-i') + 1];
  const vocab = flags[flags.indexOf('--vocab') + 1];
  await sameAndResumed('train-weak', [
    '-i', small, '--vocab', vocab, '--input-size', '16', '--stages', '2', '--width', '4', '--negatives', '5', '--epoch-size', '64', '--epochs', '2', '--seed', '5',
    '--attention', 'types', '--projection', '8', '--workers', '2', '--backend', 'wasm',
  ], 'weak-types');
});

test('train-classifier --stn --workers 2: the transformer trains on the workers; same seed, same model; --resume is bit-exact', async () => {
  await sameAndResumed('train-classifier', [
    '-i', await firstImages(60), '-l', 'colour', '--mode', 'finetune', '--tower', 'small', '--input-size', '16', '--stn', '32', '--width', '4', '--stages', '2',
    '--epochs', '2', '--seed', '2', '--workers', '2', '--backend', 'wasm',
  ], 'stn');
});
