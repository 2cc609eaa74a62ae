import { availableParallelism } from 'node:os';
import { defineCommand, UsageError, warn, type CommandIO } from '../lib/command.js';
import { atomicDirectory, checkFileOutput, checkReplaceableDirOutput } from '../lib/io/atomic.js';
import { idsPathFor } from '../lib/io/features.js';
import { openNdjsonWriter, readNdjson, requireId, requireObject, type NdjsonWriter } from '../lib/io/ndjson.js';
import { shortestFloat32 } from '../lib/io/npy.js';
import {
  DEFAULT_HNSW,
  HNSW_FILES,
  QUANTIZATIONS,
  RESCORE_FACTOR,
  checkQuantization,
  KERNEL_NAMES,
  METRICS,
  assertIdsMatchRows,
  assertUniqueIds,
  buildHnswIndex,
  chooseExactKernel,
  distanceKindOf,
  exactNeighbors,
  assertIndexDimension,
  assertIndexMetric,
  assertIndexedGallery,
  buildSavedIndex,
  formatByteSize,
  gatherRows,
  arrayVectorSource,
  hnswNeighbors,
  labelVote,
  emptyBlocks,
  remapBlocks,
  shardRows,
  subsetSource,
  openSavedIndex,
  openNpyVectorSource,
  parseByteSize,
  planExactSearchFor,
  loadUsearch,
  readRowIds,
  rowsSha256Of,
  voteWeight,
  type HnswParameters,
  type IdList,
  type KernelName,
  type Metric,
  type NeighborBlock,
  type Quantization,
  type RowIds,
  type VectorSource,
} from '../lib/knn/index.js';
import { startProgress } from '../lib/progress.js';
import { byteSize, positiveInt } from '../lib/options.js';
import { requireShardFile, resolveShard, shardOption, shardPath, writeShardManifest, type Shard } from '../lib/shard.js';

interface Args {
  action?: string;
  verb?: string;
  query?: string;
  'query-ids'?: string;
  gallery?: string;
  'gallery-ids'?: string;
  'id-field': string;
  k: number;
  metric?: string;
  out: string;
  memory: string;
  threads: number;
  kernel: string;
  index: string;
  'index-dir'?: string;
  load: boolean;
  verify: boolean;
  quantization: string;
  connectivity: number;
  'expansion-add': number;
  'expansion-search': number;
  rescore?: number;
  recall: boolean;
  'recall-queries': number;
  labels?: string;
  'label-field'?: string;
  weighted: boolean;
  shard?: string;
  'shard-by': string;
}

const NAME = 'knn';

/** Room left after this for the V8 heap to grow and for buffers V8 has not collected yet. */
const RUNTIME_HEADROOM_BYTES = 24 * 1024 * 1024;

/**
 * The data budget: --memory minus what the process holds now (the runtime, the addons, the ids
 * already read) and a headroom for garbage; so call it once everything but the vectors is loaded.
 */
function dataBudget(total: number): number {
  const held = process.memoryUsage().rss;
  const budget = total - held - RUNTIME_HEADROOM_BYTES;
  if (budget < 8 * 1024 * 1024) {
    throw new UsageError(`${formatByteSize(total)} leaves no room for data: the process already holds ${formatByteSize(held)}`, { field: '--memory' });
  }
  return budget;
}

/** Gallery id -> label, from --labels records {id, <label-field>}. */
async function readLabels(path: string, field: string, idField: string, stdin: NodeJS.ReadableStream): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  for await (const { value, file, line } of readNdjson(path, { stdin })) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, idField, { file, line });
    const label = record[field];
    if (label === undefined || label === null) continue;
    if (typeof label !== 'string' && typeof label !== 'number' && typeof label !== 'boolean') {
      throw new UsageError('expected a string, number or boolean label', { file, line, field });
    }
    const previous = labels.get(String(id));
    if (previous !== undefined && previous !== String(label)) throw new UsageError(`id ${JSON.stringify(String(id))} already has the label ${JSON.stringify(previous)}`, { file, line, field });
    labels.set(String(id), String(label));
  }
  return labels;
}

