// Sharded knn by gallery: partial top-k lists merged with `atelier merge`
// equal the single-process outputs byte for byte, for n = 1, 3 and 4 shards run as processes.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { assertShardedEqualsSingle, shardImagesWithEmbedding } from '../shard-runs.js';

const dir = scratchDir();
let emb: string;

beforeAll(async () => {
  ({ emb } = await shardImagesWithEmbedding(dir));
});

test('knn --shard-by gallery: partial top-k lists merge into the global top-k, ties to the earlier row', async () => {
  await assertShardedEqualsSingle(dir, 'knn-g', '.ndjson', (out) => ['knn', '-q', emb, '--k', '4', '--shard-by', 'gallery', '-o', out], (out) => [out]);
  // img7 repeats img3: for p03 the tie partner p07 ranks first (score 1), and the reverse for p07.
  const lines = readFileSync(join(dir, 'knn-g-n4.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; neighbors: Array<{ id: string; score: number }> });
  assert.equal(lines.find((l) => l.id === 'p03')!.neighbors[0].id, 'p07');
  assert.equal(lines.find((l) => l.id === 'p07')!.neighbors[0].id, 'p03');
});

test('knn --shard-by gallery against a separate gallery, euclidean, with k above a shard\'s rows', async () => {
  await assertShardedEqualsSingle(dir, 'knn-ge', '.ndjson', (out) => ['knn', '-q', emb, '-g', emb, '--metric', 'euclidean', '--k', '9', '--shard-by', 'gallery', '-o', out], (out) => [out]);
});
