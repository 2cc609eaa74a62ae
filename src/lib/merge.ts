// Merging the outputs of a sharded run (see shard.ts) into what one process would have written:
// records back in input order by their recorded positions, partial top-k lists joined with the
// exact kernel's tie rule, run-wide files checked identical and written once.
import { readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { UsageError } from './command.js';
import { openAtomicWriteStream, writeFileAtomic, type OutputGroup } from './io/atomic.js';
import { openNdjsonWriter, readTextLines, waitForDrain } from './io/ndjson.js';
import { openNpyReader, openNpyWriter, shortestFloat32, type NpyReader } from './io/npy.js';
import { ROWS_DIGEST_FIELD } from './io/features.js';
import type { LoadedManifest, ShardOutput } from './shard.js';
import { mergeRunStats, readSiteSidecar, siteSidecarPath, sumSites } from './catalogue/shard.js';
import { createVocabularyCounter, siteSpecificWords } from './text/vocabulary.js';

/** The output `role` of every shard, in shard order; refuses shards that disagree on its target. */
function outputOf(set: LoadedManifest[], role: string): Array<{ manifest: LoadedManifest; output: ShardOutput; file: string }> {
  return set.map((m) => {
    const output = m.outputs.find((o) => o.role === role);
    if (!output) throw new UsageError(`has no '${role}' output but ${set[0].path} has`, { file: m.path });
    if (m.resolve(output.target) !== set[0].resolve(set[0].outputs.find((o) => o.role === role)!.target)) {
      throw new UsageError(`writes its '${role}' output for ${output.target}, not ${set[0].outputs.find((o) => o.role === role)!.target} like ${set[0].path}`, { file: m.path });
    }
    return { manifest: m, output, file: m.resolve(output.file) };
  });
}

/** (shard, local index) of every record in input order; refuses a position claimed by two shards. */
export function mergedOrder(set: LoadedManifest[]): Array<[number, number]> {
  const order: Array<[number, number, number]> = [];
  for (const [s, m] of set.entries()) {
    for (const [i, p] of m.positions.entries()) {
      if (i > 0 && p <= m.positions[i - 1]) throw new UsageError(`positions are not increasing at record ${i + 1}`, { file: m.path, field: 'positions' });
      order.push([p, s, i]);
    }
  }
  order.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let j = 1; j < order.length; j++) {
    if (order[j][0] === order[j - 1][0]) throw new UsageError(`the record at input line ${order[j][0]} is in shard ${set[order[j - 1][1]].shard.index} and shard ${set[order[j][1]].shard.index}`, { file: set[order[j][1]].path });
  }
  return order.map(([, s, i]) => [s, i]);
}

async function* lines(file: string): AsyncGenerator<string> {
  const stream = createReadStream(file);
  const opened = new Promise<void>((res, rej) => {
    stream.once('open', () => res());
    stream.once('error', (err: NodeJS.ErrnoException) => rej(new UsageError(`cannot read this shard's output (${err.code ?? 'error'})`, { file })));
  });
  await opened;
  for await (const { text } of readTextLines(stream, file)) yield text;
}

/** Pulls lines one at a time from a generator, with a count for the error messages. */
class LineCursor {
  read = 0;
  constructor(readonly file: string, private readonly source: AsyncGenerator<string>) {}
  async next(): Promise<string> {
    const { value, done } = await this.source.next();
    if (done) throw new UsageError(`ends after ${this.read} lines; its manifest lists more records`, { file: this.file });
    this.read++;
    return value;
  }
  async expectEnd(): Promise<void> {
    const { done } = await this.source.next();
    if (!done) throw new UsageError(`has more lines than the ${this.read} records its manifest lists`, { file: this.file });
  }
}

