import { defineCommand, UsageError, warn } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { tf } from '../lib/backend/tf.js';
import { takeValues } from '../lib/backend/read.js';
import { loadModel, saveModel, loadMetadata } from '../lib/backend/model-io.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { DEFAULT_TOWER } from '../lib/models/weak-model.js';
import { batchPixels, compactInput, inputSides, type InputShape } from '../lib/image/batch.js';
import { isTowerName, modelInputSize, parseInputSize } from '../lib/models/towers/index.js';
import { resizeModeOf } from '../lib/models/image-features.js';
import { backboneSourceOptions, openTower, towerNamesText, type BackboneArgs } from '../lib/train/tower-options.js';
import type { ImageFit } from '../lib/image/decode.js';
import { startProgress } from '../lib/progress.js';
import { readLabelledRecords } from '../lib/facets/labels.js';
import { splitOf } from '../lib/random.js';
import { imageFeatureModel, towerFeatures } from '../lib/facets/classifier-model.js';
import { decodeImageStore } from '../lib/facets/inputs.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import { openTripletParallel, tripletGradients } from '../lib/train/triplet-parallel.js';
import { initialTrainingState, trainLoop, type EpochLogEntry } from '../lib/train/loop.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { SIMILARITY_MODEL_KIND, groupBatches, l2Normalize, leaveOneOutTop1, mineSemiHardTriplets, pairwiseSquaredDistances, tripletHingeLoss } from '../lib/similarity/triplet.js';
import { fraction, inputSizeText, integerIn, nonNegativeInt, positiveInt, positiveNumber, share } from '../lib/options.js';
import { withSpatialTransformer } from '../lib/models/attention/stn.js';

interface Args extends BackboneArgs, LoopArgs {
  input: string;
  'positive-field': string;
  'id-field': string;
  'image-field': string;
  tower?: string;
  'tower-layer': 'pooled' | 'projection' | 'embedding';
  'input-size': string;
  width: number;
  blocks: number;
  stages: number;
  projection: number;
  margin: number;
  groups: number;
  'per-group': number;
  'val-fraction': number;
  lr: number;
  stn?: string;
  'stn-min-scale': number;
  'stn-max-scale': number;
  backend: string;
  workers: number;
}

