// int8 models on onnxruntime: the activation ranges measured on calibration images or feature rows
// (a calibration run of the folded float graph, which also keeps the float outputs), the QDQ graph
// built from them, and how closely the int8 session follows float on those same inputs.
import { UsageError } from '../command.js';
import type { ConvertedGraph } from './convert.js';
import { encodeConverted, type ConvertedModel } from './export.js';
import { calibrationGraph, foldBatchNorm, quantizedTensors, quantizeGraph, rangeOutputs, type TensorRange } from './quantize.js';
import type { CalibrationBatch } from './precision.js';
import { sessionOptions, type Ort } from './session.js';

/**
 * How closely the int8 model follows the float one on the calibration images (or feature rows):
 * the cosine of each input's output row with the float one (over outputs of more than one column;
 * absent when every output is one number, where a cosine says nothing), and the largest change of
 * any output value.
 */
export interface Int8Agreement {
  images?: number;
  rows?: number;
  meanCosine?: number;
  minCosine?: number;
  maxDifference: number;
}

type Outputs = Array<Record<string, Float32Array>>;

/** How many calibration inputs, named as what they are: {images} for image batches, {rows} for feature rows. */
function calibrationCount(batches: CalibrationBatch[]): { images: number } | { rows: number } {
  const n = batches.reduce((sum, batch) => sum + batch.shape[0], 0);
  return batches[0]?.shape.length === 2 ? { rows: n } : { images: n };
}

/** "32 images, cosine with float there 0.99 mean, 0.95 worst, outputs move by 0.03 at most", for stderr. */
export function agreementText(a: Int8Agreement): string {
  const count = a.rows !== undefined ? `${a.rows} rows` : `${a.images} images`;
  const cosine = a.meanCosine !== undefined ? `, cosine with float there ${a.meanCosine} mean, ${a.minCosine} worst` : '';
  return `${count}${cosine}, outputs move by ${a.maxDifference} at most`;
}

/**
 * Min and max of every tensor of `tensors` over the calibration batches, run through `bytes` (a
 * calibrationGraph: each batch's min and max of each tensor come out as scalars), and the graph's
 * own outputs. Quantiles (dropping the 0.01% tails) were tried and fitted worse on every tower of
 * test/lib/quantize.test.ts.
 */
