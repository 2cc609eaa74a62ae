import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { loadModel, loadMetadata } from '../lib/backend/model-io.js';
import { writeFileAtomic, checkFileOutput, checkDirOutput } from '../lib/io/atomic.js';
import { checkInputFile } from '../lib/io/paths.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { readNpy, writeNpy } from '../lib/io/npy.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { pathRecords, readImageRecords } from '../lib/image/records.js';
import { saliencyOverlayPng } from '../lib/image/heatmap.js';
import { computeFeatures, resizeModeOf } from '../lib/models/image-features.js';
import { formatInputSize, modelInputSize } from '../lib/models/towers/index.js';
import { causalCurves, classScorer, generateMasks, riseSaliency, saliencySummary } from '../lib/explain/rise.js';
import { createRandom } from '../lib/random.js';
import { describeModel } from '../lib/models/kinds.js';
import { anyInt, fraction, integerIn, positiveInt } from '../lib/options.js';
import { engineOption, openModelRunner } from '../lib/onnx/runtime.js';
import { calibrationBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { checkOnnxSettings, isOnnxModelPath, openOnnxRunner, readOnnxModel } from '../lib/onnx/model-file.js';
import { inputSides } from '../lib/image/batch.js';
import { SIZENET_MODEL_KIND } from '../lib/sizenet/evaluation.js';
import { requireShardFile, resolveShard, shardOption, shardPath, shardRecords, writeShardManifest } from '../lib/shard.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  class?: string;
  masks?: string;
  n: number;
  s: number;
  p1: number;
  batch: number;
  seed: number;
  'maps-dir'?: string;
  overlay?: string;
  metrics: boolean;
  steps: number;
  out: string;
  'image-field': string;
  'id-field': string;
  backend: string;
  engine: string;
  shard?: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

/** A file name from an id: safe characters only, unique enough for one run. */
function fileStem(id: string, index: number): string {
  const stem = id.replace(/^.*\//, '').replace(/\.[a-z0-9]+$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${String(index).padStart(5, '0')}-${stem || 'image'}`;
}

export default defineCommand<Args>({
  name: 'rise',
  summary: 'explain a model prediction with RISE saliency maps, overlays and deletion/insertion scores',
  description: `RISE (Petsiuk et al. 2018): the saliency of a pixel is the model's expected output over random masks that keep it, S = sum_i f(I . M_i) M_i / (N p1). Masks as in the reference implementation: N binary s x s grids with cells on with probability p1, bilinearly upsampled to (s+1) x cell size and cropped at a random shift. --masks FILE reuses masks saved there (or saves them there when the file does not exist), so maps of several models or images are comparable; the same --seed gives the same masks.

The model is any atelier model with an image input: a train-sizenet --image-model (scalar P(size issue)), a train-weak model (--class names the word) or a classifier (--class is an output index or label). Images are centre-cropped to the model's input size as in training.

Per image it writes one NDJSON line {id, image, class, score, peak: {x, y}, topShare} (topShare: the share of saliency in the top 10% pixels; localized maps score high, expanded ones low), the map as <maps-dir>/<name>.npy (H x W float32) and the heat map over the photo as <overlay>/<name>.png. --metrics adds RISE's deletion and insertion curves and their areas (trapezoids on [0, 1]; deletion to a zero image, insertion from a blurred one).`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory with an image input, or its .onnx file from atelier export (run on onnxruntime at its exported precision)', type: 'string', demandOption: true },
    class: { describe: 'output to explain: an index, or a word of a train-weak model (default 0, the scalar of a sizenet model)', type: 'string' },
    masks: { describe: '.npy of masks to reuse, or to create when missing', type: 'string' },
    n: { describe: 'number of masks N', type: 'number', default: 4000, check: positiveInt },
    s: { describe: 'grid cells per side', type: 'number', default: 8, check: positiveInt },
    p1: { describe: 'probability that a cell is kept', type: 'number', default: 0.5, check: fraction },
    batch: { describe: 'masked images per forward pass', type: 'number', default: 100, check: positiveInt },
    seed: { describe: 'random seed of the masks', type: 'number', default: 1, check: anyInt },
    'maps-dir': { describe: 'directory for the saliency maps (.npy, H x W float32)', type: 'string' },
    overlay: { describe: 'directory for PNG heat maps over the photos', type: 'string' },
    metrics: { describe: 'compute deletion and insertion curves and their AUC', type: 'boolean', default: false },
    steps: { describe: 'points of the deletion/insertion curves', type: 'number', default: 32, check: integerIn(2) },
    out: { alias: 'o', describe: 'summary NDJSON (- for stdout)', type: 'string', default: '-' },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    ...shardOption,
    ...backendOption,
    ...engineOption,
    ...precisionOptions,
  },
  examples: [
    ['atelier rise -m sizenet-image.model --overlay overlays/ photo.jpg', 'why the student thinks this article has a size issue'],
    ['atelier rise -m weak.model --class stripes --metrics --masks masks.npy -i top.ndjson', 'where the weak model sees stripes, with deletion/insertion scores'],
    ['atelier rise -m sizenet-image.model --precision int8 --calibration catalogue.ndjson -i top.ndjson', 'the N forward passes in int8, calibrated on the first 256 images of the catalogue'],
  ],
  async run(args, io) {
    const shard = resolveShard(args.shard, io.env);
    requireShardFile(args.out, '--out', shard);
    const targets = { out: args.out, masks: args.masks };
    args = { ...args, out: shardPath(args.out, shard) };
    await checkOutputs(args);
    // Inputs first: a mistake is reported before the backend loads.
    const onnx = isOnnxModelPath(args.model) ? await readOnnxModel(args.model) : null;
    if (onnx) checkOnnxSettings(onnx, args);
    else await loadMetadata(args.model);
    if (onnx && onnx.inputSize === null) throw new UsageError(`the model has no RGB image input (it reads feature rows of ${onnx.inputDim ?? '?'} values)`, { file: args.model });
    if (!args.images.length) await checkInputFile(args.input ?? '-');
    const calibrationPlan = onnx ? null : await checkPrecision(args);
    // An .onnx model needs no tfjs backend and no model directory: onnxruntime runs the file.
    const backend = onnx ? null : await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const { model, metadata } = onnx ? { model: null, metadata: onnx.metadata } : await loadModel(args.model);
    const shape = model?.inputs[0].shape;
    if (model && (model.inputs.length !== 1 || shape!.length !== 4 || shape![3] !== 3)) {
      throw new UsageError(`the model has no RGB image input (inputs ${JSON.stringify(model.inputs.map((i) => i.shape))})`, { file: args.model });
    }
    // The model's own input H x W (non-square towers too) and resize mode.
    const { height, width } = onnx ? inputSides(onnx.inputSize!) : modelInputSize(model!, args.model);
    const fit = resizeModeOf(metadata);
    if (!(Number.isInteger(args.s) && args.s >= 1 && args.s <= Math.min(height, width))) throw new UsageError(`grid of ${args.s} cells is larger than the ${formatInputSize({ height, width })}-pixel image`, { field: '--s' });
    const described = describeModel(model, metadata, args.model);
    // An exported file's first output is its kind's main one (scores, probs, p_size_issue), as wide as its labels (SizeNet: one).
    if (onnx && !described.labels && described.kind?.id !== SIZENET_MODEL_KIND) throw new UsageError(`rise explains an exported weak, classifier or SizeNet image model; this file holds a ${described.kind?.name ?? onnx.kind} model`, { file: args.model });
    const outputs = model ? (model.outputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1) : described.labels?.length ?? 1;
    if (described.output === 'embedding') throw new UsageError(`a ${described.kind?.name ?? 'embedding'} model outputs an embedding, not a score to explain`, { file: args.model });
    const vocabulary = described.labels;
    let classIndex = 0;
    if (args.class !== undefined) {
      classIndex = /^\d+$/.test(args.class) ? Number(args.class) : vocabulary?.indexOf(args.class) ?? -1;
      if (classIndex < 0) throw new UsageError(`'${args.class}' is neither an output index nor a label of this model`, { field: '--class' });
      if (classIndex >= outputs) throw new UsageError(`the model has ${outputs} output(s); ${classIndex} is out of range`, { field: '--class' });
    }
    const className = vocabulary?.[classIndex] ?? String(classIndex);

    const spec = { count: args.n, grid: args.s, keepProbability: args.p1, height, width };
    let masks: Float32Array;
    if (args.masks && existsSync(args.masks)) {
      const saved = await readNpy(args.masks);
      const [n, h, w] = saved.header.shape;
      if (saved.header.shape.length !== 3 || h !== height || w !== width) throw new UsageError(`masks of shape (${saved.header.shape.join(', ')}) do not fit ${height} x ${width} images`, { file: args.masks });
      masks = saved.data instanceof Float32Array ? saved.data : Float32Array.from(saved.data as ArrayLike<number>);
      spec.count = n;
    } else {
      masks = generateMasks(spec, createRandom(args.seed));
      // Shards save their (identical) masks beside the target; merge keeps one copy.
      if (args.masks) await writeNpy(shardPath(args.masks, shard), masks, [spec.count, height, width], { outputs: io.outputs });
    }
    const masksWritten = !!args.masks && !existsSync(args.masks);

    for (const dir of [args['maps-dir'], args.overlay]) if (dir) await mkdir(dir, { recursive: true });
    const records = shardRecords(args.images.length ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin), shard);
    const positions: number[] = [];
    const skips = createSkipCounter();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    const calibration = calibrationPlan ? await calibrationBatches(calibrationPlan, { height, width }, args.batch, fit, 'rise') : undefined;
    const runner = onnx
      ? await openOnnxRunner(onnx, onnx.outputs[0], { engine: args.engine, env: io.env, stderr: io.stderr, commandName: 'rise' })
      : await openModelRunner(model!, { engine: args.engine, env: io.env, stderr: io.stderr, backend: backend!, commandName: 'rise', calibration });
    const score = classScorer(runner.run, described.output, classIndex, height, width);
    let index = 0;
    try {
      for await (const batch of computeFeatures(null, records, { height, width }, 1, skips, io, 'rise', fit)) {
        const record = batch.records[0];
        const photo = batch.rows;
        const photoScore = (await score(photo, 1))[0];
        const map = await riseSaliency(score, photo, height, width, masks, spec.count, args.p1, args.batch);
        const summary = saliencySummary(map, width);
        // A shard numbers its files by input position, as a run without skipped images does.
        const stem = fileStem(record.id, shard ? record.line - 1 : index);
        index++;
        positions.push(record.line);
        const line: Record<string, unknown> = { id: record.id, image: record.path, class: className, score: round(photoScore), peak: summary.peak, topShare: round(summary.topShare) };
        if (args['maps-dir']) {
          line.saliency = join(args['maps-dir'], `${stem}.npy`);
          await writeNpy(line.saliency as string, map, [height, width], { outputs: io.outputs });
        }
        if (args.overlay) {
          line.overlay = join(args.overlay, `${stem}.png`);
          await writeFileAtomic(line.overlay as string, await saliencyOverlayPng(photo, map, height, width), io.outputs);
        }
        if (args.metrics) {
          const curves = await causalCurves(score, photo, height, width, map, args.steps, args.batch);
          line.deletionAuc = round(curves.deletion.auc);
          line.insertionAuc = round(curves.insertion.auc);
          line.deletion = curves.deletion.score.map(round);
          line.insertion = curves.insertion.score.map(round);
        }
        await out.write(line);
      }
      await out.close();
    } catch (err) {
      await out.abort();
      throw err;
    } finally {
      await runner.close();
    }
    if (shard) {
      await writeShardManifest({
        command: 'rise',
        shard,
        model: args.model,
        settings: { class: className, n: spec.count, s: args.s, p1: args.p1, seed: args.seed, metrics: args.metrics, steps: args.steps, 'maps-dir': args['maps-dir'] ?? null, overlay: args.overlay ?? null, input: args.input ?? null, images: args.images.length },
        outputs: [{ role: 'out', kind: 'lines', target: targets.out }, ...(masksWritten ? [{ role: 'masks', kind: 'same' as const, target: targets.masks! }] : [])],
        positions,
      }, io.outputs);
    }
    writeSkipSummary(skips, io, 'rise');
  },
});

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  await checkDirOutput(args['maps-dir'], '--maps-dir');
  await checkDirOutput(args.overlay, '--overlay');
}
