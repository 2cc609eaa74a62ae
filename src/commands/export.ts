import { defineCommand, UsageError } from '../lib/command.js';
import { selectBackend } from '../lib/backend/select.js';
import { loadInputShape, loadModel } from '../lib/backend/model-io.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { convertLayersModel, encodeConverted } from '../lib/onnx/export.js';
import { calibrationBatches, calibrationRowBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { loadOrt } from '../lib/onnx/session.js';
import { agreementText, quantizedBytes } from '../lib/onnx/int8.js';
import { resizeModeOf } from '../lib/models/image-features.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import { UnsupportedLayerError } from '../lib/onnx/convert.js';
import { OPSET } from '../lib/onnx/proto.js';

interface Args {
  model: string;
  out: string;
  precision?: string;
  calibration?: string;
  'calibration-images': number;
}

export default defineCommand<Args>({
  name: 'export',
  summary: 'write a model directory as one ONNX file (opset 17, dynamic batch) for onnxruntime, Triton or Python',
  description: `Converts any atelier model directory (train-weak, train-classifier, train-triplet, train-sizenet and its --image-model) to ONNX opset ${OPSET} with a dynamic batch axis, and prints a JSON summary on stdout.

Inputs and outputs are named: input 'image' [batch, H, W, 3] float32 RGB in [0, 1], channels last as atelier feeds it (the graph moves to NCHW itself), or 'features' [batch, dim] for heads on feature rows. Outputs by kind: weak models 'scores' (one per vocabulary word) and 'embedding' (and 'pooled' when the model has a projection); classifiers 'probs' (and 'features' for image models); similarity models 'embedding'; SizeNet 'p_size_issue'.

--precision int8 writes a statically quantized model in QDQ form (int8 weights per output channel, uint8 activations whose ranges are measured on the first --calibration-images images of --calibration, or for a model on feature rows the first rows of a --calibration .npy), which onnxruntime runs on int8 convolutions and dense layers (QLinearConv, QGemm); metadata_props 'atelier.precision' records how it was made.

metadata_props record the preprocessing (resize to cover 1.125 x the input side, centre crop, /255), 'labels' (the vocabulary or class labels, in output column order, as a JSON array), what each output means, and the model's atelier metadata.`,
  options: {
    model: { alias: 'm', describe: 'model directory to export', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .onnx file', type: 'string', demandOption: true },
    ...precisionOptions,
  },
  examples: [
    ['atelier export -m weak.model -o weak.onnx', 'the weak tower and word matrix: outputs scores and embedding'],
    ['atelier export -m weak.model -o weak.int8.onnx --precision int8 --calibration products.ndjson', 'int8, calibrated on the first 256 images of products.ndjson'],
    ['atelier export -m sizenet.model -o sizenet.int8.onnx --precision int8 --calibration new.npy', 'a SizeNet student in int8, calibrated on the first 256 feature rows of new.npy'],
    ["python3 -c \"import onnxruntime as ort; print([o.name for o in ort.InferenceSession('weak.onnx').get_outputs()])\"", 'read it back in Python'],
  ],
  async run(args, io) {
    // A model on feature rows calibrates on rows (--calibration x.npy), an image model on images.
    const inputShape = await loadInputShape(args.model);
    const plan = await checkPrecision({ ...args, rows: inputShape?.length === 2 ? { dim: Number(inputShape[1]) } : undefined });
    // Weights are read from tfjs tensors; the plain CPU backend needs nothing native and is quick for this.
    await selectBackend({ requested: 'cpu', env: io.env, quiet: true });
    const { model, metadata } = await loadModel(args.model);
    let exported;
    try {
      exported = await convertLayersModel(model, metadata);
    } catch (err) {
      if (err instanceof UnsupportedLayerError) throw new UsageError(`cannot export: ${err.message}`, { file: args.model });
      throw err;
    }
    let bytes = encodeConverted(exported);
    let agreement;
    if (plan) {
      const ort = await loadOrt();
      if (ort instanceof Error) throw new UsageError(`int8 calibrates on onnxruntime, which did not load: ${ort.message.split('\n')[0]}`, { field: '--precision' });
      const calibration = plan.kind === 'rows' ? await calibrationRowBatches(plan, 1024) : await calibrationBatches(plan, modelInputSize(model, args.model), 64, resizeModeOf(metadata), 'export');
      ({ bytes, agreement } = await quantizedBytes(ort, exported, calibration));
    }
    await writeFileAtomic(args.out, bytes);
    const summary = {
      model: args.model,
      out: args.out,
      bytes: bytes.byteLength,
      precision: args.precision ?? 'fp32',
      ...(agreement ? { int8Agreement: agreement } : {}),
      opset: OPSET,
      kind: exported.metadata['atelier.kind'],
      input: { name: exported.inputName, shape: ['batch', ...model.inputs[0].shape.slice(1)] },
      outputs: exported.outputs,
      labels: exported.metadata.labels ? (JSON.parse(exported.metadata.labels) as string[]).length : 0,
    };
    io.stdout.write(JSON.stringify(summary) + '\n');
    io.stderr.write(`atelier export: ${args.model} -> ${args.out} (${bytes.byteLength} bytes, opset ${OPSET}${agreement ? `, int8 calibrated on ${agreementText(agreement)}` : ''})\n`);
  },
});