async function measureRanges(ort: Ort, bytes: Uint8Array, inputName: string, outputNames: string[], tensors: string[], batches: CalibrationBatch[]): Promise<{ ranges: Map<string, TensorRange>; float: Outputs }> {
  const session = await ort.InferenceSession.create(bytes, sessionOptions());
  const ranges = new Map(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
  const float: Outputs = [];
  try {
    for (const batch of batches) {
      const result = await session.run({ [inputName]: new ort.Tensor('float32', batch.data, batch.shape) });
      for (const t of tensors) {
        const names = rangeOutputs(t);
        const range = ranges.get(t)!;
        range.min = Math.min(range.min, (result[names.min].data as Float32Array)[0]);
        range.max = Math.max(range.max, (result[names.max].data as Float32Array)[0]);
      }
      float.push(Object.fromEntries(outputNames.map((name) => [name, result[name].data as Float32Array])));
    }
  } finally {
    await session.release();
  }
  return { ranges, float };
}

/** An int8 graph of `converted`, calibrated on `calibration`, and the float outputs there (to measure agreement against). */
export async function calibrateInt8(ort: Ort, converted: ConvertedModel, calibration: CalibrationBatch[]): Promise<{ graph: ConvertedGraph; bytes: Uint8Array; float: Outputs }> {
  const folded = foldBatchNorm(converted.graph);
  const tensors = quantizedTensors(folded);
  if (tensors.length === 0) throw new UsageError('the model has no convolution or dense layer, which are what int8 quantizes', { field: '--precision' });
  const outputNames = converted.graph.outputs.map((o) => o.name);
  const { ranges, float } = await measureRanges(ort, encodeConverted(converted, calibrationGraph(folded, tensors)), converted.inputName, outputNames, tensors, calibration);
  const graph = quantizeGraph(folded, ranges);
  return { graph, bytes: encodeConverted(converted, graph, { 'atelier.precision': JSON.stringify(precisionRecord(calibration)) }), float };
}

function precisionRecord(calibration: CalibrationBatch[], agreement?: Int8Agreement): Record<string, unknown> {
  const count = calibrationCount(calibration);
  const calibrated = 'rows' in count ? { calibrationRows: count.rows } : { calibrationImages: count.images };
  return { precision: 'int8', ...calibrated, weights: 'int8 symmetric per output channel', activations: 'uint8 per tensor, calibration min/max', ...(agreement ? { agreement } : {}) };
}

/** Outputs of one batch by name, from whichever session runs the model. */
export type BatchRun = (batch: CalibrationBatch) => Promise<Record<string, Float32Array>>;

/** A main-thread session as a BatchRun. */
export function sessionRun(ort: Ort, session: import('onnxruntime-node').InferenceSession, inputName: string): BatchRun {
  return async (batch) => {
    const result = await session.run({ [inputName]: new ort.Tensor('float32', batch.data, batch.shape) });
    return Object.fromEntries(Object.entries(result).map(([name, t]) => [name, t.data as Float32Array]));
  };
}

/** Per input, the cosine of `run`'s output rows with the float ones (outputs of two or more columns), and the largest change of an output value. */
export async function measureAgreement(run: BatchRun, calibration: CalibrationBatch[], float: Outputs): Promise<Int8Agreement> {
  const cosines: number[] = [];
  let maxDifference = 0;
  for (const [k, batch] of calibration.entries()) {
    const result = await run(batch);
    const count = batch.shape[0];
    for (const [name, x] of Object.entries(float[k])) {
      const y = result[name];
      const dim = x.length / count;
      for (let j = 0; j < x.length; j++) maxDifference = Math.max(maxDifference, Math.abs(x[j] - y[j]));
      if (dim < 2) continue;
      for (let i = 0; i < count; i++) {
        let dot = 0;
        let nx = 0;
        let ny = 0;
        for (let j = i * dim; j < (i + 1) * dim; j++) {
          dot += x[j] * y[j];
          nx += x[j] * x[j];
          ny += y[j] * y[j];
        }
        cosines.push(nx === 0 && ny === 0 ? 1 : dot / Math.sqrt(nx * ny || 1));
      }
    }
  }
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  const cosine = cosines.length ? { meanCosine: round(cosines.reduce((s, c) => s + c, 0) / cosines.length), minCosine: round(Math.min(...cosines)) } : {};
  return { ...calibrationCount(calibration), ...cosine, maxDifference: round(maxDifference) };
}

/** A converted model as int8 QDQ bytes (for a file): calibrated, checked against float, the agreement in its metadata. */
export async function quantizedBytes(ort: Ort, converted: ConvertedModel, calibration: CalibrationBatch[]): Promise<{ bytes: Uint8Array; agreement: Int8Agreement }> {
  const { graph, bytes, float } = await calibrateInt8(ort, converted, calibration);
  const session = await ort.InferenceSession.create(bytes, sessionOptions());
  let agreement: Int8Agreement;
  try {
    agreement = await measureAgreement(sessionRun(ort, session, converted.inputName), calibration, float);
  } finally {
    await session.release();
  }
  return { bytes: encodeConverted(converted, graph, { 'atelier.precision': JSON.stringify(precisionRecord(calibration, agreement)) }), agreement };
}

/** How often an int8 classifier picks the float model's label, and how far its probabilities move. */
export interface LabelAgreement {
  /** Calibration images or rows compared. */
  count: number;
  sameLabel: number;
  /** Per input, the largest |p_int8 - p_float| over the classes: its mean and worst. */
  meanDifference: number;
  maxDifference: number;
}

/** Label agreement of int8 rows with float rows; `probabilities` turns a batch's output rows into class probabilities. */
export function labelAgreement(rows: ReadonlyArray<{ count: number; float: Float32Array; int8: Float32Array }>, probabilities: (out: Float32Array, count: number) => Float32Array): LabelAgreement {
  let count = 0;
  let sameLabel = 0;
  let sum = 0;
  let worst = 0;
  for (const batch of rows) {
    const pf = probabilities(batch.float, batch.count);
    const pi = probabilities(batch.int8, batch.count);
    const classes = pf.length / batch.count;
    for (let i = 0; i < batch.count; i++) {
      let bestF = 0;
      let bestI = 0;
      let diff = 0;
      for (let c = 0; c < classes; c++) {
        const k = i * classes + c;
        if (pf[k] > pf[i * classes + bestF]) bestF = c;
        if (pi[k] > pi[i * classes + bestI]) bestI = c;
        diff = Math.max(diff, Math.abs(pf[k] - pi[k]));
      }
      if (bestF === bestI) sameLabel++;
      sum += diff;
      worst = Math.max(worst, diff);
      count++;
    }
  }
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  return { count, sameLabel, meanDifference: round(count ? sum / count : 0), maxDifference: round(worst) };
}
