import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadModel } from '../lib/backend/model-io.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { openNpyWriter } from '../lib/io/npy.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { pathRecords, readImageRecords } from '../lib/image/records.js';
import { hasLayer, LAYER, wordKernel } from '../lib/models/weak-model.js';
import { imageFeatureModel } from '../lib/facets/classifier-model.js';
import { weakMetadata } from '../lib/models/weak-files.js';
import { computeFeatures, normalizeRows, openPredictor, workersOption, type InputSize } from '../lib/models/image-features.js';
import { startProgress } from '../lib/progress.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  out: string;
  ids?: string;
  layer: 'pooled' | 'projection' | 'embedding';
  normalize: boolean;
  words: boolean;
  'image-field': string;
  'id-field': string;
  'pixels-size': number;
  batch: number;
  skipped?: string;
  backend: string;
  workers: number;
}

/** `x.npy` -> `x.ids.ndjson`: the ids file sits beside the tensor file by default. */
export function defaultIdsPath(npyPath: string): string {
  return npyPath.replace(/\.npy$/, '') + '.ids.ndjson';
}

export default defineCommand<Args>({
  name: 'embed',
  summary: 'compute image embeddings (.npy + ids NDJSON) with a trained tower, or the word matrix',
  description: `Runs images through a model's image tower and writes one float32 row per decoded image to a .npy file, with an NDJSON of {id, image, row} in the same order (default: <out>.ids.ndjson). Rows are streamed to disk batch by batch, so the input size is not limited by memory. Corrupt images are skipped with a warning, counted, and listed with --skipped.

--layer pooled takes the globally pooled tower features; projection the low-rank projection (when the model has one); embedding (the default) whatever feeds the word matrix. --normalize scales rows to unit length (cosine search). --model pixels is the raw-pixel baseline: the centre crop of --pixels-size pixels flattened.

--words writes the model's word matrix instead (one row per vocabulary word, ids {id: word, row}) so that knn finds nearest words.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-weak (or any atelier image model), or "pixels"', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .npy', type: 'string', demandOption: true },
    ids: { describe: 'output ids NDJSON (default: <out>.ids.ndjson)', type: 'string' },
    layer: { describe: 'which features to write', choices: ['pooled', 'projection', 'embedding'], default: 'embedding' },
    normalize: { describe: 'scale every row to unit L2 norm', type: 'boolean', default: false },
    words: { describe: 'write the word matrix (vocabulary x dim) instead of image embeddings', type: 'boolean', default: false },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    'pixels-size': { describe: 'side of the raw-pixel baseline (--model pixels)', type: 'number', default: 16 },
    batch: { describe: 'images per forward pass', type: 'number', default: 64 },
    skipped: { describe: 'write the skipped images ({image, reason, message}) to this NDJSON', type: 'string' },
    ...workersOption,
    ...backendOption,
  },
  examples: [
    ['atelier embed -m weak.model -i products.ndjson -o emb.npy', 'embed every image of a crawl'],
    ['atelier embed -m weak.model --normalize -o q.npy photos/*.jpg', 'embed files given as arguments'],
    ['atelier embed -m pixels -i products.ndjson -o pixels.npy', 'the raw-pixel baseline'],
    ['atelier embed -m weak.model --words -o words.npy', 'the word matrix, for nearest words with knn'],
  ],
  async run(args, io) {
    if (!(args.batch >= 1)) throw new UsageError(`must be at least 1, got ${args.batch}`, { field: '--batch' });
    const idsPath = args.ids ?? defaultIdsPath(args.out);
    const pixelsBaseline = args.model === 'pixels';
    if (pixelsBaseline && args.words) throw new UsageError('the pixels baseline has no word matrix', { field: '--words' });
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const loaded = pixelsBaseline ? null : await loadModel(args.model);

    if (args.words) {
      const meta = weakMetadata(loaded!.metadata, args.model);
      const matrix = tf.tidy(() => tf.transpose(wordKernel(loaded!.model)));
      const rows = (await matrix.data()) as Float32Array;
      const [count, dim] = matrix.shape;
      matrix.dispose();
      if (args.normalize) normalizeRows(rows, dim);
      const npy = await openNpyWriter(args.out, { dtype: 'float32', rowShape: [dim] });
      const ids = await openNdjsonWriter(idsPath, { stdout: io.stdout });
      try {
        await npy.writeRows(rows, count);
        for (const [row, word] of meta.vocabulary.entries()) await ids.write({ id: word, row });
        await npy.close();
        await ids.close();
      } catch (err) {
        await Promise.all([npy.abort(), ids.abort()]);
        throw err;
      }
      io.stderr.write(`atelier embed: ${count} word vectors of ${dim} dimensions -> ${args.out}\n`);
      return;
    }

    let network: tf.LayersModel | null = null;
    let inputSize: InputSize = args['pixels-size'];
    if (loaded) {
      const shape = loaded.model.inputs[0].shape;
      if (shape.length !== 4 || shape[3] !== 3) throw new UsageError(`model has no RGB image input (input shape ${JSON.stringify(shape)})`, { file: args.model });
      inputSize = shape[1] === shape[2] ? (shape[1] as number) : { height: shape[1] as number, width: shape[2] as number };
      if (args.layer === 'projection' && !hasLayer(loaded.model, LAYER.projection)) throw new UsageError('this model has no projection layer (trained with --projection 0)', { field: '--layer' });
      network = imageFeatureModel(loaded.model, args.layer);
    }
    const records = args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin);
    const skips = createSkipCounter();
    let npy: Awaited<ReturnType<typeof openNpyWriter>> | null = null;
    const ids = await openNdjsonWriter(idsPath, { stdout: io.stdout });
    const inference = network ? await openPredictor(network, inputSize, backend, args.workers) : null;
    const progress = startProgress(io.stderr, { label: 'embedding' });
    let rowsWritten = 0;
    try {
      for await (const batch of computeFeatures(inference?.predictor ?? null, records, inputSize, args.batch, skips, io, 'embed')) {
        if (args.normalize) normalizeRows(batch.rows, batch.dim);
        npy ??= await openNpyWriter(args.out, { dtype: 'float32', rowShape: [batch.dim] });
        await npy.writeRows(batch.rows, batch.records.length);
        for (const r of batch.records) await ids.write({ id: r.id, image: r.path, row: rowsWritten++ });
        progress.tick(batch.records.length);
      }
      progress.stop();
      if (!npy) throw new UsageError(`no image could be embedded (${skips.total} skipped)`, { file: args.images.length ? 'arguments' : args.input ?? 'stdin' });
      await npy.close();
      await ids.close();
    } catch (err) {
      progress.stop();
      await Promise.all([npy?.abort(), ids.abort()]);
      throw err;
    } finally {
      await inference?.close();
    }
    if (args.skipped) {
      const list = await openNdjsonWriter(args.skipped);
      for (const s of skips.skipped) await list.write({ image: s.source, reason: s.reason, message: s.message });
      await list.close();
    }
    writeSkipSummary(skips, io, 'embed');
    io.stderr.write(`atelier embed: ${rowsWritten} rows -> ${args.out}, ids -> ${idsPath}\n`);
  },
});
