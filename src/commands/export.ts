import { defineCommand, UsageError } from '../lib/command.js';
import { selectBackend } from '../lib/backend/select.js';
import { loadModel } from '../lib/backend/model-io.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { exportLayersModel } from '../lib/onnx/export.js';
import { UnsupportedLayerError } from '../lib/onnx/convert.js';
import { OPSET } from '../lib/onnx/proto.js';

interface Args {
  model: string;
  out: string;
}

export default defineCommand<Args>({
  name: 'export',
  summary: 'write a model directory as one ONNX file (opset 17, dynamic batch) for onnxruntime, Triton or Python',
  description: `Converts any atelier model directory (train-weak, train-classifier, train-triplet, train-sizenet and its --image-model) to ONNX opset ${OPSET} with a dynamic batch axis, and prints a JSON summary on stdout.

Inputs and outputs are named: input 'image' [batch, H, W, 3] float32 RGB in [0, 1], channels last as atelier feeds it (the graph moves to NCHW itself), or 'features' [batch, dim] for heads on feature rows. Outputs by kind: weak models 'scores' (one per vocabulary word) and 'embedding' (and 'pooled' when the model has a projection); classifiers 'probs' (and 'features' for image models); similarity models 'embedding'; SizeNet 'p_size_issue'.

metadata_props record the preprocessing (resize to cover 1.125 x the input side, centre crop, /255), 'labels' (the vocabulary or class labels, in output column order, as a JSON array), what each output means, and the model's atelier metadata.`,
  options: {
    model: { alias: 'm', describe: 'model directory to export', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output .onnx file', type: 'string', demandOption: true },
  },
  examples: [
    ['atelier export -m weak.model -o weak.onnx', 'the weak tower and word matrix: outputs scores and embedding'],
    ["python3 -c \"import onnxruntime as ort; print([o.name for o in ort.InferenceSession('weak.onnx').get_outputs()])\"", 'read it back in Python'],
  ],
  async run(args, io) {
    // Weights are read from tfjs tensors; the plain CPU backend needs nothing native and is quick for this.
    await selectBackend({ requested: 'cpu', env: io.env, quiet: true });
    const { model, metadata } = await loadModel(args.model);
    let exported;
    try {
      exported = await exportLayersModel(model, metadata);
    } catch (err) {
      if (err instanceof UnsupportedLayerError) throw new UsageError(`cannot export: ${err.message}`, { file: args.model });
      throw err;
    }
    await writeFileAtomic(args.out, exported.bytes);
    const summary = {
      model: args.model,
      out: args.out,
      bytes: exported.bytes.byteLength,
      opset: OPSET,
      kind: exported.metadata['atelier.kind'],
      input: { name: exported.inputName, shape: ['batch', ...model.inputs[0].shape.slice(1)] },
      outputs: exported.outputs,
      labels: exported.metadata.labels ? (JSON.parse(exported.metadata.labels) as string[]).length : 0,
    };
    io.stdout.write(JSON.stringify(summary) + '\n');
    io.stderr.write(`atelier export: ${args.model} -> ${args.out} (${exported.bytes.byteLength} bytes, opset ${OPSET})\n`);
  },
});
