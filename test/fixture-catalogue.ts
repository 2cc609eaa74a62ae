// The fixture catalogue tests run on: fixtures/out from `make fixtures` (seed 1, 800 products), or,
// when a test file runs on its own, the same catalogue generated once into the temp directory.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultFixtures } from './helpers.js';
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
