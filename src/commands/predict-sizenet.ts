import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { engineOption, openModelRunner } from '../lib/onnx/runtime.js';
import { loadModel } from '../lib/backend/model-io.js';
import { openNdjsonWriter, readNdjson, requireObject } from '../lib/io/ndjson.js';
import { iterateNpyRows, readNpyHeader } from '../lib/io/npy.js';
import { idsPathFor } from '../lib/io/features.js';
import { SIZENET_MODEL_KIND } from '../lib/sizenet/evaluation.js';

interface Args {
  model: string;
  features: string;
  ids?: string;
  out: string;
  backend: string;
  engine: string;
}

export default defineCommand<Args>({
  name: 'predict-sizenet',
  summary: 'size advice for new articles: features -> {id, p_size_issue} with a trained student',
  description: `Applies a train-sizenet student to the features of articles that have no sales yet (the cold start SizeNet solves) and writes {id, p_size_issue} per row, in the order of the ids file. The feature matrix is read in chunks, so its size is not limited by memory. The features must come from the same tower and layer the student was trained on.`,
  options: {
    model: { alias: 'm', describe: 'student model directory from train-sizenet', type: 'string', demandOption: true },
    features: { alias: 'f', describe: 'feature matrix .npy of the new articles', type: 'string', demandOption: true },
    ids: { describe: 'ids NDJSON of the features (default: <features>.ids.ndjson)', type: 'string' },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    ...backendOption,
    ...engineOption,
  },
  examples: [
    ['atelier embed -m weak.model -i new-articles.ndjson -o new.npy && atelier predict-sizenet -m sizenet.model -f new.npy', 'advice for new articles on day one'],
    ['atelier predict-sizenet -m sizenet.model -f new.npy | jq -c "select(.p_size_issue > 0.8)"', 'the articles most likely to have size issues'],
  ],
  async run(args, io) {
    const backend = await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const { model, metadata } = await loadModel(args.model);
    if (metadata.kind !== SIZENET_MODEL_KIND) throw new UsageError(`not a train-sizenet model (kind ${JSON.stringify(metadata.kind ?? null)})`, { file: args.model });
    const header = await readNpyHeader(args.features);
    const inputDim = model.inputs[0].shape[1] as number;
    if (header.shape.length !== 2 || header.shape[1] !== inputDim) {
      throw new UsageError(`expected rows of ${inputDim} features (the student's input), got shape (${header.shape.join(', ')})`, { file: args.features });
    }
    const idsPath = args.ids ?? idsPathFor(args.features);
    const ids = readNdjson(idsPath)[Symbol.asyncIterator]();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout });
    const runner = await openModelRunner(model, { engine: args.engine, env: io.env, stderr: io.stderr, backend, commandName: 'predict-sizenet' });
    try {
      for await (const chunk of iterateNpyRows(args.features, { chunkBytes: 4 * 1024 * 1024 })) {
        const count = chunk.end - chunk.start;
        const rows = chunk.data instanceof Float32Array ? chunk.data : Float32Array.from(chunk.data as ArrayLike<number>);
        for (let i = 0; i < rows.length; i++) {
          if (!Number.isFinite(rows[i])) throw new UsageError('row holds a non-finite value', { file: args.features, line: chunk.start + Math.floor(i / inputDim) + 1 });
        }
        const probabilities = (await runner.run(rows, [count, inputDim])).data;
        for (let i = 0; i < count; i++) {
          const next = await ids.next();
          if (next.done) throw new UsageError(`fewer ids than the ${header.rowCount} rows of ${args.features}`, { file: idsPath });
          const record = requireObject(next.value.value, next.value);
          const id = record.id;
          if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError('expected a string or number', { file: next.value.file, line: next.value.line, field: 'id' });
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
