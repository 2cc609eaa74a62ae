// Sharded runs: one command run as n processes (a Kubernetes Indexed Job, a Slurm array, GNU
// parallel), each taking the records whose id hashes to its shard, writing its own outputs beside
// a manifest that `atelier merge` reads to rebuild the single-process outputs.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { UsageError } from './command.js';
import type { OutputGroup } from './io/atomic.js';
import { writeFileAtomic } from './io/atomic.js';
import { shardText, type CheckedOption } from './options.js';

/** Shard `index` (0-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

const SHARD_TEXT = /^\s*(\d+)\s*\/\s*(\d+)\s*$/;

/** The one --shard option of every sharded command. */
export const shardOption: Record<'shard', CheckedOption> = {
  shard: {
    describe: 'run shard i of n (0-based, e.g. 3/16) on the records whose id hashes to it, writing <out>.shard-i-of-n outputs for atelier merge; auto: JOB_COMPLETION_INDEX with ATELIER_SHARD_COUNT (Kubernetes Indexed Job), or SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (Slurm array)',
    type: 'string',
    check: shardText,
  },
};

function envInteger(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text.trim() === '') return undefined;
  if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`auto: ${name}='${text}' is not a non-negative integer`, { field: '--shard' });
  return Number(text);
}

/** The shard a run takes: none without --shard; `auto` reads the scheduler's environment. */
export function resolveShard(text: string | undefined, env: NodeJS.ProcessEnv): Shard | null {
  if (text === undefined) return null;
  let index: number | undefined;
  let count: number | undefined;
  let source: string;
  if (text === 'auto') {
    if (env.JOB_COMPLETION_INDEX !== undefined) {
      source = 'JOB_COMPLETION_INDEX with ATELIER_SHARD_COUNT';
      index = envInteger(env, 'JOB_COMPLETION_INDEX');
      count = envInteger(env, 'ATELIER_SHARD_COUNT');
      if (count === undefined) throw new UsageError('auto: JOB_COMPLETION_INDEX is set but ATELIER_SHARD_COUNT (the Job\'s completions) is not', { field: '--shard' });
    } else if (env.SLURM_ARRAY_TASK_ID !== undefined) {
      source = 'SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT';
      // Slurm numbers tasks as the --array range says (often 1-N): shard 0 is the range's first task.
      index = envInteger(env, 'SLURM_ARRAY_TASK_ID')! - (envInteger(env, 'SLURM_ARRAY_TASK_MIN') ?? 0);
      count = envInteger(env, 'SLURM_ARRAY_TASK_COUNT');
      if (count === undefined) throw new UsageError('auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not', { field: '--shard' });
    } else {
      throw new UsageError('auto needs JOB_COMPLETION_INDEX and ATELIER_SHARD_COUNT (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (Slurm array); neither is set', { field: '--shard' });
    }
  } else {
    const m = SHARD_TEXT.exec(text)!;
    source = `'${text}'`;
    index = Number(m[1]);
    count = Number(m[2]);
  }
  if (count! < 1 || index! < 0 || index! >= count!) throw new UsageError(`${source} gives shard ${index} of ${count}; shards are 0 to n-1`, { field: '--shard' });
  return { index: index!, count: count! };
}

/** The shard a record id belongs to: the first 48 bits of its SHA-256 modulo n, the same on every machine. */
export function shardOfId(id: string, count: number): number {
  return createHash('sha256').update(id, 'utf8').digest().readUIntBE(0, 6) % count;
}

export function inShard(id: string, shard: Shard | null): boolean {
  return !shard || shardOfId(id, shard.count) === shard.index;
}

/** The records of `shard` (all of them without one), in input order. */
export async function* shardRecords<T extends { id: string }>(records: AsyncIterable<T> | Iterable<T>, shard: Shard | null): AsyncGenerator<T> {
  for await (const r of records) if (inShard(r.id, shard)) yield r;
}

function shardTag(shard: Shard): string {
  return `shard-${String(shard.index).padStart(String(shard.count - 1).length, '0')}-of-${shard.count}`;
}

/** `emb.npy` -> `emb.shard-03-of-16.npy`: a shard's copy of an output, beside it. */
export function shardPath(path: string, shard: Shard | null): string {
  if (!shard) return path;
  const dir = dirname(path);
  const name = basename(path);
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  return join(dir, `${stem}.${shardTag(shard)}${ext}`);
}

