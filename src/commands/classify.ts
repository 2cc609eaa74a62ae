import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { loadModel, loadMetadata } from '../lib/backend/model-io.js';
import { openAtomicWriteStream, checkFileOutput } from '../lib/io/atomic.js';
import { checkInputFile, isStdio } from '../lib/io/paths.js';
import { readFeatureMatrix, idsPathFor } from '../lib/io/features.js';
import { waitForDrain } from '../lib/io/ndjson.js';
import { decodeImage } from '../lib/image/decode.js';
import { prefetchImages } from '../lib/image/prefetch.js';
import { imageToBytes, pathRecords, readImageRecords, type ImageRecord } from '../lib/image/records.js';
import { createSkipCounter, SKIP_REASON_WORDS, skipImage, writeSkipSummary } from '../lib/image/skips.js';
import { resizeModeOf, storedSizeFor } from '../lib/models/image-features.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import { batchPixels, inputSides } from '../lib/image/batch.js';
import { CLASSIFIER_MODEL_KIND, type ClassifierMetadata } from '../lib/facets/classifier-model.js';
import { argmax, predictionLine } from '../lib/facets/evaluation.js';
import { describeModel, requireKind, rowsProbabilities } from '../lib/models/kinds.js';
import { startProgress } from '../lib/progress.js';
import { positiveInt } from '../lib/options.js';
import { inShard, requireShardFile, resolveShard, shardOption, shardPath, shardRecords, writeShardManifest } from '../lib/shard.js';
import { engineOption, openModelRunner, type ModelRunner } from '../lib/onnx/runtime.js';
import { checkOnnxSettings, isOnnxModelPath, openOnnxRunner, readOnnxModel, requireOnnxOutput } from '../lib/onnx/model-file.js';
import { calibrationBatches, calibrationRowBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { labelAgreement } from '../lib/onnx/int8.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  features?: string;
  'feature-ids'?: string;
  out: string;
  'image-field': string;
  'id-field': string;
  batch: number;
  rank?: string;
  top?: number;
  backend: string;
  engine: string;
  shard?: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

export default defineCommand<Args>({
  name: 'classify',
  summary: 'predict a facet label with its class probabilities for images (or feature rows)',
  description: `Runs a train-classifier model on images given as arguments or listed in NDJSON (--input, with --image-field and --id-field), and writes one line per image: {id, image, label, probs}, probs holding every class's probability in the model's label order (its --labels-order). Images are centre-cropped the way the model was validated.

A corrupt or unreadable image does not stop the run: it gives one warning on stderr and a line {id, image, error} in its place, and the end-of-run summary counts them.

A model trained on precomputed features (train-classifier --features) reads feature rows instead: --features x.npy with its ids NDJSON.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-classifier, or its .onnx file from atelier export (run on onnxruntime at its exported precision)', type: 'string', demandOption: true },
    features: { alias: 'f', describe: 'feature rows .npy, for a model trained on precomputed features', type: 'string' },
    'feature-ids': { describe: 'ids NDJSON of --features (default: <features>.ids.ndjson)', type: 'string' },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    batch: { describe: 'images per forward pass', type: 'number', default: 64, check: positiveInt },
    ...shardOption,
    rank: { describe: 'instead of input order, write the records by their probability of this label, highest first (unreadable images left out)', type: 'string' },
    top: { describe: 'with --rank, keep only the N most probable records', type: 'number', check: positiveInt },
    ...backendOption,
    ...engineOption,
    ...precisionOptions,
  },
  examples: [
    ['atelier classify -m silhouette.model photos/*.jpg', 'label image files'],
    ['atelier classify -m silhouette.model -i images.ndjson -o predictions.ndjson', 'label a catalogue'],
    ['atelier classify -m head.model -f feat.npy | jq -c "{id, label}"', 'a head trained on precomputed features'],
    ['atelier classify -m size.model -i new-articles.ndjson --rank "size issue" --top 8', 'the eight new articles most likely to have a size issue'],
    ['atelier classify -m silhouette.model -i images.ndjson --precision int8', 'int8 on onnxruntime, calibrated on the first 256 images; stderr says how often its label is the float one\'s'],
    ['atelier classify -m head.model -f feat.npy --precision int8', 'a head on feature rows in int8, calibrated on the first 256 rows'],
  ],
  async run(args, io) {
    const shard = resolveShard(args.shard, io.env);
    if (shard && args.rank !== undefined) throw new UsageError('--rank orders all records at once; classify in shards, or rank in one run', { field: '--shard' });
    requireShardFile(args.out, '--out', shard);
    const target = args.out;
    args = { ...args, out: shardPath(args.out, shard) };
    const positions: number[] = [];
    await checkOutputs(args);
    // Inputs first: a mistake is reported before the backend loads.
    const onnx = isOnnxModelPath(args.model) ? await readOnnxModel(args.model) : null;
    if (onnx) checkOnnxSettings(onnx, args);
    const meta = (onnx ? onnx.metadata : await loadMetadata(args.model)) as Partial<ClassifierMetadata>;
    if (meta.kind !== CLASSIFIER_MODEL_KIND || !Array.isArray(meta.labels)) throw new UsageError(`not a train-classifier model (kind ${JSON.stringify(meta.kind ?? null)})`, { file: args.model });
    const labels = meta.labels;
    const rankIndex = args.rank === undefined ? -1 : labels.indexOf(args.rank);
    if (args.rank !== undefined && rankIndex < 0) throw new UsageError(`'${args.rank}' is not one of the model's labels (${labels.join(', ')})`, { field: '--rank' });
    if (args.top !== undefined && args.rank === undefined) throw new UsageError('needs --rank', { field: '--top' });
    if (args.precision === 'int8' && meta.input === 'pixels') throw new UsageError('int8 runs models on images or feature rows; this one reads raw pixels (a baseline)', { field: '--precision', file: args.model });
    if (onnx && meta.input === 'pixels') throw new UsageError('a classifier on raw pixels (a baseline) runs from its model directory, not an .onnx file', { file: args.model });
    if (onnx) requireOnnxOutput(onnx, 'probs');
    if (meta.input === 'features' && !args.features) throw new UsageError('this model reads feature rows: give --features (the same kind of features it was trained on)', { field: '--features' });
    if (args.features) await checkInputFile(args.features);
    else if (!args.images.length) await checkInputFile(args.input ?? '-');
    // A model on feature rows calibrates on the first rows of --features (before any --shard), as an image model on the first images.
    const calibrationPlan = onnx ? null : await checkPrecision(meta.input === 'features' ? { ...args, rows: { features: args.features, dim: meta.inputDim ?? 0 } } : { ...args, rows: undefined });
    // An .onnx model needs no tfjs backend and no model directory: onnxruntime runs the file.
    const backend = onnx ? null : await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const loaded = onnx ? null : await loadModel(args.model);
    const model = loaded?.model ?? null;
    const described = requireKind(describeModel(model, loaded?.metadata ?? meta, args.model), CLASSIFIER_MODEL_KIND, args.model);
    const inputSize = () => (onnx ? onnx.inputSize! : modelInputSize(model!, args.model));
    const ranked: Array<{ score: number; order: number; line: string }> = [];
    const keepRanked = () => {
      ranked.sort((a, b) => b.score - a.score || a.order - b.order);
      if (args.top !== undefined) ranked.length = Math.min(ranked.length, args.top);
    };

    const out = isStdio(args.out) ? null : await openAtomicWriteStream(args.out);
    const sink = out ? out.stream : io.stdout;
    let pending = '';
    const flush = async () => {
      const text = pending;
      pending = '';
      if (text !== '' && !sink.write(text)) await waitForDrain(sink);
    };
    const emit = async (line: string) => {
      pending += line + '\n';
      if (pending.length > 65536) await flush();
    };
    const writeRows = async (records: Array<{ id: string; image?: string; line: number }>, probs: Float32Array) => {
      for (let i = 0; i < records.length; i++) {
        const p = probs.subarray(i * labels.length, (i + 1) * labels.length);
        const { line: at, ...record } = records[i];
        positions.push(at);
        const line = predictionLine({ ...record, label: labels[argmax(p)] }, labels, p);
        if (rankIndex < 0) await emit(line);
        else {
          ranked.push({ score: p[rankIndex], order: ranked.length, line });
          // Only the best --top are kept, so memory stays bounded on a big catalogue.
          if (args.top !== undefined && ranked.length > 4 * args.top + 1024) keepRanked();
        }
      }
    };
    let runner: ModelRunner | undefined;
    const openRunner = async (): Promise<ModelRunner> => {
      if (onnx) return openOnnxRunner(onnx, 'probs', { engine: args.engine, env: io.env, stderr: io.stderr, commandName: 'classify' });
      const calibration = !calibrationPlan ? undefined : calibrationPlan.kind === 'rows' ? await calibrationRowBatches(calibrationPlan, args.batch) : await calibrationBatches(calibrationPlan, inputSize(), args.batch, resizeModeOf(meta), 'classify');
      const opened = await openModelRunner(model!, { engine: args.engine, env: io.env, stderr: io.stderr, backend: backend!, commandName: 'classify', calibration });
      if (opened.calibrationRows) {
        const agreed = labelAgreement(opened.calibrationRows, (out, count) => rowsProbabilities(described.output, out, count));
        io.stderr.write(`atelier classify: int8 against float on ${agreed.count} calibration ${calibrationPlan?.kind}: the same label for ${agreed.sameLabel}, probabilities differ by ${agreed.meanDifference} mean, ${agreed.maxDifference} worst\n`);
      }
      return opened;
    };
    const predict = async (data: Float32Array, shape: number[]): Promise<Float32Array> => {
      runner ??= await openRunner();
      return rowsProbabilities(described.output, (await runner.run(data, shape)).data, shape[0]);
    };

    let written = 0;
    let failed = 0;
    try {
      if (meta.input === 'features' && args.features) {
        const matrix = await readFeatureMatrix(args.features, args['feature-ids'] ?? idsPathFor(args.features));
        if (matrix.dim !== meta.inputDim) throw new UsageError(`rows have ${matrix.dim} values; the model was trained on ${meta.inputDim}`, { file: args.features });
        // A shard takes its rows (all of them without --shard), keeping their row numbers as positions.
        const rows = matrix.ids.flatMap((id, row) => (inShard(id, shard) ? [row] : []));
        for (let start = 0; start < rows.length; start += args.batch) {
          const chosen = rows.slice(start, start + args.batch);
          const data = new Float32Array(chosen.length * matrix.dim);
          for (const [j, row] of chosen.entries()) data.set(matrix.rows.subarray(row * matrix.dim, (row + 1) * matrix.dim), j * matrix.dim);
          const probs = await predict(data, [chosen.length, matrix.dim]);
          await writeRows(chosen.map((row) => ({ id: matrix.ids[row], line: row })), probs);
          written += chosen.length;
        }
      } else {
        if (args.features) throw new UsageError('this model reads images, not feature rows', { field: '--features' });
        // Images: the model's own input H x W and resize mode; raw pixels: a square crop of inputDim.
        const sides = meta.input === 'image' ? inputSides(inputSize()) : { height: meta.inputDim ?? 0, width: meta.inputDim ?? 0 };
        const fit = resizeModeOf(meta);
        const stored = { height: storedSizeFor(sides.height), width: storedSizeFor(sides.width) };
        const records: Iterable<ImageRecord> | AsyncIterable<ImageRecord> = shardRecords(args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin), shard);
        const skips = createSkipCounter();
        const progress = startProgress(io.stderr, { label: 'classifying' });
        let batch: Array<{ record: ImageRecord; bytes: Uint8Array }> = [];
        const flushBatch = async () => {
          if (batch.length === 0) return;
          const pixels = batchPixels({ pixels: batch.map((b) => b.bytes), storedSize: stored.height, storedWidth: stored.width }, batch.map((_, i) => i), sides);
          const shape = meta.input === 'pixels' ? [batch.length, sides.height * sides.width * 3] : [batch.length, sides.height, sides.width, 3];
          await writeRows(batch.map((b) => ({ id: b.record.id, image: b.record.path, line: b.record.line })), await predict(pixels, shape));
          written += batch.length;
          progress.tick(batch.length);
          batch = [];
        };
        const decoded = prefetchImages(records, async (record) => ({ record, result: await decodeImage(record.path, { width: stored.width, height: stored.height, fit }) }), { concurrency: 4, ahead: 64 });
        for await (const { record, result } of decoded) {
          if (result.ok) {
            batch.push({ record, bytes: imageToBytes(result.image) });
            if (batch.length >= args.batch) await flushBatch();
            continue;
          }
          // Lines keep the input order: what is decoded before the bad image goes out first.
          await flushBatch();
          skipImage(skips, io, 'classify', record.path, result);
          if (rankIndex < 0) {
            positions.push(record.line);
            await emit(JSON.stringify({ id: record.id, image: record.path, error: errorText(result) }));
          }
          failed++;
        }
        await flushBatch();
        progress.stop();
        writeSkipSummary(skips, io, 'classify');
      }
      if (rankIndex >= 0) {
        keepRanked();
        for (const r of ranked) await emit(r.line);
      }
      await flush();
      await out?.commit();
    } catch (err) {
      await out?.abort();
      throw err;
    } finally {
      await runner?.close();
    }
    if (shard) {
      await writeShardManifest({
        command: 'classify',
        shard,
        model: args.model,
        settings: { input: args.input ?? null, features: args.features ?? null, images: args.images.length },
        outputs: [{ role: 'out', kind: 'lines', target }],
        positions,
      }, io.outputs);
    }
    io.stderr.write(`atelier classify: ${written} images classified${failed ? `, ${failed} could not be read (lines with "error")` : ''}\n`);
  },
});

/** "truncated (JPEG data ends before its end marker)": the reason, then what the decoder said. */
function errorText(failure: { reason: keyof typeof SKIP_REASON_WORDS; message: string }): string {
  const detail = failure.message.replace(/\s+/g, ' ').trim();
  return detail ? `${SKIP_REASON_WORDS[failure.reason]} (${detail})` : SKIP_REASON_WORDS[failure.reason];
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
}
