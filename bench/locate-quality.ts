// bench/locate-quality: mean IoU of a train-locate model's boxes on scene sets, for each way of reading
// its map (inference stride, box fit), from one pass of the classifier per stride: the choices `locate`
// makes after training, compared on the same maps.
// Usage: node dist/bench/locate-quality.js --model M --sets FILE[:test],FILE... [--strides 4,8] [--fits shares,affine]
//   FILE:test keeps the records train-locate held out for its test report (--test-fraction, --val-fraction as trained).
import { tf } from '../src/lib/backend/tf.js';
import { selectBackend } from '../src/lib/backend/select.js';
import { loadModel } from '../src/lib/backend/model-io.js';
import { boxOfRecord, decodeSquareImages, type SquareImage } from '../src/lib/image/boxes.js';
import { readImageRecords, type ImageRecord } from '../src/lib/image/records.js';
import { createSkipCounter } from '../src/lib/image/skips.js';
import { modelInputSize } from '../src/lib/models/towers/index.js';
import { fitBoxToMap, iou, mapOffsets, mapWindows, scoreWindows, type Box, type MapFit } from '../src/lib/models/locate.js';
import { splitOf } from '../src/lib/random.js';
import { flag, loadAverage, outDir, writeResults } from './common.js';
import { join } from 'node:path';

const modelDir = flag('model', '');
const sets = flag('sets', '').split(',').filter(Boolean);
const strides = flag('strides', '4').split(',').map(Number);
const fits = flag('fits', 'shares,affine').split(',') as MapFit[];
const testFraction = Number(flag('test-fraction', '0.2'));
const valFraction = Number(flag('val-fraction', '0'));
const out = flag('out', join(outDir, 'locate-quality.json'));

async function main(): Promise<void> {
  await selectBackend({ requested: 'auto', env: process.env, stderr: process.stderr });
  const { model, metadata } = await loadModel(modelDir);
  const side = Number(metadata.imageSize);
  const patch = modelInputSize(model, modelDir);
  const mapSide = (metadata.map as { side: number }).side;
  const rows: Array<Record<string, unknown>> = [];
  for (const set of sets) {
    const [file, only] = set.split(':');
    const records: Array<ImageRecord & { box: Box }> = [];
    for await (const r of readImageRecords(file, 'image', 'id', process.stdin)) {
      const product = String(r.record.product ?? r.id);
      if (only === 'test' && splitOf(product, testFraction, valFraction) !== 'test') continue;
      records.push({ ...r, box: boxOfRecord(r.record, r)! });
    }
    const decoded: Array<SquareImage<(typeof records)[number]>> = [];
    for await (const d of decodeSquareImages(records, side, createSkipCounter(), { stderr: process.stderr }, 'bench') as AsyncGenerator<SquareImage<(typeof records)[number]>>) decoded.push(d);
    const data = new Float32Array(decoded.length * side * side * 3);
    decoded.forEach((d, i) => { for (let k = 0; k < d.pixels.length; k++) data[i * d.pixels.length + k] = d.pixels[k] / 255; });
    const images = tf.tensor4d(data, [decoded.length, side, side, 3]);
    for (const perPatch of strides) {
      const offsets = mapOffsets(mapSide, perPatch);
      const windows = mapWindows(mapSide, offsets);
      const started = performance.now();
      const { probabilities } = await scoreWindows(model, images, windows, patch, 256);
      const seconds = (performance.now() - started) / 1000;
      const m = windows.length;
      for (const fit of fits) {
        const ious = decoded.map((d, i) => {
          const b = fitBoxToMap(probabilities.subarray(i * m, (i + 1) * m), offsets, mapSide, fit);
          const t = d.item.box;
          return iou(b, { x: t.x / d.sourceWidth, y: t.y / d.sourceHeight, w: t.w / d.sourceWidth, h: t.h / d.sourceHeight });
        });
        const row = { set, images: decoded.length, perPatch, windows: m, fit, meanIoU: Number((ious.reduce((a, v) => a + v, 0) / ious.length).toFixed(4)), scoreSeconds: Number(seconds.toFixed(1)) };
        rows.push(row);
        process.stdout.write(JSON.stringify(row) + '\n');
      }
    }
    images.dispose();
  }
  writeResults(out, { model: modelDir, loadAverage: loadAverage(), rows });
}

await main();
