import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { takeAll } from '../lib/backend/read.js';
import { saveModel } from '../lib/backend/model-io.js';
import { startOrResume } from '../lib/train/checkpoint.js';
import { nonNegativeNumber, positiveInt, positiveNumber, share } from '../lib/options.js';
import { checkLoopOutputs, checkpointDirOf, logPathOf, loopOptions, type LoopArgs } from '../lib/train/loop-options.js';
import { checkFileOutput, openAtomicWriteStream, writeFileAtomic } from '../lib/io/atomic.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { decodeRectStore, rectBatchPixels } from '../lib/image/rect-store.js';
import { startProgress } from '../lib/progress.js';
import { storedSizeFor } from '../lib/models/image-features.js';
import { splitOf, type SplitName } from '../lib/random.js';
import { imageRecordOf } from '../lib/facets/inputs.js';
import { multiHotTargets, readMultiLabelRecords, type MultiLabelRecord } from '../lib/facets/multilabel.js';
import { multiLabelReport } from '../lib/metrics/multilabel.js';
import { trainingWorkers, trainWorkersOption } from '../lib/train/parallel-gradients.js';
import { ATTENTION_LOSS_PARTS, attentionGradients, openAttentionParallel } from '../lib/train/attention-parallel.js';
import { initialTrainingState, shuffledBatches, trainLoop, type EpochLogEntry } from '../lib/train/loop.js';
import {
  ATTENTION_MODEL_KIND, ATTENTION_LAYER, attentionLoss, buildAttentionModel, transformBox, type AttentionModelConfig, type LossWeights,
} from '../lib/models/attention/model.js';

interface Args extends LoopArgs {
  input: string;
  'label-field': string;
  'id-field': string;
  'image-field': string;
  'group-field': string;
  'input-shape': string;
  scale: number;
  width: number;
  dropout: number;
  steps: number;
  glimpse: number;
  codewords: number;
  'texture-dim': number;
  hidden: number;
  'diversity-weight': number;
  'localisation-weight': number;
  'anchor-weight': number;
  'positive-weight': number;
  alpha: number;
  beta: number;
  'evidence-weight': number;
  'test-fraction': number;
  'val-fraction': number;
  batch: number;
  lr: number;
  predictions?: string;
  report?: string;
  backend: string;
  workers: number;
}

interface Sample {
  record: MultiLabelRecord;
  split: SplitName;
  slot: number;
}

