import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadMetadata, loadModel, saveModel } from '../lib/backend/model-io.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { checkFileOutput, writeFileAtomic } from '../lib/io/atomic.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { boxOfRecord, decodeSquareImages, type SquareImage } from '../lib/image/boxes.js';
import { readImageRecords, type ImageRecord } from '../lib/image/records.js';
import { startProgress } from '../lib/progress.js';
import { splitOf, type Random, type SplitName } from '../lib/random.js';
import { imageFeatureModel } from '../lib/facets/classifier-model.js';
import { initialTrainingState, shuffledBatches, trainLoop, type EpochLogEntry } from '../lib/train/loop.js';
import { isTowerName, modelInputSize, parseInputSize } from '../lib/models/towers/index.js';
import { DEFAULT_TOWER } from '../lib/models/weak-model.js';
import { backboneSourceOptions, openTower, towerNamesText, type BackboneArgs } from '../lib/train/tower-options.js';
import {
  LOCATE_MODEL_KIND, boxInWindow, buildLocateModel, cropPatches, iou, locateInImages, locateLoss, mapOffsets, mapPatchSide, sampleMapPatches, sampleTrainingPatches,
  type Box, type LocatePatch, type LocatePlan,
} from '../lib/models/locate.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import { locateGradients, openLocateParallel } from '../lib/train/locate-parallel.js';
import { inputSizeText, integerIn, nonNegativeNumber, positiveInt, positiveNumber, share } from '../lib/options.js';

interface Args extends BackboneArgs, LoopArgs {
  input: string;
  'id-field': string;
  'image-field': string;
  'group-field': string;
  tower?: string;
  'input-size': string;
  width: number;
  blocks: number;
  stages: number;
  'image-size': number;
  patches: number;
  'box-weight': number;
  'test-fraction': number;
  'val-fraction': number;
  batch: number;
  lr: number;
  report?: string;
  backend: string;
  workers: number;
}

