// The inference engine: onnxruntime-node (the tfjs model converted in memory, run on every core)
// when it loads and the model converts, else tfjs. `auto` picks onnxruntime except when tfjs has
// its CUDA backend, which outruns onnxruntime's CPU provider.
import { tf } from '../backend/tf.js';
import { UsageError } from '../command.js';
import type { BackendChoice } from '../backend/select.js';
import { openPredictor, type BatchPredictor } from '../models/image-features.js';
import { convertLayersModel, encodeConverted } from './export.js';
import { agreementText, calibrateInt8, measureAgreement, type Int8Agreement } from './int8.js';
import type { CalibrationBatch } from './precision.js';
import { loadOrt, ortThreads, type Ort } from './session.js';
import { openSessionThread } from './session-thread.js';
import { inputSides, type InputShape } from '../image/batch.js';

export const ENGINE_NAMES = ['auto', 'ort', 'tfjs'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** The yargs option of the commands that run a model forward. */
export const engineOption = {
  engine: {
    describe: 'inference engine: auto (onnxruntime when it loads and the model converts, else tfjs), ort or tfjs (env ATELIER_ENGINE)',
    choices: [...ENGINE_NAMES],
    default: 'auto',
  },
};

/** A model running in onnxruntime: float32 in, one float32 output out, batch first. */
export interface OrtModel {
  run(data: Float32Array, shape: number[]): Promise<{ data: Float32Array; shape: number[] }>;
  release(): Promise<void>;
  /** An int8 model's agreement with float on its calibration images or rows. */
  agreement?: Int8Agreement;
  /** An int8 model's output rows on its calibration batches, beside the float ones (for a command's own comparison). */
  calibrationRows?: CalibrationRows[];
}

/** One calibration batch's output rows in float and in int8. */
export interface CalibrationRows {
  count: number;
  float: Float32Array;
  int8: Float32Array;
}

/**
 * Converts `model` (only the path to `output`, default its first output) and opens it in
 * onnxruntime; with `calibration`, as int8 calibrated on those batches, its agreement with float
 * there measured on the session itself.
 */
export async function openOrtModel(ort: Ort, model: tf.LayersModel, output: tf.SymbolicTensor = model.outputs[0], calibration?: CalibrationBatch[]): Promise<OrtModel> {
  const converted = await convertLayersModel(model, {}, { name: 'output', tensor: output });
  const int8 = calibration ? await calibrateInt8(ort, converted, calibration) : null;
  const session = await openOrtSession(int8 ? int8.bytes : encodeConverted(converted), converted.inputName, 'output');
  const calibrationRows: CalibrationRows[] = [];
  const measured = async (batch: CalibrationBatch) => {
    const out = (await session.run(batch.data, batch.shape)).data;
    calibrationRows.push({ count: batch.shape[0], float: int8!.float[calibrationRows.length].output, int8: out });
    return { output: out };
  };
  const agreement = int8 ? await measureAgreement(measured, calibration!, int8.float).catch(async (err) => {
    await session.release();
    throw err;
  }) : undefined;
  return { ...session, agreement, calibrationRows: int8 ? calibrationRows : undefined };
}

/** ONNX `bytes` on onnxruntime in its own thread (every core): its output `output`, batch by batch. */
export async function openOrtSession(bytes: Uint8Array, inputName: string, output: string): Promise<OrtModel> {
  const session = await openSessionThread(bytes, ortThreads());
  return {
    async run(data, shape) {
      const out = (await session.run({ [inputName]: { data, dims: shape } }))[output];
      return { data: out.data, shape: out.dims };
    },
    release: () => session.release(),
  };
}

export interface EngineChoice {
  engine: 'ort' | 'tfjs';
  /** Why, for stderr and `info`. */
  reason: string;
  /** Asked for by flag or environment: failing to use it is an error, not a fallback. */
  forced: boolean;
  ort?: Ort;
}

/**
 * Picks the engine for a model: `requested` (flag) over ATELIER_ENGINE, auto otherwise. A forced
 * engine that cannot run is a UsageError; auto falls back to tfjs and says why.
 */
export async function chooseEngine(opts: { requested?: string; env: NodeJS.ProcessEnv; backend?: BackendChoice }): Promise<EngineChoice> {
  const fromFlag = opts.requested && opts.requested !== 'auto';
  const raw = fromFlag ? opts.requested! : opts.env.ATELIER_ENGINE && opts.env.ATELIER_ENGINE !== 'auto' ? opts.env.ATELIER_ENGINE : 'auto';
  const source = fromFlag ? '--engine' : 'ATELIER_ENGINE';
  if (!(ENGINE_NAMES as readonly string[]).includes(raw)) throw new UsageError(`unknown engine '${raw}' (choose from ${ENGINE_NAMES.join(', ')})`, { field: source });
  if (raw === 'tfjs') return { engine: 'tfjs', reason: `forced by ${source}=tfjs`, forced: true };
  const ort = await loadOrt();
  if (ort instanceof Error) {
    const why = /Cannot find (module|package)/.test(ort.message) ? 'onnxruntime-node is not installed' : `onnxruntime-node did not load: ${ort.message.split('\n')[0].slice(0, 160)}`;
    if (raw === 'ort') throw new UsageError(`engine 'ort' cannot be used: ${why}`, { field: source });
    return { engine: 'tfjs', reason: why, forced: false };
  }
  if (raw === 'ort') return { engine: 'ort', reason: `forced by ${source}=ort`, forced: true, ort };
  if (opts.backend?.name === 'tensorflow-gpu') return { engine: 'tfjs', reason: 'tfjs has its CUDA backend', forced: false };
  return { engine: 'ort', reason: 'fastest available', forced: false, ort };
}

/**
 * Opens `model` on the chosen engine; when auto chose onnxruntime and the model does not convert,
 * falls back to tfjs. Returns null for tfjs (the caller keeps its tfjs path). Says which on stderr.
 */
export async function openEngineModel(choice: EngineChoice, model: tf.LayersModel, io: { stderr: NodeJS.WritableStream }, commandName: string, output?: tf.SymbolicTensor, calibration?: CalibrationBatch[]): Promise<OrtModel | null> {
  if (calibration && (choice.engine === 'tfjs' || !choice.ort)) throw new UsageError(`int8 runs on onnxruntime only, and the engine is tfjs (${choice.reason})`, { field: '--precision' });
  if (choice.engine === 'tfjs' || !choice.ort) {
    io.stderr.write(`atelier ${commandName}: engine tfjs (${choice.reason})\n`);
    return null;
  }
  try {
    const opened = await openOrtModel(choice.ort, model, output, calibration);
    const threads = ortThreads();
    const agreed = opened.agreement;
    const precision = agreed ? `, int8 calibrated on ${agreementText(agreed)}` : '';
    io.stderr.write(`atelier ${commandName}: engine ort (${choice.reason}, onnxruntime-node ${choice.ort.env.versions.node ?? '?'}, ${threads} thread${threads === 1 ? '' : 's'}${precision})\n`);
    return opened;
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200);
    if (choice.forced || calibration) throw new UsageError(`engine 'ort' cannot run this model${calibration ? ' in int8' : ''}: ${why}`, { field: calibration ? '--precision' : '--engine' });
    io.stderr.write(`atelier ${commandName}: engine tfjs (the model does not run in onnxruntime: ${why})\n`);
    return null;
  }
}

