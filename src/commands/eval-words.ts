import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadMetadata, loadModel } from '../lib/backend/model-io.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { idsPathFor } from '../lib/io/features.js';
import { wordKernel } from '../lib/models/weak-model.js';
import { WEAK_MODEL_KIND } from '../lib/models/weak-files.js';
import { describeModel, requireKind } from '../lib/models/kinds.js';
import { DEFAULT_THESAURUS, readThesaurus, thesaurusTriplets } from '../lib/text/thesaurus.js';
import { readWordVectors } from '../lib/text/word-vectors.js';
import { randomWordVectors, scoreTriplets, tripletAccuracy, type WordVectors } from '../lib/metrics/word-triplets.js';
import { anyInt } from '../lib/options.js';

interface Args {
  words?: string;
  ids?: string;
  model?: string;
  thesaurus?: string;
  seed: number;
  triplets?: string;
  backend: string;
}

export default defineCommand<Args>({
  name: 'eval-words',
  summary: 'word-triplet accuracy of a word matrix on the fashion thesaurus (report 3.6)',
  description: `Scores word vectors on triplets (word, closer word, farther word) drawn from a thesaurus tree: a triplet is right when the word's cosine to the closer word beats its cosine to the farther one (a tie counts one half). The report measured 68.98% for its weak word matrix, 71.01% for word2vec and 50.44% for a random embedding.

The vectors are the rows of a .npy with an ids NDJSON of {id: word} (embed --words, train-word2vec), or a train-weak model's word matrix (-m). Triplets are made from the thesaurus words the vectors have: for each word, every word of its nearest group is a closer word, and one farther word is picked for each shallower level of the tree (another group of the same parent, ..., another fashion type) by a stable hash of --seed, so the same inputs give the same triplets.

The default thesaurus is data/fashion-thesaurus.json (Myntra's clothing taxonomy, colour families, textures and styles; see data/README.md). The output is one JSON object: triplets, accuracy, accuracy by fashion type and by the level the farther word parts at, and the random baseline (0.5 by construction, and as measured with normal random vectors of the same width on the same triplets).`,
  options: {
    words: { describe: 'word vectors .npy (rows) with an ids NDJSON of {id: word}', type: 'string' },
    ids: { describe: 'ids NDJSON of --words (default: <words>.ids.ndjson)', type: 'string' },
    model: { alias: 'm', describe: 'a train-weak model directory: its word matrix (instead of --words)', type: 'string' },
    thesaurus: { describe: "thesaurus JSON ({types, groups: [{path, words}]}); default: atelier's data/fashion-thesaurus.json", type: 'string' },
    seed: { describe: 'seed of the farther-word picks and of the random baseline', type: 'number', default: 1, check: anyInt },
    triplets: { describe: 'write every scored triplet ({word, closer, farther, score, ...}) to this NDJSON', type: 'string' },
    ...backendOption,
  },
  examples: [
    ['atelier eval-words -m weak.model', 'the weak model\'s word matrix'],
    ['atelier train-word2vec -i items.ndjson --vocab vocab.ndjson -o w2v.npy && atelier eval-words --words w2v.npy', 'the word2vec baseline'],
    ['atelier eval-words --words words.npy --triplets scored.ndjson', 'keep every triplet\'s score (the report\'s Table 3.4)'],
  ],
  async run(args, io) {
    if ((args.words === undefined) === (args.model === undefined)) throw new UsageError('give exactly one of --words and --model', { field: args.words === undefined ? '--words' : '--model' });
    await checkFileOutput(args.triplets, '--triplets');
    const thesaurus = await readThesaurus(args.thesaurus ?? DEFAULT_THESAURUS);
    let vectors: WordVectors;
    if (args.words !== undefined) {
      vectors = await readWordVectors(args.words, args.ids ?? idsPathFor(args.words));
    } else {
      await loadMetadata(args.model!);
      await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
      const loaded = await loadModel(args.model!);
      const meta = requireKind(describeModel(loaded.model, loaded.metadata, args.model!), WEAK_MODEL_KIND, args.model!);
      const matrix = tf.tidy(() => tf.transpose(wordKernel(loaded.model)));
      const [, dim] = matrix.shape;
      vectors = { words: meta.labels!, rows: (await matrix.data()) as Float32Array, dim };
      matrix.dispose();
    }
    const triplets = thesaurusTriplets(thesaurus, vectors.words, args.seed);
    const known = vectors.words.filter((w) => thesaurus.paths.has(w)).length;
    if (triplets.length === 0) throw new UsageError(`no triplet: ${known} of the ${vectors.words.length} words are in the thesaurus, and no two of them share a group`, { file: args.words ?? args.model });
    const typeOf = (w: string): string => thesaurus.paths.get(w)![0];
    const scored = scoreTriplets(vectors, triplets);
    const result = tripletAccuracy(scored, typeOf);
    const random = tripletAccuracy(scoreTriplets(randomWordVectors(vectors.words, vectors.dim, args.seed), triplets), typeOf);
    if (args.triplets) {
      const out = await openNdjsonWriter(args.triplets, { stdout: io.stdout, outputs: io.outputs });
      for (const t of scored) await out.write(t);
      await out.close();
    }
    io.stdout.write(JSON.stringify({
      words: vectors.words.length, thesaurusWords: known, dim: vectors.dim, ...result,
      random: { expected: 0.5, measured: random.accuracy },
    }) + '\n');
    io.stderr.write(`atelier eval-words: ${result.triplets} triplets over ${known} thesaurus words: accuracy ${result.accuracy.toFixed(4)} (random vectors ${random.accuracy.toFixed(4)}, chance 0.5)\n`);
  },
});
