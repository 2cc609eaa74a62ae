// The fixture catalogue tests run on: fixtures/out from `make fixtures` (seed 1, 800 products), or,
// when a test file runs on its own, the same catalogue generated once into the temp directory.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { defaultFixtures, runAtelier, sharedOnce } from './helpers.js';
import { generateFixtures } from '../fixtures/lib/catalogue.js';

export async function fixtureCatalogue(): Promise<string> {
  if (existsSync(join(defaultFixtures, 'manifest.json'))) return defaultFixtures;
  const cached = join(tmpdir(), 'atelier-fixtures-seed1-800');
  if (!existsSync(join(cached, 'manifest.json'))) {
    try {
      await generateFixtures({ seed: 1, out: cached, products: 800 });
    } catch (err) {
      // Another test file generated it at the same time: fine if it is complete now.
      if (!existsSync(join(cached, 'manifest.json'))) throw err;
    }
  }
  return cached;
}

/**
 * The fixture catalogue imported by crawl-tokenize: items.ndjson (a bag of words and an
 * image per view) and vocab.ndjson. Run from the catalogue with a relative path: records name their
 * source ('products.ndjson:N'), which keys the validation split, so the split is the same wherever
 * the repository lives.
 */
export async function crawlFixtureCatalogue(): Promise<{ items: string; vocab: string }> {
  const catalogue = await fixtureCatalogue();
  // Five test files train on it; it is built once per run (crawl-tokenize's own tests crawl anew).
  const dir = await sharedOnce('crawled-fixture-catalogue', async (out) => {
    const crawl = await runAtelier(['crawl-tokenize', '--import', 'products.ndjson', '--image-field', 'images', '--id-field', 'id', '--site-field', 'shop', '--images', join(out, 'images'), '-o', join(out, 'items.ndjson'), '--vocab', join(out, 'vocab.ndjson')], { cwd: catalogue });
    assert.equal(crawl.code, 0, crawl.stderr);
  });
  return { items: join(dir, 'items.ndjson'), vocab: join(dir, 'vocab.ndjson') };
}