/** NDJSON lines of every shard, byte for byte, in input order. */
async function mergeLines(set: LoadedManifest[], role: string, order: Array<[number, number]>, outputs?: OutputGroup): Promise<string> {
  const parts = outputOf(set, role);
  const target = set[0].resolve(parts[0].output.target);
  const cursors = parts.map((p) => new LineCursor(p.file, lines(p.file)));
  const out = await openAtomicWriteStream(target, outputs);
  try {
    let batch = '';
    for (const [s] of order) {
      batch += (await cursors[s].next()) + '\n';
      if (batch.length >= 64 * 1024) {
        if (!out.stream.write(batch)) await waitForDrain(out.stream);
        batch = '';
      }
    }
    if (batch) out.stream.write(batch);
    for (const c of cursors) await c.expectEnd();
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  return target;
}

/** Rows of one shard's .npy read a chunk at a time. */
class RowCursor {
  private chunk: Float32Array | null = null;
  private start = 0;
  private next = 0;
  constructor(readonly reader: NpyReader, private readonly chunkRows: number) {}
  async row(): Promise<ArrayLike<number>> {
    const { rowLength, rowCount } = this.reader.header;
    if (this.next >= rowCount) throw new UsageError(`has ${rowCount} rows; its ids file lists more`, { file: this.reader.path });
    if (!this.chunk || this.next >= this.start + this.chunk.length / Math.max(1, rowLength)) {
      this.start = this.next;
      this.chunk = (await this.reader.readRows(this.start, this.start + this.chunkRows)).data as Float32Array;
    }
    const at = (this.next++ - this.start) * rowLength;
    return this.chunk.subarray(at, at + rowLength);
  }
}

/** A .npy of rows and its ids NDJSON: rows renumbered in input order, the digest of all rows on the last id. */
async function mergeRows(set: LoadedManifest[], role: string, order: Array<[number, number]>, outputs?: OutputGroup): Promise<string[]> {
  const parts = outputOf(set, role);
  const idsRole = parts[0].output.ids!;
  const idParts = outputOf(set, idsRole);
  const target = set[0].resolve(parts[0].output.target);
  const idsTarget = set[0].resolve(idParts[0].output.target);
  const readers: NpyReader[] = [];
  try {
    for (const p of parts) readers.push(await openNpyReader(p.file));
    // An empty shard has no row shape to agree on.
    const { dtype, shape } = (readers.find((r) => r.header.rowCount > 0) ?? readers[0]).header;
    for (const r of readers) {
      if (r.header.rowCount === 0) continue;
      if (r.header.dtype !== dtype || r.header.shape.slice(1).join() !== shape.slice(1).join()) throw new UsageError(`rows are ${r.header.dtype} (${r.header.shape.slice(1).join(', ')}) but ${readers[0].path} has ${dtype} (${shape.slice(1).join(', ')})`, { file: r.path });
    }
    const rowShape = shape.slice(1);
    const cursors = readers.map((r) => new RowCursor(r, Math.max(1, Math.floor((4 << 20) / Math.max(1, r.header.rowLength * r.header.itemSize)))));
    const ids = idParts.map((p) => new LineCursor(p.file, lines(p.file)));
    // ids opened first, as embed does: the run's outputs are renamed in the order opened.
    const idsOut = await openNdjsonWriter(idsTarget, { outputs });
    const npy = await openNpyWriter(target, { dtype, rowShape, outputs });
    try {
      let pending: Record<string, unknown> | null = null;
      for (const [row, [s]] of order.entries()) {
        await npy.writeRows(await cursors[s].row(), 1);
        const text = await ids[s].next();
        const record = JSON.parse(text) as Record<string, unknown>;
        delete record[ROWS_DIGEST_FIELD];
        if ('row' in record) record.row = row;
        if (pending) await idsOut.write(pending);
        pending = record;
      }
      for (const c of ids) await c.expectEnd();
      for (const [s, r] of readers.entries()) if (r.header.rowCount !== set[s].positions.length) throw new UsageError(`has ${r.header.rowCount} rows but its manifest lists ${set[s].positions.length} records`, { file: r.path });
      if (pending) await idsOut.write({ ...pending, [ROWS_DIGEST_FIELD]: await npy.dataSha256() });
      await idsOut.close();
      await npy.close();
    } catch (err) {
      await Promise.all([npy.abort(), idsOut.abort()]);
      throw err;
    }
  } finally {
    for (const r of readers) await r.close();
  }
  return [idsTarget, target];
}

/** A partial list's entry: the kernel's score (full precision) and the global gallery row. */
interface Neighbor {
  id: string;
  score: number;
  row: number;
}

/** Partial top-k lists of every query (one line per query in every shard) joined into the global top-k. */
async function mergeTopK(set: LoadedManifest[], role: string, outputs?: OutputGroup): Promise<{ target: string; queries: number }> {
  const parts = outputOf(set, role);
  const k = set[0].k!;
  const target = set[0].resolve(parts[0].output.target);
  const cursors = parts.map((p) => ({ file: p.file, source: lines(p.file) }));
  const out = await openNdjsonWriter(target, { outputs });
  try {
    for (let line = 1; ; line++) {
      const next = await Promise.all(cursors.map((c) => c.source.next()));
      const ended = next.filter((n) => n.done).length;
      if (ended === next.length) break;
      if (ended) throw new UsageError(`ends at line ${line} while other shards go on: the shards searched different queries`, { file: cursors[next.findIndex((n) => n.done)].file });
      const records = next.map((n) => JSON.parse(n.value as string) as { id: string; neighbors: Neighbor[] });
      const id = records[0].id;
      const neighbors: Neighbor[] = [];
      for (const [s, r] of records.entries()) {
        if (r.id !== id) throw new UsageError(`line ${line} is query ${JSON.stringify(r.id)} but ${cursors[0].file} has ${JSON.stringify(id)}`, { file: cursors[s].file });
        neighbors.push(...r.neighbors);
      }
      // The exact kernel's order: higher score first, ties to the earlier gallery row.
      neighbors.sort((a, b) => b.score - a.score || a.row - b.row);
      // Scores as knn writes them: the float32 value, shortest form.
      await out.write({ id, neighbors: neighbors.slice(0, k).map((n) => ({ id: n.id, score: shortestFloat32(Math.fround(n.score)) })) });
    }
    await out.close();
  } catch (err) {
    await out.abort();
    throw err;
  }
  return { target, queries: out.count };
}

/** A run-wide file every shard wrote the same: checked, then written once. */
async function mergeSame(set: LoadedManifest[], role: string, outputs?: OutputGroup): Promise<string> {
  const parts = outputOf(set, role);
  const target = set[0].resolve(parts[0].output.target);
  const first = await readFile(parts[0].file);
  for (const p of parts.slice(1)) {
    if (!first.equals(await readFile(p.file))) throw new UsageError(`differs from ${parts[0].file}; a run-wide output must be the same in every shard`, { file: p.file });
  }
  await writeFileAtomic(target, first, outputs);
  return target;
}

/** Lines of every shard one after the other, in shard order (lists whose order is not the records'). */
async function mergeConcat(set: LoadedManifest[], role: string, outputs?: OutputGroup): Promise<string> {
  const parts = outputOf(set, role);
  const target = set[0].resolve(parts[0].output.target);
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const bytes = await readFile(p.file).catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read this shard's output (${err.code ?? 'error'})`, { file: p.file });
    });
    chunks.push(bytes);
    if (bytes.length && bytes[bytes.length - 1] !== 0x0a) chunks.push(Buffer.from('\n'));
  }
  await writeFileAtomic(target, Buffer.concat(chunks), outputs);
  return target;
}

