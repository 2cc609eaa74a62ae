// The localisation scenes: deterministic, every box inside the frame, small garments off-centre and
// smaller than the varied ones; an In-Shop partition beside them.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, scratchDir } from '../helpers.js';
import { generateScenes } from '../../fixtures/lib/scenes.js';

const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('scenes: same seed, same bytes; boxes inside the frame; small garments sit off-centre', async () => {
  const dir = scratchDir();
  await generateScenes({ out: join(dir, 'a'), seed: 9, products: 20, variant: 'small' });
  await generateScenes({ out: join(dir, 'b'), seed: 9, products: 20, variant: 'small' });
  await generateScenes({ out: join(dir, 'v'), seed: 9, products: 20, variant: 'varied' });
  const rows = parseNdjson(readFileSync(join(dir, 'a', 'scenes.ndjson'), 'utf8'));
  assert.equal(rows.length, 40, 'two photos per item');
  assert.equal(digest(join(dir, 'a', 'scenes.ndjson')), digest(join(dir, 'b', 'scenes.ndjson')));
  for (const r of rows) assert.equal(digest(join(dir, 'a', String(r.image))), digest(join(dir, 'b', String(r.image))));
  for (const r of rows) {
    const [x, y, w, h] = [r.x, r.y, r.w, r.h] as number[];
    assert.ok(x >= 0 && y >= 0 && x + w <= 96 && y + h <= 96 && w >= 4 && h >= 4, `box ${JSON.stringify(r)}`);
    // The centre of a small garment is at least 10% of the frame away from the frame's centre on both axes.
    assert.ok(Math.abs(x + w / 2 - 48) > 9.6 && Math.abs(y + h / 2 - 48) > 9.6, `off-centre ${JSON.stringify(r)}`);
  }
  const varied = parseNdjson(readFileSync(join(dir, 'v', 'scenes.ndjson'), 'utf8'));
  const area = (list: typeof rows) => list.reduce((s, r) => s + (r.w as number) * (r.h as number), 0) / list.length;
  assert.ok(area(varied) > 2 * area(rows), `varied garments (${area(varied)} px²) are larger than small ones (${area(rows)} px²)`);
  const partition = readFileSync(join(dir, 'a', 'list_eval_partition.txt'), 'utf8').split('\n');
  assert.equal(partition[0], '40');
  assert.match(partition[2], /^scenes\/p0001-1\.jpg +id_00000001 (train|query)$/);
});