export const MANIFEST_SUFFIX = '.shard.json';

/** How merge joins one output's shard copies. */
export type MergeKind =
  /** NDJSON lines in input order, one position per line. */
  | 'lines'
  /** A .npy of rows with its ids NDJSON (role `ids`), one position per row. */
  | 'rows'
  /** NDJSON lines {id, neighbors: [{id, score, row}]} of every query, partial top-k lists to join. */
  | 'topk'
  /** The same bytes in every shard (a run-wide file): written once. */
  | 'same'
  /** Lines joined in shard order (lists whose order is not the records', e.g. skipped images). */
  | 'concat'
  /** crawl-tokenize samples with every word kept, and the sites' frequencies beside them: merge drops site words, then counts the vocabulary. */
  | 'weak-samples'
  /** Written by the merge of another output (crawl-tokenize's vocabulary and stats). */
  | 'derived';

export interface ShardOutput {
  role: string;
  kind: MergeKind;
  /** The single-process output, relative to the manifest's directory. */
  target: string;
  /** This shard's copy, relative to the manifest's directory. */
  file: string;
  /** For 'rows': the role of its ids file. */
  ids?: string;
}

export interface ShardManifest {
  atelier: 'shard';
  version: 1;
  command: string;
  shard: Shard;
  /** Digest of the model files and settings: shards of one run agree on it. */
  run: string;
  settings: Record<string, unknown>;
  model: string | null;
  outputs: ShardOutput[];
  /** Input positions (line numbers) of the records written, in output order. */
  positions: number[];
  /** For 'topk' outputs: k. */
  k?: number;
}

/** SHA-256 over a model directory's files (names and bytes), or the file itself; `null` for none. */
export async function modelDigest(path: string | null): Promise<string | null> {
  if (path === null) return null;
  const hash = createHash('sha256');
  const visit = async (p: string, name: string): Promise<void> => {
    const info = await stat(p);
    if (info.isDirectory()) {
      for (const entry of (await readdir(p)).sort()) await visit(join(p, entry), `${name}/${entry}`);
    } else if (info.isFile()) {
      hash.update(`${name}\0${info.size}\0`);
      hash.update(await readFile(p));
    }
  };
  await visit(path, '.');
  return hash.digest('hex');
}

/** Where a shard's manifest goes: beside its primary output. */
export function manifestPathFor(primaryShardFile: string): string {
  return primaryShardFile + MANIFEST_SUFFIX;
}

export interface ShardRun {
  command: string;
  shard: Shard;
  model: string | null;
  settings: Record<string, unknown>;
  outputs: Array<{ role: string; kind: MergeKind; target: string; ids?: string }>;
  positions: number[];
  k?: number;
}

/** Writes the manifest of a finished shard, last in the run's output group: its presence says the shard is complete. */
export async function writeShardManifest(run: ShardRun, outputs?: OutputGroup): Promise<string> {
  const primary = shardPath(run.outputs[0].target, run.shard);
  const path = manifestPathFor(primary);
  const dir = dirname(resolve(path));
  const rel = (p: string) => relative(dir, resolve(p));
  const digest = await modelDigest(run.model);
  const settings = { ...run.settings, model_sha256: digest };
  const manifest: ShardManifest = {
    atelier: 'shard',
    version: 1,
    command: run.command,
    shard: run.shard,
    run: createHash('sha256').update(JSON.stringify([run.command, settings])).digest('hex'),
    settings,
    model: run.model,
    outputs: run.outputs.map((o) => ({ role: o.role, kind: o.kind, target: rel(o.target), file: rel(shardPath(o.target, run.shard)), ...(o.ids ? { ids: o.ids } : {}) })),
    positions: run.positions,
    ...(run.k !== undefined ? { k: run.k } : {}),
  };
  await writeFileAtomic(path, JSON.stringify(manifest) + '\n', outputs);
  return path;
}

/** A manifest with its paths resolved against its own directory. */
export interface LoadedManifest extends ShardManifest {
  path: string;
  resolve(p: string): string;
}

