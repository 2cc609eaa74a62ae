import { defineCommand, UsageError } from '../lib/command.js';
import { checkInputFile } from '../lib/io/paths.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { openNpyWriter } from '../lib/io/npy.js';
import { idsPathFor, ROWS_DIGEST_FIELD } from '../lib/io/features.js';
import { readVocabulary } from '../lib/models/weak-files.js';
import { readWordSentences } from '../lib/text/bags.js';
import { trainWord2Vec, type Word2VecOptions } from '../lib/text/word2vec.js';
import { anyInt, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, share } from '../lib/options.js';
import { splitOf } from '../lib/random.js';

/** The training settings are word2vec's own options, under the same names. */
interface Args extends Word2VecOptions {
  input: string;
  vocab: string;
  out: string;
  ids?: string;
  'top-k': number;
  'tokens-field': string;
  'group-field': string;
  'val-fraction': number;
}

export default defineCommand<Args>({
  name: 'train-word2vec',
  summary: 'word2vec (skip-gram, negative sampling) on the bags of words: the baseline and the start of train-weak\'s word matrix',
  description: `Trains word vectors on the same bags of words train-weak learns from (the report §3.6 baseline and §4.1 initialisation): each product's bag is a sentence (views of one product, sharing --group-field, count once), skip-gram with --negatives negative samples from the unigram distribution to the power 3/4, frequent words subsampled (--sample), a random reduced window of up to --window words on each side (0: the whole bag), the learning rate falling linearly from --lr. Deterministic for a --seed.

Writes the vectors of the vocabulary (the first --top-k words of --vocab, in its order) as a float32 .npy with an ids NDJSON of {id: word, row} beside it, as embed --words does: eval-words scores them, knn finds nearest words, and train-weak --init-words starts its word matrix from them (--close-words draws close negatives from their neighbours).`,
  options: {
    input: { alias: 'i', describe: 'crawl-tokenize NDJSON (a bag of words per line); - for stdin', type: 'string', default: '-' },
    vocab: { describe: 'vocabulary NDJSON ({word, ...} by frequency) from crawl-tokenize --vocab', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .npy of word vectors', type: 'string', demandOption: true },
    ids: { describe: 'output ids NDJSON (default: <out>.ids.ndjson)', type: 'string' },
    'top-k': { describe: 'use the first K words of the vocabulary (0: all; as train-weak)', type: 'number', default: 0, check: nonNegativeInt },
    'tokens-field': { describe: 'record field holding the bag of words', type: 'string', default: 'tokens' },
    'group-field': { describe: 'record field naming the product (one bag per product); falls back to id', type: 'string', default: 'source' },
    'val-fraction': { describe: "leave out the products train-weak holds out for validation with this --val-fraction (and the same --group-field), so the baseline learns from the same bags; 0: every bag", type: 'number', default: 0, check: share },
    dim: { describe: 'vector dimension (the report: 400)', type: 'number', default: 100, check: positiveInt },
    window: { describe: 'context words on each side (0: the whole bag)', type: 'number', default: 5, check: nonNegativeInt },
    negatives: { describe: 'negative samples per context word', type: 'number', default: 5, check: positiveInt },
    epochs: { describe: 'passes over the bags', type: 'number', default: 5, check: positiveInt },
    lr: { describe: 'initial learning rate', type: 'number', default: 0.025, check: positiveNumber },
    sample: { describe: 'subsampling threshold of frequent words (0: none)', type: 'number', default: 0.001, check: nonNegativeNumber },
    seed: { describe: 'random seed', type: 'number', default: 1, check: anyInt },
  },
  examples: [
    ['atelier train-word2vec -i items.ndjson --vocab vocab.ndjson -o w2v.npy', 'train with the defaults'],
    ['atelier train-word2vec -i items.ndjson --vocab vocab.ndjson -o w2v.npy --dim 400 --epochs 20 && atelier train-weak -i items.ndjson --vocab vocab.ndjson --init-words w2v.npy --projection 400 -o m', 'the report 4.1 start of W'],
  ],
  async run(args, io) {
    const idsPath = args.ids ?? idsPathFor(args.out);
    await checkFileOutput(args.out, '--out');
    await checkFileOutput(idsPath, '--ids');
    const vocabulary = await readVocabulary(args.vocab, args['top-k']);
    await checkInputFile(args.input);
    const valFraction = args['val-fraction'];
    const heldOut = valFraction > 0 ? (group: string) => splitOf(group, 0, valFraction) === 'val' : undefined;
    const { sentences, records, heldOutProducts } = await readWordSentences(args.input, vocabulary, { tokens: args['tokens-field'], group: args['group-field'] }, io.stdin, heldOut);
    if (sentences.length === 0) throw new UsageError(`no bag holds a vocabulary word (${records} records)`, { file: args.input === '-' ? 'stdin' : args.input });
    const started = Date.now();
    const rows = trainWord2Vec(sentences, vocabulary.length, args);
    // ids opened first: a run's outputs are renamed in the order opened, as embed does.
    const ids = await openNdjsonWriter(idsPath, { stdout: io.stdout, outputs: io.outputs });
    const npy = await openNpyWriter(args.out, { dtype: 'float32', rowShape: [args.dim], outputs: io.outputs });
    try {
      await npy.writeRows(rows, vocabulary.length);
      const digest = await npy.dataSha256();
      for (const [row, word] of vocabulary.entries()) await ids.write({ id: word, row, ...(row === vocabulary.length - 1 ? { [ROWS_DIGEST_FIELD]: digest } : {}) });
      await ids.close();
      await npy.close();
    } catch (err) {
      await Promise.all([npy.abort(), ids.abort()]);
      throw err;
    }
    const leftOut = heldOut ? `, ${heldOutProducts} held-out products left out` : '';
    io.stderr.write(`atelier train-word2vec: ${sentences.length} bags (${records} records${leftOut}), ${vocabulary.length} words x ${args.dim} in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${args.out}, ids -> ${idsPath}\n`);
  },
});
