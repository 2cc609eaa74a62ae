import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadModel, saveModel, loadMetadata } from '../lib/backend/model-io.js';
import { checkInputFile } from '../lib/io/paths.js';
import { requireArray } from '../lib/io/ndjson.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { decodeRecords, imageToBytes, readImageRecords } from '../lib/image/records.js';
import { DEFAULT_TOWER, buildWeakModel, initWordMatrix, smallTowerSpec, type WeakModelConfig } from '../lib/models/weak-model.js';
import { nearestVocabularyWords, readWordVectors } from '../lib/text/word-vectors.js';
import { DEFAULT_THESAURUS, readThesaurus } from '../lib/text/thesaurus.js';
import { attentionSetup } from '../lib/train/type-targets.js';
import type { UnknownTypes } from '../lib/models/type-attention.js';
import { parseInputSize } from '../lib/models/towers/index.js';
import { backboneOptions, openTower, resizeModeFor, towerNamesText, towerSpecFor, type BackboneArgs, type TowerRecord } from '../lib/train/tower-options.js';
import { buildWordIndex } from '../lib/train/word-sampler.js';
import { embedStore, evaluateTagging, openWeakParallel, trainStep, trainStepParallel, validationSubset, weakModels, type StepOptions } from '../lib/train/weak-trainer.js';
import { typesFromImageViews, visualTypesRecord, type VisualTypesRecord } from '../lib/models/visual-word-types.js';
import { stageFeatureModel } from '../lib/models/stage-features.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import type { ImageStore } from '../lib/image/batch.js';
import { copyMatchingWeights, readVocabulary, WEAK_MODEL_KIND, type WeakModelMetadata, type EpochLog } from '../lib/models/weak-files.js';
import { splitOf } from '../lib/random.js';
import { startProgress } from '../lib/progress.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { initialTrainingState, trainLoop } from '../lib/train/loop.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { inputSizeText, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, share } from '../lib/options.js';

interface WeakArgs extends LoopArgs {
  input: string;
  vocab: string;
  'top-k': number;
  'image-field': string;
  'tokens-field': string;
  'group-field': string;
  'val-fraction': number;
  'val-images': number;
  'input-size': string;
  tower: string;
  width: number;
  blocks: number;
  stages: number;
  projection: number;
  negatives: number;
  loss: 'sampled' | 'full';
  sampling: 'uniform' | 'frequency';
  'close-negatives': number;
  'close-pool': number;
  batch: number;
  'epoch-size': number;
  lr: number;
  momentum: number;
  'stop-patience': number;
  'head-epochs': number;
  dropout: number;
  init?: string;
  'init-words'?: string;
  'close-words'?: string;
  attention: 'none' | 'types';
  thesaurus?: string;
  'unknown-types': UnknownTypes;
  'type-weight': number;
  'held-out-types': number;
  backend: string;
  workers: number;
}

type Args = WeakArgs & BackboneArgs;

const KS = [1, 5, 10, 15];