interface Sample { id: string; split: SplitName; pixels: Uint8Array; box: Box }
/** A training patch: its classifier target and whether it trains the classifier, the regressor or both. */
export default defineCommand<Args>({
  name: 'train-locate',
  summary: 'train the GILT/TiefVision garment locator: a background/foreground patch classifier slid over the photo, the box fitted to its map',
  description: `Trains the dress locator of GILT's TiefVision, after Overfeat (Sermanet et al. 2014), by transfer from a tower of the model library: the tower looks at square patches of the photo (--input-size pixels, cut at --input-size / --image-size of the side, at most half) and one output says how much of the patch is foreground: its target is the share of the patch inside the garment's box, learnt with the binary cross-entropy. Each epoch draws --patches patches per training image, half anywhere and half centred near an edge of the box.

To locate (as locate does), the classifier is slid over the photo on a quarter-patch stride (Overfeat's dense evaluation); over that grid the share is the box blurred by the patch, so the box is the one whose blur fits the map best after a gain and offset (least squares, started from the rectangle of patch centres above half the map's peak): a classifier that never says 0 or 1 outright still places the box where its map changes. With --box-weight above 0, four more outputs regress the box's edges in units of a window on foreground windows (holding 70 % of the box or more; half as many as --patches, weighted by --box-weight in the loss), and locate moves the fitted box half way to the box they regress from three windows around it. On the fixture scenes that shared regressor costs accuracy (bench/RESULTS.md), so it is off by default.

Records carry an image and the garment's box in pixels of that image: x, y (top-left corner), w, h (the fixtures' --scenes records do). Each image is decoded stretched to --image-size square. Records are split into train, validation and test by a hash of --group-field; training stops after --patience epochs without a better validation mean IoU and keeps the best epoch's weights; each epoch writes a checkpoint for --resume. Prints a JSON report: mean IoU and the share of boxes with IoU >= 0.5 per split.`,
  options: {
    input: { alias: 'i', describe: 'image records with the garment box x, y, w, h in pixels (NDJSON, - for stdin)', type: 'string', default: '-' },
    'id-field': { describe: 'field holding the record id', type: 'string', default: 'id' },
    'image-field': { describe: 'field holding the image path (relative paths are taken beside the input file)', type: 'string', default: 'image' },
    'group-field': { describe: 'field whose hash decides the split (records without it use their id)', type: 'string', default: 'product' },
    tower: { alias: 't', describe: `image model directory to start from (its pooled features), or a family for a fresh tower (${towerNamesText()}[:ALPHA]; default small)`, type: 'string' },
    'input-size': { describe: 'fresh tower or backbone: side of a patch in pixels', type: 'string', default: '32', check: inputSizeText },
    width: { describe: 'fresh small tower: filters of the first stage', type: 'number', default: DEFAULT_TOWER.width, check: positiveInt },
    blocks: { describe: 'fresh small tower: residual blocks per stage', type: 'number', default: DEFAULT_TOWER.blocksPerStage, check: positiveInt },
    stages: { describe: 'fresh small tower: stages', type: 'number', default: DEFAULT_TOWER.stages, check: positiveInt },
    ...backboneSourceOptions,
    'image-size': { describe: 'side of the square each photo is stretched to before patches are cut', type: 'number', default: 96, check: integerIn(8, 1024) },
    patches: { describe: 'training windows per image and epoch', type: 'number', default: 8, check: positiveInt },
    'box-weight': { describe: 'weight of the box regression loss (0: no regressor; the box is fitted to the classifier\'s map alone)', type: 'number', default: 0, check: nonNegativeNumber },
    'test-fraction': { describe: 'share of groups held out for the test report', type: 'number', default: 0.2, check: share },
    'val-fraction': { describe: 'share of groups held out for early stopping', type: 'number', default: 0.1, check: share },
    ...loopOptions({ epochs: 20, patience: 4, better: 'a better validation mean IoU', seeds: 'initialisation, windows, shuffling' }),
    batch: { describe: 'images per step (each gives --patches windows)', type: 'number', default: 16, check: positiveInt },
    lr: { describe: 'Adam learning rate', type: 'number', default: 0.002, check: positiveNumber },
    out: { alias: 'o', describe: 'model directory to write', type: 'string', demandOption: true },
    report: { describe: 'also write the JSON report to this file', type: 'string' },
    ...backendOption,
    ...trainWorkersOption,
  },
  examples: [
    ['node dist/fixtures/generate.js --scenes varied --out scenes && atelier train-locate -i scenes/scenes.ndjson -o locate.model', 'garments at known boxes on varied backdrops'],
    ['atelier locate -m locate.model -i images.ndjson > boxes.ndjson && atelier embed -m sim.model -i images.ndjson --crop boxes.ndjson -o crops.npy', 'locate, then embed the located garments'],
    ['atelier train-locate -i boxes.ndjson --tower weak.model -o locate.model', 'transfer from a trained tower'],
  ],
  async run(args, io) {
    // Every output path first: a wrong one costs no time and leaves nothing behind.
    await checkLoopOutputs(args);
    await checkFileOutput(args.report, '--report');
    // Inputs first: a mistake is reported before the backend loads.
    const records: Array<ImageRecord & { box: Box; group: string }> = [];
    for await (const r of readImageRecords(args.input, args['image-field'], args['id-field'], io.stdin)) {
      const box = boxOfRecord(r.record, r);
      if (!box) throw new UsageError('expected the garment box: x, y, w, h in pixels', { file: r.file, line: r.line, field: 'x' });
      const group = r.record[args['group-field']];
      records.push({ ...r, box, group: typeof group === 'string' || typeof group === 'number' ? String(group) : r.id });
    }
    if (records.length === 0) throw new UsageError('no record', { file: args.input });
    if (args.tower && !isTowerName(args.tower)) await loadMetadata(args.tower);
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });

    let tower: tf.LayersModel;
    let patch: { height: number; width: number };
    let towerRecord: unknown = args.tower ?? 'small';
    if (args.tower && !isTowerName(args.tower) && !args.backbone) {
      const loaded = await loadModel(args.tower);
      patch = modelInputSize(loaded.model, args.tower);
      tower = imageFeatureModel(loaded.model, 'pooled');
    } else {
      if (args.backbone && args.tower && !isTowerName(args.tower)) throw new UsageError('give either --tower (a model) or --backbone', { field: '--backbone' });
      patch = parseInputSize(args['input-size']);
      const opened = await openTower({ name: args.tower ?? 'small', input: patch, seed: args.seed, smallParams: { width: args.width, blocks: args.blocks, stages: args.stages }, args });
      tower = opened.tower;
      towerRecord = opened.record;
    }
    const model = buildLocateModel(tower, args.seed + 11);

    const side = args['image-size'];
    const skips = createSkipCounter();
    const progress = startProgress(io.stderr, { label: 'decoding' });
    const samples: Sample[] = [];
    for await (const d of decodeSquareImages(records, side, skips, io, 'train-locate') as AsyncGenerator<SquareImage<(typeof records)[number]>>) {
      const { box } = d.item;
      samples.push({
        id: d.item.id, split: splitOf(d.item.group, args['test-fraction'], args['val-fraction']), pixels: d.pixels,
        box: { x: box.x / d.sourceWidth, y: box.y / d.sourceHeight, w: box.w / d.sourceWidth, h: box.h / d.sourceHeight },
      });
      progress.tick(1);
    }
    progress.stop();
    writeSkipSummary(skips, io, 'train-locate');
    const bySplit = { train: samples.filter((s) => s.split === 'train'), val: samples.filter((s) => s.split === 'val'), test: samples.filter((s) => s.split === 'test') };
    if (bySplit.train.length === 0) throw new UsageError('no record falls in the training split', { file: args.input, field: '--test-fraction' });
    io.stderr.write(`atelier train-locate: ${side}x${side} images, ${patch.height}x${patch.width} patches, ${bySplit.train.length} train, ${bySplit.val.length} validation, ${bySplit.test.length} test images\n`);

    const imagesOf = (part: Sample[]) => {
      const data = new Float32Array(part.length * side * side * 3);
      part.forEach((s, i) => { for (let k = 0; k < s.pixels.length; k++) data[i * s.pixels.length + k] = s.pixels[k] / 255; });
      return tf.tensor4d(data, [part.length, side, side, 3]);
    };
    const mapSide = mapPatchSide(patch.width, side);
    // The regressor, when trained, moves the fitted box half way to its own.
    const plan: LocatePlan = { kind: 'map', side: mapSide, offsets: mapOffsets(mapSide), refine: args['box-weight'] > 0 ? 0.5 : 0 };
    const evaluate = async (part: Sample[]) => {
      const ious: number[] = [];
      for (let start = 0; start < part.length; start += 32) {
        const chunk = part.slice(start, start + 32);
        const images = imagesOf(chunk);
        (await locateInImages(model, images, plan, patch)).forEach((b, i) => ious.push(iou(b, chunk[i].box)));
        images.dispose();
      }
      const mean = ious.reduce((a, b) => a + b, 0) / Math.max(ious.length, 1);
      return { images: ious.length, meanIoU: Number(mean.toFixed(4)), iouAtLeastHalf: Number((ious.filter((v) => v >= 0.5).length / Math.max(ious.length, 1)).toFixed(4)) };
    };

    // Map patches train the classifier; with --box-weight, half as many foreground windows (holding most of the box) the regressor.
    const drawPatches = (box: Box, random: Random): LocatePatch[] => {
      const map = sampleMapPatches(box, args.patches, mapSide, random).map((p) => ({ window: p.window, target: p.share, classified: 1, regressed: 0, edges: boxInWindow(p.window, box) }));
      if (!(args['box-weight'] > 0)) return map;
      const windows = sampleTrainingPatches(box, 2 * Math.ceil(args.patches / 2), random).filter((p) => p.label === 1)
        .map((p) => ({ window: p.window, target: 0, classified: 0, regressed: 1, edges: p.edges }));
      return [...map, ...windows];
    };
    const optimizer: tf.Optimizer = tf.train.adam(args.lr);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const fingerprint = JSON.stringify({ tower: towerRecord, side, patch, patches: args.patches, boxWeight: args['box-weight'], lr: args.lr, batch: args.batch, n: [bySplit.train.length, bySplit.val.length, bySplit.test.length] });
    const workers = trainingWorkers(backend, args.workers, io.env);
    const trainPixels = bySplit.train.map((s) => s.pixels);
    const parallel = workers > 1 ? await openLocateParallel(model, trainPixels, side, workers) : null;
    // The training images now live in memory the workers share: keep that one copy.
    trainPixels.forEach((p, i) => (bySplit.train[i].pixels = p));
    const checkpointDir = checkpointDirOf(args);
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/']];
    const { state, best } = await startOrResume({
      resume: args.resume, dir: checkpointDir, fingerprint, model, optimizers, fresh: () => initialTrainingState(args.seed, fingerprint), io, command: 'train-locate',
    });
    await trainLoop({
      model, state, best, maxEpochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], io, command: 'train-locate',
      checkpoint: { dir: checkpointDir, kind: `${LOCATE_MODEL_KIND}-checkpoint`, optimizers },
      batches: (random) => shuffledBatches(bySplit.train.length, args.batch, random),
      async step(slots, random) {
        const part = slots.map((i) => bySplit.train[i]);
        const drawn = part.flatMap((s, i) => drawPatches(s.box, random).map((p) => ({ ...p, image: i })));
        if (parallel) {
          const { loss, grads } = await locateGradients(parallel, variables, { slots, patches: drawn }, { patch, boxWeight: args['box-weight'] });
          optimizer.applyGradients(grads);
          tf.dispose(Object.values(grads));
          return loss;
        }
        const images = imagesOf(part);
        const x = cropPatches(images, drawn.map((p) => p.window), drawn.map((p) => p.image), patch.height, patch.width);
        const targets = tf.tensor1d(drawn.map((p) => p.target));
        const classified = tf.tensor1d(drawn.map((p) => p.classified));
        const regressed = tf.tensor1d(drawn.map((p) => p.regressed));
        const edges = tf.tensor2d(drawn.flatMap((p) => p.edges), [drawn.length, 4]);
        const { value, grads } = tf.variableGrads(() => locateLoss(model.apply(x, { training: true }) as tf.Tensor2D, targets, classified, regressed, edges, args['box-weight']), variables);
        optimizer.applyGradients(grads);
        tf.dispose([images, x, targets, classified, regressed, edges, ...Object.values(grads)]);
        return value;
      },
      async validate() {
        if (bySplit.val.length === 0) return null;
        const { meanIoU } = await evaluate(bySplit.val);
        return { score: -meanIoU, metrics: { valMeanIoU: meanIoU } };
      },
      onEpoch(line, improved) {
        const entry = line as EpochLogEntry & { valMeanIoU?: number };
        io.stderr.write(`atelier train-locate: epoch ${entry.epoch} loss ${entry.loss.toFixed(4)}${entry.valMeanIoU !== undefined ? ` val mean IoU ${entry.valMeanIoU.toFixed(3)}` : ''}${improved ? ' *' : ''}\n`);
      },
    });

    await parallel?.close();
    const reports = { train: await evaluate(bySplit.train), val: await evaluate(bySplit.val), test: await evaluate(bySplit.test) };
    await saveModel(model, args.out, {
      metadata: { kind: LOCATE_MODEL_KIND, imageSize: side, patch, map: { side: plan.side, offsets: plan.offsets, refine: plan.refine }, tower: towerRecord as Record<string, unknown>, log: state.log, bestEpoch: state.bestEpoch },
      outputs: io.outputs,
    });
    await writeFileAtomic(logPathOf(args.out), JSON.stringify(state.log, null, 2) + '\n', io.outputs);
    const json = JSON.stringify({ imageSize: side, patch, epochs: state.epoch, bestEpoch: state.bestEpoch, corruptImages: skips.total, ...reports }, null, 2) + '\n';
    if (args.report) await writeFileAtomic(args.report, json, io.outputs);
    io.stdout.write(json);
    optimizer.dispose();
  },
});
