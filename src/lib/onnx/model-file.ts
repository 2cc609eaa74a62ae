// An .onnx file written by `atelier export` as the model of an inference command: its kind, input
// size, resize mode, labels and precision read from metadata_props, and a predictor on onnxruntime
// for one of its outputs. Quantized once at export, the file starts at once: no conversion, no
// calibration pass. A file without atelier's metadata is refused: its preprocessing is unknown.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { checkInputFile } from '../io/paths.js';
import type { InputShape } from '../image/batch.js';
import type { ImageFit } from '../image/decode.js';
import { resizeModeOf } from '../models/image-features.js';
import { findKind, type FeatureLayer } from '../models/kinds.js';
import type { BatchPredictor } from '../models/image-features.js';
import { decodeModelSummary } from './proto.js';
import { chooseEngine, openOrtSession, ortPredictor, type ModelRunner, type OrtModel } from './runtime.js';
import { ortThreads } from './session.js';

export interface OnnxModelFile {
  path: string;
  bytes: Uint8Array;
  /** metadata.kind of the exported model directory ('unknown' when it had none). */
  kind: string;
  /** The model directory's own metadata (metadata_props 'atelier.metadata'). */
  metadata: Record<string, unknown>;
  precision: 'fp32' | 'int8';
  /** The int8 record of metadata_props 'atelier.precision' (calibration, agreement), for stderr. */
  precisionRecord?: Record<string, unknown>;
  inputName: string;
  outputs: string[];
  /** Image models: the input side or H x W; null for a model on feature rows. */
  inputSize: InputShape | null;
  /** A model on feature rows: their width. */
  inputDim?: number;
  fit: ImageFit;
}