export default defineCommand<Args>({
  name: 'train-weak',
  summary: 'train a CNN to predict the words of product text from images (weak supervision)',
  description: `Joulin et al. 2015 as extended at Heuritech (the report, ch. 2 and 4). Reads crawl-tokenize output (one record per product image with an image path and its tokens) and the vocabulary it wrote, and trains a small ResNet-style image tower z = f(x) with an optional low-rank projection (the report's W1) and a word matrix W (K x dim): the score of word k is w_k . z.

Each training example picks a word uniformly from the vocabulary, then an image whose bag holds it, and predicts that word with a softmax over the positive and --negatives sampled words outside the image's bag (--loss full: the whole vocabulary). --close-negatives S draws a share S of the negatives from the positive word's nearest words in the current embedding (report 4.2). Images get random crops and flips.

SGD with momentum; the learning rate is divided by 10 after --patience epochs without a better validation precision@1, and training stops after --stop-patience such epochs or --epochs. An epoch is --epoch-size samples. --head-epochs trains W (and the projection) first with the tower frozen. The validation split is held out by a stable hash of the product (--group-field), so all images of a product are on one side; --val-images scores a fixed, evenly spread part of them, and the training workers score them in parallel. Each epoch logs loss and validation precision@k / recall@k (k = 1, 5, 10, 15) on stderr and in the model's log.json, and writes a checkpoint; --resume continues from it exactly.

The output is a model directory (model.json, weights, metadata.json with vocabulary, config and log) for tag, embed and rise. Decoded images are kept in memory as bytes (about 3 x (1.125 x input size)^2 bytes each).

With --attention types, training ends by embedding every image (the tower's stages by mean and max) and, for each type, fitting a ridge regression from those features to the typed words of that type its bag holds; each word seen on 2 images or more takes the type on whose view its images score highest: a type from visual evidence, which a word whose thesaurus type is hidden or missing can get (its vector cannot: bench/RESULTS.md). It is kept in the model for tag --word-types and --by-type.`,
  options: {
    input: { alias: 'i', describe: 'crawl-tokenize NDJSON (image path + tokens per line); - for stdin', type: 'string', default: '-' },
    vocab: { describe: 'vocabulary NDJSON ({word, count, df} by frequency) from crawl-tokenize --vocab', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'model directory to write (replaced atomically at the end)', type: 'string', demandOption: true },
    'top-k': { describe: 'use the first K words of the vocabulary (0: all)', type: 'number', default: 0, check: nonNegativeInt },
    'image-field': { describe: 'record field holding the image path', type: 'string', default: 'image' },
    'tokens-field': { describe: 'record field holding the bag of words', type: 'string', default: 'tokens' },
    'group-field': { describe: 'record field naming the product (split key: crawl-tokenize writes the page or row as source); falls back to id', type: 'string', default: 'source' },
    'val-fraction': { describe: 'share of products held out for validation', type: 'number', default: 0.1, check: share },
    'val-images': { describe: 'score each epoch on this many held-out images, spread evenly through them (0: all; 8,861 held-out images at 96 px on MobileNetV2 cost about 4 minutes of one thread per epoch)', type: 'number', default: 0, check: nonNegativeInt },
    tower: { describe: `tower family (${towerNamesText()}; NAME:ALPHA sets the width multiplier of resnet*/mobilenetv2)`, type: 'string', default: 'small' },
    'input-size': { describe: 'input side in pixels, or HxW (e.g. 96x64: images are padded to fit, not cropped)', type: 'string', default: String(DEFAULT_TOWER.inputSize), check: inputSizeText },
    width: { describe: 'small tower: filters of the first stage (doubled at each stage)', type: 'number', default: DEFAULT_TOWER.width, check: positiveInt },
    blocks: { describe: 'small tower: residual blocks per stage', type: 'number', default: DEFAULT_TOWER.blocksPerStage, check: positiveInt },
    stages: { describe: 'small tower: stages (each after the first halves the resolution)', type: 'number', default: DEFAULT_TOWER.stages, check: positiveInt },
    projection: { describe: 'low-rank projection dimension before W (0: none)', type: 'number', default: DEFAULT_TOWER.projection, check: nonNegativeInt },
    negatives: { describe: 'negative words sampled per example', type: 'number', default: 50, check: positiveInt },
    loss: { describe: 'sampled (positive + negatives) or full softmax', choices: ['sampled', 'full'], default: 'sampled' },
    sampling: { describe: 'uniform: word first, then an image (the papers); frequency: image first', choices: ['uniform', 'frequency'], default: 'uniform' },
    'close-negatives': { describe: 'share of negatives drawn from the nearest words of the positive (0..1)', type: 'number', default: 0, check: share },
    'close-pool': { describe: 'how many nearest words close negatives are drawn from', type: 'number', default: 20, check: positiveInt },
    'close-words': { describe: 'take the nearest words from these word vectors (train-word2vec .npy + ids) instead of the current word matrix (report 4.2)', type: 'string' },
    attention: { describe: 'types: the fashion-type attention model (report 4.3): the embedding is one --projection-wide sub-vector per thesaurus type, each word is scored on its types\' sub-vectors', choices: ['none', 'types'], default: 'none' },
    thesaurus: { describe: "with --attention types: word types from this thesaurus JSON; default: atelier's data/fashion-thesaurus.json", type: 'string' },
    'unknown-types': { describe: 'with --attention types: the type target of words the thesaurus lacks (report 4.3): zero (none), uniform, or entropy (push to one type)', choices: ['zero', 'uniform', 'entropy'], default: 'zero' },
    'type-weight': { describe: 'with --attention types: weight of the type loss beside the word loss', type: 'number', default: 1, check: nonNegativeNumber },
    'held-out-types': { describe: 'with --attention types: share of the thesaurus words whose type training does not see (to measure the type classifier; listed in the model)', type: 'number', default: 0, check: share },
    'init-words': { describe: 'start the word matrix from these word vectors (train-word2vec .npy + ids; report 4.1); --projection 0 becomes their width', type: 'string' },
    batch: { describe: 'examples per step', type: 'number', default: 32, check: positiveInt },
    'epoch-size': { describe: 'samples per epoch', type: 'number', default: 4096, check: positiveInt },
    ...loopOptions({ epochs: 30, patience: 3, better: 'validation improvement', patienceAction: 'lr is divided by 10', seeds: 'initialisation, sampling, augmentation' }),
    lr: { describe: 'initial learning rate', type: 'number', default: 0.1, check: positiveNumber },
    momentum: { describe: 'SGD momentum', type: 'number', default: 0.9, check: share },
    'stop-patience': { describe: 'epochs without validation improvement before training stops', type: 'number', default: 8, check: positiveInt },
    'head-epochs': { describe: 'epochs that train only W and the projection, the tower frozen (then all is fine-tuned: report 2.5)', type: 'number', default: 0, check: nonNegativeInt },
    dropout: { describe: 'dropout rate on the embedding during training', type: 'number', default: 0.2, check: share },
    init: { describe: 'start from an earlier atelier model (weights copied where names and shapes match)', type: 'string' },
    ...backboneOptions,
    ...backendOption,
    ...trainWorkersOption,
  },
  examples: [
    ['atelier train-weak -i products.ndjson --vocab vocab.ndjson -o weak.model', 'train with the defaults'],
    ['atelier train-weak -i p.ndjson --vocab v.ndjson -o m --top-k 1000 --projection 400 --close-negatives 0.3', 'the report 4.2 setting'],
    ['atelier train-weak -i p.ndjson --vocab v.ndjson -o m --resume', 'continue an interrupted run'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    const vocabulary = await readVocabulary(args.vocab, args['top-k']);
    const wordId = new Map(vocabulary.map((w, i) => [w, i]));
    const input = parseInputSize(args['input-size']);
    const smallParams = { width: args.width, blocks: args.blocks, stages: args.stages };
    towerSpecFor(args.tower, input, args.seed, smallParams, args);
    const resize = resizeModeFor(input);
    const stored = { height: Math.round(input.height * 1.125), width: Math.round(input.width * 1.125) };
    // Inputs first: a mistake is reported before the backend loads.
    await checkInputFile(args.input);
    if (args.init) await loadMetadata(args.init);
    const initWords = args['init-words'] ? await readWordVectors(args['init-words']) : undefined;
    const closeVectors = args['close-words'] ? await readWordVectors(args['close-words']) : undefined;
    if (closeVectors && args['close-negatives'] === 0) throw new UsageError('needs --close-negatives above 0 (the share of negatives taken from the near words)', { field: '--close-words' });
    // Report 4.1: W = W1 W2, the projection as wide as the word vectors.
    const projection = args.projection || (initWords?.dim ?? 0);
    const attention = args.attention === 'types' ? attentionSetup(await readThesaurus(args.thesaurus ?? DEFAULT_THESAURUS), vocabulary, args['held-out-types'], args['unknown-types']) : undefined;
    if (attention && projection === 0) throw new UsageError('--attention types needs the size of each type\'s sub-vector (the report: 400)', { field: '--projection' });
    if (initWords && projection !== initWords.dim) throw new UsageError(`the word vectors are ${initWords.dim}-d: use --projection ${initWords.dim} (or 0)`, { field: '--projection' });

    // Read and decode every usable record; bags are vocabulary ids.
    const skips = createSkipCounter();
    const train: { pixels: Uint8Array[]; bags: Int32Array[] } = { pixels: [], bags: [] };
    const val: { pixels: Uint8Array[]; bags: Int32Array[] } = { pixels: [], bags: [] };
    let records = 0;
    let emptyBags = 0;
    const tokensField = args['tokens-field'];
    const bagOf = (record: Record<string, unknown>, file: string, line: number): Int32Array => {
      const tokens = requireArray(record, tokensField, { file, line });
      const ids = new Set<number>();
      for (const t of tokens) {
        const id = typeof t === 'string' ? wordId.get(t) : undefined;
        if (id !== undefined) ids.add(id);
      }
      return Int32Array.from(ids).sort();
    };
    const source = readImageRecords(args.input, args['image-field'], 'id', io.stdin);
    const checked = (async function* () {
      for await (const r of source) {
        records++;
        bagOf(r.record, r.file, r.line);
        yield r;
      }
    })();
    const progress = startProgress(io.stderr, { label: 'decoding' });
    for await (const r of decodeRecords(checked, { width: stored.width, height: stored.height, fit: resize }, skips, io, 'train-weak')) {
      const bag = bagOf(r.record, r.file, r.line);
      if (bag.length === 0) {
        emptyBags++;
        continue;
      }
      const group = String(r.record[args['group-field']] ?? r.record.id ?? r.path);
      const side = splitOf(group, 0, args['val-fraction']) === 'val' ? val : train;
      side.pixels.push(imageToBytes(r.image));
      side.bags.push(bag);
      progress.tick(1);
    }
    progress.stop();
    if (records === 0) throw new UsageError('no records in the input', { file: args.input === '-' ? 'stdin' : args.input });
    if (train.pixels.length === 0) throw new UsageError(`no usable training images (${records} records, ${skips.total} corrupt, ${emptyBags} without a vocabulary word)`, { file: args.input === '-' ? 'stdin' : args.input });
    const scored = validationSubset(val, args['val-images']);
    const scoredText = scored.bags.length < val.bags.length ? ` (${scored.bags.length} of them scored each epoch)` : '';
    io.stderr.write(`atelier train-weak: ${train.pixels.length} training and ${val.pixels.length} validation images${scoredText}, ${vocabulary.length} words, ${emptyBags} images without a vocabulary word\n`);
    writeSkipSummary(skips, io, 'train-weak');
    // Only now: decoding needs no backend, and a record's mistake is then its one line.
    const choice = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });

    const config: WeakModelConfig = {
      inputSize: input.height, width: args.width, blocksPerStage: args.blocks, stages: args.stages,
      projection, vocabularySize: vocabulary.length, seed: args.seed, ...(attention ? { attentionTypes: attention.types.length } : {}),
    };
    // Round-1 settings keep round 1's fingerprint, so their checkpoints still resume.
    const roundOne = args.tower === 'small' && !args.backbone && input.height === input.width;
    const towerSettings = roundOne ? {} : { tower: args.tower, input, backbone: args.backbone ?? null, layer: args['backbone-layer'] ?? null };
    const schedule = args['backbone-lr'] === 1 && !args['freeze-bn'] ? {} : { backboneLr: args['backbone-lr'], freezeBn: args['freeze-bn'] };
    const wordSettings = { ...(args['init-words'] ? { initWords: args['init-words'] } : {}), ...(args['close-words'] ? { closeWords: args['close-words'] } : {}), ...(attention ? { attention: [args['unknown-types'], args['type-weight'], attention.heldOut.length] } : {}) };
    const fingerprint = JSON.stringify({ config, vocabulary: vocabulary.length, first: vocabulary.slice(0, 20), train: train.pixels.length, val: val.pixels.length, ...(scored.bags.length < val.bags.length ? { scored: scored.bags.length } : {}), ...towerSettings, ...schedule, ...wordSettings });
    const trainStore: ImageStore = { pixels: train.pixels, storedSize: stored.height, storedWidth: stored.width };
    const valStore: ImageStore = { pixels: scored.pixels, storedSize: stored.height, storedWidth: stored.width };
    const index = buildWordIndex(train.bags, vocabulary.length);

    const optimizer = tf.train.momentum(args.lr, args.momentum);
    let fresh: { model: tf.LayersModel; record: TowerRecord } | null = null;
    if (!args.resume) {
      const opened = await openTower({ name: args.tower, input, seed: args.seed, smallParams, args });
      fresh = { model: buildWeakModel(config, opened.tower), record: opened.record };
      if (args.init) {
        const copied = copyMatchingWeights((await loadModel(args.init)).model, fresh.model);
        io.stderr.write(`atelier train-weak: initialised ${copied} weight tensors from ${args.init}\n`);
      }
      if (initWords) {
        const row = new Map(initWords.words.map((w, i) => [w, i]));
        const rows = new Float32Array(vocabulary.length * initWords.dim);
        const present = vocabulary.map((w, k) => {
          const r = row.get(w);
          if (r !== undefined) rows.set(initWords.rows.subarray(r * initWords.dim, (r + 1) * initWords.dim), k * initWords.dim);
          return r !== undefined;
        });
        await initWordMatrix(fresh.model, rows, present);
        io.stderr.write(`atelier train-weak: word matrix started from ${present.filter(Boolean).length} of ${vocabulary.length} word vectors in ${args['init-words']}\n`);
      }
    }
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/']];
    // A resumed run takes its model (and tower record) from the checkpoint: no backbone is read again.
    const { state, model, metadata: saved } = await startOrResume({
      resume: args.resume, dir: checkpointDirOf(args), fingerprint, model: fresh?.model ?? null, optimizers, io, command: 'train-weak',
      fresh: () => initialTrainingState(args.seed, fingerprint, { bestScore: 1, lr: args.lr, sinceDecay: 0 }),
    });
    const towerRecord = fresh?.record ?? (saved.tower as TowerRecord | undefined) ?? { ...smallTowerSpec(config, args.seed), resize };
    const models = weakModels(model);
    const closeWords = closeVectors ? nearestVocabularyWords(closeVectors, vocabulary, args['close-pool']) : undefined;
    const workers = trainingWorkers(choice, args.workers, io.env);
    const types = attention ? { targets: attention.targets, entropy: attention.entropy, weight: args['type-weight'] } : undefined;
    const parallel = workers > 1 ? await openWeakParallel(model, trainStore, workers, types, valStore) : null;
    const baseline = mostFrequentWordPrecision(train.bags, scored.bags, vocabulary.length);
    const stepOptions = (epoch: number): StepOptions => ({
      batchSize: args.batch, inputSize: input, towerLrScale: args['backbone-lr'], freezeBn: args['freeze-bn'], negatives: Math.min(args.negatives, vocabulary.length - 1), loss: args.loss,
      sampling: args.sampling, dropout: args.dropout, headOnly: epoch <= args['head-epochs'],
      closeShare: args['close-negatives'], closeCount: args['close-pool'], closeWords,
      types,
    });
    const steps = Math.max(1, Math.ceil(args['epoch-size'] / args.batch));

    await trainLoop({
      model, state, maxEpochs: args.epochs, patience: args['stop-patience'], stopAfter: args['stop-after'], io, command: 'train-weak',
      // Validation P@1 only steers the schedule and the stop: the model written is the last epoch's.
      keepBest: false, minDelta: 0,
      schedule: { optimizer, patience: args.patience, factor: 10 },
      checkpoint: { dir: checkpointDirOf(args), kind: WEAK_MODEL_KIND, optimizers, metadata: { tower: towerRecord } },
      batches: () => Array.from({ length: steps }, () => args.batch),
      samplesIn: (batch) => batch,
      step: (_batch, random, epoch) =>
        parallel ? trainStepParallel(parallel, models, optimizer, trainStore, index, random, stepOptions(epoch)) : trainStep(models, optimizer, trainStore, index, random, stepOptions(epoch)),
      async validate() {
        const started = Date.now();
        const scores = scored.pixels.length ? await evaluateTagging(model, valStore, scored.bags, input, KS, parallel) : { precision: {}, recall: {}, images: 0 };
        const metrics = { ...scores, seconds: (Date.now() - started) / 1000 };
        return { score: -((metrics.precision as Record<number, number>)[1] ?? 0), metrics };
      },
      logEntry(epoch, validation): EpochLog {
        const metrics = validation!.metrics as { precision: Record<number, number>; recall: Record<number, number>; images: number; seconds: number };
        return {
          epoch: epoch.epoch, lr: epoch.lr!, loss: epoch.loss, phase: stepOptions(epoch.epoch).headOnly ? 'head' : 'full', seconds: epoch.seconds, imagesPerSecond: epoch.samples / epoch.seconds,
          precision: metrics.precision, recall: metrics.recall, validationImages: metrics.images, validationSeconds: metrics.seconds, baselinePrecision1: baseline,
        };
      },
      onEpoch(line) {
        const entry = line as EpochLog;
        io.stderr.write(`atelier train-weak: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)} lr ${entry.lr} P@1 ${fmt(entry.precision[1] ?? 0)} P@5 ${fmt(entry.precision[5])} R@5 ${fmt(entry.recall[5])} (most-frequent-word P@1 ${fmt(baseline)}) ${entry.imagesPerSecond.toFixed(1)} img/s\n`);
      },
    });
    await parallel?.close();
    let visualTypes: VisualTypesRecord | undefined;
    if (attention) {
      // Each word's type from the images that carry it, training and validation alike (no type is read from them),
      // on the tower's stage features by mean and max: patterns and colours the pooled features lose.
      const all: ImageStore = { pixels: [...train.pixels, ...val.pixels], storedSize: stored.height, storedWidth: stored.width };
      const { rows, dim } = await embedStore(stageFeatureModel(model, 'stages-max'), all, input);
      const typed = typesFromImageViews(rows, dim, [...train.bags, ...val.bags], attention.trainingTypes, attention.types.length);
      visualTypes = visualTypesRecord(typed, attention.types);
      io.stderr.write(`atelier train-weak: ${visualTypes.type.filter((t) => t !== null).length} of ${vocabulary.length} words typed by their images (the others have fewer than 2)\n`);
    }
    const attentionRecord = attention ? { attention: { types: attention.types, unknown: args['unknown-types'], thesaurusTypes: attention.thesaurusTypes, heldOut: attention.heldOut, visualTypes } } : {};
    const metadata: WeakModelMetadata = { kind: WEAK_MODEL_KIND, vocabulary, config, backend: choice.name, log: state.log as EpochLog[], tower: towerRecord, ...attentionRecord };
    await saveModel(model, args.out, { metadata: metadata as unknown as Record<string, unknown>, outputs: io.outputs });
    await writeFileAtomic(logPathOf(args.out), JSON.stringify(state.log, null, 2) + '\n', io.outputs);
    optimizer.dispose();
  },
});

function fmt(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(3);
}

/** Precision@1 of always answering the most frequent training word: the bar a model must clear. */
function mostFrequentWordPrecision(trainBags: Int32Array[], valBags: Int32Array[], vocabularySize: number): number {
  const counts = new Float64Array(vocabularySize);
  for (const bag of trainBags) for (const w of bag) counts[w]++;
  let top = 0;
  for (let w = 1; w < vocabularySize; w++) if (counts[w] > counts[top]) top = w;
  const withWords = valBags.filter((b) => b.length > 0);
  return withWords.length ? withWords.filter((b) => b.includes(top)).length / withWords.length : 0;
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkLoopOutputs(args);
}