interface Output {
  writer: NdjsonWriter;
  queryIds: string[];
  galleryIds: IdList;
  metric: Metric;
  labels: Map<string, string> | null;
  weighted: boolean;
  /** Gallery shards: each neighbour carries its global gallery row, merge's tie-break. */
  withRows?: boolean;
}

async function writeBlock(block: NeighborBlock, out: Output): Promise<void> {
  for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
    const neighbors: Array<{ id: string; score: number; row?: number }> = [];
    const base = q * block.k;
    for (let j = 0; j < block.counts[q]; j++) {
      const row = block.indices[base + j];
      // Partial lists keep the kernel's own score, so merge ranks exactly as the kernel does.
      const score = block.scores[base + j];
      const id = out.galleryIds.at(row)!;
      neighbors.push(out.withRows ? { id, score, row } : { id, score: shortestFloat32(Math.fround(score)) });
    }
    const record: Record<string, unknown> = { id: out.queryIds[block.queryStart + q], neighbors };
    if (out.labels) {
      const labels = neighbors.map((n) => out.labels!.get(n.id) ?? null);
      const weights = out.weighted ? neighbors.map((_, j) => voteWeight(block.scores[base + j], out.metric)) : undefined;
      const vote = labelVote(labels, weights);
      record.label = vote.label;
      record.probs = Object.fromEntries(Object.entries(vote.probs).map(([label, p]) => [label, Number(p.toFixed(6))]));
    }
    await out.writer.write(record);
  }
}

/** Opens a .npy of vectors and its ids, checking one id per row. */
async function openVectors(npyPath: string, idsPath: string | undefined, idField: string, io: CommandIO): Promise<{ source: VectorSource; ids: string[]; rowIds: RowIds }> {
  const source = await openNpyVectorSource(npyPath);
  try {
    const ids = await readRowIds(idsPath ?? idsPathFor(npyPath), idField, io.stdin);
    await assertIdsMatchRows(ids, source.rows, npyPath);
    assertUniqueIds(ids, idField);
    return { source, ids: ids.ids, rowIds: ids };
  } catch (err) {
    await source.close();
    throw err;
  }
}

function hnswParameters(args: Args, metric: Metric): HnswParameters {
  checkQuantization(metric, args.quantization as Quantization);
  return {
    metric,
    quantization: args.quantization as Quantization,
    connectivity: args.connectivity,
    expansionAdd: args['expansion-add'],
    expansionSearch: args['expansion-search'],
  };
}

/** Mean overlap of approximate and exact top-k on up to `sample` queries spread evenly over the set. */
async function measureRecall(
  approximate: Map<number, Float64Array>,
  query: VectorSource,
  gallery: VectorSource,
  opts: { k: number; metric: Metric; excludeSelf: boolean; memoryBytes: number; threads: number; kernel: KernelName },
): Promise<number> {
  const rows = [...approximate.keys()];
  const sample = arrayVectorSource(await gatherRows(query, rows), query.dim, query.name);
  let hits = 0;
  let total = 0;
  // With self-exclusion the sampled rows are no longer row-aligned with the gallery, so drop self by id below.
  for await (const block of exactNeighbors(sample, gallery, { ...opts, k: opts.excludeSelf ? opts.k + 1 : opts.k, excludeSelf: false })) {
    for (let q = 0; q < block.queryEnd - block.queryStart; q++) {
      const row = rows[block.queryStart + q];
      const exact: number[] = [];
      for (let j = 0; j < block.counts[q] && exact.length < opts.k; j++) {
        const g = block.indices[q * block.k + j];
        if (!(opts.excludeSelf && g === row)) exact.push(g);
      }
      const found = new Set(approximate.get(row));
      for (const g of exact) if (found.has(g)) hits++;
      total += exact.length;
    }
  }
  return total === 0 ? 1 : hits / total;
}

