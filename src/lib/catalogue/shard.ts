// What a crawl-tokenize shard keeps beside its samples for merge: its sites' word frequencies (site
// words are decided over all shards), each sample's site, and its run stats.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { writeFileAtomic, type OutputGroup } from '../io/atomic.js';
import { writeShardManifest, type Shard } from '../shard.js';
import type { SiteWordFrequencies } from '../text/vocabulary.js';
import type { RunStats } from './stats.js';

export interface SiteSidecar {
  sites: Map<string, SiteWordFrequencies>;
  /** The site of each sample, in output order. */
  samples: string[];
  stats: RunStats;
}

/** Beside the shard's samples file. */
export function siteSidecarPath(samplesFile: string): string {
  return `${samplesFile}.sites.json`;
}

export async function writeSiteSidecar(path: string, sidecar: SiteSidecar, outputs?: OutputGroup): Promise<void> {
  const sites = Object.fromEntries([...sidecar.sites].map(([site, f]) => [site, { products: f.products, df: [...f.df] }]));
  await writeFileAtomic(path, JSON.stringify({ sites, samples: sidecar.samples, stats: sidecar.stats }) + '\n', outputs);
}

/**
 * A finished crawl-tokenize shard: its site sidecar beside `samplesFile`, then its manifest (last: its
 * presence says the shard is complete). `targets` are the single-process outputs the shard stands for.
 */
export async function writeCatalogueShard(
  shard: Shard,
  run: { samplesFile: string; sidecar: SiteSidecar; settings: Record<string, unknown>; targets: { output: string; vocab?: string; stats?: string }; positions: number[] },
  outputs?: OutputGroup,
): Promise<void> {
  const { targets } = run;
  await writeSiteSidecar(siteSidecarPath(run.samplesFile), run.sidecar, outputs);
  await writeShardManifest({
    command: 'crawl-tokenize',
    shard,
    model: null,
    settings: run.settings,
    outputs: [
      { role: 'output', kind: 'weak-samples', target: targets.output },
      ...(targets.vocab !== undefined ? [{ role: 'vocab', kind: 'derived' as const, target: targets.vocab }] : []),
      ...(targets.stats !== undefined ? [{ role: 'stats', kind: 'derived' as const, target: targets.stats }] : []),
    ],
    positions: run.positions,
  }, outputs);
}

export async function readSiteSidecar(path: string): Promise<SiteSidecar> {
  let value: { sites: Record<string, { products: number; df: Array<[string, number]> }>; samples: string[]; stats: RunStats };
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the shard's site frequencies (${(err as NodeJS.ErrnoException).code ?? 'not JSON'})`, { file: path });
  }
  return { sites: new Map(Object.entries(value.sites).map(([site, f]) => [site, { products: f.products, df: new Map(f.df) }])), samples: value.samples, stats: value.stats };
}

/** Site frequencies of all shards summed. */
export function sumSites(parts: Array<Map<string, SiteWordFrequencies>>): Map<string, SiteWordFrequencies> {
  const total = new Map<string, SiteWordFrequencies>();
  for (const part of parts) {
    for (const [site, f] of part) {
      const entry = total.get(site) ?? { products: 0, df: new Map<string, number>() };
      entry.products += f.products;
      for (const [word, df] of f.df) entry.df.set(word, (entry.df.get(word) ?? 0) + df);
      total.set(site, entry);
    }
  }
  return total;
}

function sumCounts(parts: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {};
  for (const part of parts) for (const [k, n] of Object.entries(part)) total[k] = (total[k] ?? 0) + n;
  return Object.fromEntries(Object.entries(total).filter(([, n]) => n !== 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));
}

/** The stats of the whole run from its shards' and what the merge counted. */
export function mergeRunStats(
  parts: RunStats[],
  merged: { records: number; images: number; duplicates: number; vocabulary: RunStats['vocabulary']; siteWords: Map<string, string[]> },
): RunStats {
  const stats = structuredClone(parts[0]);
  const sum = (f: (s: RunStats) => number) => parts.reduce((n, s) => n + f(s), 0);
  if (stats.rows) stats.rows.read = sum((s) => s.rows?.read ?? 0);
  stats.products.total = sum((s) => s.products.total);
  stats.products.withoutImages = sum((s) => s.products.withoutImages);
  stats.images.referenced = sum((s) => s.images.referenced);
  stats.images.saved = merged.images;
  stats.images.duplicates = merged.duplicates;
  stats.images.corrupt = sumCounts(parts.map((s) => s.images.corrupt));
  stats.images.skipped = sumCounts(parts.map((s) => s.images.skipped));
  stats.images.failed = sumCounts(parts.map((s) => s.images.failed));
  stats.records = merged.records;
  stats.vocabulary = merged.vocabulary;
  stats.siteWords = Object.fromEntries(merged.siteWords);
  stats.run = {
    seconds: Math.max(...parts.map((s) => s.run.seconds)),
    requests: sum((s) => s.run.requests),
    retries: sum((s) => s.run.retries),
    bytes: sum((s) => s.run.bytes),
    resumed: sum((s) => s.run.resumed),
  };
  return stats;
}
