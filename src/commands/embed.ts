import { defineCommand, UsageError, type CommandIO } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadMetadata, loadModel } from '../lib/backend/model-io.js';
import { checkInputFile } from '../lib/io/paths.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { openNpyWriter } from '../lib/io/npy.js';
import { ROWS_DIGEST_FIELD } from '../lib/io/features.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { pathRecords, readImageRecords, type ImageRecord } from '../lib/image/records.js';
import { wordKernel } from '../lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../lib/models/weak-files.js';
import { describeModel, FEATURE_LAYERS, imageFeatures, requireKind, type FeatureLayer } from '../lib/models/kinds.js';
import { normalizeRows } from '../lib/knn/source.js';
import { computeFeatures, resizeModeOf, workersOption } from '../lib/models/image-features.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import type { InputShape } from '../lib/image/batch.js';
import { engineOption, openImagePredictor } from '../lib/onnx/runtime.js';
import { startProgress } from '../lib/progress.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { imageSide, positiveInt } from '../lib/options.js';
import { boxRegion, readBoxes, type PixelBox } from '../lib/image/boxes.js';
import { resolveShard, shardOption, shardPath, shardRecords, writeShardManifest, type Shard } from '../lib/shard.js';
import { isStdio } from '../lib/io/paths.js';
import { calibrationBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { checkOnnxSettings, isOnnxModelPath, onnxFeatureOutput, openOnnxPredictor, readOnnxModel } from '../lib/onnx/model-file.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  out: string;
  ids?: string;
  layer: FeatureLayer;
  normalize: boolean;
  words: boolean;
  'image-field': string;
  'id-field': string;
  'pixels-size': number;
  batch: number;
  skipped?: string;
  crop?: string;
  backend: string;
  engine: string;
  workers: number;
  shard?: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

/** `x.npy` -> `x.ids.ndjson`: the ids file sits beside the tensor file by default. */
export function defaultIdsPath(npyPath: string): string {
  return npyPath.replace(/\.npy$/, '') + '.ids.ndjson';
}

/** Passes records on, refusing a repeated id: readers could not tell its rows apart. */
async function* uniqueIds(records: AsyncIterable<ImageRecord> | Iterable<ImageRecord>, idField: string): AsyncGenerator<ImageRecord> {
  const firstLine = new Map<string, number>();
  for await (const r of records) {
    const first = firstLine.get(r.id);
    if (first !== undefined) throw new UsageError(`id ${JSON.stringify(r.id)} is already on line ${first}; every image needs its own id`, { file: r.file, line: r.line, field: r.file === 'arguments' ? undefined : idField });
    firstLine.set(r.id, r.line);
    yield r;
  }
}

export default defineCommand<Args>({
  name: 'embed',
  summary: 'compute image embeddings (.npy + ids NDJSON) with a trained tower, or the word matrix',
  description: `Runs images through a model's image tower and writes one float32 row per decoded image to a .npy file, with an NDJSON of {id, image, row} in the same order (default: <out>.ids.ndjson); its last line also carries rows_sha256, the SHA-256 of the .npy's data bytes, so that knn, eval-retrieval, tsne, classify, train-classifier and the sizenet commands refuse an ids file from another run (e.g. one killed between the two renames). Ids files without it are read as they are. Each image needs its own id: a repeated id is an error (exit 2) at its second line. Rows are streamed to disk batch by batch, so the input size is not limited by memory. Corrupt images are skipped with a warning, counted, and listed with --skipped.

--layer pooled takes the globally pooled tower features; projection the low-rank projection (when the model has one); embedding (the default) whatever feeds the word matrix; stages the output of the last layer at each resolution of the tower, averaged over the map and concatenated from the input side to the pooled features (the pooled columns end each row): early stages keep colour, which the last one pools away (MobileNetV2 at 96 px: 96+144+192+576+1280 columns); stages-max writes those columns, then each stage's maximum over its map in the same order (twice the columns: the maximum keeps what a small part of the image shows, such as a garment's colour against a white background). --normalize scales rows to unit length (cosine search). --model pixels is the raw-pixel baseline: the centre crop of --pixels-size pixels flattened.

--crop BOXES (locate's output, or any NDJSON of {id, x, y, w, h} in pixels) cuts each image's box out before the resize, so the embedding describes the located garment rather than the whole photo (GILT's TiefVision); images without a box are embedded whole and counted on stderr.

-m model.onnx runs a file written by atelier export on onnxruntime at the precision it was exported in (an int8 file is not quantized or calibrated again): its kind, input size, resize mode and labels come from its metadata_props; --layer embedding (and pooled, stages or stages-max where the file has that output: a weak model's file exported since 2026-12-04 has both stage outputs; an older one says which it holds); --precision, --calibration and --engine tfjs are refused.

--words writes the model's word matrix instead (one row per vocabulary word, ids {id: word, row}) so that knn finds nearest words.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-weak (or any atelier image model), an .onnx file from atelier export (run on onnxruntime at its exported precision), or "pixels"', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .npy', type: 'string', demandOption: true },
    ids: { describe: 'output ids NDJSON (default: <out>.ids.ndjson)', type: 'string' },
    layer: { describe: 'which features to write', choices: FEATURE_LAYERS, default: 'embedding' },
    normalize: { describe: 'scale every row to unit L2 norm', type: 'boolean', default: false },
    words: { describe: 'write the word matrix (vocabulary x dim) instead of image embeddings', type: 'boolean', default: false },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    'pixels-size': { describe: 'side of the raw-pixel baseline (--model pixels)', type: 'number', default: 16, check: imageSide },
    batch: { describe: 'images per forward pass', type: 'number', default: 64, check: positiveInt },
    skipped: { describe: 'write the skipped images ({image, reason, message}) to this NDJSON', type: 'string' },
    crop: { describe: 'NDJSON of boxes {id, x, y, w, h} in pixels (locate): embed each image\'s box, cut out before the resize', type: 'string' },
    ...shardOption,
    ...workersOption,
    ...backendOption,
    ...engineOption,
    ...precisionOptions,
  },
  examples: [
    ['atelier embed -m weak.model -i products.ndjson -o emb.npy', 'embed every image of a crawl'],
    ['atelier embed -m weak.model -i products.ndjson -o emb.npy --precision int8', 'int8 on onnxruntime, calibrated on the first 256 images of products.ndjson'],
    ['atelier embed -m weak.model -i products.ndjson -o emb.npy --shard 3/16', 'shard 3 of 16 (emb.shard-03-of-16.npy); atelier merge emb.npy joins them'],
    ['atelier embed -m weak.model --normalize -o q.npy photos/*.jpg', 'embed files given as arguments'],
    ['atelier embed -m pixels -i products.ndjson -o pixels.npy', 'the raw-pixel baseline'],
    ['atelier embed -m weak.model --words -o words.npy', 'the word matrix, for nearest words with knn'],
  ],
  async run(args, io) {
    const shard = resolveShard(args.shard, io.env);
    if (shard && args.words) throw new UsageError('the word matrix is one output of the whole model; leave out --shard', { field: '--shard' });
    if (shard && args.ids !== undefined && isStdio(args.ids)) throw new UsageError('a sharded run writes files for atelier merge, not stdout', { field: '--ids' });
    const targets = { out: args.out, ids: args.ids ?? defaultIdsPath(args.out), skipped: args.skipped };
    args = { ...args, out: shardPath(args.out, shard), ids: shardPath(targets.ids, shard), skipped: args.skipped === undefined ? undefined : shardPath(args.skipped, shard) };
    await checkOutputs(args);
    const idsPath = args.ids ?? defaultIdsPath(args.out);
    const pixelsBaseline = args.model === 'pixels';
    if (pixelsBaseline && args.words) throw new UsageError('the pixels baseline has no word matrix', { field: '--words' });
    // Inputs first: a mistake is reported before the backend loads.
    const onnx = !pixelsBaseline && isOnnxModelPath(args.model) ? await readOnnxModel(args.model) : null;
    if (onnx && args.words) throw new UsageError('the word matrix is read from the model directory, not its .onnx file', { field: '--words' });
    if (onnx) checkOnnxSettings(onnx, args);
    const onnxOutput = onnx ? onnxFeatureOutput(onnx, args.layer) : null;
    if (!pixelsBaseline && !onnx) await loadMetadata(args.model);
    if (!args.words && !args.images.length) await checkInputFile(args.input ?? '-');
    if (args.crop && args.words) throw new UsageError('the word matrix has no images to crop', { field: '--crop' });
    if (args.precision !== undefined && (args.words || pixelsBaseline)) throw new UsageError(`${args.words ? 'the word matrix' : 'the pixels baseline'} runs no model; leave out --precision`, { field: '--precision' });
    const calibrationPlan = onnx ? null : await checkPrecision(args);
    const boxes: Map<string, PixelBox> | null = args.crop ? await readBoxes(args.crop) : null;
    let uncropped = 0;
    const regionOf = boxes ? (r: ImageRecord) => {
      const box = boxes.get(r.id);
      if (!box) uncropped++;
      return box ? boxRegion(box) : undefined;
    } : undefined;
    // An .onnx model needs no tfjs backend and no model directory: onnxruntime runs the file.
    const backend = onnx ? null : await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const loaded = pixelsBaseline || onnx ? null : await loadModel(args.model);

    if (args.words) {
      const meta = requireKind(describeModel(loaded!.model, loaded!.metadata, args.model), WEAK_MODEL_KIND, args.model);
      const matrix = tf.tidy(() => tf.transpose(wordKernel(loaded!.model)));
      const rows = (await matrix.data()) as Float32Array;
      const [count, dim] = matrix.shape;
      matrix.dispose();
      if (args.normalize) normalizeRows(rows, dim);
      // ids opened first: a run's outputs are renamed in the order opened (see the note below).
      const ids = await openNdjsonWriter(idsPath, { stdout: io.stdout, outputs: io.outputs });
      const npy = await openNpyWriter(args.out, { dtype: 'float32', rowShape: [dim], outputs: io.outputs });
      try {
        await npy.writeRows(rows, count);
        const digest = await npy.dataSha256();
        for (const [row, word] of meta.labels!.entries()) await ids.write({ id: word, row, ...(row === count - 1 ? { [ROWS_DIGEST_FIELD]: digest } : {}) });
        // ids first: a kill between the renames leaves new ids whose digest the old .npy fails.
        await ids.close();
        await npy.close();
      } catch (err) {
        await Promise.all([npy.abort(), ids.abort()]);
        throw err;
      }
      io.stderr.write(`atelier embed: ${count} word vectors of ${dim} dimensions -> ${args.out}\n`);
      return;
    }

    let network: tf.LayersModel | null = null;
    let inputSize: InputShape = onnx?.inputSize ?? args['pixels-size'];
    if (loaded) {
      inputSize = modelInputSize(loaded.model, args.model);
      network = imageFeatures(describeModel(loaded.model, loaded.metadata, args.model), loaded.model, args.layer);
    }
    const records = shardRecords(uniqueIds(args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin), args['id-field']), shard);
    const positions: number[] = [];
    const skips = createSkipCounter();
    let npy: Awaited<ReturnType<typeof openNpyWriter>> | null = null;
    const ids = await openNdjsonWriter(idsPath, { stdout: io.stdout, outputs: io.outputs });
    const fit = onnx ? onnx.fit : loaded ? resizeModeOf(loaded.metadata) : 'cover';
    const calibration = calibrationPlan ? await calibrationBatches(calibrationPlan, inputSize, args.batch, fit, 'embed') : undefined;
    const inference = onnx
      ? await openOnnxPredictor(onnx, onnxOutput!, { engine: args.engine, env: io.env, stderr: io.stderr, commandName: 'embed' })
      : network ? await openImagePredictor(network, inputSize, { engine: args.engine, env: io.env, stderr: io.stderr, backend: backend!, workers: args.workers, commandName: 'embed', calibration }) : null;
    const progress = startProgress(io.stderr, { label: 'embedding' });
    let rowsWritten = 0;
    // The last record is held back to carry the digest of all rows.
    let pending: Record<string, unknown> | null = null;
    try {
      for await (const batch of computeFeatures(inference?.predictor ?? null, records, inputSize, args.batch, skips, io, 'embed', fit, regionOf)) {
        if (args.normalize) normalizeRows(batch.rows, batch.dim);
        npy ??= await openNpyWriter(args.out, { dtype: 'float32', rowShape: [batch.dim], outputs: io.outputs });
        await npy.writeRows(batch.rows, batch.records.length);
        for (const r of batch.records) {
          if (pending) await ids.write(pending);
          pending = { id: r.id, image: r.path, row: rowsWritten++ };
          positions.push(r.line);
        }
        progress.tick(batch.records.length);
      }
      progress.stop();
      // A shard may hold no record at all: it writes empty outputs for merge to count.
      if (!npy && shard) npy = await openNpyWriter(args.out, { dtype: 'float32', rowShape: [0], outputs: io.outputs });
      if (!npy) throw new UsageError(`no image could be embedded (${skips.total} skipped)`, { file: args.images.length ? 'arguments' : args.input ?? 'stdin' });
      if (pending) await ids.write({ ...pending, [ROWS_DIGEST_FIELD]: await npy.dataSha256() });
      // ids first: a kill between the renames leaves new ids whose digest the old .npy fails.
      await ids.close();
      await npy.close();
    } catch (err) {
      progress.stop();
      await Promise.all([npy?.abort(), ids.abort()]);
      throw err;
    } finally {
      await inference?.close();
    }
    if (args.skipped) {
      const list = await openNdjsonWriter(args.skipped, { outputs: io.outputs });
      for (const s of skips.skipped) await list.write({ image: s.source, reason: s.reason, message: s.message });
      await list.close();
    }
    if (shard) await writeEmbedManifest(args, shard, targets, positions, io.outputs);
    writeSkipSummary(skips, io, 'embed');
    if (boxes) io.stderr.write(`atelier embed: ${rowsWritten - uncropped} images cropped to their box${uncropped ? `, ${uncropped} without a box embedded whole` : ''}\n`);
    io.stderr.write(`atelier embed: ${rowsWritten} rows -> ${args.out}, ids -> ${idsPath}\n`);
  },
});

/** The shard's manifest: what merge needs to put its rows back in input order. */
async function writeEmbedManifest(args: Args, shard: Shard, targets: { out: string; ids: string; skipped?: string }, positions: number[], outputs: CommandIO['outputs']): Promise<void> {
  await writeShardManifest({
    command: 'embed',
    shard,
    model: args.model === 'pixels' ? null : args.model,
    settings: { model: args.model === 'pixels' ? `pixels ${args['pixels-size']}` : null, layer: args.layer, normalize: args.normalize, crop: args.crop ?? null, input: args.input ?? null, images: args.images.length },
    outputs: [
      { role: 'out', kind: 'rows', target: targets.out, ids: 'ids' },
      { role: 'ids', kind: 'lines', target: targets.ids },
      ...(targets.skipped !== undefined ? [{ role: 'skipped', kind: 'concat' as const, target: targets.skipped }] : []),
    ],
    positions,
  }, outputs);
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  await checkFileOutput(args.ids ?? defaultIdsPath(args.out), '--ids');
  await checkFileOutput(args.skipped, '--skipped');
}