/**
 * crawl-tokenize samples: site-specific words decided over the summed site frequencies and dropped
 * from each sample's tokens, then the vocabulary counted and cut to --top-k as one run does.
 */
async function mergeWeakSamples(set: LoadedManifest[], role: string, order: Array<[number, number]>, outputs?: OutputGroup): Promise<string[]> {
  const parts = outputOf(set, role);
  const settings = set[0].settings;
  const sidecars = [];
  for (const p of parts) sidecars.push(await readSiteSidecar(siteSidecarPath(p.file)));
  const siteWords = siteSpecificWords(sumSites(sidecars.map((s) => s.sites)), { maxDf: settings['max-df'] as number, minProducts: settings['min-site-products'] as number });
  const drop = new Map([...siteWords].map(([site, words]) => [site, new Set(words)]));
  const target = set[0].resolve(parts[0].output.target);
  const cursors = parts.map((p) => new LineCursor(p.file, lines(p.file)));
  const vocabulary = createVocabularyCounter();
  const hashes = new Set<string>();
  let duplicates = 0;
  const written: string[] = [target];
  const out = await openNdjsonWriter(target, { outputs });
  try {
    for (const [s, i] of order) {
      const record = JSON.parse(await cursors[s].next()) as { source: string; sha256: string | null; tokens: string[] };
      const words = drop.get(sidecars[s].samples[i]);
      if (words) record.tokens = record.tokens.filter((w) => !words.has(w));
      await out.write(record);
      vocabulary.add(record.tokens, record.source);
      if (record.sha256 !== null) {
        if (hashes.has(record.sha256)) duplicates++;
        hashes.add(record.sha256);
      }
    }
    for (const c of cursors) await c.expectEnd();
    await out.close();
  } catch (err) {
    await out.abort();
    throw err;
  }
  const topK = settings['top-k'] as number;
  const vocab = set[0].outputs.find((o) => o.role === 'vocab');
  if (vocab) {
    const path = set[0].resolve(vocab.target);
    const vocabOut = await openNdjsonWriter(path, { outputs });
    for (const entry of vocabulary.top(topK)) await vocabOut.write(entry);
    await vocabOut.close();
    written.push(path);
  }
  const statsOutput = set[0].outputs.find((o) => o.role === 'stats');
  if (statsOutput) {
    const stats = mergeRunStats(sidecars.map((s) => s.stats), { records: order.length, images: hashes.size, duplicates, vocabulary: { words: vocabulary.size, written: vocab ? Math.min(vocabulary.size, topK) : 0 }, siteWords });
    const path = set[0].resolve(statsOutput.target);
    await writeFileAtomic(path, JSON.stringify(stats, null, 2) + '\n', outputs);
    written.push(path);
  }
  return written;
}

