// Runs a command single-process and as n local shard processes, merges, and compares the outputs.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { readFileSync, writeFileSync } from 'node:fs';
import { runAtelier } from './helpers.js';

/** Small PNGs (two identical, for ties) listed in an NDJSON {id, image, label, words}. */
export async function shardImages(dir: string, count = 14): Promise<string> {
  const lines: string[] = [];
  const words = ['red', 'green', 'blue', 'stripes', 'dots'];
  for (let i = 0; i < count; i++) {
    const path = join(dir, `img${i}.png`);
    const c = i === 7 ? 3 : i; // img7 repeats img3: equal vectors, ties broken by row
    const pixels = Buffer.alloc(16 * 16 * 3);
    for (let p = 0; p < 16 * 16; p++) {
      const stripe = (p >> 4) % (2 + (c % 3)) === 0;
      pixels[p * 3] = (37 * c + (stripe ? 90 : 0)) % 256;
      pixels[p * 3 + 1] = (200 - 13 * c + (p % 16) * 3) % 256;
      pixels[p * 3 + 2] = (90 + 29 * (c % 5) + (stripe ? 0 : 60)) % 256;
    }
    await sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path);
    const tokens = [words[c % 5], words[(c * 2 + 1) % 5]];
    lines.push(JSON.stringify({ id: `p${String(i).padStart(2, '0')}`, image: path, label: c % 2 ? 'odd' : 'even', tokens, source: `p${i}` }));
  }
  const list = join(dir, 'images.ndjson');
  writeFileSync(list, lines.join('\n') + '\n');
  return list;
}

/** The shard images and their raw-pixel embedding (6x6), the gallery of the knn shard tests. */
export async function shardImagesWithEmbedding(dir: string): Promise<{ list: string; emb: string }> {
  const list = await shardImages(dir);
  const emb = join(dir, 'emb.npy');
  const r = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '6', '-i', list, '-o', emb]);
  assert.equal(r.code, 0, r.stderr);
  return { list, emb };
}

/**
 * `args(out)` run once single-process writing `single`, then for n in `counts` as n concurrent
 * shard processes writing `out`, merged with `atelier merge out`; every file `outputs(path)` names
 * must then equal the single-process one byte for byte.
 */
export async function assertShardedEqualsSingle(
  dir: string,
  name: string,
  ext: '.npy' | '.ndjson',
  args: (out: string) => string[],
  outputs: (out: string) => string[],
  counts: number[] = [1, 3, 4],
): Promise<void> {
  const single = join(dir, `${name}-single${ext}`);
  const r = await runAtelier(args(single), { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.stderr);
  for (const n of counts) {
    const out = join(dir, `${name}-n${n}${ext}`);
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => runAtelier([...args(out), '--shard', `${i}/${n}`], { timeoutMs: 240_000 })));
    for (const [i, run] of runs.entries()) assert.equal(run.code, 0, `shard ${i}/${n}: ${run.stderr}`);
    const merged = await runAtelier(['merge', out]);
    assert.equal(merged.code, 0, merged.stderr);
    assert.equal(merged.stdout, '');
    const expected = outputs(single);
    for (const [j, file] of outputs(out).entries()) {
      assert.ok(readFileSync(file).equals(readFileSync(expected[j])), `${name} n=${n}: ${file} differs from ${expected[j]}`);
    }
  }
}
