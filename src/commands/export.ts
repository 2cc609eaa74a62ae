import { defineCommand, UsageError } from '../lib/command.js';
import { selectBackend } from '../lib/backend/select.js';
import { loadModel } from '../lib/backend/model-io.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { convertLayersModel, encodeConverted } from '../lib/onnx/export.js';
import { calibrationBatches, checkPrecision, precisionOptions } from '../lib/onnx/precision.js';
import { loadOrt } from '../lib/onnx/session.js';
import { quantizedBytes } from '../lib/onnx/int8.js';
import { resizeModeOf } from '../lib/models/image-features.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import { UnsupportedLayerError } from '../lib/onnx/convert.js';
import { OPSET } from '../lib/onnx/proto.js';

interface Args {
  model: string;
  out: string;
  precision: string;
  calibration?: string;
  'calibration-images': number;
}

export default defineCommand<Args>({
  name: 'export',
  summary: 'write a model directory as one ONNX file (opset 17, dynamic batch) for onnxruntime, Triton or Python',
  description: `Converts any atelier model directory (train-weak, train-classifier, train-triplet, train-sizenet and its --image-model) to ONNX opset ${OPSET} with a dynamic batch axis, and prints a JSON summary on stdout.

Inputs and outputs are named: input 'image' [batch, H, W, 3] float32 RGB in [0, 1], channels last as atelier feeds it (the graph moves to NCHW itself), or 'features' [batch, dim] for heads on feature rows. Outputs by kind: weak models 'scores' (one per vocabulary word) and 'embedding' (and 'pooled' when the model has a projection); classifiers 'probs' (and 'features' for image models); similarity models 'embedding'; SizeNet 'p_size_issue'.

--precision int8 writes a statically quantized model in QDQ form (int8 weights per output channel, uint8 activations whose ranges are measured on the first --calibration-images images of --calibration), which onnxruntime runs on int8 convolutions; metadata_props 'atelier.precision' records how it was made.

metadata_props record the preprocessing (resize to cover 1.125 x the input side, centre crop, /255), 'labels' (the vocabulary or class labels, in output column order, as a JSON array), what each output means, and the model's atelier metadata.`,
  options: {
    model: { alias: 'm', describe: 'model directory to export', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .onnx file', type: 'string', demandOption: true },
    ...precisionOptions,
  },
  examples: [
    ['atelier export -m weak.model -o weak.onnx', 'the weak tower and word matrix: outputs scores and embedding'],
    ['atelier export -m weak.model -o weak.int8.onnx --precision int8 --calibration products.ndjson', 'int8, calibrated on the first 256 images of products.ndjson'],
    ["python3 -c \"import onnxruntime as ort; print([o.name for o in ort.InferenceSession('weak.onnx').get_outputs()])\"", 'read it back in Python'],
  ],
  async run(args, io) {
    const plan = await checkPrecision({ ...args, 'image-field': 'image', 'id-field': 'id' });
    // Weights are read from tfjs tensors; the plain CPU backend needs nothing native and is quick for this.
    await selectBackend({ requested: 'cpu', env: io.env, quiet: true });
    const { model, metadata } = await loadModel(args.model);
    if (plan && model.inputs[0].shape.length !== 4) throw new UsageError('int8 quantizes convolutions; this model reads feature rows, not images', { field: '--precision' });
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
      ({ bytes, agreement } = await quantizedBytes(ort, exported, await calibrationBatches(plan, modelInputSize(model, args.model), 64, resizeModeOf(metadata), 'export')));
    }
    await writeFileAtomic(args.out, bytes);
    const summary = {
      model: args.model,
      out: args.out,
      bytes: bytes.byteLength,
      precision: args.precision,
      ...(agreement ? { int8Agreement: agreement } : {}),
      opset: OPSET,
      kind: exported.metadata['atelier.kind'],
      input: { name: exported.inputName, shape: ['batch', ...model.inputs[0].shape.slice(1)] },
      outputs: exported.outputs,
      labels: exported.metadata.labels ? (JSON.parse(exported.metadata.labels) as string[]).length : 0,
    };
    io.stdout.write(JSON.stringify(summary) + '\n');
    io.stderr.write(`atelier export: ${args.model} -> ${args.out} (${bytes.byteLength} bytes, opset ${OPSET}${agreement ? `, int8: cosine with float on ${agreement.images} calibration images ${agreement.meanCosine} mean, ${agreement.minCosine} worst` : ''})\n`);
  },
});
