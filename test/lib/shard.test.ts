// The shard of a record id is the same on every machine: pinned against Python's hashlib
// (int.from_bytes(sha256(id.encode()).digest()[:6], 'big') % n); paths and auto environments.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { resolveShard, shardOfId, shardPath } from '../../src/lib/shard.js';

test('shardOfId: the first 48 bits of the id\'s SHA-256 (UTF-8) modulo n, as computed by Python', () => {
  for (const [id, of16, of3] of [['p00', 8, 1], ['sku-123456', 14, 0], ['é-robe', 5, 2]] as const) {
    assert.equal(shardOfId(id, 16), of16, id);
    assert.equal(shardOfId(id, 3), of3, id);
    assert.equal(shardOfId(id, 1), 0);
  }
});

test('shardPath pads the index to the width of n - 1 and keeps the extension last', () => {
  assert.equal(shardPath('out/emb.npy', { index: 3, count: 16 }), 'out/emb.shard-03-of-16.npy');
  assert.equal(shardPath('tags', { index: 0, count: 2 }), 'tags.shard-0-of-2');
  assert.equal(shardPath('emb.npy', null), 'emb.npy');
});

test('resolveShard: i/n, Kubernetes and Slurm environments (Slurm counted from SLURM_ARRAY_TASK_MIN)', () => {
  assert.deepEqual(resolveShard('2/5', {}), { index: 2, count: 5 });
  assert.equal(resolveShard(undefined, {}), null);
  assert.deepEqual(resolveShard('auto', { JOB_COMPLETION_INDEX: '15', ATELIER_SHARD_COUNT: '16' }), { index: 15, count: 16 });
  assert.deepEqual(resolveShard('auto', { SLURM_ARRAY_TASK_ID: '16', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '16' }), { index: 15, count: 16 });
  assert.deepEqual(resolveShard('auto', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 0, count: 4 });
  assert.throws(() => resolveShard('auto', { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '4' }), /SLURM_ARRAY_TASK_ID='x' is not a non-negative integer/);
  assert.throws(() => resolveShard('auto', {}), /neither is set/);
});
