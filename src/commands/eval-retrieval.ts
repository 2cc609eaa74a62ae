import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { writeFileAtomic, checkFileOutput } from '../lib/io/atomic.js';
import { openNdjsonWriter, type NdjsonWriter } from '../lib/io/ndjson.js';
import { isStdio } from '../lib/io/paths.js';
import { METRICS, PartitionLookup, readRetrievalPartition, type Metric } from '../lib/knn/index.js';
import {
  evaluateEmbeddings,
  evaluateKnn,
  evaluateRandom,
  partitionQueries,
  retrievalRunReport,
  rounded,
  type QueryResult,
  type RetrievalRunReport,
} from '../lib/retrieval/evaluation.js';
import { PLOT_EXTENSIONS, writeChart, type Series } from '../lib/plot/index.js';
import { anyInt, positiveIntList } from '../lib/options.js';

interface Args {
  partition?: string;
  embeddings?: string;
  ids?: string;
  'id-field': string;
  knn?: string;
  baseline?: string;
  seed: number;
  metric: string;
  k: string;
  name?: string;
  'per-query'?: string;
  plot?: string;
  compare: string[];
  title: string;
  out: string;
}

const NAME = 'eval-retrieval';
const DEFAULT_KS = '1,5,10,20,30,40,50';

function parseKs(text: string): number[] {
  const ks = text.split(',').map((t) => t.trim()).filter(Boolean).map(Number);
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k <= 0)) throw new UsageError(`expected positive integers separated by commas, got '${text}'`, { field: '--k' });
  return [...new Set(ks)].sort((a, b) => a - b);
}

interface PlottedRun {
  name: string;
  topk: Record<string, number | null>;
  dashed?: boolean;
}

/** Reads an earlier eval-retrieval JSON for --compare. */
async function readRun(path: string): Promise<PlottedRun> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? 'no such file' : `not JSON: ${(err as Error).message}`, { file: path });
  }
  const run = parsed as Partial<RetrievalRunReport>;
  if (!run || typeof run !== 'object' || !run.topk || typeof run.topk !== 'object') throw new UsageError('not an eval-retrieval result (no "topk" object)', { file: path });
  return { name: typeof run.name === 'string' ? run.name : basename(path).replace(/\.json$/, ''), topk: run.topk, dashed: run.method === 'random' };
}

function runSeries(run: PlottedRun): Series {
  const points = Object.entries(run.topk)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([k, v]) => [Number(k), v] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  // The report's captions give top-20 accuracy in brackets.
  const top20 = run.topk['20'];
  const name = typeof top20 === 'number' ? `${run.name} [${(100 * top20).toFixed(1)}%]` : run.name;
  return { name, points, kind: 'line+points', dashed: run.dashed };
}

