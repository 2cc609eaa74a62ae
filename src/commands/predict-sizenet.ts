import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { loadMetadata, loadModel } from '../lib/backend/model-io.js';
import { checkInputFile } from '../lib/io/paths.js';
import { engineOption, openModelRunner } from '../lib/onnx/runtime.js';
import { openNdjsonWriter, readNdjson, requireId } from '../lib/io/ndjson.js';
import { iterateNpyRows, readNpyHeader } from '../lib/io/npy.js';
import { assertRowsDigest, idsPathFor, readRowsDigest } from '../lib/io/features.js';
import { SIZENET_MODEL_KIND } from '../lib/sizenet/evaluation.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { describeModel, requireKind, rowsProbabilities } from '../lib/models/kinds.js';
import { calibrationRowBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { labelAgreement } from '../lib/onnx/int8.js';
import { checkOnnxSettings, isOnnxModelPath, openOnnxRunner, readOnnxModel, requireOnnxOutput } from '../lib/onnx/model-file.js';
import { inputSides } from '../lib/image/batch.js';

interface Args {
  model: string;
  features: string;
  ids?: string;
  out: string;
  backend: string;
  engine: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

export default defineCommand<Args>({
  name: 'predict-sizenet',
  summary: 'size advice for new articles: features -> {id, p_size_issue} with a trained student',
  description: `Applies a train-sizenet student to the features of articles that have no sales yet (the cold start SizeNet solves) and writes {id, p_size_issue} per row, in the order of the ids file. The feature matrix is read in chunks, so its size is not limited by memory. The features must come from the same tower and layer the student was trained on.

--precision int8 runs the student's dense layers on int8 arithmetic in onnxruntime (int8 weights per output column, uint8 activations whose ranges are measured on the first --calibration-images rows of the features, or of --calibration); stderr says how often its p_size_issue falls on the same side of 0.5 as float's on those rows, and how far it moves.`,
  options: {
    model: { alias: 'm', describe: 'student model directory from train-sizenet, or its .onnx file from atelier export (run on onnxruntime at its exported precision)', type: 'string', demandOption: true },
    features: { alias: 'f', describe: 'feature matrix .npy of the new articles', type: 'string', demandOption: true },
    ids: { describe: 'ids NDJSON of the features (default: <features>.ids.ndjson)', type: 'string' },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    ...backendOption,
    ...engineOption,
    ...precisionOptions,
  },
  examples: [
    ['atelier embed -m weak.model -i new-articles.ndjson -o new.npy && atelier predict-sizenet -m sizenet.model -f new.npy', 'advice for new articles on day one'],
    ['atelier predict-sizenet -m sizenet.model -f new.npy | jq -c "select(.p_size_issue > 0.8)"', 'the articles most likely to have size issues'],
    ['atelier predict-sizenet -m sizenet.model -f new.npy --precision int8', 'int8 on onnxruntime, calibrated on the first 256 rows; stderr says how often it falls on the float model\'s side of 0.5'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    // Inputs first: a mistake is reported before the backend loads.
    const onnx = isOnnxModelPath(args.model) ? await readOnnxModel(args.model) : null;
    if (onnx) checkOnnxSettings(onnx, args);
    const metadata = onnx ? onnx.metadata : await loadMetadata(args.model);
    if (metadata.kind !== SIZENET_MODEL_KIND) throw new UsageError(`not a train-sizenet model (kind ${JSON.stringify(metadata.kind ?? null)})`, { file: args.model });
    const header = await readNpyHeader(args.features);
    if (header.shape.length !== 2) throw new UsageError(`expected a 2-D matrix of feature rows, got shape (${header.shape.join(', ')})`, { file: args.features });
    await checkInputFile(args.ids ?? idsPathFor(args.features));
    // int8 calibrates on the first rows of the features (or of --calibration, rows as wide).
    const calibrationPlan = onnx ? null : await checkPrecision({ ...args, rows: { features: args.features, dim: header.shape[1] } });
    // An .onnx model needs no tfjs backend and no model directory: onnxruntime runs the file.
    const backend = onnx ? null : await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const model = onnx ? null : (await loadModel(args.model)).model;
    const described = requireKind(describeModel(model, metadata, args.model), SIZENET_MODEL_KIND, args.model);
    // train-sizenet --image-model writes the same kind with an image input.
    const inputShape = onnx ? (onnx.inputSize === null ? [null, onnx.inputDim ?? null] : [null, inputSides(onnx.inputSize).height, inputSides(onnx.inputSize).width, 3]) : model!.inputs[0].shape;
    if (inputShape.length !== 2 || typeof inputShape[1] !== 'number') {
      throw new UsageError(`takes input of shape (${inputShape.slice(1).join(', ')}), not feature rows: it is the image model of train-sizenet --image-model (use it with classify or rise); give the student (train-sizenet -o)`, { file: args.model });
    }
    const inputDim = inputShape[1];
    if (header.shape[1] !== inputDim) {
      const trainedOn = typeof metadata.features === 'string' ? ` (${metadata.features})` : '';
      throw new UsageError(`rows of ${header.shape[1]} features, but the student ${args.model} was trained on ${inputDim}${trainedOn}: embed with the same tower and layer, or give the student trained on these`, { file: args.features });
    }
    const idsPath = args.ids ?? idsPathFor(args.features);
    // (ids on stdin can be read only once: there they are taken as they come)
    if (idsPath !== '-') await assertRowsDigest(await readRowsDigest(idsPath), args.features);
    const calibration = calibrationPlan ? await calibrationRowBatches(calibrationPlan, 1024) : undefined;
    const ids = readNdjson(idsPath)[Symbol.asyncIterator]();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    const runner = onnx
      ? await openOnnxRunner(onnx, requireOnnxOutput(onnx, 'p_size_issue'), { engine: args.engine, env: io.env, stderr: io.stderr, commandName: 'predict-sizenet' })
      : await openModelRunner(model!, { engine: args.engine, env: io.env, stderr: io.stderr, backend: backend!, commandName: 'predict-sizenet', calibration });
    if (runner.calibrationRows) {
      // One probability per row: the two-class view [1 - p, p] makes the "label" the side of 0.5.
      const agreed = labelAgreement(runner.calibrationRows, (out, count) => {
        const p = rowsProbabilities(described.output, out, count);
        return Float32Array.from({ length: 2 * count }, (_, k) => (k % 2 ? p[k >> 1] : 1 - p[k >> 1]));
      });
      io.stderr.write(`atelier predict-sizenet: int8 against float on ${agreed.count} calibration rows: the same side of 0.5 for ${agreed.sameLabel}, p_size_issue differs by ${agreed.meanDifference} mean, ${agreed.maxDifference} worst\n`);
    }
    try {
      for await (const chunk of iterateNpyRows(args.features, { chunkBytes: 4 * 1024 * 1024 })) {
        const count = chunk.end - chunk.start;
        const rows = chunk.data instanceof Float32Array ? chunk.data : Float32Array.from(chunk.data as ArrayLike<number>);
        for (let i = 0; i < rows.length; i++) {
          if (!Number.isFinite(rows[i])) throw new UsageError('row holds a non-finite value', { file: args.features, line: chunk.start + Math.floor(i / inputDim) + 1 });
        }
        const probabilities = rowsProbabilities(described.output, (await runner.run(rows, [count, inputDim])).data, count);
        for (let i = 0; i < count; i++) {
          const next = await ids.next();
          if (next.done) throw new UsageError(`fewer ids than the ${header.rowCount} rows of ${args.features}`, { file: idsPath });
          const id = requireId(next.value.value, 'id', next.value);
          await out.write({ id: String(id), p_size_issue: Math.round(probabilities[i] * 1e6) / 1e6 });
        }
      }
      if (!(await ids.next()).done) throw new UsageError(`more ids than the ${header.rowCount} rows of ${args.features}`, { file: idsPath });
      await out.close();
    } catch (err) {
      await out.abort();
      throw err;
    } finally {
      await runner.close();
    }
  },
});

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
}
