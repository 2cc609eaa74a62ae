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
import { topKIndices } from '../lib/metrics/ranking.js';
import { startProgress } from '../lib/progress.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { positiveInt } from '../lib/options.js';

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
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export default defineCommand<Args>({
  name: 'tag',
  summary: 'the words that describe each image, or the images that best show a word',
  description: `Scores every vocabulary word for each image with a train-weak model and writes {id, image, words: [{word, score}]} with the --k best words per image, best first; score is the probability over the whole vocabulary (softmax of the word scores).

--word W ranks the images by that word instead (the report's "most confident images for woolen"): the output is {id, image, word, score} per image, most confident first (--top N keeps the first N). Ranking needs one number per image in memory; tagging streams.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-weak', type: 'string', demandOption: true },
    k: { describe: 'words per image', type: 'number', default: 5, check: positiveInt },
    word: { describe: 'rank images by this word instead of tagging them', type: 'string' },
    top: { describe: 'with --word, keep only the N most confident images', type: 'number', check: positiveInt },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    batch: { describe: 'images per forward pass', type: 'number', default: 64, check: positiveInt },
    ...workersOption,
    ...backendOption,
    ...engineOption,
  },
  examples: [
    ['atelier tag -m weak.model photo1.jpg photo2.jpg', 'the five best words of two photos'],
    ['atelier tag -m weak.model -i products.ndjson --k 10 | jq -c "[.id, [.words[].word]]"', 'ten words per catalogue image'],
    ['atelier tag -m weak.model -i products.ndjson --word stripes --top 20', 'the twenty most striped images'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    // Inputs first: a mistake is reported before the backend loads.
    const metadata = await loadMetadata(args.model);
    const described = requireKind(describeModel(null, metadata, args.model), WEAK_MODEL_KIND, args.model);
    const vocabulary = described.labels!;
    const wordIndex = args.word === undefined ? -1 : vocabulary.indexOf(args.word);
    if (args.word !== undefined && wordIndex < 0) throw new UsageError(`'${args.word}' is not in the model's vocabulary of ${vocabulary.length} words`, { field: '--word' });
    if (!args.images.length) await checkInputFile(args.input ?? '-');
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const { model } = await loadModel(args.model);
    const records = args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin);
    const skips = createSkipCounter();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    const ranked: Array<{ id: string; image: string; score: number; order: number }> = [];
    const inputSize = modelInputSize(model, args.model);
    const inference = await openImagePredictor(model, inputSize, { engine: args.engine, env: io.env, stderr: io.stderr, backend, workers: args.workers, commandName: 'tag' });
    const progress = startProgress(io.stderr, { label: 'tagging' });
    try {
      for await (const batch of computeFeatures(inference.predictor, records, inputSize, args.batch, skips, io, 'tag', resizeModeOf(metadata))) {
        for (const [i, r] of batch.records.entries()) {
          const probabilities = rowProbabilities(described.output, batch.rows.subarray(i * batch.dim, (i + 1) * batch.dim));
          if (wordIndex >= 0) {
            ranked.push({ id: r.id, image: r.path, score: probabilities[wordIndex], order: ranked.length });
          } else {
            const top = topKIndices(probabilities, args.k);
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
    writeSkipSummary(skips, io, 'tag');
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
}