export default defineCommand<Args>({
  name: NAME,
  summary: 'top-k retrieval accuracy and mAP on an In-Shop style query/gallery split, with plots',
  description: `Measures image retrieval the way the seeds do (DeepFashion In-Shop protocol, the report §3.3): a query scores 1 at k if an image of the same item is among its k most similar gallery images. Prints one JSON object on stdout: top-k accuracy for each --k, mAP (mean average precision over every gallery image of the item) and the median rank of the first correct match.

--partition reads the In-Shop list_eval_partition.txt (count line, header line, then 'image_name item_id evaluation_status'), a directory holding it or the official query.txt/query_id.txt/gallery.txt/gallery_id.txt lists, or NDJSON {id, item, split} (split query|gallery|train; with no split at all, every image is a query against all the others). Embedding ids are matched to image names exactly, by the ids' image field, or by trailing path parts. An image listed twice in the partition is an error at its second line; embedding rows that match an image already matched are left out (the first row of each is used) and counted in a warning.

The ranking comes from --embeddings (exact: every query is ranked against the whole gallery) or from knn output (--knn, run with the query split against the gallery split; metrics are then known to the depth of its lists and mAP is cut there). --baseline random adds the chance level (a random ordering of the gallery; its expected top-k is given too); alone it evaluates chance only.

--per-query writes {id, item, rank, ap, relevant} per query (rank: of the first correct match, null when none is known). --plot draws top-k accuracy against k as a PNG (or SVG), overlaying earlier results given with --compare (e.g. raw pixels vs trained features); with only --compare and --plot it just draws them.`,
  options: {
    partition: { alias: 'p', describe: 'list_eval_partition.txt, a directory of In-Shop lists, or NDJSON {id, item, split}', type: 'string' },
    embeddings: { alias: 'e', describe: 'embeddings .npy of the query and gallery images', type: 'string' },
    ids: { describe: 'ids NDJSON of the embeddings (default: <embeddings>.ids.ndjson)', type: 'string' },
    'id-field': { describe: 'field of the ids NDJSON records that holds the id', type: 'string', default: 'id' },
    knn: { describe: 'knn output NDJSON {id, neighbors: [{id}]} of the queries against the gallery (- for stdin)', type: 'string' },
    baseline: { describe: 'add a baseline every model must beat', choices: ['random'] },
    seed: { describe: 'seed of the random baseline', type: 'number', default: 1, check: anyInt },
    metric: { describe: 'similarity for --embeddings', choices: [...METRICS], default: 'cosine' },
    k: { describe: 'the k values of top-k accuracy, comma-separated', type: 'string', default: DEFAULT_KS, check: positiveIntList },
    name: { describe: 'name of this run in the JSON and the plot legend (default: the input file name)', type: 'string' },
    'per-query': { describe: 'write per-query results to this NDJSON', type: 'string' },
    plot: { describe: 'draw top-k accuracy vs k to this PNG (or .svg)', type: 'string' },
    compare: { describe: 'earlier eval-retrieval JSON results to overlay on the plot', type: 'array', string: true, default: [] },
    title: { describe: 'plot title', type: 'string', default: 'Top-k retrieval accuracy' },
    out: { alias: 'o', describe: 'where the JSON result goes (- for stdout)', type: 'string', default: '-' },
  },
  examples: [
    ['atelier eval-retrieval -p list_eval_partition.txt -e emb.npy --baseline random > trained.json', 'evaluate embeddings, with the chance level'],
    ['atelier knn -q query.npy -g gallery.npy --k 50 | atelier eval-retrieval -p list_eval_partition.txt --knn=-', 'evaluate knn output'],
    ['atelier eval-retrieval -p split.ndjson -e pixels.npy --name "raw pixels" > pixels.json', 'the raw-pixel baseline'],
    ['atelier eval-retrieval --compare pixels.json trained.json --plot topk.png', 'overlay runs in one plot'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    const ks = parseKs(args.k);
    const metric = args.metric as Metric;
    const compared = await Promise.all(args.compare.map(readRun));
    const evaluating = args.embeddings !== undefined || args.knn !== undefined || args.baseline !== undefined;
    if (args.embeddings && args.knn) throw new UsageError('give --embeddings or --knn, not both', { field: '--knn' });
    if (!evaluating) {
      if (args.plot && compared.length > 0) {
        await writeChart(args.plot, chartOf(args.title, compared.map(runSeries), ks), 1, io.outputs);
        io.stderr.write(`atelier ${NAME}: plot of ${compared.length} runs -> ${args.plot}\n`);
        return;
      }
      throw new UsageError('nothing to evaluate: give --embeddings or --knn (and --partition), --baseline random, or --compare with --plot');
    }
    if (!args.partition) throw new UsageError('needs --partition (which images are queries and gallery, and their items)', { field: '--partition' });
    if (args.knn && isStdio(args.knn) && args.ids && isStdio(args.ids)) throw new UsageError('only one input can be stdin', { field: '--ids' });
    if (args['per-query'] && isStdio(args['per-query']) && isStdio(args.out)) throw new UsageError('stdout already carries the JSON result; give --out a file or --per-query a file', { field: '--per-query' });
    const partition = await readRetrievalPartition(args.partition);
    if (partition.entries.length === 0) throw new UsageError('lists no images', { file: partition.path });
    const lookup = new PartitionLookup(partition);
    const onWarning = (message: string) => warn(io, NAME, message);

    let main: RetrievalRunReport | null = null;
    let results: QueryResult[] = [];
    let context: { galleryCount: number; items: number; leaveOneOut: boolean; skipped: Record<string, number> };
    let baseline: (RetrievalRunReport & { topkExpected: Record<string, number> }) | null = null;
    if (args.embeddings || args.knn) {
      const evaluated = args.embeddings
        ? await evaluateEmbeddings({ embeddings: args.embeddings, ids: args.ids, idField: args['id-field'] }, lookup, metric, io, onWarning)
        : await evaluateKnn(args.knn!, lookup, io.stdin, onWarning);
      results = evaluated.results;
      if (results.length === 0) throw new UsageError('no query could be evaluated (check that ids match the partition and that queries have gallery images of their item)', { file: args.embeddings ?? args.knn });
      const name = args.name ?? basename(args.embeddings ?? (isStdio(args.knn!) ? 'knn' : args.knn!)).replace(/\.(npy|ndjson|jsonl)$/, '');
      main = retrievalRunReport(name, args.embeddings ? 'embeddings' : 'knn', results, ks, evaluated.depth);
      context = { galleryCount: evaluated.galleryCount, items: evaluated.items, leaveOneOut: evaluated.leaveOneOut, skipped: evaluated.skipped };
      if (args.baseline === 'random') {
        const random = evaluateRandom(results.map((r) => ({ id: r.id, item: r.item, relevant: r.relevant })), evaluated.galleryCount, evaluated.leaveOneOut, args.seed, ks);
        baseline = { ...retrievalRunReport('random', 'random', random.results, ks, null), topkExpected: random.expected };
      }
    } else {
      const fromPartition = partitionQueries(lookup);
      if (fromPartition.queries.length === 0) throw new UsageError('no query has a gallery image of its item', { file: partition.path });
      const random = evaluateRandom(fromPartition.queries, fromPartition.galleryCount, fromPartition.leaveOneOut, args.seed, ks);
      results = random.results;
      main = { ...retrievalRunReport(args.name ?? 'random', 'random', results, ks, null), topkExpected: random.expected };
      context = { galleryCount: fromPartition.galleryCount, items: fromPartition.items, leaveOneOut: fromPartition.leaveOneOut, skipped: { noGalleryMatch: fromPartition.noGalleryMatch } };
    }

    const output = rounded({
      name: main.name,
      method: main.method,
      ...(main.method === 'embeddings' ? { metric } : {}),
      partition: partition.path,
      protocol: context.leaveOneOut ? 'leave-one-out' : 'query-gallery',
      queries: main.queries,
      gallery: context.galleryCount,
      items: context.items,
      skipped: context.skipped,
      topk: main.topk,
      map: main.map,
      mapCutoff: main.mapCutoff,
      medianFirstRank: main.medianFirstRank,
      ...(main.topkExpected ? { topkExpected: main.topkExpected } : {}),
      ...(baseline ? { baselines: { random: { topk: baseline.topk, topkExpected: baseline.topkExpected, map: baseline.map, medianFirstRank: baseline.medianFirstRank } } } : {}),
    });

    if (args['per-query']) {
      const writer: NdjsonWriter = await openNdjsonWriter(args['per-query'], { stdout: io.stdout, outputs: io.outputs });
      try {
        for (const r of results) await writer.write(rounded(r));
        await writer.close();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    }
    if (args.plot) {
      const series = [runSeries({ name: main.name, topk: main.topk, dashed: main.method === 'random' }), ...compared.map(runSeries)];
      if (baseline) series.push(runSeries({ name: 'random', topk: baseline.topk, dashed: true }));
      await writeChart(args.plot, chartOf(args.title, series, ks), 1, io.outputs);
    }
    const text = JSON.stringify(output, null, 2) + '\n';
    if (isStdio(args.out)) io.stdout.write(text);
    else await writeFileAtomic(args.out, text, io.outputs);
    const top = (k: number) => (typeof main!.topk[k] === 'number' ? `top-${k} ${(100 * (main!.topk[k] as number)).toFixed(1)}%` : null);
    const headline = [top(1), top(20), `mAP ${(100 * main.map).toFixed(1)}%`].filter(Boolean).join(', ');
    io.stderr.write(`atelier ${NAME}: ${main.name}: ${main.queries} queries, ${context.galleryCount} gallery images: ${headline}\n`);
  },
});

function chartOf(title: string, series: Series[], ks: number[]) {
  const xs = [...new Set([...ks, ...series.flatMap((s) => s.points.map((p) => p[0]))])].sort((a, b) => a - b);
  return {
    title,
    series,
    x: { label: 'k', min: 0, max: xs[xs.length - 1], ticks: xs.length <= 12 ? xs : undefined },
    y: { label: 'top-k retrieval accuracy', min: 0, max: 1 },
  };
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  await checkFileOutput(args.plot, '--plot', { extensions: PLOT_EXTENSIONS });
}
