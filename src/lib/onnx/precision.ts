// --precision int8: which images (or, for a model on feature rows, which rows) calibrate the
// quantized model, checked before any work starts, and the calibration batches themselves,
// preprocessed exactly as the command feeds the model. Calibrating on a fixed list (by default the
// first images or rows of the input file, read before any --shard selection) gives every shard of
// a run the same quantized model, so their rows agree.
import { Writable } from 'node:stream';
import { UsageError } from '../command.js';
import { checkInputFile } from '../io/paths.js';
import { pathRecords, readImageRecords, type ImageRecord } from '../image/records.js';
import { createSkipCounter } from '../image/skips.js';
import { inputSides, type InputShape } from '../image/batch.js';
import type { ImageFit } from '../image/decode.js';
import { computeFeatures } from '../models/image-features.js';
import { positiveInt } from '../options.js';
import { readNpyHeader, readNpyRows } from '../io/npy.js';

export const PRECISIONS = ['fp32', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** Input batches a calibration run measures activation ranges on. */
export interface CalibrationBatch {
  data: Float32Array;
  shape: number[];
}

/** The yargs options of the commands that can run an int8 model. */
export const precisionOptions = {
  precision: {
    // No yargs default: a model given as an .onnx file has its precision already, and asking for one is an error.
    describe: 'arithmetic on onnxruntime: fp32 (the default; agrees with tfjs within 1e-4) or int8 (static quantization calibrated on --calibration; several times faster on CPUs with int8 dot products, outputs change by the rounding); not with an .onnx model, whose precision was fixed by atelier export',
    choices: [...PRECISIONS],
  },
  calibration: { describe: 'with --precision int8: NDJSON of images ({image} per line) to calibrate on, or for a model on feature rows a .npy of rows (default: the input file, the image arguments or --features)', type: 'string' },
  'calibration-images': { describe: 'with --precision int8: how many of the calibration images (or feature rows) to measure', type: 'number', default: 256, check: positiveInt },
} as const;

export interface PrecisionArgs {
  /** fp32 when absent. */
  precision?: string;
  calibration?: string;
  'calibration-images': number;
  engine?: string;
  images?: string[];
  input?: string;
  'image-field'?: string;
  'id-field'?: string;
  /** For a model on feature rows: the .npy of rows the command reads (none for export) and their width. */
  rows?: { features?: string; dim: number };
}

/** Where the calibration images come from. */
export interface ImageCalibrationPlan {
  kind: 'images';
  records: () => AsyncIterable<ImageRecord> | Iterable<ImageRecord>;
  count: number;
  source: string;
}

/** The .npy whose first rows calibrate a model on feature rows. */
export interface RowCalibrationPlan {
  kind: 'rows';
  path: string;
  dim: number;
  count: number;
}

export type CalibrationPlan = ImageCalibrationPlan | RowCalibrationPlan;

/**
 * Checks the precision options (files included) before any work starts: where the calibration
 * images come from (rows, with `rows`), or null for fp32. Throws UsageError for a setting that
 * cannot calibrate.
 */
export async function checkPrecision(args: PrecisionArgs & { rows: NonNullable<PrecisionArgs['rows']> }): Promise<RowCalibrationPlan | null>;
export async function checkPrecision(args: PrecisionArgs & { rows?: undefined }): Promise<ImageCalibrationPlan | null>;
export async function checkPrecision(args: PrecisionArgs): Promise<CalibrationPlan | null>;
export async function checkPrecision(args: PrecisionArgs): Promise<CalibrationPlan | null> {
  if (args.precision !== 'int8') {
    if (args.calibration !== undefined) throw new UsageError('--calibration is only read with --precision int8', { field: '--calibration' });
    return null;
  }
  if (args.engine === 'tfjs') throw new UsageError('int8 runs on onnxruntime only; leave out --engine tfjs', { field: '--precision' });
  const count = args['calibration-images'];
  if (args.rows) return checkRowCalibration(args.calibration ?? args.rows.features, args.rows.dim, count);
  const fields = [args['image-field'] ?? 'image', args['id-field'] ?? 'id'] as const;
  if (args.calibration !== undefined) {
    if (args.calibration === '-') throw new UsageError('the calibration images must be a file, not stdin', { field: '--calibration' });
    await checkInputFile(args.calibration);
    const file = args.calibration;
    return { kind: 'images', records: () => readImageRecords(file, ...fields), count, source: file };
  }
  if (args.images?.length) {
    const paths = args.images;
    return { kind: 'images', records: () => pathRecords(paths), count, source: 'the image arguments' };
  }
  if (args.input !== undefined && args.input !== '-') {
    const file = args.input;
    return { kind: 'images', records: () => readImageRecords(file, ...fields), count, source: file };
  }
  const why = args.input === '-' || (args.input === undefined && args.images !== undefined) ? 'images read from stdin cannot also calibrate' : 'int8 needs images to measure activation ranges on';
  throw new UsageError(`${why}; give --calibration FILE`, { field: '--calibration' });
}

/** A .npy of rows of `dim` values (at least one) to calibrate a model on feature rows. */
async function checkRowCalibration(path: string | undefined, dim: number, count: number): Promise<RowCalibrationPlan> {
  if (path === undefined) throw new UsageError('int8 needs feature rows to measure activation ranges on; give --calibration FILE.npy', { field: '--calibration' });
  if (path === '-') throw new UsageError('feature rows read from stdin cannot also calibrate; give --calibration FILE.npy', { field: '--calibration' });
  const header = await readNpyHeader(path);
  if (header.shape.length !== 2 || header.shape[1] !== dim || header.shape[0] === 0) {
    throw new UsageError(`calibration needs rows of the model's ${dim} features, got shape (${header.shape.join(', ')})`, { file: path, field: '--calibration' });
  }
  return { kind: 'rows', path, dim, count };
}

/** The first `plan.count` rows of the calibration .npy, as float32 batches [n, dim] of `batchSize`. */
export async function calibrationRowBatches(plan: RowCalibrationPlan, batchSize: number): Promise<CalibrationBatch[]> {
  const read = await readNpyRows(plan.path, 0, plan.count);
  const rows = read.data instanceof Float32Array ? read.data : Float32Array.from(read.data as ArrayLike<number>);
  const count = rows.length / plan.dim;
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) throw new UsageError('a calibration row holds a non-finite value', { file: plan.path, line: Math.floor(i / plan.dim) + 1 });
  }
  const batches: CalibrationBatch[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    batches.push({ data: rows.slice(start * plan.dim, end * plan.dim), shape: [end - start, plan.dim] });
  }
  return batches;
}

/**
 * The first `plan.count` decodable calibration images, cut and scaled as computeFeatures feeds
 * the model, in batches of `batchSize`. Their warnings are not repeated: the run reports its own.
 */
export async function calibrationBatches(plan: ImageCalibrationPlan, inputSize: InputShape, batchSize: number, fit: ImageFit, commandName: string): Promise<CalibrationBatch[]> {
  const { height, width } = inputSides(inputSize);
  const quiet = { stderr: new Writable({ write: (_chunk, _encoding, done) => done() }) };
  const batches: CalibrationBatch[] = [];
  let images = 0;
  const capture = {
    inFlight: 1,
    async predict(pixels: Float32Array, count: number) {
      batches.push({ data: pixels.slice(0, count * height * width * 3), shape: [count, height, width, 3] });
      return { rows: new Float32Array(count), dim: 1 };
    },
  };
  const size = Math.min(batchSize, plan.count);
  for await (const batch of computeFeatures(capture, plan.records(), inputSize, size, createSkipCounter(), quiet, commandName, fit)) {
    images += batch.records.length;
    if (images >= plan.count) break;
  }
  if (images === 0) throw new UsageError(`no calibration image could be decoded in ${plan.source}`, { field: '--calibration' });
  return batches;
}
