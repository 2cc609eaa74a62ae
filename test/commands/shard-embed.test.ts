// Sharded embed (raw pixels) and knn by query merged with `atelier merge`
// equal the single-process outputs byte for byte, for n = 1, 3 and 4 shards run as processes.
import { beforeAll, test } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { assertShardedEqualsSingle, shardImagesWithEmbedding } from '../shard-runs.js';

const dir = scratchDir();
let list: string;
let emb: string;

beforeAll(async () => {
  ({ list, emb } = await shardImagesWithEmbedding(dir));
});

const idsOf = (npy: string) => npy.replace(/\.npy$/, '.ids.ndjson');

test('embed --shard: merged .npy and ids (rows renumbered, rows_sha256) equal one run; so do --skipped lists', async () => {
  // A corrupt image: skipped by its shard, listed in the merged --skipped file.
  const bad = join(dir, 'bad.png');
  writeFileSync(bad, 'not a png');
  const withBad = join(dir, 'with-bad.ndjson');
  writeFileSync(withBad, readFileSync(list, 'utf8') + JSON.stringify({ id: 'bad', image: bad }) + '\n');
  await assertShardedEqualsSingle(dir, 'emb', '.npy', (out) => ['embed', '-m', 'pixels', '--pixels-size', '6', '--normalize', '-i', withBad, '-o', out, '--skipped', out + '.skipped.ndjson'], (out) => [out, idsOf(out), out + '.skipped.ndjson']);
});

test('knn --shard-by query, self-search: merged neighbours equal one run', async () => {
  await assertShardedEqualsSingle(dir, 'knn-q', '.ndjson', (out) => ['knn', '-q', emb, '--k', '4', '-o', out], (out) => [out]);
});

