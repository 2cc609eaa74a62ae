// Sharded tag, embed (trained tower) and rise merged with `atelier merge` equal the
// single-process outputs byte for byte, for n = 1, 3 and 4 shard processes.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAtelier, scratchDir } from '../helpers.js';
import { assertShardedEqualsSingle, shardImages } from '../shard-runs.js';

const dir = scratchDir();
let list: string;
let model: string;

beforeAll(async () => {
  list = await shardImages(dir);
  const vocab = join(dir, 'vocab.ndjson');
  writeFileSync(vocab, ['red', 'green', 'blue', 'stripes', 'dots'].map((word) => JSON.stringify({ word, count: 5, df: 5 })).join('\n') + '\n');
  model = join(dir, 'weak.model');
  const trained = await runAtelier(['train-weak', '-i', list, '--vocab', vocab, '-o', model, '--input-size', '16', '--width', '4', '--stages', '2', '--batch', '8', '--epoch-size', '16', '--epochs', '1', '--negatives', '2', '--projection', '8'], { timeoutMs: 240_000 });
  assert.equal(trained.code, 0, trained.stderr);
});

test('tag --shard: merged words per image equal one run', async () => {
  await assertShardedEqualsSingle(dir, 'tags', '.ndjson', (out) => ['tag', '-m', model, '-i', list, '--k', '3', '-o', out], (out) => [out]);
});

test('embed --shard with a trained tower: merged .npy and ids equal one run', async () => {
  await assertShardedEqualsSingle(dir, 'emb', '.npy', (out) => ['embed', '-m', model, '-i', list, '-o', out], (out) => [out, out.replace(/\.npy$/, '.ids.ndjson')]);
});

test('rise --shard: merged summaries and the run-wide --masks equal one run', async () => {
  const maps = join(dir, 'maps');
  await assertShardedEqualsSingle(dir, 'rise', '.ndjson', (out) => ['rise', '-m', model, '--class', 'red', '--n', '16', '--s', '2', '--batch', '16', '--maps-dir', maps, '--masks', out + '.masks.npy', '-i', list, '-o', out], (out) => [out, out + '.masks.npy']);
  assert.equal(readdirSync(maps).filter((f) => f.endsWith('.npy')).length, 14);
});