async function readManifest(path: string): Promise<LoadedManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the shard manifest (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file: path });
  }
  let value: ShardManifest;
  try {
    value = JSON.parse(text) as ShardManifest;
  } catch {
    throw new UsageError('not a shard manifest (not JSON)', { file: path });
  }
  if (value?.atelier !== 'shard' || value.version !== 1 || !Array.isArray(value.outputs) || !Array.isArray(value.positions)) throw new UsageError('not an atelier shard manifest', { file: path });
  const dir = dirname(resolve(path));
  return { ...value, path, resolve: (p: string) => resolve(dir, p) };
}

/** Manifests named by `args`: manifest files, or single-process output paths whose shard manifests lie beside them. */
export async function findManifests(args: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const arg of args) {
    if (arg.endsWith(MANIFEST_SUFFIX)) {
      found.push(arg);
      continue;
    }
    const dir = dirname(arg);
    const name = basename(arg);
    const dot = name.lastIndexOf('.');
    const stem = dot > 0 ? name.slice(0, dot) : name;
    const ext = dot > 0 ? name.slice(dot) : '';
    const pattern = new RegExp(`^${escapeRegex(stem)}\\.shard-\\d+-of-\\d+${escapeRegex(ext)}${escapeRegex(MANIFEST_SUFFIX)}$`);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      throw new UsageError('no shard manifests: the directory cannot be read', { file: arg });
    }
    const matches = names.filter((n) => pattern.test(n)).sort();
    if (!matches.length) throw new UsageError(`no shard manifests (${stem}.shard-I-of-N${ext}${MANIFEST_SUFFIX}) beside it`, { file: arg });
    found.push(...matches.map((n) => join(dir, n)));
  }
  return found;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Reads the manifests of one sharded run, in shard order, refusing a set that is not exactly
 * shards 0..n-1 of one run (another n, a missing or repeated shard, another model or settings).
 */
export async function readShardSet(paths: string[]): Promise<LoadedManifest[]> {
  if (!paths.length) throw new UsageError('give the shard manifests (*.shard.json) or the output to merge', { field: 'shards' });
  const manifests: LoadedManifest[] = [];
  for (const p of paths) manifests.push(await readManifest(p));
  const first = manifests[0];
  const byIndex = new Map<number, LoadedManifest>();
  for (const m of manifests) {
    if (m.command !== first.command) throw new UsageError(`is a shard of '${m.command}' but ${first.path} is one of '${first.command}'`, { file: m.path });
    if (m.shard.count !== first.shard.count) throw new UsageError(`is shard ${m.shard.index} of ${m.shard.count} but ${first.path} is one of ${first.shard.count}; all shards must come from one run`, { file: m.path });
    if (m.settings.model_sha256 !== first.settings.model_sha256) throw new UsageError(`was made with another model than ${first.path} (${m.model ?? 'none'} vs ${first.model ?? 'none'})`, { file: m.path, field: 'model' });
    if (m.run !== first.run) {
      const key = Object.keys({ ...first.settings, ...m.settings }).find((k) => JSON.stringify(m.settings[k]) !== JSON.stringify(first.settings[k]));
      throw new UsageError(`was made with other settings than ${first.path}${key ? ` (${JSON.stringify(m.settings[key])} vs ${JSON.stringify(first.settings[key])})` : ''}`, { file: m.path, field: key });
    }
    const twin = byIndex.get(m.shard.index);
    if (twin) throw new UsageError(`shard ${m.shard.index} of ${m.shard.count} is given twice (also ${twin.path})`, { file: m.path });
    byIndex.set(m.shard.index, m);
  }
  const missing: number[] = [];
  for (let i = 0; i < first.shard.count; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length) throw new UsageError(`shard${missing.length > 1 ? 's' : ''} ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''} of ${first.shard.count} missing`, { file: first.path });
  return [...byIndex.keys()].sort((a, b) => a - b).map((i) => byIndex.get(i)!);
}

/** A sharded run writes files for merge: stdout (`-`) has no shard copies. */
export function requireShardFile(path: string | undefined, field: string, shard: Shard | null): void {
  if (shard && path !== undefined && (path === '-' || path.trim() === '')) throw new UsageError('a sharded run writes files for atelier merge; give a file, not stdout', { field });
}