export default defineCommand<Args>({
  name: 'train-triplet',
  summary: 'learn an image embedding from triplets (DeepRank hinge loss, semi-hard negatives) for embed/knn',
  description: `Similarity learning as GILT's TiefVision does it with DeepRank (Wang et al. 2014): a siamese image tower is trained on triplets (anchor, positive, negative) with the hinge loss max(0, margin + D(a, p) - D(a, n)), D the squared Euclidean distance between L2-normalised embeddings. An id repeated with the same positive group is used once (a warning counts them); with another group it is an error (exit 2) naming both lines.

Positives share the value of --positive-field (the item: other photos of the same product, or a facet label for coarser similarity). Each batch holds --groups groups of up to --per-group images; every (anchor, positive) pair in it takes the closest negative that is still farther than the positive (semi-hard, FaceNet), or the farthest negative when all are closer. Images get random crops and flips.

Starts from --tower (a train-weak, train-classifier or train-triplet model; its --tower-layer features) or from a fresh tower (--input-size, --width, --blocks, --stages); --projection D adds a learned D-dimensional embedding on top. --stn SIZE puts a spatial transformer in front of the tower (GILT's "spatial transformer attachment", as train-classifier --stn): the model reads images of SIZE, a small localisation net picks a box (its side between --stn-min-scale and --stn-max-scale of the image) and the tower reads that box resampled to its input; here the transformer learns from the triplet loss alone (there are no classes for its own evidence term) and is saved in the model. A --val-fraction of the groups (by a stable hash) is held out: training stops after --patience epochs without a better validation top-1 retrieval (leave-one-out, cosine) and keeps the best weights. Each epoch writes a checkpoint (default <out>.checkpoint) for --resume; the log goes to <out>.log.json.

The output is an image -> embedding model: 'atelier embed -m <out> --normalize' computes embeddings that knn and eval-retrieval measure directly. Train on the train split only (e.g. the In-Shop 'train' images) to keep the retrieval evaluation honest.`,
  options: {
    input: { alias: 'i', describe: 'NDJSON or CSV with an id, an image path and the positive field per line (- for stdin)', type: 'string', default: '-' },
    'positive-field': { describe: 'records with the same value here are positives of each other (item, or a label)', type: 'string', default: 'item' },
    'id-field': { describe: 'field holding the record id', type: 'string', default: 'id' },
    'image-field': { describe: 'field holding the image path', type: 'string', default: 'image' },
    tower: { alias: 't', describe: `image model directory to start from, or a family for a fresh tower (${towerNamesText()}[:ALPHA]; default small)`, type: 'string' },
    'tower-layer': { describe: 'tower features the embedding starts from', choices: ['pooled', 'projection', 'embedding'], default: 'embedding' },
    'input-size': { describe: 'fresh tower or backbone: input side in pixels, or HxW (non-square: padded, not cropped)', type: 'string', default: String(DEFAULT_TOWER.inputSize), check: inputSizeText },
    width: { describe: 'fresh tower: filters of the first stage', type: 'number', default: DEFAULT_TOWER.width, check: positiveInt },
    blocks: { describe: 'fresh tower: residual blocks per stage', type: 'number', default: DEFAULT_TOWER.blocksPerStage, check: positiveInt },
    stages: { describe: 'fresh tower: stages', type: 'number', default: DEFAULT_TOWER.stages, check: positiveInt },
    ...backboneSourceOptions,
    projection: { describe: 'learned embedding dimension on top of the tower (0: the tower features are the embedding)', type: 'number', default: 0, check: nonNegativeInt },
    margin: { describe: 'hinge margin g on squared distances of unit vectors', type: 'number', default: 0.1, check: positiveNumber },
    groups: { describe: 'groups (items) per batch', type: 'number', default: 8, check: integerIn(2) },
    'per-group': { describe: 'images per group in a batch (at most)', type: 'number', default: 4, check: integerIn(2) },
    'val-fraction': { describe: 'share of groups held out for early stopping', type: 'number', default: 0.1, check: share },
    ...loopOptions({ epochs: 20, patience: 4, better: 'a better validation top-1', seeds: 'initialisation, batches, augmentation' }),
    lr: { describe: 'Adam learning rate', type: 'number', default: 0.0003, check: positiveNumber },
    stn: { describe: 'a spatial transformer in front of the tower reads images of this size (N or HxW) and crops the region it chooses to the tower\'s input', type: 'string', check: inputSizeText },
    'stn-min-scale': { describe: '--stn: smallest crop side, as a share of the image side', type: 'number', default: 0.2, check: fraction },
    'stn-max-scale': { describe: '--stn: largest crop side, as a share of the image side', type: 'number', default: 1, check: fraction },
    out: { alias: 'o', describe: 'model directory to write', type: 'string', demandOption: true },
    ...backendOption,
    ...trainWorkersOption,
  },
  examples: [
    ["jq -c 'select(.split == \"train\")' images.ndjson > train.ndjson && atelier train-triplet -i train.ndjson -t weak.model -o sim.model", 'fine-tune the weak tower for same-item retrieval'],
    ['atelier embed -m sim.model -i images.ndjson --normalize -o sim.npy && atelier eval-retrieval -p list_eval_partition.txt -e sim.npy', 'measure it'],
    ['atelier train-triplet -i train.ndjson --positive-field silhouette --projection 64 -o shape.model', 'similarity by facet, from a fresh tower'],
  ],
  async run(args, io) {
    await checkOutputs(args);

    const set = await readLabelledRecords(args.input, { labelField: args['positive-field'], idField: args['id-field'], groupField: args['positive-field'], stdin: io.stdin });
    if (set.repeated > 0) warn(io, 'train-triplet', `${set.repeated} records repeat an earlier id with the same ${args['positive-field']}; each id is used once`);
    // Inputs first: a mistake is reported before the backend loads.
    if (args.tower && !isTowerName(args.tower)) await loadMetadata(args.tower);
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });

    let features: tf.LayersModel;
    let inputSize: InputShape;
    let towerRecord: unknown = args.tower ?? null;
    let fit: ImageFit = 'cover';
    const fresh = args.backbone !== undefined || args.tower === undefined || isTowerName(args.tower);
    if (!fresh) {
      const loaded = await loadModel(args.tower!);
      inputSize = compactInput(modelInputSize(loaded.model, args.tower!));
      features = towerFeatures(loaded.model, args['tower-layer'], args.tower!);
      fit = resizeModeOf(loaded.metadata);
    } else {
      if (args.backbone && args.tower && !isTowerName(args.tower)) throw new UsageError('give either --tower (a model) or --backbone', { field: '--backbone' });
      const input = parseInputSize(args['input-size']);
      const opened = await openTower({ name: args.tower ?? 'small', input, seed: args.seed, smallParams: { width: args.width, blocks: args.blocks, stages: args.stages }, args });
      features = imageFeatureModel(opened.tower, args['tower-layer']);
      inputSize = compactInput(input);
      fit = opened.record.resize;
      if (args.tower !== undefined || args.backbone) towerRecord = opened.record;
    }
    const stnImage = args.stn ? parseInputSize(args.stn, '--stn') : undefined;
    if (stnImage) {
      // GILT's spatial transformer attachment, as train-classifier --stn: it learns where to crop from the triplet loss alone.
      features = withSpatialTransformer(features, stnImage, { minScale: args['stn-min-scale'], maxScale: args['stn-max-scale'], filters: 8, seed: args.seed + 900 });
      inputSize = compactInput(stnImage);
    }
    const embedding = args.projection > 0
      ? (tf.layers.dense({ units: args.projection, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: args.seed + 5 }), name: 'similarity' }).apply(features.outputs[0]) as tf.SymbolicTensor)
      : features.outputs[0];
    const model = tf.model({ inputs: features.inputs, outputs: embedding, name: 'atelier_similarity' });

    const skips = createSkipCounter();
    const progress = startProgress(io.stderr, { label: 'decoding' });
    const { store, sourceIndex } = await decodeImageStore(set.records, args['image-field'], inputSize, skips, io, 'train-triplet', () => progress.tick(1), fit);
    progress.stop();
    writeSkipSummary(skips, io, 'train-triplet');
    const groupOf = Int32Array.from(sourceIndex, (s) => set.records[s].classIndex);
    const train: number[] = [];
    const val: number[] = [];
    sourceIndex.forEach((s, slot) => (splitOf(set.records[s].group, 0, args['val-fraction']) === 'val' ? val : train).push(slot));
    const members = new Map<number, number[]>();
    for (const slot of train) {
      const g = groupOf[slot];
      if (!members.has(g)) members.set(g, []);
      members.get(g)!.push(slot);
    }
    const trainGroups = [...members.values()];
    const usable = trainGroups.filter((m) => m.length >= 2).length;
    if (usable < 2) throw new UsageError(`only ${usable} ${args['positive-field']} group(s) with two or more training images; triplets need at least 2`, { file: args.input, field: args['positive-field'] });
    io.stderr.write(`atelier train-triplet: ${train.length} training images in ${usable} groups with positives, ${val.length} validation images\n`);

    const optimizer: tf.Optimizer = tf.train.adam(args.lr);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const workers = trainingWorkers(backend, args.workers, io.env);
    const parallel = workers > 1 ? await openTripletParallel(model, store, workers) : null;
    const embedImages = async (slots: number[]): Promise<Float32Array> => {
      const out: Float32Array[] = [];
      let dim = 0;
      for (let start = 0; start < slots.length; start += 64) {
        const chunk = slots.slice(start, start + 64);
        const y = tf.tidy(() => model.predict(tf.tensor4d(batchPixels(store, chunk, inputSize), [chunk.length, inputSides(inputSize).height, inputSides(inputSize).width, 3])) as tf.Tensor2D);
        dim = y.shape[1];
        out.push(Float32Array.from(await takeValues(y)));
      }
      const rows = new Float32Array(slots.length * dim);
      let offset = 0;
      for (const part of out) {
        rows.set(part, offset);
        offset += part.length;
      }
      return rows;
    };
    const dim = model.outputs[0].shape[1] as number;
    const valTop1 = async (): Promise<number> => (val.length ? leaveOneOutTop1(await embedImages(val), dim, val.map((s) => groupOf[s])) : 0);

    const fingerprint = JSON.stringify({ field: args['positive-field'], tower: args.tower ?? null, ...(stnImage ? { stn: [stnImage, args['stn-min-scale'], args['stn-max-scale']] } : {}), ...(args.backbone ? { backbone: towerRecord } : {}), layer: args['tower-layer'], inputSize, projection: args.projection, margin: args.margin, lr: args.lr, groups: args.groups, perGroup: args['per-group'], n: [train.length, val.length] });
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/']];
    const run = await startOrResume({
      resume: args.resume, dir: checkpointDirOf(args), fingerprint, model, optimizers, fresh: () => initialTrainingState(args.seed, fingerprint), io, command: 'train-triplet',
    });
    const { state } = run;
    let best = run.best;
    if (!args.resume) {
      const start = await valTop1();
      if (val.length) io.stderr.write(`atelier train-triplet: validation top-1 of the starting tower ${start.toFixed(3)}\n`);
      // The starting tower is the score to beat: an epoch that does not is not kept.
      if (val.length) state.bestScore = -start;
      best = model.getWeights().map((t) => t.clone());
    }

    let semiHard = 0;
    let triplets = 0;
    await trainLoop({
      model, state, best, maxEpochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], io, command: 'train-triplet',
      checkpoint: { dir: checkpointDirOf(args), kind: `${SIMILARITY_MODEL_KIND}-checkpoint`, optimizers },
      batches(random) {
        semiHard = 0;
        triplets = 0;
        return groupBatches(trainGroups, args.groups, args['per-group'], random);
      },
      async step(batch, random) {
        const groups = Int32Array.from(batch, (s) => groupOf[s]);
        if (parallel) {
          const { value, grads, mined } = await tripletGradients(parallel, variables, store, { slots: batch, groups }, { inputSize, margin: args.margin }, random);
          semiHard += mined.semiHard;
          triplets += mined.anchors.length;
          optimizer.applyGradients(grads);
          tf.dispose(Object.values(grads));
          return value;
        }
        const x = tf.tensor4d(batchPixels(store, batch, inputSize, random), [batch.length, inputSides(inputSize).height, inputSides(inputSize).width, 3]);
        const distances = () => pairwiseSquaredDistances(l2Normalize(model.apply(x, { training: true }) as tf.Tensor2D));
        // Mining needs the distances on the CPU, and no read can be awaited inside the gradient tape:
        // a forward pass before it (its BatchNorm statistics put back) gives the same distances.
        const statistics = model.nonTrainableWeights.map((w) => w.read().clone());
        const mined = mineSemiHardTriplets(await takeValues(tf.tidy(distances)), groups, args.margin);
        model.nonTrainableWeights.forEach((w, i) => w.write(statistics[i]));
        tf.dispose(statistics);
        semiHard += mined.semiHard;
        triplets += mined.anchors.length;
        const { value, grads } = tf.variableGrads(() => tripletHingeLoss(distances(), mined, args.margin), variables);
        optimizer.applyGradients(grads);
        tf.dispose([x, ...Object.values(grads)]);
        return value;
      },
      async validate() {
        if (val.length === 0) return null;
        const top1 = await valTop1();
        return { score: -top1, metrics: { valTop1: top1 } };
      },
      onEpoch(line, improved) {
        const entry = line as EpochLogEntry;
        io.stderr.write(`atelier train-triplet: epoch ${entry.epoch}: ${triplets} triplets, ${(100 * semiHard / Math.max(triplets, 1)).toFixed(0)}% semi-hard\n`);
        const v = entry.valTop1 === undefined ? '' : ` val top-1 ${entry.valTop1.toFixed(3)}`;
        io.stderr.write(`atelier train-triplet: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)}${v}${improved ? ' *' : ''}\n`);
      },
    });
    await parallel?.close();
    if (state.bestEpoch === 0 && val.length) warn(io, 'train-triplet', 'no epoch beat the starting tower on validation top-1: the model written is the starting tower');
    const metadata = {
      kind: SIMILARITY_MODEL_KIND, positiveField: args['positive-field'], inputSize, projection: args.projection, margin: args.margin,
      tower: towerRecord, towerLayer: args['tower-layer'], bestEpoch: state.bestEpoch, log: state.log,
      ...(stnImage ? { stn: { input: stnImage, minScale: args['stn-min-scale'], maxScale: args['stn-max-scale'] } } : {}),
    };
    await saveModel(model, args.out, { metadata, outputs: io.outputs });
    await writeFileAtomic(logPathOf(args.out), JSON.stringify(state.log, null, 2) + '\n', io.outputs);
    io.stdout.write(JSON.stringify({ positiveField: args['positive-field'], train: train.length, val: val.length, epochs: state.epoch, bestEpoch: state.bestEpoch, valTop1: val.length === 0 || state.bestScore === Infinity ? null : -state.bestScore, corruptImages: skips.total }) + '\n');
    optimizer.dispose();
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkLoopOutputs(args);
  if (args['stn-min-scale'] > args['stn-max-scale']) throw new UsageError(`${args['stn-min-scale']} is above --stn-max-scale ${args['stn-max-scale']}`, { field: '--stn-min-scale' });
}
