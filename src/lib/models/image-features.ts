// Batched image -> vector computation shared by embed and tag: decode ahead, centre-crop like the
// validation images of training, run the model, hand rows on in input order.
import { nonNegativeInt } from '../options.js';
import { tf } from '../backend/tf.js';
import { cpus } from 'node:os';
import { WorkerPool } from '../backend/pool.js';
import type { BackendChoice } from '../backend/select.js';
import { batches } from '../image/prefetch.js';
import { decodeRecords, type DecodedRecord, type ImageRecord } from '../image/records.js';
import type { SkipCounter } from '../image/skips.js';
import { centreCropImages, inputSides, type InputShape } from '../image/batch.js';
import type { ImageFit, ImageRegion } from '../image/decode.js';

export interface FeatureBatch {
  records: DecodedRecord[];
  /** Row-major [records.length, dim]. */
  rows: Float32Array;
  dim: number;
}

/** Training keeps images at 1.125 x each input side for random crops; inference takes the centre crop of the same. */
export const STORED_MARGIN = 1.125;

export function storedSizeFor(inputSize: number): number {
  return Math.round(inputSize * STORED_MARGIN);
}

/** Runs a model on batches of pixels; `inFlight` batches may be outstanding at once. */
export interface BatchPredictor {
  predict(pixels: Float32Array, count: number): Promise<{ rows: Float32Array; dim: number }>;
  readonly inFlight: number;
}

/** The model in this thread: one batch at a time. */
export function modelPredictor(model: tf.LayersModel, inputSize: InputShape): BatchPredictor {
  const { height, width } = inputSides(inputSize);
  return {
    inFlight: 1,
    async predict(pixels, count) {
      const out = tf.tidy(() => model.predict(tf.tensor4d(pixels, [count, height, width, 3])) as tf.Tensor2D);
      const rows = (await out.data()) as Float32Array;
      const dim = out.shape[1];
      out.dispose();
      return { rows, dim };
    },
  };
}

/** A pool whose workers hold the model (WorkerPool.loadModel): two batches per worker in flight. */
export function poolPredictor(pool: WorkerPool, inputSize: InputShape): BatchPredictor {
  const { height, width } = inputSides(inputSize);
  return {
    inFlight: 2 * pool.size,
    async predict(pixels, count) {
      const out = await pool.predict({ shape: [count, height, width, 3], dtype: 'float32', data: pixels });
      return { rows: out.data as Float32Array, dim: out.shape[1] };
    },
  };
}

/** How images are fitted for a model: its metadata's tower.resize ('contain' for non-square towers), else round 1's 'cover'. */
export function resizeModeOf(metadata: Record<string, unknown>): ImageFit {
  const tower = metadata.tower as { resize?: unknown } | undefined;
  return tower && typeof tower === 'object' && tower.resize === 'contain' ? 'contain' : 'cover';
}

/** The yargs option of the commands that run an image model over many images. */
export const workersOption = {
  workers: {
    describe: 'tfjs engine: inference threads, each with its own WASM backend (0: one per core on WASM; 1: this thread only; native backends always use this thread); the ort engine computes on every core itself',
    type: 'number' as const,
    default: 0,
    check: nonNegativeInt,
  },
};

/**
 * A predictor for `model` on the chosen backend: a worker pool when the backend is WASM (one
 * thread per process) and more than one worker is asked for or available, else this thread.
 * Call `close` when done.
 */
export async function openPredictor(model: tf.LayersModel, inputSize: InputShape, backend: BackendChoice, workers: number): Promise<{ predictor: BatchPredictor; workers: number; close(): Promise<void> }> {
  const wanted = workers > 0 ? workers : cpus().length;
  if (backend.name !== 'wasm' || wanted <= 1) return { predictor: modelPredictor(model, inputSize), workers: 1, close: async () => {} };
  const pool = await WorkerPool.create({ workers: wanted, backend: 'wasm' });
  try {
    await pool.loadModel(model);
  } catch (err) {
    await pool.close();
    throw err;
  }
  return { predictor: poolPredictor(pool, inputSize), workers: wanted, close: () => pool.close() };
}

/**
 * Streams the model's output for every decodable image, in input order. `predictor` null gives
 * the raw-pixel baseline: the centre crop itself, flattened (HWC), as the feature vector.
 */
export async function* computeFeatures(
  predictor: BatchPredictor | null,
  records: AsyncIterable<ImageRecord> | Iterable<ImageRecord>,
  inputSize: InputShape,
  batchSize: number,
  skips: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  commandName: string,
  fit: ImageFit = 'cover',
  regionOf?: (r: ImageRecord) => ImageRegion | undefined,
): AsyncGenerator<FeatureBatch> {
  const { height, width } = inputSides(inputSize);
  const stored = { height: storedSizeFor(height), width: storedSizeFor(width) };
  // Cover with even margins: decoding at the input size zoomed by the margin is the centre crop of
  // the stored image pixel for pixel (the same resize targets, the crop offsets shifted by whole
  // pixels; an odd margin would round its half pixel the other way), and the fast JPEG path then
  // resamples only the crop.
  const evenMargins = (stored.width - width) % 2 === 0 && (stored.height - height) % 2 === 0;
  const decodeAs = fit === 'cover' && evenMargins ? { width, height, zoom: STORED_MARGIN, fit } : { width: stored.width, height: stored.height, fit };
  const decoded = decodeRecords(records, decodeAs, skips, io, commandName, regionOf);
  const waiting: Array<Promise<FeatureBatch>> = [];
  try {
    for await (const group of batches(decoded, batchSize)) {
      const pixels = centreCropImages(group.map((r) => r.image), inputSize);
      if (!predictor) {
        yield { records: group, rows: pixels, dim: height * width * 3 };
        continue;
      }
      const result = predictor.predict(pixels, group.length).then(({ rows, dim }) => ({ records: group, rows, dim }));
      // Seen now, so an early rejection is not reported as unhandled before its turn.
      result.catch(() => {});
      waiting.push(result);
      if (waiting.length >= predictor.inFlight) yield await waiting.shift()!;
    }
    while (waiting.length > 0) yield await waiting.shift()!;
  } finally {
    await Promise.allSettled(waiting);
  }
}