export default defineCommand<Args>({
  name: NAME,
  summary: 'nearest neighbours of row vectors (exact or HNSW), with an optional label vote',
  description: `For every query row of a .npy (with its ids NDJSON, by default <name>.ids.ndjson), finds the k most similar gallery rows and writes one NDJSON line per query: {id, neighbors: [{id, score}]}, best first. Scores are higher-is-closer: the cosine similarity, the dot product, or minus the Euclidean distance. Without --gallery the query set is searched against itself and each query's own row is left out. Word vectors are just another .npy: knn on a word matrix gives nearest words.

Exact search (the default) streams: the gallery is read in slabs and queries in blocks, with a top-k heap per query, so memory stays within --memory whatever the gallery size. Ties are broken by gallery order. For cosine and dot the kernel scores a block of queries against a gallery tile as one matrix product with a top-k in onnxruntime (MLAS SGEMM, --threads cores), as faiss's IndexFlatIP does; for Euclidean, or without onnxruntime, usearch's native SIMD exact search when it loads, else a blocked typed-array kernel (bench/knn.ts).

--index hnsw searches an HNSW graph (usearch) instead: much faster on big galleries, approximate; --recall measures recall@k against exact search on a sample of queries. 'knn index build' saves an index directory (index.usearch, ids.ndjson, meta.json) and 'knn index query' searches it, memory-mapped by default, with the metric it was built for. meta.json records the metric, dimension and the SHA-256 of the indexed rows, the ids and the index file: a query of another dimension or --metric, a --recall gallery other than the indexed one, and an edited, truncated or damaged index are refused (exit 2) before usearch reads it. --quantization i8 (cosine only) or f16 stores the graph's rows in a quarter or half of the bytes: a smaller file to map, and at 100k rows a build and a search about 2x cheaper (at 1M rows, where no rows fit the cache, the build cost the same; bench/RESULTS.md); such an index also keeps the exact float32 rows (rows.npy, checked like the rest) and re-ranks --rescore candidates per query (default 4 x k) on them, so the scores it reports are exact.

--labels with --label-field adds the kNN label vote of the Stitch Fix deck, P(y=j|x) = 1/K Σ I(y_i = j) over the K neighbours that have a label, as {label, probs}; --weighted weights each vote by similarity (cosine/dot floored at 0, inverse Euclidean distance).

Ids name rows, so each must be unique in its ids file: a repeated id is an error (exit 2) at the line of its second occurrence. A --labels file may repeat an id with the same label, not with another.`,
  positionals: [
    { name: 'action', describe: "'index' to build or query a saved HNSW index; leave out to search", type: 'string' },
    { name: 'verb', describe: "after 'index': build or query", type: 'string' },
  ],
  options: {
    query: { alias: 'q', describe: 'query vectors (.npy, 2-D)', type: 'string' },
    'query-ids': { describe: 'ids of the query rows (default: <query>.ids.ndjson)', type: 'string' },
    gallery: { alias: 'g', describe: 'gallery vectors (.npy); default: the query set, each query excluding itself', type: 'string' },
    'gallery-ids': { describe: 'ids of the gallery rows (default: <gallery>.ids.ndjson)', type: 'string' },
    'id-field': { describe: 'field of the ids NDJSON records that holds the id', type: 'string', default: 'id' },
    k: { describe: 'neighbours per query', type: 'number', default: 10, check: positiveInt },
    metric: { describe: "similarity (default: cosine; 'knn index query': the index's own, which a different --metric is refused for)", choices: [...METRICS] },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    memory: { describe: 'memory budget for the whole process (e.g. 512M, 2G); the gallery streams within it', type: 'string', default: '1G', check: byteSize },
    threads: { describe: 'threads of the native kernels', type: 'number', default: availableParallelism(), check: positiveInt },
    kernel: { describe: 'exact-search kernel: auto, gemm (onnxruntime matrix product, cosine and dot), usearch or js', choices: [...KERNEL_NAMES], default: 'auto' },
    index: { describe: 'search method', choices: ['exact', 'hnsw'], default: 'exact' },
    'index-dir': { describe: "saved index directory (for 'knn index build|query')", type: 'string' },
    load: { describe: "'knn index query': load the index into memory instead of memory-mapping it", type: 'boolean', default: false },
    verify: { describe: "'knn index query': check index.usearch against the SHA-256 in meta.json first (one read of the file; a damaged file would crash the native search); --no-verify skips it", type: 'boolean', default: true },
    quantization: { describe: "how the HNSW graph stores rows: f32, f16 (half the memory) or i8 (a quarter; cosine only)", choices: [...QUANTIZATIONS], default: DEFAULT_HNSW.quantization },
    connectivity: { describe: 'HNSW edges per node (M)', type: 'number', default: DEFAULT_HNSW.connectivity, check: positiveInt },
    'expansion-add': { describe: 'HNSW candidate list while building (efConstruction)', type: 'number', default: DEFAULT_HNSW.expansionAdd, check: positiveInt },
    'expansion-search': { describe: 'HNSW candidate list while searching (ef); higher = better recall, slower', type: 'number', default: DEFAULT_HNSW.expansionSearch, check: positiveInt },
    rescore: { describe: "'knn index query' of an f16 or i8 index: graph candidates per query re-ranked on the exact rows (default 4 x k)", type: 'number', check: positiveInt },
    recall: { describe: 'with --index hnsw or index query: report recall@k against exact search on stderr', type: 'boolean', default: false },
    'recall-queries': { describe: 'queries sampled for --recall', type: 'number', default: 1000, check: positiveInt },
    labels: { describe: 'NDJSON of gallery labels {id, <label-field>} for the label vote', type: 'string' },
    'label-field': { describe: 'field of --labels holding the label', type: 'string' },
    weighted: { describe: 'weight label votes by similarity', type: 'boolean', default: false },
    ...shardOption,
    'shard-by': { describe: 'with --shard (exact search): split the queries, or the gallery (partial top-k lists that atelier merge joins)', choices: ['query', 'gallery'], default: 'query' },
  },
  examples: [
    ['atelier knn -q emb.npy --k 10 > neighbours.ndjson', 'the 10 most similar images of every image'],
    ['atelier knn -q query.npy -g gallery.npy --metric euclidean --memory 512M', 'queries against a separate gallery, within 512 MiB'],
    ['atelier knn -q emb.npy --labels products.ndjson --label-field category --weighted', 'predict a category by weighted kNN vote'],
    ['atelier knn -q words.npy --k 5 | jq -c "{id, n: [.neighbors[].id]}"', 'nearest words in a word-embedding matrix'],
    ['atelier knn index build -g gallery.npy --index-dir gallery.hnsw', 'build and save an HNSW index'],
    ['atelier knn index query --index-dir gallery.hnsw -q query.npy --recall', 'search it, memory-mapped, and check recall'],
  ],
  async run(args, io) {
    const shard = resolveShard(args.shard, io.env);
    if (shard) {
      if (args.action !== undefined || args.index !== 'exact') throw new UsageError('sharded runs search exactly (no --index hnsw, no saved index)', { field: '--shard' });
      if (args['shard-by'] === 'gallery' && args.labels) throw new UsageError('the label vote needs the whole gallery: shard by query', { field: '--labels' });
      requireShardFile(args.out, '--out', shard);
    }
    const target = args.out;
    args = { ...args, out: shardPath(args.out, shard) };
    await checkOutputs(args);
    const k = args.k;
    const metric = (args.metric ?? 'cosine') as Metric;
    const threads = args.threads;
    const kernelName = args.kernel as KernelName;
    if (args['label-field'] && !args.labels) throw new UsageError('needs --labels', { field: '--label-field' });
    if (args.labels && !args['label-field']) throw new UsageError('needs --label-field (the field holding the label)', { field: '--labels' });
    const labels = args.labels ? await readLabels(args.labels, args['label-field']!, args['id-field'], io.stdin) : null;
    const memory = parseByteSize(args.memory)!; // checked by byteSize

    let mode: 'search' | 'build' | 'query';
    if (args.action === undefined) mode = 'search';
    else if (args.action !== 'index') throw new UsageError(`unknown action '${args.action}' (expected 'index build' or 'index query', or none to search)`);
    else if (args.verb === 'build' || args.verb === 'query') mode = args.verb;
    else throw new UsageError(`expected 'knn index build' or 'knn index query', got 'knn index ${args.verb ?? ''}'`.trimEnd());

    if (mode === 'build') {
      if (!args.gallery) throw new UsageError("'knn index build' needs --gallery (the vectors to index)", { field: '--gallery' });
      if (!args['index-dir']) throw new UsageError("'knn index build' needs --index-dir (where to save the index)", { field: '--index-dir' });
      const params = hnswParameters(args, metric);
      const { source, ids, rowIds } = await openVectors(args.gallery, args['gallery-ids'], args['id-field'], io);
      const started = performance.now();
      const dir = await atomicDirectory(args['index-dir'], io.outputs);
      try {
        const progress = startProgress(io.stderr, { total: source.rows, label: 'indexing' });
        await buildSavedIndex(dir.tmpDir, source, ids, await rowsSha256Of(args.gallery, rowIds), params, { threads, onRows: (n) => progress.update(n) });
        progress.stop();
        await dir.commit();
      } catch (err) {
        await dir.abort();
        throw err;
      } finally {
        await source.close();
      }
      const seconds = (performance.now() - started) / 1000;
      io.stderr.write(`atelier knn: indexed ${source.rows} ${source.dim}-d rows (${metric}, ${params.quantization}, M=${args.connectivity}) in ${seconds.toFixed(1)} s -> ${args['index-dir']}\n`);
      return;
    }

    if (!args.query) throw new UsageError('needs --query (the vectors to find neighbours for)', { field: '--query' });
    const query = await openVectors(args.query, args['query-ids'], args['id-field'], io);
    const closers: Array<{ close(): Promise<void> }> = [query.source];
    let writer: NdjsonWriter | null = null;
    try {
      let gallery = query;
      const excludeSelf = mode === 'search' && !args.gallery;
      if (mode === 'search' && args.gallery) {
        gallery = await openVectors(args.gallery, args['gallery-ids'], args['id-field'], io);
        closers.push(gallery.source);
        if (gallery.source.dim !== query.source.dim) {
          throw new UsageError(`rows have ${gallery.source.dim} columns but ${args.query} has ${query.source.dim}; both must come from the same embedding`, { file: args.gallery });
        }
      }
      // The budget is what is left once the ids, labels and the usearch addon are in memory.
      if (kernelName !== 'js' || args.index === 'hnsw' || mode === 'query') loadUsearch();
      const exact = mode !== 'query' && args.index !== 'hnsw' ? await chooseExactKernel(kernelName, distanceKindOf(metric), threads).catch((err: Error) => { throw new UsageError(err.message, { field: '--kernel' }); }) : null;
      const memoryBytes = dataBudget(memory);
      let started = performance.now();
      let blocks: AsyncGenerator<NeighborBlock>;
      let galleryIds: IdList = gallery.ids;
      let method: string;
      let approximate: Map<number, Float64Array> | null = null;
      let searchMetric = metric;
      let galleryForRecall: VectorSource | null = gallery.source;
      let queryIds = query.ids;
      let positions: number[] = [];
      if (mode === 'query') {
        if (!args['index-dir']) throw new UsageError("'knn index query' needs --index-dir", { field: '--index-dir' });
        const dir = args['index-dir'];
        const { index, meta, ids: saved, exactRows } = await openSavedIndex(dir, { memoryMap: !args.load, verify: args.verify, expansionSearch: args['expansion-search'] === DEFAULT_HNSW.expansionSearch ? undefined : args['expansion-search'] });
        if (exactRows) closers.push({ close: async () => exactRows.close() });
        assertIndexMetric(meta, dir, args.metric as Metric | undefined);
        assertIndexDimension(meta, dir, query.source);
        if (args.rescore !== undefined && !exactRows) throw new UsageError('an f32 index scores its candidates exactly already; --rescore is for f16 and i8 indexes', { field: '--rescore' });
        galleryIds = saved;
        searchMetric = meta.metric;
        const rescoreCount = exactRows ? (args.rescore ?? RESCORE_FACTOR * k) : 0;
        blocks = hnswNeighbors(index, query.source, { k, threads, rescore: exactRows ? { rows: exactRows, candidates: rescoreCount } : undefined });
        galleryForRecall = null;
        if (args.recall && !args.gallery) warn(io, NAME, '--recall needs the indexed vectors as --gallery (an index does not keep them in a readable form); skipped');
        if (args.recall && args.gallery) {
          const indexed = await openVectors(args.gallery, args['gallery-ids'], args['id-field'], io);
          closers.push(indexed.source);
          assertIndexedGallery(meta, dir, saved, indexed.rowIds, await rowsSha256Of(args.gallery, indexed.rowIds));
          galleryForRecall = indexed.source;
        }
        const opened = (performance.now() - started) / 1000;
        started = performance.now(); // queries/s counts the search, as for exact search once its ids are read
        method = `HNSW index ${dir} (${args.load ? 'loaded' : 'memory-mapped'}, ${meta.metric}, ${meta.quantization}, ef=${index.params.expansionSearch}${rescoreCount ? `, ${rescoreCount} candidates re-ranked on exact rows` : ''}; ${args.verify ? 'verified and ' : ''}opened in ${opened.toFixed(2)} s)`;
      } else if (args.index === 'hnsw') {
        if (args.quantization !== 'f32') throw new UsageError("is for 'knn index build' (a saved index keeps the exact rows to re-rank on); --index hnsw holds f32 rows", { field: '--quantization' });
        const progress = startProgress(io.stderr, { total: gallery.source.rows, label: 'indexing' });
        const index = await buildHnswIndex(gallery.source, hnswParameters(args, metric), { threads, onRows: (n) => progress.update(n) });
        progress.stop();
        blocks = hnswNeighbors(index, query.source, { k, excludeSelf, threads });
        method = `HNSW (M=${args.connectivity}, ef=${args['expansion-search']}) built in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      } else if (shard) {
        ({ blocks, queryIds, positions } = await shardedSearch(shard, args['shard-by'] as 'query' | 'gallery', query, gallery, excludeSelf, { k, metric, memoryBytes, threads, kernel: exact!.kernel }));
        method = `exact search, ${exact!.reason}, shard ${shard.index} of ${shard.count} by ${args['shard-by']}`;
      } else {
        const { kernel, reason } = exact!;
        const plan = planExactSearchFor(query.source, gallery.source, { k, metric, memoryBytes });
        const layout = plan.galleryResident
          ? 'gallery held in memory'
          : `gallery streamed in slabs of ${plan.gallerySlabRows} rows, queries in blocks of ${plan.queryBlockRows}`;
        blocks = exactNeighbors(query.source, gallery.source, { k, metric, excludeSelf, memoryBytes, threads, kernel });
        method = `exact search, ${reason}, ${layout}`;
      }
      if (args.recall && mode === 'search' && args.index === 'exact') warn(io, NAME, '--recall compares HNSW with exact search; an exact search has recall 1');
      if (args.recall && galleryForRecall && (args.index === 'hnsw' || mode === 'query')) approximate = new Map();
      const recallEvery = approximate ? Math.max(1, Math.ceil(query.source.rows / args['recall-queries'])) : 0;

      writer = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
      const output: Output = { writer, queryIds, galleryIds, metric: searchMetric, labels, weighted: args.weighted, withRows: shard !== null && args['shard-by'] === 'gallery' };
      const progress = startProgress(io.stderr, { total: query.source.rows, label: 'knn' });
      for await (const block of blocks) {
        await writeBlock(block, output);
        if (approximate) {
          for (let row = Math.ceil(block.queryStart / recallEvery) * recallEvery; row < block.queryEnd; row += recallEvery) {
            const q = row - block.queryStart;
            approximate.set(row, block.indices.slice(q * block.k, q * block.k + block.counts[q]));
          }
        }
        progress.update(block.queryEnd);
      }
      progress.stop();
      await writer.close();
      if (shard) {
        const byGallery = args['shard-by'] === 'gallery';
        await writeShardManifest({
          command: 'knn',
          shard,
          model: null,
          settings: { k, metric, 'shard-by': args['shard-by'], query: args.query, gallery: args.gallery ?? null, labels: args.labels ?? null, 'label-field': args['label-field'] ?? null, weighted: args.weighted },
          outputs: [{ role: 'out', kind: byGallery ? 'topk' : 'lines', target }],
          positions: byGallery ? [] : positions,
          ...(byGallery ? { k } : {}),
        }, io.outputs);
      }
      const seconds = (performance.now() - started) / 1000;
      io.stderr.write(
        `atelier knn: ${query.source.rows} queries x ${mode === 'query' ? galleryIds.length : gallery.source.rows} gallery rows (${query.source.dim}-d, ${searchMetric}), ${method}: ${seconds.toFixed(2)} s (${Math.round(query.source.rows / Math.max(seconds, 1e-9))} queries/s)\n`,
      );
      if (approximate && galleryForRecall) {
        const recall = await measureRecall(approximate, query.source, galleryForRecall, { k, metric: searchMetric, excludeSelf, memoryBytes, threads, kernel: kernelName });
        io.stderr.write(`atelier knn: recall@${k} against exact search on ${approximate.size} queries: ${recall.toFixed(4)}\n`);
      }
    } catch (err) {
      await writer?.abort();
      throw err;
    } finally {
      for (const source of closers) await source.close();
    }
  },
});

/**
 * The search of one shard: its queries against the whole gallery, or every query against its
 * gallery rows. Self-exclusion is by row once the sets are subsets, so the search asks for k + 1.
 */
async function shardedSearch(
  shard: Shard,
  by: 'query' | 'gallery',
  query: { source: VectorSource; ids: string[] },
  gallery: { source: VectorSource; ids: string[] },
  excludeSelf: boolean,
  opts: { k: number; metric: Metric; memoryBytes: number; threads: number; kernel: Awaited<ReturnType<typeof chooseExactKernel>>['kernel'] },
): Promise<{ blocks: AsyncGenerator<NeighborBlock>; queryIds: string[]; positions: number[] }> {
  const search = { ...opts, k: excludeSelf ? opts.k + 1 : opts.k, excludeSelf: false };
  if (by === 'query') {
    const rows = shardRows(query.ids, shard);
    const queries = await subsetSource(query.source, rows);
    const blocks = rows.length ? remapBlocks(exactNeighbors(queries, gallery.source, search), { k: opts.k, selfRow: excludeSelf ? (q) => rows[q] : undefined }) : emptyBlocks(0, opts.k);
    return { blocks, queryIds: rows.map((r) => query.ids[r]), positions: rows };
  }
  const rows = shardRows(gallery.ids, shard);
  const part = await subsetSource(gallery.source, rows);
  const blocks = rows.length ? remapBlocks(exactNeighbors(query.source, part, search), { k: opts.k, galleryRows: rows, selfRow: excludeSelf ? (q) => q : undefined }) : emptyBlocks(query.source.rows, opts.k);
  return { blocks, queryIds: query.ids, positions: [] };
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  if (args.action === 'index' && args.verb === 'build') await checkReplaceableDirOutput(args['index-dir'], '--index-dir', HNSW_FILES.meta, 'an atelier HNSW index');
}