/** Whether `-m` names an .onnx file rather than a model directory. */
export function isOnnxModelPath(path: string): boolean {
  return /\.onnx$/i.test(path);
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads an .onnx file written by atelier export; a missing file, another format or another producer's model is a UsageError. */
export async function readOnnxModel(path: string): Promise<OnnxModelFile> {
  await checkInputFile(path);
  const bytes = new Uint8Array(await readFile(path));
  let summary: ReturnType<typeof decodeModelSummary>;
  try {
    summary = decodeModelSummary(bytes);
  } catch (err) {
    throw new UsageError(`not an ONNX model (${(err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 120)})`, { file: path });
  }
  const props = summary.metadata;
  const metadata = parseJson(props['atelier.metadata']);
  const preprocessing = parseJson(props.preprocessing) as { inputSize?: unknown; layout?: unknown; dim?: unknown } | undefined;
  if (props['atelier.kind'] === undefined || !metadata || typeof metadata !== 'object' || !preprocessing || summary.inputs.length !== 1) {
    throw new UsageError('not a model written by atelier export (no atelier metadata in its metadata_props); export the model directory with atelier export', { file: path });
  }
  const size = preprocessing.inputSize;
  const inputSize: InputShape | null = preprocessing.layout !== 'NHWC' ? null : typeof size === 'number' ? size : size && typeof size === 'object' ? (size as { height: number; width: number }) : null;
  const record = parseJson(props['atelier.precision']) as Record<string, unknown> | undefined;
  return {
    path,
    bytes,
    kind: props['atelier.kind'],
    metadata: metadata as Record<string, unknown>,
    precision: record?.precision === 'int8' ? 'int8' : 'fp32',
    precisionRecord: record,
    inputName: summary.inputs[0],
    outputs: summary.outputs,
    inputSize,
    inputDim: inputSize === null && typeof preprocessing.dim === 'number' ? preprocessing.dim : undefined,
    fit: resizeModeOf(metadata as Record<string, unknown>),
  };
}

/**
 * The settings an .onnx file fixes: its precision (quantized and calibrated at export) and its
 * engine (onnxruntime). Asking for either is a UsageError, before any work.
 */
export function checkOnnxSettings(file: OnnxModelFile, args: { precision?: string; calibration?: string; engine?: string }): void {
  if (args.precision !== undefined || args.calibration !== undefined) {
    const how = file.precision === 'int8' ? 'int8, calibrated when it was exported' : 'fp32';
    throw new UsageError(`the .onnx file is already ${how}; leave out ${args.precision !== undefined ? '--precision' : '--calibration'} (atelier export --precision makes another)`, { file: file.path, field: args.precision !== undefined ? '--precision' : '--calibration' });
  }
  if (args.engine === 'tfjs') throw new UsageError('an .onnx model runs on onnxruntime only; leave out --engine tfjs', { file: file.path, field: '--engine' });
}

/** The output of an exported model that `embed --layer` asks for (export.ts names them by kind). */
export function onnxFeatureOutput(file: OnnxModelFile, layer: FeatureLayer): string {
  const kind = findKind(file.kind)?.name;
  const byKind: Record<string, Partial<Record<FeatureLayer, string>>> = {
    weak: { embedding: 'embedding', pooled: 'pooled', stages: 'stages', 'stages-max': 'stages_max' },
    classifier: { embedding: 'features' },
    similarity: { embedding: 'embedding' },
  };
  const name = kind ? byKind[kind]?.[layer] : undefined;
  if (file.inputSize === null || name === undefined || !file.outputs.includes(name)) {
    const holds = `it holds ${file.outputs.join(', ')} of a ${kind ?? file.kind} model${file.inputSize === null ? ' on feature rows' : ''}`;
    throw new UsageError(`the .onnx file has no '${layer}' image features (${holds}); embed from the model directory`, { file: file.path, field: '--layer' });
  }
  return name;
}

/** `name`, an output the command reads (tag: 'scores', classify: 'probs'), checked to be in `file`. */
export function requireOnnxOutput(file: OnnxModelFile, name: string): string {
  if (!file.outputs.includes(name)) throw new UsageError(`the .onnx file has no '${name}' output (it holds ${file.outputs.join(', ')} of a ${findKind(file.kind)?.name ?? file.kind} model)`, { file: file.path });
  return name;
}

/** `file`'s `output` on onnxruntime (every core, its own thread), batch by batch; says so on stderr. */
async function openOnnxModel(file: OnnxModelFile, output: string, opts: { engine?: string; env: NodeJS.ProcessEnv; stderr: NodeJS.WritableStream; commandName: string }): Promise<OrtModel> {
  const choice = await chooseEngine({ requested: opts.engine, env: opts.env });
  if (choice.engine !== 'ort' || !choice.ort) throw new UsageError(`an .onnx model runs on onnxruntime only, and the engine is tfjs (${choice.reason})`, { file: file.path, field: '--engine' });
  const model = await openOrtSession(file.bytes, file.inputName, output);
  const threads = ortThreads();
  const calibrated = file.precisionRecord?.calibrationImages ?? file.precisionRecord?.calibrationRows;
  const precision = file.precision === 'int8' ? `int8 as exported${calibrated !== undefined ? `, calibrated on ${calibrated} ${file.precisionRecord?.calibrationRows !== undefined ? 'rows' : 'images'}` : ''}` : 'fp32';
  opts.stderr.write(`atelier ${opts.commandName}: engine ort (${file.path}: ${precision}, output '${output}'; onnxruntime-node ${choice.ort.env.versions.node ?? '?'}, ${threads} thread${threads === 1 ? '' : 's'})\n`);
  return model;
}

/** `file`'s `output` as a ModelRunner on onnxruntime (openOnnxModel). */
export async function openOnnxRunner(file: OnnxModelFile, output: string, opts: { engine?: string; env: NodeJS.ProcessEnv; stderr: NodeJS.WritableStream; commandName: string }): Promise<ModelRunner> {
  const model = await openOnnxModel(file, output, opts);
  return { engine: 'ort', run: model.run, close: model.release };
}

/** `file`'s `output` as a BatchPredictor of image batches on onnxruntime (openOnnxModel). */
export async function openOnnxPredictor(
  file: OnnxModelFile,
  output: string,
  opts: { engine?: string; env: NodeJS.ProcessEnv; stderr: NodeJS.WritableStream; commandName: string },
): Promise<{ predictor: BatchPredictor; engine: 'ort'; close(): Promise<void> }> {
  const model = await openOnnxModel(file, output, opts);
  return { predictor: ortPredictor(model, file.inputSize ?? 1), engine: 'ort', close: model.release };
}
