import { defineCommand } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { loadMetadata, loadModel } from '../lib/backend/model-io.js';
import { checkInputFile } from '../lib/io/paths.js';
import { openNdjsonWriter } from '../lib/io/ndjson.js';
import { checkFileOutput } from '../lib/io/atomic.js';
import { createSkipCounter, writeSkipSummary } from '../lib/image/skips.js';
import { boxOfRecord, decodeSquareImages, type SquareImage } from '../lib/image/boxes.js';
import { pathRecords, readImageRecords, type ImageRecord } from '../lib/image/records.js';
import { batches } from '../lib/image/prefetch.js';
import { describeModel, requireKind } from '../lib/models/kinds.js';
import { iou, locateInImages, windowGrid, LOCATE_MODEL_KIND, type LocatePlan } from '../lib/models/locate.js';
import { modelInputSize } from '../lib/models/towers/index.js';
import { startProgress } from '../lib/progress.js';
import { positiveInt } from '../lib/options.js';

interface Args {
  images: string[];
  input?: string;
  model: string;
  out: string;
  'image-field': string;
  'id-field': string;
  batch: number;
  backend: string;
}

export default defineCommand<Args>({
  name: 'locate',
  summary: 'find the garment in each image with a train-locate model: boxes as NDJSON {id, image, x, y, w, h, score}',
  description: `Locates the garment in each image as GILT's TiefVision does: the model's patch classifier is slid over the photo (Overfeat's dense evaluation), each patch scored with the share of it that lies on the garment's box, and the box whose blur by the patch best fits that map, after a gain and offset, is taken (refined by the model's box regressor when it has one; models from before the map merge the regressed boxes of the best windows at several scales). Writes one line per decoded image: {id, image, x, y, w, h, score}, the box in pixels of the source image (x, y its top-left corner) and score the map's peak. embed --crop takes this file.

When every input record carries a box already (x, y, w, h: the fixtures' scenes), the mean IoU of the located boxes with them is printed on stderr.`,
  positionals: [{ name: 'images', describe: 'image files (instead of --input)', type: 'string', variadic: true }],
  options: {
    input: { alias: 'i', describe: 'NDJSON with an image path per line (- for stdin); used when no image arguments are given', type: 'string' },
    model: { alias: 'm', describe: 'model directory from train-locate', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'output NDJSON (- for stdout)', type: 'string', default: '-' },
    'image-field': { describe: 'NDJSON field with the image path', type: 'string', default: 'image' },
    'id-field': { describe: 'NDJSON field with the id (default: the image path)', type: 'string', default: 'id' },
    batch: { describe: 'images per forward pass (each gives one patch per window)', type: 'number', default: 16, check: positiveInt },
    ...backendOption,
  },
  examples: [
    ['atelier locate -m locate.model -i images.ndjson > boxes.ndjson', 'one box per image'],
    ['atelier locate -m locate.model photo.jpg', 'one image'],
  ],
  async run(args, io) {
    await checkFileOutput(args.out, '--out');
    // Inputs first: a mistake is reported before the backend loads.
    requireKind(describeModel(null, await loadMetadata(args.model), args.model), LOCATE_MODEL_KIND, args.model);
    if (!args.images.length) await checkInputFile(args.input ?? '-');
    await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    const { model, metadata } = await loadModel(args.model);
    const side = Number(metadata.imageSize);
    const patch = modelInputSize(model, args.model);
    // Models before the dense map kept window scales and merged the windows' regressed boxes.
    const map = metadata.map as { side: number; offsets: number[]; refine?: number } | undefined;
    const plan: LocatePlan = map ? { kind: 'map', side: map.side, offsets: map.offsets, refine: map.refine ?? 0 } : { kind: 'windows', windows: windowGrid(metadata.scales as number[]) };
    const records: AsyncIterable<ImageRecord> | Iterable<ImageRecord> = args.images.length
      ? pathRecords(args.images) : readImageRecords(args.input ?? '-', args['image-field'], args['id-field'], io.stdin);
    const skips = createSkipCounter();
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    const progress = startProgress(io.stderr, { label: 'locating' });
    const ious: number[] = [];
    let withoutTruth = 0;
    try {
      for await (const group of batches(decodeSquareImages(records, side, skips, io, 'locate') as AsyncGenerator<SquareImage<ImageRecord>>, args.batch)) {
        const data = new Float32Array(group.length * side * side * 3);
        group.forEach((g, i) => { for (let k = 0; k < g.pixels.length; k++) data[i * g.pixels.length + k] = g.pixels[k] / 255; });
        const images = tf.tensor4d(data, [group.length, side, side, 3]);
        const boxes = await locateInImages(model, images, plan, patch);
        images.dispose();
        for (const [i, g] of group.entries()) {
          const b = boxes[i];
          const px = { x: b.x * g.sourceWidth, y: b.y * g.sourceHeight, w: b.w * g.sourceWidth, h: b.h * g.sourceHeight };
          const truth = boxOfRecord(g.item.record, g.item);
          if (truth) ious.push(iou(px, truth));
          else withoutTruth++;
          // Corners inside the image, rounded to 0.1 px; the size is the rounded corners' difference, so
          // x + w never exceeds the width by rounding each on its own.
          const r1 = (v: number) => Number(v.toFixed(1));
          const [x0, x1] = [px.x, px.x + px.w].map((v) => r1(Math.min(g.sourceWidth, Math.max(0, v))));
          const [y0, y1] = [px.y, px.y + px.h].map((v) => r1(Math.min(g.sourceHeight, Math.max(0, v))));
          await out.write({ id: g.item.id, image: g.item.path, x: x0, y: y0, w: r1(x1 - x0), h: r1(y1 - y0), score: Number(b.score.toFixed(4)) });
        }
        progress.tick(group.length);
      }
      progress.stop();
      await out.close();
    } catch (err) {
      progress.stop();
      await out.abort();
      throw err;
    }
    writeSkipSummary(skips, io, 'locate');
    if (ious.length > 0 && withoutTruth === 0) {
      const mean = ious.reduce((a, v) => a + v, 0) / ious.length;
      io.stderr.write(`atelier locate: ${ious.length} boxes, mean IoU ${mean.toFixed(3)} with the records' boxes, ${ious.filter((v) => v >= 0.5).length} at IoU >= 0.5\n`);
    } else {
      io.stderr.write(`atelier locate: ${ious.length + withoutTruth} boxes\n`);
    }
  },
});
