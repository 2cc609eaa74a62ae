// Batched image -> vector computation shared by embed and tag: decode ahead, centre-crop like the
// validation images of training, run the model, hand rows on in input order.
import { tf } from '../backend/tf.js';
import { batches } from '../image/prefetch.js';
import { decodeRecords, imageToBytes, type DecodedRecord, type ImageRecord } from '../image/records.js';
import type { SkipCounter } from '../image/skips.js';
import { batchPixels } from '../train/weak-trainer.js';

export interface FeatureBatch {
  records: DecodedRecord[];
  /** Row-major [records.length, dim]. */
  rows: Float32Array;
  dim: number;
}

/** Training keeps images at 1.125 x the input side for random crops; inference takes the centre crop of the same. */
export function storedSizeFor(inputSize: number): number {
  return Math.round(inputSize * 1.125);
}

/** Scales each row to unit L2 norm in place (zero rows stay zero). */
export function normalizeRows(rows: Float32Array, dim: number): void {
  for (let r = 0; r < rows.length / dim; r++) {
    let sum = 0;
    for (let j = 0; j < dim; j++) sum += rows[r * dim + j] ** 2;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let j = 0; j < dim; j++) rows[r * dim + j] *= scale;
  }
}

/**
 * Streams `model(x)` for every decodable image. `model` null gives the raw-pixel baseline: the
 * centre crop itself, flattened (HWC), as the feature vector.
 */
export async function* computeFeatures(
  model: tf.LayersModel | null,
  records: AsyncIterable<ImageRecord> | Iterable<ImageRecord>,
  inputSize: number,
  batchSize: number,
  skips: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  commandName: string,
): AsyncGenerator<FeatureBatch> {
  const storedSize = storedSizeFor(inputSize);
  const decoded = decodeRecords(records, { width: storedSize, height: storedSize, fit: 'cover' }, skips, io, commandName);
  for await (const group of batches(decoded, batchSize)) {
    const store = { pixels: group.map((r) => imageToBytes(r.image)), storedSize };
    const pixels = batchPixels(store, group.map((_, i) => i), inputSize);
    if (!model) {
      yield { records: group, rows: pixels, dim: inputSize * inputSize * 3 };
      continue;
    }
    const out = tf.tidy(() => model.predict(tf.tensor4d(pixels, [group.length, inputSize, inputSize, 3])) as tf.Tensor2D);
    const rows = (await out.data()) as Float32Array;
    const dim = out.shape[1];
    out.dispose();
    yield { records: group, rows, dim };
  }
}
