// A facet classifier run over its samples: input batches from feature rows or stored images, logits,
// the spatial transformer's boxes, and per split the report and the prediction lines.
import { tf } from '../backend/tf.js';
import { takeValues } from '../backend/read.js';
import { openAtomicWriteStream, type OutputGroup } from '../io/atomic.js';
import { batchPixels, inputSides, type ImageStore, type InputShape } from '../image/batch.js';
import { recordedImagePath } from '../image/records.js';
import { multiClassReport } from '../metrics/classification.js';
import { transformBox } from '../models/attention/model.js';
import type { Random } from '../random.js';
import type { SplitSample, SplitSamples } from './classifier-data.js';
import { argmax, predictionLine, reportJson, softmaxRow } from './evaluation.js';

/** Where a classifier's inputs come from: stored images (`store`) or feature rows, by sample slot. */
export interface ClassifierFeed {
  store: ImageStore | null;
  featureRows: Float32Array | null;
  featureDim: number;
  inputSize: InputShape;
}

/** The inputs of `part` as one tensor; `random` draws training crops and flips of images. */
export function classifierInputBatch(feed: ClassifierFeed, part: readonly SplitSample[], random?: Random): tf.Tensor {
  const { store, featureRows, featureDim, inputSize } = feed;
  if (store) return tf.tensor4d(batchPixels(store, part.map((s) => s.slot), inputSize, random), [part.length, inputSides(inputSize).height, inputSides(inputSize).width, 3]);
  const x = new Float32Array(part.length * featureDim);
  part.forEach((s, i) => x.set(featureRows!.subarray(s.slot * featureDim, (s.slot + 1) * featureDim), i * featureDim));
  return tf.tensor2d(x, [part.length, featureDim]);
}

/** Logits of every sample of `part`, row by row, computed 128 at a time. */
export async function classifierLogits(logitsNet: tf.LayersModel, feed: ClassifierFeed, part: readonly SplitSample[], classes: number): Promise<Float32Array> {
  const out = new Float32Array(part.length * classes);
  for (let start = 0; start < part.length; start += 128) {
    const chunk = part.slice(start, start + 128);
    const x = classifierInputBatch(feed, chunk);
    const y = logitsNet.predict(x) as tf.Tensor;
    x.dispose();
    out.set(await takeValues(y), start * classes);
  }
  return out;
}

/**
 * The transformer's crop of each image as fractions {x, y, w, h} of the stored image (the photo
 * itself when its aspect is the input's): the model sees the centre crop of the stored image.
 */
export async function classifierBoxes(boxesNet: tf.LayersModel, feed: ClassifierFeed, part: readonly SplitSample[]): Promise<Array<Record<string, number>>> {
  const boxes: Array<Record<string, number>> = [];
  const { height, width } = inputSides(feed.inputSize);
  const storedH = feed.store!.storedSize;
  const storedW = feed.store!.storedWidth ?? feed.store!.storedSize;
  const [x0, y0] = [(storedW - width) >> 1, (storedH - height) >> 1];
  const stored = (b: { x: number; y: number; w: number; h: number }) => ({ x: (b.x * width + x0) / storedW, y: (b.y * height + y0) / storedH, w: (b.w * width) / storedW, h: (b.h * height) / storedH });
  for (let start = 0; start < part.length; start += 128) {
    const x = classifierInputBatch(feed, part.slice(start, start + 128));
    const t = await takeValues(boxesNet.predict(x) as tf.Tensor);
    x.dispose();
    for (let i = 0; i < t.length; i += 4) boxes.push(Object.fromEntries(Object.entries(stored(transformBox(t[i], t[i + 1], t[i + 2], t[i + 3]))).map(([k, v]) => [k, Number(v.toFixed(4))])));
  }
  return boxes;
}

/**
 * The report of each split (train, val, test) and, with `predictions`, every sample's prediction line
 * {id, image?, split, truth, label, box?, probs}, written atomically.
 */
export async function splitReports(
  nets: { logitsNet: tf.LayersModel; boxesNet: tf.LayersModel | null },
  feed: ClassifierFeed,
  bySplit: SplitSamples,
  labels: string[],
  opts: { predictions?: string; imageField: string; outputs?: OutputGroup },
): Promise<Record<string, unknown>> {
  const reports: Record<string, unknown> = {};
  const predictionsOut = opts.predictions ? await openAtomicWriteStream(opts.predictions, opts.outputs) : null;
  try {
    for (const split of ['train', 'val', 'test'] as const) {
      const part = bySplit[split];
      const logits = await classifierLogits(nets.logitsNet, feed, part, labels.length);
      const boxes = nets.boxesNet ? await classifierBoxes(nets.boxesNet, feed, part) : null;
      const truth = part.map((s) => s.record.classIndex);
      const predicted = truth.map((_, i) => argmax(logits, i * labels.length, labels.length));
      reports[split] = reportJson(multiClassReport(truth, predicted, labels));
      if (predictionsOut) {
        let text = '';
        part.forEach((s, i) => {
          const image = s.record.record[opts.imageField];
          const recorded = typeof image === 'string' && image !== '' ? { image: recordedImagePath(image, s.record.file) } : {};
          const box = boxes ? { box: boxes[i] } : {};
          text += predictionLine({ id: s.record.id, ...recorded, split, truth: s.record.label, label: labels[predicted[i]], ...box }, labels, softmaxRow(logits.subarray(i * labels.length, (i + 1) * labels.length))) + '\n';
        });
        if (!predictionsOut.stream.write(text)) await new Promise((r) => predictionsOut.stream.once('drain', r));
      }
    }
    await predictionsOut?.commit();
  } catch (err) {
    await predictionsOut?.abort();
    throw err;
  }
  return reports;
}