/** Merges every output of the shards; returns the paths written. */
export async function mergeShardOutputs(set: LoadedManifest[], outputs?: OutputGroup): Promise<{ written: string[]; records: number }> {
  const order = mergedOrder(set);
  const written: string[] = [];
  let records = order.length;
  const idsRoles = new Set(set[0].outputs.map((o) => o.ids).filter(Boolean));
  for (const output of set[0].outputs) {
    if (idsRoles.has(output.role)) continue;
    if (output.kind === 'lines') written.push(await mergeLines(set, output.role, order, outputs));
    else if (output.kind === 'rows') written.push(...(await mergeRows(set, output.role, order, outputs)));
    else if (output.kind === 'topk') {
      const merged = await mergeTopK(set, output.role, outputs);
      written.push(merged.target);
      records = merged.queries;
    }
    else if (output.kind === 'weak-samples') written.push(...(await mergeWeakSamples(set, output.role, order, outputs)));
    else if (output.kind === 'derived') continue;
    else if (output.kind === 'concat') written.push(await mergeConcat(set, output.role, outputs));
    else if (output.kind === 'same') written.push(await mergeSame(set, output.role, outputs));
    else throw new UsageError(`unknown merge kind '${String(output.kind)}'`, { file: set[0].path });
  }
  return { written, records };
}
