// A model directory whose weights file has the right size but the wrong content (NaN, random
// bytes) must not load: tag and embed refuse it with exit 2 naming the file, instead of printing
// null scores and NaN rows.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { buildWeakModel } from '../../src/lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../../src/lib/models/weak-files.js';

let dir: string;
let good: string;
let image: string;

beforeAll(async () => {
  dir = scratchDir();
  await tf.setBackend('cpu');
  const config = { inputSize: 32, width: 4, blocksPerStage: 1, stages: 2, projection: 0, vocabularySize: 3, seed: 1 };
  good = join(dir, 'good.model');
  await saveModel(buildWeakModel(config), good, { metadata: { kind: WEAK_MODEL_KIND, vocabulary: ['red', 'stripes', 'wool'], config, backend: 'cpu', log: [] } });
  image = join(dir, 'photo.png');
  await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 200, g: 30, b: 60 } } }).png().toFile(image);
});

/** A copy of the good model whose weights.bin is replaced by `bytes` of the same length. */
function damaged(name: string, bytes: (size: number) => Buffer, keepChecksums = true): string {
  const copy = join(dir, name);
  cpSync(good, copy, { recursive: true });
  const weights = join(copy, 'weights.bin');
  writeFileSync(weights, bytes(statSync(weights).size));
  if (!keepChecksums) {
    const json = JSON.parse(readFileSync(join(copy, 'model.json'), 'utf8'));
    delete json.atelier.checksums;
    writeFileSync(join(copy, 'model.json'), JSON.stringify(json));
  }
  return copy;
}

const nanBytes = (size: number) => Buffer.from(new Float32Array(size / 4).fill(NaN).buffer);

test('the good model tags and embeds (the damage below is what makes the difference)', async () => {
  const tagged = await runAtelier(['tag', '-m', good, '--workers', '1', image]);
  assert.equal(tagged.code, 0, tagged.stderr);
  const [line] = parseNdjson(tagged.stdout);
  for (const w of line.words as Array<{ score: unknown }>) assert.equal(typeof w.score, 'number');
  assert.ok(JSON.parse(readFileSync(join(good, 'model.json'), 'utf8')).atelier.checksums['weights.bin'].match(/^[0-9a-f]{64}$/), 'save records a sha256');
});

test('weights of the right size but NaN or random content: tag and embed exit 2 naming the file', async () => {
  const cases = [
    { model: damaged('nan.model', nanBytes), why: /sha256/ },
    { model: damaged('random.model', (size) => randomBytes(size)), why: /sha256/ },
    // A directory saved before checksums existed: the finite check still catches NaN.
    { model: damaged('old-nan.model', nanBytes, false), why: /holds NaN/ },
  ];
  for (const { model, why } of cases) {
    const weights = join(model, 'weights.bin');
    const tagged = await runAtelier(['tag', '-m', model, '--workers', '1', image]);
    assert.equal(tagged.code, 2, `tag ${model}: ${tagged.stderr}`);
    assert.equal(tagged.stdout, '');
    const last = tagged.stderr.trim().split('\n');
    assert.equal(last.length, 1 + (last[0].includes('backend') ? 1 : 0), tagged.stderr);
    assert.ok(last.at(-1)!.startsWith(`atelier tag: ${weights}: `), tagged.stderr);
    assert.match(last.at(-1)!, why);
    const out = join(dir, 'emb.npy');
    const embedded = await runAtelier(['embed', '-m', model, '--workers', '1', '-o', out, image]);
    assert.equal(embedded.code, 2, embedded.stderr);
    assert.match(embedded.stderr, new RegExp(`atelier embed: ${weights.replace(/[.]/g, '\\.')}: `));
    assert.ok(!existsSync(out), 'no rows written');
  }
});
