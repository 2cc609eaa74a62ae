import { availableParallelism } from 'node:os';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { checkFileOutput, checkReplaceableDirOutput } from '../lib/io/atomic.js';
import { openNdjsonWriter, type NdjsonWriter } from '../lib/io/ndjson.js';
import {
  DEFAULT_HNSW, DEFAULT_ITERATIONS, DEFAULT_NPROBE_SHARE, HNSW_FILES, IVF_FORMAT, TRAIN_ROWS_PER_LIST, openScoreTopK, rowsSha256Of, saveIvfDirectory, savedIndexFormat, QUANTIZATIONS, KERNEL_NAMES, METRICS,
  assertSameDimension, checkQuantization, chooseExactKernel, dataBudget, distanceKindOf, exactSearch, freshHnswSearch, knnModeOf, loadUsearch, openIdentifiedVectors,
  parseByteSize, readGalleryLabels, recallAgainstExact, recallSample, saveIndexDirectory, savedIndexSearch, searchSummaryLine, shardedExactSearch, writeNeighborLists,
  type HnswParameters, type KernelName, type Metric, type NeighborSearch, type Quantization,
} from '../lib/knn/index.js';
import { loadOrt } from '../lib/onnx/session.js';
import { startProgress } from '../lib/progress.js';
import { anyInt, byteSize, positiveInt } from '../lib/options.js';
import { requireShardFile, resolveShard, shardOption, shardPath, writeShardManifest } from '../lib/shard.js';

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
  lists?: number;
  nprobe?: number;
  'train-rows'?: number;
  iterations: number;
  seed: number;
  recall: boolean;
  'recall-queries': number;
  labels?: string;
  'label-field'?: string;
  weighted: boolean;
  shard?: string;
  'shard-by': string;
}

const NAME = 'knn';