/** A BatchPredictor for image batches [count, size, size, 3] on onnxruntime. */
export function ortPredictor(model: OrtModel, inputSize: InputShape): BatchPredictor {
  const { height, width } = inputSides(inputSize);
  return {
    // Two batches in flight: one decodes while the other computes on every core.
    inFlight: 2,
    async predict(pixels, count) {
      const out = await model.run(pixels, [count, height, width, 3]);
      return { rows: out.data, dim: out.shape[1] };
    },
  };
}

/** A model run batch by batch on one engine; `run` copies nothing the caller must dispose. */
export interface ModelRunner {
  engine: 'ort' | 'tfjs';
  /** int8 only: output rows on the calibration batches, float beside int8. */
  calibrationRows?: CalibrationRows[];
  run(data: Float32Array, shape: number[]): Promise<{ data: Float32Array; shape: number[] }>;
  close(): Promise<void>;
}

/** The tfjs model as a ModelRunner, on this thread's backend. */
export function tfjsRunner(model: tf.LayersModel, output?: tf.SymbolicTensor): ModelRunner {
  const net = output && output !== model.outputs[0] ? tf.model({ inputs: model.inputs, outputs: output }) : model;
  return {
    engine: 'tfjs',
    async run(data, shape) {
      const y = tf.tidy(() => net.predict(tf.tensor(data, shape)) as tf.Tensor);
      const out = (await y.data()) as Float32Array;
      const outShape = y.shape;
      y.dispose();
      return { data: out, shape: outShape };
    },
    close: async () => {},
  };
}

/** Chooses the engine (flag, ATELIER_ENGINE, auto), says which on stderr and opens `model` on it. */
export async function openModelRunner(
  model: tf.LayersModel,
  opts: { engine?: string; env: NodeJS.ProcessEnv; stderr: NodeJS.WritableStream; backend?: BackendChoice; commandName: string; output?: tf.SymbolicTensor; calibration?: CalibrationBatch[] },
): Promise<ModelRunner> {
  const choice = await chooseEngine({ requested: opts.engine, env: opts.env, backend: opts.backend });
  const opened = await openEngineModel(choice, model, { stderr: opts.stderr }, opts.commandName, opts.output, opts.calibration);
  if (!opened) return tfjsRunner(model, opts.output);
  return { engine: 'ort', run: (data, shape) => opened.run(data, shape), close: () => opened.release(), calibrationRows: opened.calibrationRows };
}

/**
 * A BatchPredictor for image models on the chosen engine: onnxruntime on every core, or the tfjs
 * path (a WASM worker pool or this thread). Call `close` when done.
 */
export async function openImagePredictor(
  model: tf.LayersModel,
  inputSize: InputShape,
  opts: { engine?: string; env: NodeJS.ProcessEnv; stderr: NodeJS.WritableStream; backend: BackendChoice; workers: number; commandName: string; calibration?: CalibrationBatch[] },
): Promise<{ predictor: BatchPredictor; engine: 'ort' | 'tfjs'; close(): Promise<void> }> {
  const choice = await chooseEngine({ requested: opts.engine, env: opts.env, backend: opts.backend });
  // onnxruntime on every core although the main thread decodes beside it: measured on 2 cores
  // (ResNet-18 int8 embed, 5,000 images, bench/RESULTS.md), two threads 13.4-14.6 s, one 14.7-15.9 s.
  const opened = await openEngineModel(choice, model, { stderr: opts.stderr }, opts.commandName, undefined, opts.calibration);
  if (opened) return { predictor: ortPredictor(opened, inputSize), engine: 'ort', close: () => opened.release() };
  const tfjs = await openPredictor(model, inputSize, opts.backend, opts.workers);
  return { predictor: tfjs.predictor, engine: 'tfjs', close: tfjs.close };
}