export default defineCommand<Args>({
  name: 'train-attention',
  summary: 'train the Stitch Fix global + attention (spatial transformer, texture encoding) model on multi-label images',
  description: `Trains the model of the Stitch Fix deck "Clothing Retrieval and Visual Recommendation for Fashion Images" on images with several labels each, and saves its image -> embedding network for embed (then knn --labels votes labels, eval-retrieval measures In-Shop top-k).

The global branch is the deck's table: pairs of 3x3 convolutions (padding 1, stride 1, ReLU), 25% dropout, 4x4 max pooling and batch normalisation, widths --width, 2x and 4x it (the deck: 64-128-256) at an input of --input-shape divided by --scale (the deck: 384x256; both sides must end up multiples of 16). Its last map is average-pooled.

The attention branch is a spatial transformer run for --steps recurrent steps: at each, a recurrent state queries a map of cells at 1/4 of the input (one more convolution on the first stage's map, beside the last map upsampled), a softmax over its cells gives the attention map l_k, the soft argmax of the sharpened scores the crop's centre (as train-classifier --stn) and the state the crop's scale; a differentiable bilinear sampler cuts a --glimpse x --glimpse glimpse out of the first stage's map. A texture encoding layer (Deep TEN: --codewords learnable codewords with smoothing factors, soft-assigned residuals) turns each glimpse into an orderless vector. The embedding is the pooled global features followed by the K texture vectors; a linear layer maps it to the labels.

The loss is the deck's L = L_cls + g1 L_div + g2 L_loc: L_cls the squared error of the sigmoid label scores against the 0/1 labels, summed over labels; L_div the overlap of consecutive attention maps; L_loc = L_S + l1 L_A + l2 L_P, which keep each crop's scale in [--beta, --alpha] and its centre near a per-step anchor (on a circle of radius 0.5). g1 = --diversity-weight (0.01), g2 = --localisation-weight (0.1), l1 = --anchor-weight, l2 = --positive-weight. Added to it, as train-classifier --stn does, --evidence-weight times the same squared error on the branch's class evidence: per-cell label scores of that map (each cell sees ~20 px), pooled by l_k; only cells on the evidence can raise it, so it trains where the branch looks (without it the crop does not find a small patch).

Labels come from one or more --label-field fields (comma-separated) per record: a list of strings, a string, or a boolean (true adds the field's name). Records are split into train, validation and test by a hash of --group-field, as train-classifier does; training stops after --patience epochs without a lower validation loss and keeps the best epoch's weights; each epoch writes a checkpoint (default <out>.checkpoint) that --resume continues from. Prints a JSON report per split: macro ROC AUC over labels (chance 0.5), micro F1 at 0.5, and per-label AUC. --predictions writes {id, split, labels, scores, boxes} per image, boxes being the attention crops as image fractions {x, y, w, h}.`,
  options: {
    input: { alias: 'i', describe: 'labelled image records, NDJSON or CSV (- for stdin)', type: 'string', default: '-' },
    'label-field': { alias: 'l', describe: 'field(s) holding the labels, separated by commas', type: 'string', demandOption: true },
    'id-field': { describe: 'field holding the record id', type: 'string', default: 'id' },
    'image-field': { describe: 'field holding the image path (relative paths are taken beside the input file)', type: 'string', default: 'image' },
    'group-field': { describe: 'field whose hash decides the split (records without it use their id)', type: 'string', default: 'product' },
    'input-shape': { describe: 'input height x width before --scale (the deck: 384x256)', type: 'string', default: '384x256' },
    scale: { describe: 'divide both input sides by this (CPU runs)', type: 'number', default: 1, check: positiveInt },
    width: { describe: 'filters of the first convolution pair (then 2x and 4x)', type: 'number', default: 64, check: positiveInt },
    dropout: { describe: 'dropout after each convolution pair while training', type: 'number', default: 0.25, check: share },
    steps: { describe: 'recurrent attention steps K', type: 'number', default: 3, check: positiveInt },
    glimpse: { describe: 'side of each sampled glimpse, in cells of the first stage map', type: 'number', default: 8, check: positiveInt },
    codewords: { describe: 'texture encoding codewords', type: 'number', default: 8, check: positiveInt },
    'texture-dim': { describe: 'channels of the glimpse features the codewords encode', type: 'number', default: 32, check: positiveInt },
    hidden: { describe: 'units of the recurrent attention state', type: 'number', default: 64, check: positiveInt },
    'diversity-weight': { describe: 'g1, weight of the diversity loss', type: 'number', default: 0.01, check: nonNegativeNumber },
    'localisation-weight': { describe: 'g2, weight of the localisation loss', type: 'number', default: 0.1, check: nonNegativeNumber },
    'anchor-weight': { describe: 'l1, weight of the anchor constraint inside L_loc', type: 'number', default: 0.01, check: nonNegativeNumber },
    'positive-weight': { describe: 'l2, weight of the positive constraint inside L_loc', type: 'number', default: 0.1, check: nonNegativeNumber },
    alpha: { describe: 'scale constraint: crop scales above this are penalised', type: 'number', default: 0.5, check: positiveNumber },
    beta: { describe: 'positive constraint: crop scales below this are penalised', type: 'number', default: 0.1, check: nonNegativeNumber },
    'evidence-weight': { describe: 'weight of the class-evidence term that trains where the branch looks (0: the deck\'s loss alone)', type: 'number', default: 1, check: nonNegativeNumber },
    'test-fraction': { describe: 'share of groups held out for the test report', type: 'number', default: 0.2, check: share },
    'val-fraction': { describe: 'share of groups held out for early stopping', type: 'number', default: 0.1, check: share },
    ...loopOptions({ epochs: 40, patience: 6, better: 'a lower validation loss', seeds: 'initialisation, shuffling, augmentation' }),
    batch: { describe: 'images per step (the deck: 64)', type: 'number', default: 64, check: positiveInt },
    lr: { describe: 'Adam learning rate (the deck: 0.00001 over 40 epochs of 90,000 images)', type: 'number', default: 0.001, check: positiveNumber },
    out: { alias: 'o', describe: 'model directory to write (image -> embedding)', type: 'string', demandOption: true },
    predictions: { describe: 'write {id, split, labels, scores, boxes} per image to this NDJSON', type: 'string' },
    report: { describe: 'also write the JSON report to this file', type: 'string' },
    ...backendOption,
    ...trainWorkersOption,
  },
  examples: [
    ['atelier train-attention -i images.ndjson -l silhouette,pattern,slim_cut --scale 4 --width 16 -o attention.model', 'multi-label training at 96x64 on a CPU'],
    ['atelier embed -m attention.model -i images.ndjson -o att.npy && atelier knn -q att.npy -k 10 --labels images.ndjson --label-field pattern', 'embed, then the kNN label vote'],
    ['atelier train-attention -i tags.ndjson -l tags --input-shape 64x64 --epochs 10 --predictions p.ndjson -o m', 'a list field of tags; boxes of the attention crops per image'],
  ],
  async run(args, io) {
    // Every output path first: a wrong one costs no time and leaves nothing behind.
    await checkLoopOutputs(args);
    await checkFileOutput(args.predictions, '--predictions');
    await checkFileOutput(args.report, '--report');
    const { height, width } = checkArgs(args);
    const labelFields = args['label-field'].split(',').map((f) => f.trim()).filter((f) => f !== '');
    const set = await readMultiLabelRecords(args.input, { labelFields, idField: args['id-field'], groupField: args['group-field'], stdin: io.stdin });
    const { labels } = set;
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const skips = createSkipCounter();
    const progress = startProgress(io.stderr, { label: 'decoding' });
    const decoded = await decodeRectStore(set.records.map((r) => imageRecordOf(r, args['image-field'])), storedSizeFor(height), storedSizeFor(width), skips, io, 'train-attention', () => progress.tick(1));
    progress.stop();
    writeSkipSummary(skips, io, 'train-attention');
    const { store } = decoded;
    const samples: Sample[] = decoded.sourceIndex.map((source, slot) => {
      const record = set.records[source];
      return { record, split: splitOf(record.group, args['test-fraction'], args['val-fraction']), slot };
    });
    if (samples.length === 0) throw new UsageError(`no usable record (${set.records.length} labelled, ${skips.total} corrupt images)`, { file: args.input });
    const bySplit = { train: samples.filter((s) => s.split === 'train'), val: samples.filter((s) => s.split === 'val'), test: samples.filter((s) => s.split === 'test') };
    if (bySplit.train.length === 0) throw new UsageError('no record falls in the training split', { file: args.input, field: '--test-fraction' });
    io.stderr.write(`atelier train-attention: ${labels.length} labels, ${height}x${width} input, ${bySplit.train.length} train, ${bySplit.val.length} validation, ${bySplit.test.length} test images\n`);

    const config: AttentionModelConfig = {
      height, width, filters: args.width, dropout: args.dropout, classes: labels.length,
      steps: args.steps, glimpse: args.glimpse, codewords: args.codewords, textureDim: args['texture-dim'], hidden: args.hidden, seed: args.seed,
    };
    const weights: LossWeights = {
      diversity: args['diversity-weight'], localisation: args['localisation-weight'], anchor: args['anchor-weight'], positive: args['positive-weight'], alpha: args.alpha, beta: args.beta,
      evidence: args['evidence-weight'],
    };
    const nets = buildAttentionModel(config);
    const variables = nets.training.trainableWeights.map((w) => w.read() as tf.Variable);
    const optimizer: tf.Optimizer = tf.train.adam(args.lr);
    const pixels = (part: Sample[], random?: Parameters<typeof rectBatchPixels>[4]) => tf.tensor4d(rectBatchPixels(store, part.map((s) => s.slot), height, width, random), [part.length, height, width, 3]);
    const targets = (part: Sample[]) => tf.tensor2d(multiHotTargets(part.map((s) => s.record.labels), labels.length), [part.length, labels.length]);

    /** Sigmoid scores, transforms and the mean loss of a split, in inference mode. */
    const evaluate = async (part: Sample[]): Promise<{ scores: Float32Array; transforms: Float32Array; loss: number }> => {
      const scores = new Float32Array(part.length * labels.length);
      const transforms = new Float32Array(part.length * args.steps * 4);
      let lossSum = 0;
      for (let start = 0; start < part.length; start += 128) {
        const chunk = part.slice(start, start + 128);
        const [loss, sigmoid, theta] = await takeAll(tf.tidy(() => {
          const [logits, maps, theta, evidence] = nets.training.predict(pixels(chunk)) as tf.Tensor[];
          return [attentionLoss(logits as tf.Tensor2D, targets(chunk), maps as tf.Tensor3D, theta as tf.Tensor3D, evidence as tf.Tensor2D, weights).total, tf.sigmoid(logits), theta];
        }));
        lossSum += loss[0] * chunk.length;
        scores.set(sigmoid, start * labels.length);
        transforms.set(theta, start * args.steps * 4);
      }
      return { scores, transforms, loss: lossSum / Math.max(part.length, 1) };
    };
    const truthOf = (part: Sample[]) => part.map((s) => s.record.labels);

    const fingerprint = JSON.stringify({
      labels, labelFields, config, weights, lr: args.lr, batch: args.batch, split: [args['test-fraction'], args['val-fraction']], n: [bySplit.train.length, bySplit.val.length, bySplit.test.length],
    });
    const workers = trainingWorkers(backend, args.workers, io.env);
    const parallel = workers > 1 ? await openAttentionParallel(nets.training, store, workers) : null;
    const checkpointDir = checkpointDirOf(args);
    const optimizers: Array<[tf.Optimizer, string]> = [[optimizer, 'optimizer/']];
    const { state, best } = await startOrResume({
      resume: args.resume, dir: checkpointDir, fingerprint, model: nets.training, optimizers, fresh: () => initialTrainingState(args.seed, fingerprint), io, command: 'train-attention',
    });
    // The loss parts of the current epoch, for its stderr line.
    const sums = { total: 0, classification: 0, diversity: 0, localisation: 0, evidence: 0 };
    await trainLoop({
      model: nets.training, state, best, maxEpochs: args.epochs, patience: args.patience, stopAfter: args['stop-after'], io, command: 'train-attention',
      checkpoint: { dir: checkpointDir, kind: `${ATTENTION_MODEL_KIND}-checkpoint`, optimizers },
      batches(random) {
        for (const key of Object.keys(sums) as Array<keyof typeof sums>) sums[key] = 0;
        return shuffledBatches(bySplit.train.length, args.batch, random).map((batch) => batch.map((i) => bySplit.train[i]));
      },
      async step(part, random) {
        if (parallel) {
          const { loss, parts, grads } = await attentionGradients(parallel, variables, store, {
            slots: part.map((s) => s.slot), targets: multiHotTargets(part.map((s) => s.record.labels), labels.length),
          }, { height, width, classes: labels.length, weights }, random);
          optimizer.applyGradients(grads);
          tf.dispose(Object.values(grads));
          sums.total += loss * part.length;
          ATTENTION_LOSS_PARTS.forEach((key, i) => (sums[key] += parts[i] * part.length));
          return loss;
        }
        const x = pixels(part, random);
        const y = targets(part);
        let parts: Record<keyof typeof sums, tf.Scalar> | null = null;
        const { value, grads } = tf.variableGrads(() => {
          const [logits, maps, theta, evidence] = nets.training.apply(x, { training: true }) as tf.Tensor[];
          const loss = attentionLoss(logits as tf.Tensor2D, y, maps as tf.Tensor3D, theta as tf.Tensor3D, evidence as tf.Tensor2D, weights);
          parts = { total: tf.keep(loss.total.clone()), classification: tf.keep(loss.classification), diversity: tf.keep(loss.diversity), localisation: tf.keep(loss.localisation), evidence: tf.keep(loss.evidence) };
          return loss.total;
        }, variables);
        optimizer.applyGradients(grads);
        tf.dispose([x, y, ...Object.values(grads)]);
        // The loss and its parts in one read per step.
        const keys = Object.keys(sums) as Array<keyof typeof sums>;
        const [loss, ...values] = await takeAll([value, ...keys.map((key) => parts![key])]);
        keys.forEach((key, i) => (sums[key] += values[i][0] * part.length));
        return loss[0];
      },
      async validate() {
        if (bySplit.val.length === 0) return null;
        const { scores, loss } = await evaluate(bySplit.val);
        const report = multiLabelReport(scores, truthOf(bySplit.val), labels);
        return { score: loss, metrics: { valLoss: loss, valMacroAuc: report.macroAuc ?? NaN, valMicroF1: report.microF1 } };
      },
      onEpoch(line, improved) {
        const entry = line as EpochLogEntry & { valMacroAuc?: number; valMicroF1?: number };
        const n = bySplit.train.length;
        io.stderr.write(`atelier train-attention: epoch ${entry.epoch} L ${(sums.total / n).toFixed(4)} (L_cls ${(sums.classification / n).toFixed(4)}, L_div ${(sums.diversity / n).toFixed(4)}, L_loc ${(sums.localisation / n).toFixed(4)}, L_ev ${(sums.evidence / n).toFixed(4)})\n`);
        if (entry.valLoss !== undefined) io.stderr.write(`atelier train-attention: epoch ${entry.epoch} val loss ${entry.valLoss.toFixed(4)} val macro AUC ${entry.valMacroAuc!.toFixed(3)} val micro-F1 ${entry.valMicroF1!.toFixed(3)}${improved ? ' *' : ''}\n`);
      },
    });

    await parallel?.close();
    const reports: Record<string, unknown> = {};
    const predictionsOut = args.predictions ? await openAtomicWriteStream(args.predictions, io.outputs) : null;
    try {
      for (const split of ['train', 'val', 'test'] as const) {
        const part = bySplit[split];
        const { scores, transforms } = await evaluate(part);
        reports[split] = multiLabelReport(scores, truthOf(part), labels);
        if (!predictionsOut) continue;
        let text = '';
        part.forEach((s, i) => {
          const row = scores.subarray(i * labels.length, (i + 1) * labels.length);
          const boxes = Array.from({ length: args.steps }, (_, k) => {
            const [sx, sy, tx, ty] = transforms.subarray((i * args.steps + k) * 4, (i * args.steps + k + 1) * 4);
            return Object.fromEntries(Object.entries(transformBox(sx, sy, tx, ty)).map(([key, v]) => [key, Number(v.toFixed(4))]));
          });
          const image = s.record.record[args['image-field']];
          text += JSON.stringify({
            id: s.record.id, ...(typeof image === 'string' ? { image } : {}), split, labels: s.record.labels.map((c) => labels[c]),
            scores: Object.fromEntries(labels.map((l, c) => [l, Number(row[c].toFixed(5))])), boxes,
          }) + '\n';
        });
        if (!predictionsOut.stream.write(text)) await new Promise((r) => predictionsOut.stream.once('drain', r));
      }
      await predictionsOut?.commit();
    } catch (err) {
      await predictionsOut?.abort();
      throw err;
    }

    const head = nets.training.getLayer(ATTENTION_LAYER.logits).getWeights();
    await saveModel(nets.embedding, args.out, {
      extraTensors: { 'head/kernel': head[0], 'head/bias': head[1] },
      metadata: {
        kind: ATTENTION_MODEL_KIND, labels, labelFields, input: { height, width }, config: { ...config }, loss: { ...weights },
        embeddingDim: nets.embedding.outputs[0].shape[1], log: state.log, bestEpoch: state.bestEpoch,
      },
      outputs: io.outputs,
    });
    await writeFileAtomic(logPathOf(args.out), JSON.stringify(state.log, null, 2) + '\n', io.outputs);
    const summary = {
      labelFields, labels, input: { height, width }, embeddingDim: nets.embedding.outputs[0].shape[1],
      samples: { train: bySplit.train.length, val: bySplit.val.length, test: bySplit.test.length, corruptImages: skips.total },
      epochs: state.epoch, bestEpoch: state.bestEpoch, ...reports,
    };
    const json = JSON.stringify(summary, null, 2) + '\n';
    if (args.report) await writeFileAtomic(args.report, json, io.outputs);
    io.stdout.write(json);
    optimizer.dispose();
    (best as tf.Tensor[] | null)?.forEach((t) => t.dispose());
  },
});

