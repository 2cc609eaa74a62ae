// embed's .npy and ids file are renamed one after the other; a run killed in between leaves the new
// ids beside the old .npy (same row count). The ids carry a digest of their rows, so readers refuse the pair.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();

async function images(): Promise<string> {
  const list = join(dir, 'images.ndjson');
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) {
    const path = join(dir, `img${i}.png`);
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 40 * i, g: 200 - 30 * i, b: 90 + 20 * (i % 3) } } }).png().toFile(path);
    lines.push(JSON.stringify({ id: `a${i}`, image: path, item: `item${i % 3}`, split: i < 3 ? 'query' : 'gallery' }));
  }
  writeFileSync(list, lines.join('\n') + '\n');
  return list;
}

test('embed: ids carry a digest of the rows; readers refuse new ids beside an old .npy, and accept plain ids', async () => {
  const list = await images();
  const oldNpy = join(dir, 'emb.npy');
  const first = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', list, '-o', oldNpy]);
  assert.equal(first.code, 0, first.stderr);
  const ids = parseNdjson(readFileSync(join(dir, 'emb.ids.ndjson'), 'utf8'));
  assert.equal(ids.length, 6);
  assert.match(String(ids[5].rows_sha256), /^[0-9a-f]{64}$/);
  assert.equal(ids[0].rows_sha256, undefined);

  // The consistent pair is read.
  const ok = await runAtelier(['knn', '-q', oldNpy, '--k', '2']);
  assert.equal(ok.code, 0, ok.stderr);

  // A second run (other rows, same count) killed after renaming its ids and before its .npy.
  const second = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '--normalize', '-i', list, '-o', join(dir, 'new.npy')]);
  assert.equal(second.code, 0, second.stderr);
  copyFileSync(join(dir, 'new.ids.ndjson'), join(dir, 'emb.ids.ndjson'));
  const idsFile = join(dir, 'emb.ids.ndjson');
  const refusal = new RegExp(`^atelier \\S+: ${idsFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:6: rows_sha256: written for other rows than`);
  const partition = join(dir, 'partition.ndjson');
  writeFileSync(partition, ids.map((r, i) => JSON.stringify({ id: r.id, item: `item${i % 3}`, split: i < 3 ? 'query' : 'gallery' })).join('\n') + '\n');
  for (const args of [
    ['knn', '-q', oldNpy, '--k', '2'],
    ['eval-retrieval', '-p', partition, '-e', oldNpy],
    ['tsne', oldNpy, '--exact', '--perplexity', '1.5', '-o', join(dir, 'xy.ndjson')],
    ['train-classifier', '-f', oldNpy, '-i', list, '-l', 'item', '-o', join(dir, 'c.model'), '--epochs', '1'],
  ]) {
    const r = await runAtelier(args);
    assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr.trim().split('\n').pop()!, refusal, args[0]);
    assert.equal(r.stderr.trim().split('\n').filter((l) => !l.startsWith('atelier: backend ')).length, 1, r.stderr);
  }

  // Ids written by another tool (no digest) are read as they are.
  writeFileSync(idsFile, ids.map((r) => JSON.stringify({ id: r.id })).join('\n') + '\n');
  const plain = await runAtelier(['knn', '-q', oldNpy, '--k', '2']);
  assert.equal(plain.code, 0, plain.stderr);
});
