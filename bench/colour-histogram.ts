// bench/colour-histogram: a hand-made colour feature of each photo, the reference that says how much
// of a catalogue's colour labels the pixels' colours alone can give a linear probe (issue 17: what bounds
// baseColour). Per image: the joint RGB histogram (8 x 8 x 8 bins) of the product's pixels, those not
// near-white (the catalogue's background: every channel >= 235), as square roots of the shares (a
// linear model on Hellinger-mapped histograms compares them as distributions), then the product's mean
// R, G, B (0-1) and its share of the photo. Rows follow an embed .ids.ndjson, so bench/probe.js reads
// them as it reads embed's.
// usage: node dist/bench/colour-histogram.js --ids X.ids.ndjson -o colours.npy
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { writeNpy } from '../src/lib/io/npy.js';
import { writeFileAtomic } from '../src/lib/io/atomic.js';
import { idsPathFor } from '../src/lib/io/features.js';

const BINS = 8;
const BACKGROUND = 235;
const COLUMNS = BINS ** 3 + 4;

const { values: a } = parseArgs({ options: { ids: { type: 'string' }, out: { type: 'string', short: 'o' } } });
if (!a.ids || !a.out) {
  process.stderr.write('usage: node dist/bench/colour-histogram.js --ids X.ids.ndjson -o colours.npy\n');
  process.exit(2);
}
const records = readFileSync(a.ids, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { id: string; image: string });
const rows = new Float32Array(records.length * COLUMNS);
const started = performance.now();
for (const [r, record] of records.entries()) {
  const { data, info } = await sharp(record.image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const histogram = new Float64Array(BINS ** 3);
  const mean = [0, 0, 0];
  let product = 0;
  for (let p = 0; p < info.width * info.height; p++) {
    const [red, green, blue] = [data[p * 3], data[p * 3 + 1], data[p * 3 + 2]];
    if (red >= BACKGROUND && green >= BACKGROUND && blue >= BACKGROUND) continue;
    const bin = (Math.floor((red * BINS) / 256) * BINS + Math.floor((green * BINS) / 256)) * BINS + Math.floor((blue * BINS) / 256);
    histogram[bin]++;
    mean[0] += red;
    mean[1] += green;
    mean[2] += blue;
    product++;
  }
  const out = r * COLUMNS;
  for (let b = 0; b < histogram.length; b++) rows[out + b] = product ? Math.sqrt(histogram[b] / product) : 0;
  for (let c = 0; c < 3; c++) rows[out + BINS ** 3 + c] = product ? mean[c] / product / 255 : 1;
  rows[out + BINS ** 3 + 3] = product / (info.width * info.height);
}
await writeNpy(a.out, rows, [records.length, COLUMNS]);
await writeFileAtomic(idsPathFor(a.out), records.map((record, row) => JSON.stringify({ id: record.id, image: record.image, row })).join('\n') + '\n');
process.stderr.write(`colour-histogram: ${records.length} images, ${COLUMNS} columns, ${((performance.now() - started) / 1000).toFixed(1)} s -> ${a.out}\n`);