/** Checks the numbers; returns the input size after --scale. */
function checkArgs(args: Args): { height: number; width: number } {
  if (args['stop-after'] !== undefined && !(Number.isInteger(args['stop-after']) && args['stop-after'] > 0)) throw new UsageError(`must be a positive integer, got ${args['stop-after']}`, { field: '--stop-after' });
  for (const key of ['width', 'steps', 'glimpse', 'codewords', 'texture-dim', 'hidden', 'epochs', 'patience', 'batch'] as const) {
    const v = args[key];
    if (!(Number.isInteger(v) && v > 0)) throw new UsageError(`must be a positive integer, got ${v}`, { field: `--${key}` });
  }
  for (const key of ['lr', 'scale'] as const) if (!(args[key] > 0)) throw new UsageError(`must be positive, got ${args[key]}`, { field: `--${key}` });
  for (const key of ['diversity-weight', 'localisation-weight', 'anchor-weight', 'positive-weight', 'alpha', 'beta'] as const) {
    if (!(args[key] >= 0)) throw new UsageError(`must be a number >= 0, got ${args[key]}`, { field: `--${key}` });
  }
  if (!(args.dropout >= 0 && args.dropout < 1)) throw new UsageError(`must be in [0, 1), got ${args.dropout}`, { field: '--dropout' });
  for (const key of ['test-fraction', 'val-fraction'] as const) if (!(args[key] >= 0 && args[key] < 1)) throw new UsageError(`must be in [0, 1), got ${args[key]}`, { field: `--${key}` });
  const match = /^(\d+)x(\d+)$/.exec(args['input-shape']);
  if (!match) throw new UsageError(`expected HEIGHTxWIDTH such as 384x256, got '${args['input-shape']}'`, { field: '--input-shape' });
  const height = Number(match[1]) / args.scale;
  const width = Number(match[2]) / args.scale;
  if (!(Number.isInteger(height) && Number.isInteger(width) && height % 16 === 0 && width % 16 === 0 && height > 0 && width > 0)) {
    const shown = (v: number) => Number(v.toFixed(2));
    throw new UsageError(`${args['input-shape']} / ${args.scale} gives ${shown(height)}x${shown(width)}; both sides must be whole multiples of 16 (two 4x4 poolings)`, { field: '--scale' });
  }
  return { height, width };
}