export default defineCommand<Args>({
  name: NAME,
  summary: 'nearest neighbours of row vectors (exact, HNSW or IVF), with an optional label vote',
  description: `For every query row of a .npy (with its ids NDJSON, by default <name>.ids.ndjson), finds the k most similar gallery rows and writes one NDJSON line per query: {id, neighbors: [{id, score}]}, best first. Scores are higher-is-closer: the cosine similarity, the dot product, or minus the Euclidean distance. Without --gallery the query set is searched against itself and each query's own row is left out. Word vectors are just another .npy: knn on a word matrix gives nearest words.

Exact search (the default) streams: the gallery is read in slabs and queries in blocks, with a top-k heap per query, so memory stays within --memory whatever the gallery size. Ties are broken by gallery order. For cosine and dot the kernel scores a block of queries against a gallery tile as one matrix product with a top-k in onnxruntime (MLAS SGEMM, --threads cores), as faiss's IndexFlatIP does; for Euclidean, or without onnxruntime, usearch's native SIMD exact search when it loads, else a blocked typed-array kernel (bench/knn.ts).

--index hnsw searches an HNSW graph (usearch) instead: much faster on big galleries, approximate; --recall measures recall@k against exact search on a sample of queries. 'knn index build' saves an index directory (index.usearch, ids.ndjson, meta.json) and 'knn index query' searches it, memory-mapped by default, with the metric it was built for. meta.json records the metric, dimension and the SHA-256 of the indexed rows, the ids and the index file: a query of another dimension or --metric, a --recall gallery other than the indexed one, and an edited, truncated or damaged index are refused (exit 2) before usearch reads it. --quantization i8 (cosine only) or f16 stores the graph's rows in a quarter or half of the bytes: a smaller file to map, and at 100k rows a build and a search about 2x cheaper (at 1M rows, where no rows fit the cache, the build cost the same; bench/RESULTS.md); such an index also keeps the exact float32 rows (rows.npy, checked like the rest) and re-ranks --rescore candidates per query (default 4 x k) on them, so the scores it reports are exact.

'knn index build --index ivf' saves an IVF-flat index instead (as faiss's IndexIVFFlat): k-means (spherical for cosine) on a seeded sample of --train-rows rows finds --lists centroids (default about 4 x sqrt(rows)), every gallery row is assigned to its nearest centroid in streamed blocks, and the rows are written grouped by list (vectors.npy, rows.npy, offsets.npy, centroids.npy, checked against meta.json like the HNSW index's files). 'knn index query' on it scores each block of queries against the centroids, then reads only the --nprobe nearest lists of each query and scores each list against all the block's queries that probe it as one matrix product (the exact-search kernel), so the scores are exact and --nprobe equal to --lists gives exact search's lists. Every step is a GEMM, not a graph walk of cache misses; the same gallery and --seed give the same index, byte for byte. At 1M x 256 (bench/RESULTS.md) it built in 138 s and answered 5.8x exact search's queries/s at recall@10 0.944 (nprobe 256 of 4,000 lists), 4.5x at 0.962.

--labels with --label-field adds the kNN label vote of the Stitch Fix deck, P(y=j|x) = 1/K Σ I(y_i = j) over the K neighbours that have a label, as {label, probs}; --weighted weights each vote by similarity (cosine/dot floored at 0, inverse Euclidean distance).

Ids name rows, so each must be unique in its ids file: a repeated id is an error (exit 2) at the line of its second occurrence. A --labels file may repeat an id with the same label, not with another.`,
  positionals: [
    { name: 'action', describe: "'index' to build or query a saved HNSW or IVF index; leave out to search", type: 'string' },
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
    index: { describe: "search method; 'knn index build': hnsw (also the default there) or ivf", choices: ['exact', 'hnsw', 'ivf'], default: 'exact' },
    'index-dir': { describe: "saved index directory (for 'knn index build|query')", type: 'string' },
    load: { describe: "'knn index query': load the index into memory instead of memory-mapping it", type: 'boolean', default: false },
    verify: { describe: "'knn index query': check the index's files against the SHA-256s in meta.json first (one read of each; a damaged usearch file would crash the native search); --no-verify skips it", type: 'boolean', default: true },
    quantization: { describe: "how the HNSW graph stores rows: f32, f16 (half the memory) or i8 (a quarter; cosine only)", choices: [...QUANTIZATIONS], default: DEFAULT_HNSW.quantization },
    connectivity: { describe: 'HNSW edges per node (M)', type: 'number', default: DEFAULT_HNSW.connectivity, check: positiveInt },
    'expansion-add': { describe: 'HNSW candidate list while building (efConstruction)', type: 'number', default: DEFAULT_HNSW.expansionAdd, check: positiveInt },
    'expansion-search': { describe: 'HNSW candidate list while searching (ef); higher = better recall, slower', type: 'number', default: DEFAULT_HNSW.expansionSearch, check: positiveInt },
    rescore: { describe: "'knn index query' of an f16 or i8 index: graph candidates per query re-ranked on the exact rows (default 4 x k)", type: 'number', check: positiveInt },
    lists: { describe: "'knn index build --index ivf': k-means lists (default about 4 x sqrt(rows))", type: 'number', check: positiveInt },
    nprobe: { describe: `'knn index query' of an IVF index: lists searched per query (default 1/${DEFAULT_NPROBE_SHARE} of the lists); higher = better recall, slower`, type: 'number', check: positiveInt },
    'train-rows': { describe: `'knn index build --index ivf': rows sampled for k-means (default ${TRAIN_ROWS_PER_LIST} a list; held in half of --memory)`, type: 'number', check: positiveInt },
    iterations: { describe: "'knn index build --index ivf': k-means iterations", type: 'number', default: DEFAULT_ITERATIONS, check: positiveInt },
    seed: { describe: "'knn index build --index ivf': seed of the k-means sample and starting centroids", type: 'number', default: 1, check: anyInt },
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
    ['atelier knn index query --index-dir gallery.hnsw -q query.npy --recall -g gallery.npy', 'search it, memory-mapped, and check recall'],
    ['atelier knn index build -g gallery.npy --index ivf --index-dir gallery.ivf', 'build and save an IVF-flat index'],
    ['atelier knn index query --index-dir gallery.ivf -q query.npy --nprobe 64', 'search it, reading 64 lists a query'],
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
    const { k, threads, 'id-field': idField } = args;
    const metric = (args.metric ?? 'cosine') as Metric;
    const kernelName = args.kernel as KernelName;
    if (args['label-field'] && !args.labels) throw new UsageError('needs --labels', { field: '--label-field' });
    if (args.labels && !args['label-field']) throw new UsageError('needs --label-field (the field holding the label)', { field: '--labels' });
    const labels = args.labels ? await readGalleryLabels(args.labels, args['label-field']!, idField, io.stdin) : null;
    const memory = parseByteSize(args.memory)!; // checked by byteSize
    const mode = knnModeOf(args.action, args.verb);
    const hnsw: HnswParameters = { metric, quantization: args.quantization as Quantization, connectivity: args.connectivity, expansionAdd: args['expansion-add'], expansionSearch: args['expansion-search'] };

    if (mode === 'build') {
      if (!args.gallery) throw new UsageError("'knn index build' needs --gallery (the vectors to index)", { field: '--gallery' });
      if (!args['index-dir']) throw new UsageError("'knn index build' needs --index-dir (where to save the index)", { field: '--index-dir' });
      for (const field of ['lists', 'train-rows'] as const) {
        if (args.index !== 'ivf' && args[field] !== undefined) throw new UsageError('is for an IVF index (--index ivf)', { field: `--${field}` });
      }
      if (args.index === 'ivf') {
        if (hnsw.quantization !== DEFAULT_HNSW.quantization) throw new UsageError('is for an HNSW index; an IVF index keeps float32 rows', { field: '--quantization' });
        const gallery = await openIdentifiedVectors(args.gallery, args['gallery-ids'], idField, io.stdin);
        const started = performance.now();
        const { scorer, reason } = await openScoreTopK(threads);
        const rowsSha256 = await rowsSha256Of(args.gallery, gallery.rowIds);
        const settings = { metric, lists: args.lists, trainRows: args['train-rows'], iterations: args.iterations, seed: args.seed };
        const meta = await saveIvfDirectory(args['index-dir'], { path: args.gallery, ...gallery }, settings, { scorer, memoryBytes: dataBudget(memory), stderr: io.stderr, outputs: io.outputs, rowsSha256 });
        const seconds = (performance.now() - started) / 1000;
        io.stderr.write(`atelier knn: indexed ${meta.count} ${meta.dim}-d rows (${metric}, IVF: ${meta.lists} lists, k-means on ${meta.train_rows} rows x ${meta.iterations} iterations, ${reason}) in ${seconds.toFixed(1)} s -> ${args['index-dir']}\n`);
        return;
      }
      checkQuantization(metric, hnsw.quantization);
      const gallery = await openIdentifiedVectors(args.gallery, args['gallery-ids'], idField, io.stdin);
      const started = performance.now();
      await saveIndexDirectory(args['index-dir'], { path: args.gallery, ...gallery }, hnsw, { threads, stderr: io.stderr, outputs: io.outputs });
      const seconds = (performance.now() - started) / 1000;
      io.stderr.write(`atelier knn: indexed ${gallery.source.rows} ${gallery.source.dim}-d rows (${metric}, ${hnsw.quantization}, M=${args.connectivity}) in ${seconds.toFixed(1)} s -> ${args['index-dir']}\n`);
      return;
    }

    if (mode === 'search' && args.index === 'ivf') throw new UsageError("an IVF index is built once and saved: 'knn index build --index ivf', then 'knn index query'", { field: '--index' });
    if (!args.query) throw new UsageError('needs --query (the vectors to find neighbours for)', { field: '--query' });
    const query = await openIdentifiedVectors(args.query, args['query-ids'], idField, io.stdin);
    const closers: Array<{ close(): Promise<void> }> = [query.source];
    let writer: NdjsonWriter | null = null;
    try {
      let gallery = query;
      const excludeSelf = mode === 'search' && !args.gallery;
      if (mode === 'search' && args.gallery) {
        gallery = await openIdentifiedVectors(args.gallery, args['gallery-ids'], idField, io.stdin);
        closers.push(gallery.source);
        assertSameDimension(query.source, gallery.source);
      }
      // The budget is what is left once the ids, labels and the usearch addon are in memory.
      if (kernelName !== 'js' || args.index === 'hnsw' || mode === 'query') loadUsearch();
      if (mode === 'query' && args['index-dir'] && (await savedIndexFormat(args['index-dir'])) === IVF_FORMAT) await loadOrt();
      const exact = mode !== 'query' && args.index !== 'hnsw' ? await chooseExactKernel(kernelName, distanceKindOf(metric), threads).catch((err: Error) => { throw new UsageError(err.message, { field: '--kernel' }); }) : null;
      const memoryBytes = dataBudget(memory);
      const settings = { k, metric, excludeSelf, memoryBytes, threads };
      let search: NeighborSearch;
      if (mode === 'query') {
        const ef = args['expansion-search'] === DEFAULT_HNSW.expansionSearch ? undefined : args['expansion-search'];
        const indexQuery = { indexDir: args['index-dir'], load: args.load, verify: args.verify, expansionSearch: ef, metric: args.metric as Metric | undefined, rescore: args.rescore, nprobe: args.nprobe, kernel: kernelName, memoryBytes, k, threads };
        const indexed = args.gallery ? { path: args.gallery, idsPath: args['gallery-ids'], idField } : null;
        search = await savedIndexSearch(query, { ...indexQuery, recall: args.recall, gallery: indexed }, closers, { stdin: io.stdin, warn: (message) => warn(io, NAME, message) });
      } else if (args.index === 'hnsw') search = await freshHnswSearch(query, gallery, hnsw, { k, excludeSelf, threads, stderr: io.stderr });
      else if (shard) search = await shardedExactSearch(shard, args['shard-by'] as 'query' | 'gallery', query, gallery, settings, exact!);
      else search = exactSearch(query, gallery, settings, exact!);
      if (args.recall && mode === 'search' && args.index === 'exact') warn(io, NAME, '--recall compares HNSW with exact search; an exact search has recall 1');
      const recall = args.recall && search.recallGallery ? recallSample(query.source.rows, args['recall-queries']) : null;

      writer = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
      const byGallery = shard !== null && args['shard-by'] === 'gallery';
      const output = { writer, queryIds: search.queryIds, galleryIds: search.galleryIds, metric: search.metric, labels, weighted: args.weighted, withRows: byGallery };
      const progress = startProgress(io.stderr, { total: query.source.rows, label: 'knn' });
      await writeNeighborLists(search.blocks, output, { recall, onQueries: (done) => progress.update(done) });
      progress.stop();
      await writer.close();
      if (shard) {
        await writeShardManifest({
          command: 'knn',
          shard,
          model: null,
          settings: { k, metric, 'shard-by': args['shard-by'], query: args.query, gallery: args.gallery ?? null, labels: args.labels ?? null, 'label-field': args['label-field'] ?? null, weighted: args.weighted },
          outputs: [{ role: 'out', kind: byGallery ? 'topk' : 'lines', target }],
          positions: byGallery ? [] : search.positions,
          ...(byGallery ? { k } : {}),
        }, io.outputs);
      }
      const seconds = (performance.now() - search.started) / 1000;
      const galleryRows = mode === 'query' ? search.galleryIds.length : gallery.source.rows;
      io.stderr.write(`atelier knn: ${searchSummaryLine({ queries: query.source.rows, galleryRows, dim: query.source.dim, metric: search.metric, method: search.method, seconds })}\n`);
      if (recall && search.recallGallery) {
        const value = await recallAgainstExact(recall.lists, query.source, search.recallGallery, { k, metric: search.metric, excludeSelf, memoryBytes, threads, kernel: kernelName });
        io.stderr.write(`atelier knn: recall@${k} against exact search on ${recall.lists.size} queries: ${value.toFixed(4)}\n`);
      }
    } catch (err) {
      await writer?.abort();
      throw err;
    } finally {
      for (const source of closers) await source.close();
    }
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  if (args.action === 'index' && args.verb === 'build') await checkReplaceableDirOutput(args['index-dir'], '--index-dir', HNSW_FILES.meta, 'an atelier index');
}
