import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { loadMetadata, loadModel } from '../lib/backend/model-io.js';
import { checkInputFile } from '../lib/io/paths.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { pathRecords, readImageRecords } from '../lib/image/records.js';
import { WEAK_MODEL_KIND } from '../lib/models/weak-files.js';
import { describeModel, requireKind, rowProbabilities } from '../lib/models/kinds.js';
import { computeFeatures, resizeModeOf, workersOption } from '../lib/models/image-features.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import { engineOption, openImagePredictor } from '../lib/onnx/runtime.js';
import { calibrationBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { checkOnnxSettings, isOnnxModelPath, openOnnxPredictor, readOnnxModel, requireOnnxOutput } from '../lib/onnx/model-file.js';
import { topKIndices } from '../lib/metrics/ranking.js';
import { startProgress } from '../lib/progress.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { positiveInt } from '../lib/options.js';
import { featureModel, wordKernel } from '../lib/models/weak-model.js';
import { predictedWordTypes, topWordsByType, typeLayer } from '../lib/models/type-attention.js';
import { mergedWordTypes } from '../lib/models/visual-word-types.js';
import type { WeakModelMetadata } from '../lib/models/weak-files.js';
import { requireShardFile, resolveShard, shardOption, shardPath, shardRecords, writeShardManifest } from '../lib/shard.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  k: number;
  word?: string;
  top?: number;
  out: string;
  'image-field': string;
  'id-field': string;
  batch: number;
  backend: string;
  engine: string;
  workers: number;
  'by-type': boolean;
  'word-types'?: string;
  shard?: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export default defineCommand<Args>({
  name: 'tag',
  summary: 'the words that describe each image, or the images that best show a word',
  description: `Scores every vocabulary word for each image with a train-weak model and writes {id, image, words: [{word, score}]} with the --k best words per image, best first; score is the probability over the whole vocabulary (softmax of the word scores).

--word W ranks the images by that word instead (the report's "most confident images for woolen"): the output is {id, image, word, score} per image, most confident first (--top N keeps the first N). Ranking needs one number per image in memory; tagging streams.

For a model trained with --attention types (the report 4.3): --by-type writes {id, image, types: {TYPE: [{word, score}]}} with the --k best words of each fashion type, each word scored on its own predicted type's sub-vector of the image embedding (z_t . w); --word-types FILE writes each vocabulary word's predicted type {word, type, p, evidence, images, thesaurus, heldOut, disagrees}. The type comes from the images train-weak saw with the word (evidence "images", when at least 2): the type of the word whose type training knew and whose images sit closest to them in the embedding (cosine of the mean standardised rows; p is the softmax of each type's best cosine at temperature 0.1); else from the word's vector (evidence "vector", the classifier training combines the sub-vectors by). The words whose type disagrees with the thesaurus, or that it lacks, are candidates to enrich it.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-weak, or its .onnx file from atelier export (run on onnxruntime at its exported precision)', type: 'string', demandOption: true },
    k: { describe: 'words per image', type: 'number', default: 5, check: positiveInt },
    word: { describe: 'rank images by this word instead of tagging them', type: 'string' },
    top: { describe: 'with --word, keep only the N most confident images', type: 'number', check: positiveInt },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    batch: { describe: 'images per forward pass', type: 'number', default: 64, check: positiveInt },
    'by-type': { describe: 'attention models: the best words of each fashion type per image', type: 'boolean', default: false },
    'word-types': { describe: 'attention models: write every word\'s predicted fashion type to this NDJSON', type: 'string' },
    ...shardOption,
    ...workersOption,
    ...backendOption,
    ...engineOption,
    ...precisionOptions,
  },
  examples: [
    ['atelier tag -m weak.model photo1.jpg photo2.jpg', 'the five best words of two photos'],
    ['atelier tag -m weak.model -i products.ndjson --k 10 | jq -c "[.id, [.words[].word]]"', 'ten words per catalogue image'],
    ['atelier tag -m weak.model -i products.ndjson --word stripes --top 20', 'the twenty most striped images'],
    ['atelier tag -m types.model -i products.ndjson --by-type --k 3 --word-types types.ndjson', 'three words per fashion type, and the types the model gives the words'],
  ],
  async run(args, io) {
    const shard = resolveShard(args.shard, io.env);
    if (shard && args.word !== undefined) throw new UsageError('--word ranks all images at once; tag in shards, or rank in one run', { field: '--shard' });
    requireShardFile(args.out, '--out', shard);
    const targets = { out: args.out, wordTypes: args['word-types'] };
    args = { ...args, out: shardPath(args.out, shard), 'word-types': args['word-types'] === undefined ? undefined : shardPath(args['word-types'], shard) };
    await checkOutputs(args);
    // Inputs first: a mistake is reported before the backend loads.
    const onnx = isOnnxModelPath(args.model) ? await readOnnxModel(args.model) : null;
    if (onnx) checkOnnxSettings(onnx, args);
    const metadata = onnx ? onnx.metadata : await loadMetadata(args.model);
    const described = requireKind(describeModel(null, metadata, args.model), WEAK_MODEL_KIND, args.model);
    const vocabulary = described.labels!;
    const wordIndex = args.word === undefined ? -1 : vocabulary.indexOf(args.word);
    if (args.word !== undefined && wordIndex < 0) throw new UsageError(`'${args.word}' is not in the model's vocabulary of ${vocabulary.length} words`, { field: '--word' });
    const attention = (metadata as unknown as WeakModelMetadata).attention;
    if ((args['by-type'] || args['word-types']) && !attention) throw new UsageError('the model was not trained with --attention types', { field: args['by-type'] ? '--by-type' : '--word-types', file: args.model });
    if (onnx && (args['by-type'] || args['word-types'])) throw new UsageError('the fashion types of the words are read from the model directory, not its .onnx file', { field: args['by-type'] ? '--by-type' : '--word-types', file: args.model });
    if (onnx) requireOnnxOutput(onnx, 'scores');
    if (args['by-type'] && args.word !== undefined) throw new UsageError('--word ranks images by one word; leave out --by-type', { field: '--by-type' });
    if (!args.images.length) await checkInputFile(args.input ?? '-');
    const calibrationPlan = onnx ? null : await checkPrecision(args);
    // An .onnx model needs no tfjs backend and no model directory: onnxruntime runs the file.
    const backend = onnx ? null : await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const model = onnx ? null : (await loadModel(args.model)).model;
    const layer = attention && model ? typeLayer(model) : null;
    // A word's type: from its images where training saw enough of them, else from its vector.
    const predicted = layer ? mergedWordTypes(attention!.visualTypes, await predictedWordTypes(layer), attention!.types) : null;
    if (args['word-types'] && predicted) {
      const types = await openNdjsonWriter(args['word-types'], { outputs: io.outputs });
      const heldOut = new Set(attention!.heldOut);
      let disagree = 0;
      for (const [k, word] of vocabulary.entries()) {
        const type = attention!.types[predicted.type[k]];
        const thesaurus = attention!.thesaurusTypes[k];
        if (thesaurus !== null && thesaurus !== type) disagree++;
        await types.write({ word, type, p: round(predicted.probability[k]), evidence: predicted.evidence[k], images: attention!.visualTypes?.images[k] ?? null, thesaurus, heldOut: heldOut.has(word), disagrees: thesaurus !== null && thesaurus !== type });
      }
      await types.close();
      io.stderr.write(`atelier tag: ${disagree} of ${attention!.thesaurusTypes.filter((t) => t !== null).length} thesaurus words have another predicted type -> ${args['word-types']}\n`);
    }
    const kernel = args['by-type'] && model ? ((await wordKernel(model).data()) as Float32Array) : null;
    const records = shardRecords(args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin), shard);
    const positions: number[] = [];
    const skips = createSkipCounter();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    const ranked: Array<{ id: string; image: string; score: number; order: number }> = [];
    const inputSize = onnx ? onnx.inputSize! : modelInputSize(model!, args.model);
    const calibration = calibrationPlan ? await calibrationBatches(calibrationPlan, inputSize, args.batch, resizeModeOf(metadata), 'tag') : undefined;
    const inference = onnx
      ? await openOnnxPredictor(onnx, 'scores', { engine: args.engine, env: io.env, stderr: io.stderr, commandName: 'tag' })
      : await openImagePredictor(args['by-type'] ? featureModel(model!, 'embedding') : model!, inputSize, { engine: args.engine, env: io.env, stderr: io.stderr, backend: backend!, workers: args.workers, commandName: 'tag', calibration });
    const progress = startProgress(io.stderr, { label: 'tagging' });
    try {
      for await (const batch of computeFeatures(inference.predictor, records, inputSize, args.batch, skips, io, 'tag', resizeModeOf(metadata))) {
        for (const [i, r] of batch.records.entries()) {
          if (kernel && predicted && layer) {
            const z = batch.rows.subarray(i * batch.dim, (i + 1) * batch.dim);
            const byType = topWordsByType(z, kernel, batch.dim / layer.types, predicted.type, layer.types, args.k);
            positions.push(r.line);
            await out.write({ id: r.id, image: r.path, types: Object.fromEntries(byType.map((list, t) => [attention!.types[t], list.map((w) => ({ word: vocabulary[w.word], score: round(w.score) }))])) });
            continue;
          }
          const probabilities = rowProbabilities(described.output, batch.rows.subarray(i * batch.dim, (i + 1) * batch.dim));
          if (wordIndex >= 0) {
            ranked.push({ id: r.id, image: r.path, score: probabilities[wordIndex], order: ranked.length });
          } else {
            const top = topKIndices(probabilities, args.k);
            positions.push(r.line);
            await out.write({ id: r.id, image: r.path, words: Array.from(top, (w) => ({ word: vocabulary[w], score: round(probabilities[w]) })) });
          }
        }
        progress.tick(batch.records.length);
      }
      progress.stop();
      if (wordIndex >= 0) {
        ranked.sort((a, b) => b.score - a.score || a.order - b.order);
        for (const r of ranked.slice(0, args.top ?? ranked.length)) await out.write({ id: r.id, image: r.image, word: args.word, score: round(r.score) });
      }
      await out.close();
    } catch (err) {
      progress.stop();
      await out.abort();
      throw err;
    } finally {
      await inference.close();
    }
    if (shard) {
      await writeShardManifest({
        command: 'tag',
        shard,
        model: args.model,
        settings: { k: args.k, 'by-type': args['by-type'], input: args.input ?? null, images: args.images.length },
        outputs: [{ role: 'out', kind: 'lines', target: targets.out }, ...(targets.wordTypes !== undefined ? [{ role: 'word-types', kind: 'same' as const, target: targets.wordTypes }] : [])],
        positions,
      }, io.outputs);
    }
    writeSkipSummary(skips, io, 'tag');
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  await checkFileOutput(args['word-types'], '--word-types');
}
