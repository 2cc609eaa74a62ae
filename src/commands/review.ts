import { once } from 'node:events';
import { isIP } from 'node:net';
import { defineCommand, UsageError } from '../lib/command.js';
import { readLabelsOrder } from '../lib/facets/labels.js';
import { openAtomicWriteStream } from '../lib/io/atomic.js';
import { isStdio } from '../lib/io/paths.js';
import { waitForDrain } from '../lib/io/ndjson.js';
import { openReviewDb } from '../lib/review/db.js';
import { exportLines, importKnn, importLabels, importPredictions, importRetrieval, importRise } from '../lib/review/transfer.js';
import { createReviewServer } from '../lib/review/server.js';

interface Args {
  verb: string;
  db: string;
  port: number;
  host: string;
  token?: string;
  user: string;
  labels?: string;
  'label-field': string;
  'id-field': string;
  'image-field': string;
  'group-field': string;
  'labels-order'?: string;
  'test-fraction': number;
  'val-fraction': number;
  predictions?: string[];
  name?: string;
  knn?: string;
  rise?: string;
  partition?: string;
  'per-query'?: string;
  'retrieval-name'?: string;
  out: string;
}

const VERBS = ['serve', 'import', 'export'];

export default defineCommand<Args>({
  name: 'review',
  summary: 'a local web app over a labels database: F1 view, false negatives/positives, retag with undo and history',
  description: [
    'GILT\'s quality app ("analyze results, keep a persistent dataset, and change the tags of the samples if we detect they are wrong") over an SQLite database (WAL mode, every retag one transaction, committed to disk before it is acknowledged).',
    'import: --labels loads labelled records (NDJSON or CSV, the fields train-classifier reads: --label-field, --id-field, --image-field, --group-field) and fixes each image\'s split by the same stable hash of its group as train-classifier (--test-fraction, --val-fraction); images already in the database keep their label and split. --predictions loads predictions {id, label, probs} (classify, train-classifier --predictions) as one model run named --name; --knn (knn output) and --rise (rise output) add nearest neighbours and saliency overlays to the images\' pages. With --partition (and --per-query from eval-retrieval) the knn lines of the retrieval queries are also stored as retrieval examples: each query with its gallery neighbours, their scores and whether each shows the query\'s item, ranked and scored as eval-retrieval does.',
    'export: writes the current labels as NDJSON (-o, - for stdout): each image\'s original record with its label now and its image path relative to the output, for train-classifier.',
    'serve (the default): the web app on --host:--port (127.0.0.1 by default; another host needs --token). Views: per-class precision, recall and F1 (sortable) with the confusion matrix and F1 before/after against the previous model; per class the false negatives and false positives with their probabilities, to select and retag together (one batch, undone together); the needs-review queue, ordered by how confidently the model disagrees with the label; retrieval examples, the worst queries first; an image page with its labels, predictions, RISE overlays, nearest neighbours and history; the history with undo. Keys in a grid: j/k move, x selects, a selects all or none, u undoes the last batch. Writes need the session token, which the pages carry in a header that other sites cannot send. Changes are logged with --user or the name typed in the page.',
  ].join('\n\n'),
  positionals: [{ name: 'verb', describe: `what to do: ${VERBS.join(', ')}`, type: 'string', default: 'serve' }],
  options: {
    db: { describe: 'the SQLite database (import creates it)', type: 'string', demandOption: true },
    port: { describe: 'serve: TCP port (0 picks a free one)', type: 'number', default: 8080 },
    host: { describe: 'serve: address to bind; anything but loopback needs --token', type: 'string', default: '127.0.0.1' },
    token: { describe: 'serve: the token for writes (and, off loopback, for reads); random per session when not given', type: 'string' },
    user: { describe: 'serve: the name history rows carry when the page gives none', type: 'string', default: 'reviewer' },
    labels: { alias: 'l', describe: 'import: labelled records, NDJSON or CSV', type: 'string' },
    'label-field': { describe: 'import: field holding the label', type: 'string', default: 'label' },
    'id-field': { describe: 'import: field holding the record id', type: 'string', default: 'id' },
    'image-field': { describe: 'import: field holding the image path (relative paths are taken beside the file)', type: 'string', default: 'image' },
    'group-field': { describe: 'import: field whose hash decides the split (records without it use their id)', type: 'string', default: 'product' },
    'labels-order': { describe: 'import: file with one label per line: the classes and their order', type: 'string' },
    'test-fraction': { describe: 'import: share of groups in the test split (as train-classifier)', type: 'number', default: 0.2 },
    'val-fraction': { describe: 'import: share of groups in the validation split (as train-classifier)', type: 'number', default: 0.1 },
    predictions: { alias: 'p', describe: 'import: predictions NDJSON {id, label, probs} (repeatable, one run each)', type: 'array', string: true },
    name: { describe: 'import: name of the model run (default: the predictions file name)', type: 'string' },
    knn: { describe: 'import: knn output {id, neighbors}: nearest neighbours shown on each image\'s page', type: 'string' },
    partition: { describe: 'import: with --knn, the partition eval-retrieval read (In-Shop list or NDJSON {id, item, split}): the knn lines of its queries become retrieval examples, each neighbour marked hit when it shows the query\'s item', type: 'string' },
    'per-query': { describe: 'import: eval-retrieval --per-query output {id, item, rank, ap, relevant}: only these queries, with its rank and AP (needs --knn and --partition)', type: 'string' },
    'retrieval-name': { describe: 'import: name of the retrieval run (default: the --per-query or --knn file name)', type: 'string' },
    rise: { describe: 'import: rise output {id, class, score, overlay}: saliency overlays shown on each image\'s page', type: 'string' },
    out: { alias: 'o', describe: 'export: where the NDJSON goes (- for stdout)', type: 'string', default: '-' },
  },
  examples: [
    ['atelier review import --db labels.sqlite --labels images.ndjson --label-field silhouette -p predictions.ndjson --name model-1', 'a database from the catalogue and a model\'s predictions'],
    ['atelier review import --db labels.sqlite --knn knn.ndjson --partition list_eval_partition.txt --per-query per-query.ndjson', 'retrieval examples from eval-retrieval and knn'],
    ['atelier review --db labels.sqlite --user ana', 'the app on http://127.0.0.1:8080'],
    ['atelier review export --db labels.sqlite -o relabelled.ndjson && atelier train-classifier -i relabelled.ndjson -l silhouette ...', 'retrain on the reviewed labels'],
  ],
  async run(args, io) {
    if (!VERBS.includes(args.verb)) throw new UsageError(`unknown verb '${args.verb}' (expected ${VERBS.join(', ')})`, { field: 'verb' });
    if (args.verb === 'import') {
      if (args['per-query'] && !args.partition) throw new UsageError('needs --partition (the queries\' and gallery\'s items) and --knn (their neighbours)', { field: '--per-query' });
      if (args.partition && !args.knn) throw new UsageError('retrieval examples need --knn (the queries\' neighbours)', { field: '--partition' });
      if (!args.labels && !args.predictions?.length && !args.knn && !args.rise) throw new UsageError('nothing to import: give --labels, --predictions, --knn or --rise', { field: '--labels' });
      for (const key of ['test-fraction', 'val-fraction'] as const) if (!(args[key] >= 0 && args[key] < 1)) throw new UsageError(`must be in [0, 1), got ${args[key]}`, { field: `--${key}` });
      const db = openReviewDb(args.db, { create: true });
      try {
        const summary: Record<string, unknown> = {};
        if (args.labels) {
          const labelsOrder = args['labels-order'] ? await readLabelsOrder(args['labels-order']) : undefined;
          summary.labels = await importLabels(db, args.labels, {
            labelField: args['label-field'], idField: args['id-field'], imageField: args['image-field'], groupField: args['group-field'],
            testFraction: args['test-fraction'], valFraction: args['val-fraction'], labelsOrder, labelsOrderFile: args['labels-order'],
          });
        }
        const runs = [];
        for (const file of args.predictions ?? []) runs.push({ file, ...(await importPredictions(db, file, args.name ?? file.replace(/^.*\//, ''))) });
        if (runs.length) summary.runs = runs;
        if (args.knn) summary.knn = await importKnn(db, args.knn);
        if (args.partition) {
          const name = args['retrieval-name'] ?? (args['per-query'] ?? args.knn!).replace(/^.*\//, '');
          summary.retrieval = await importRetrieval(db, { knn: args.knn!, partition: args.partition, perQuery: args['per-query'], name });
        }
        if (args.rise) summary.rise = await importRise(db, args.rise);
        io.stdout.write(JSON.stringify(summary) + '\n');
      } finally {
        db.close();
      }
      return;
    }
    const db = openReviewDb(args.db);
    if (args.verb === 'export') {
      try {
        if (isStdio(args.out)) {
          for (const line of exportLines(db, args.out)) if (!io.stdout.write(line + '\n')) await waitForDrain(io.stdout);
        } else {
          const out = await openAtomicWriteStream(args.out);
          try {
            for (const line of exportLines(db, args.out)) if (!out.stream.write(line + '\n')) await once(out.stream, 'drain');
            await out.commit();
          } catch (err) {
            await out.abort();
            throw err;
          }
        }
      } finally {
        db.close();
      }
      return;
    }

    const loopback = args.host === 'localhost' || args.host === '::1' || /^127\./.test(args.host);
    if (!loopback && !args.token) throw new UsageError(`binding ${args.host} exposes the app beyond this machine: give --token`, { field: '--host' });
    if (!(Number.isInteger(args.port) && args.port >= 0 && args.port < 65536)) throw new UsageError(`expected a port 0-65535, got ${args.port}`, { field: '--port' });
    const app = createReviewServer({ db, token: args.token, tokenForReads: !loopback, user: args.user });
    app.server.listen(args.port, args.host);
    try {
      await once(app.server, 'listening');
    } catch (err) {
      db.close();
      throw new UsageError(`cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`, { field: '--port' });
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : args.port;
    const hostPart = isIP(args.host) === 6 ? `[${args.host}]` : args.host;
    app.allowHost(`${hostPart}:${port}`);
    if (loopback) for (const h of ['127.0.0.1', 'localhost', '[::1]']) app.allowHost(`${h}:${port}`);
    io.stderr.write(`atelier review: listening on http://${hostPart}:${port}/${loopback ? '' : '?token=<your --token>'}\n`);
    const stop = () => {
      app.server.close();
      app.server.closeAllConnections();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await once(app.server, 'close');
    db.close();
  },
});
