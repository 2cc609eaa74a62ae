import { defineCommand, UsageError, type CommandIO } from '../lib/command.js';
import { writeFileAtomic, checkFileOutput } from '../lib/io/atomic.js';
import { openNdjsonWriter, readNdjson, requireObject } from '../lib/io/ndjson.js';
import { readNpy, writeNpy } from '../lib/io/npy.js';
import { isStdio } from '../lib/io/paths.js';
import { resolveImagePath } from '../lib/image/records.js';
import { assertFiniteRows } from '../lib/knn/source.js';
import { assertIdsMatchRows, idsPathFor, readRowIds } from '../lib/io/features.js';
import { svgToPng } from '../lib/plot/png.js';
import { PLOT_EXTENSIONS } from '../lib/plot/index.js';
import { createRandom } from '../lib/random.js';
import { labelScatterSvg, maxPerplexity, renderThumbnailMap, tsne } from '../lib/tsne/index.js';
import { anyInt, integerIn, nonNegativeInt, nonNegativeNumber, numberIn, positiveInt, positiveNumber } from '../lib/options.js';

interface Args {
  embeddings: string;
  ids?: string;
  'id-field': string;
  out: string;
  npy?: string;
  png?: string;
  style: string;
  images?: string;
  'image-field': string;
  labels?: string;
  'label-field': string;
  sample: number;
  perplexity: number;
  iterations: number;
  theta: number;
  exact: boolean;
  'learning-rate': number;
  'early-exaggeration': number;
  seed: number;
  size: number;
  thumbnail: number;
  title?: string;
}

const NAME = 'tsne';
/** Above this many points --exact is refused: its memory and time grow as n^2. */
const EXACT_LIMIT = 5000;

/** id -> the value of `field` (a string, number or boolean, as text) for every record of an NDJSON that has it. */
async function readFieldById(path: string, idField: string, field: string, resolveAsImage: boolean): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for await (const { value, file, line } of readNdjson(path)) {
    const record = requireObject(value, { file, line });
    const id = record[idField];
    const v = record[field];
    if ((typeof id !== 'string' && typeof id !== 'number') || v === undefined || v === null) continue;
    if (typeof v === 'object') throw new UsageError(`expected a string, number or boolean, got ${JSON.stringify(v).slice(0, 40)}`, { file, line, field });
    values.set(String(id), resolveAsImage ? resolveImagePath(String(v), path) : String(v));
  }
  return values;
}

/** A seeded choice of `count` of n rows, kept in row order. */
function sampleRows(n: number, count: number, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (count <= 0 || count >= n) return all;
  const random = createRandom(`tsne-sample-${seed}`);
  for (let i = 0; i < count; i++) {
    const j = i + random.int(n - i);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count).sort((a, b) => a - b);
}

function checkArgs(args: Args): void {
  if (args.thumbnail > args.size) throw new UsageError(`${args.thumbnail} is larger than the picture (--size ${args.size})`, { field: '--thumbnail' });
  if (args.npy && isStdio(args.npy)) throw new UsageError('a .npy cannot go to stdout', { field: '--npy' });
  if (args.png && isStdio(args.png)) throw new UsageError('a PNG cannot go to stdout', { field: '--png' });
}

async function drawPicture(args: Args, coordinates: Float64Array, images: Array<string | null>, labels: Array<string | null> | null, io: CommandIO): Promise<void> {
  const style = args.style === 'auto' ? (images.some((p) => p !== null) ? 'thumbnails' : 'points') : args.style;
  if (style === 'thumbnails') {
    if (!images.some((p) => p !== null)) throw new UsageError('no image paths: give --images (NDJSON with id and image) or embeddings whose ids carry an image field', { field: '--style' });
    const map = await renderThumbnailMap(coordinates, images, { size: args.size, thumbnail: args.thumbnail });
    await writeFileAtomic(args.png!, map.png, io.outputs);
    io.stderr.write(`atelier ${NAME}: ${map.drawn} thumbnails${map.missing ? ` (${map.missing} without a readable image)` : ''} -> ${args.png}\n`);
    return;
  }
  const svg = labelScatterSvg(coordinates, labels ?? images.map(() => null), { title: args.title ?? `t-SNE map${labels ? ` by ${args['label-field']}` : ''}`, width: args.size, height: Math.round(args.size * 0.9) });
  if (/\.svg$/i.test(args.png!)) await writeFileAtomic(args.png!, svg, io.outputs);
  else await writeFileAtomic(args.png!, await svgToPng(svg), io.outputs);
  io.stderr.write(`atelier ${NAME}: scatter of ${coordinates.length / 2} points -> ${args.png}\n`);
}

export default defineCommand<Args>({
  name: NAME,
  summary: 'map embeddings to 2-D with Barnes-Hut t-SNE: coordinates and a thumbnail or label picture',
  description: `t-SNE (van der Maaten & Hinton 2008) with the Barnes-Hut approximation (van der Maaten 2014): Gaussian input affinities over each point's 3 x perplexity nearest neighbours, each bandwidth found by bisection so the row's perplexity is the one asked for; a Student-t kernel in 2-D; the repulsion summed over a quadtree whose cells count as one point when width / distance < --theta; gradient descent with momentum (0.5, then 0.8), per-coordinate gains and early exaggeration of P for the first 250 iterations. --exact uses all pairs instead (small n only). The same --seed gives the same map.

Reads a .npy of row vectors and its ids (as embed writes them; by default <name>.ids.ndjson). Writes one NDJSON line per point {id, x, y, label?, image?} (--out, stdout by default), the coordinates as an n x 2 float32 .npy (--npy, with its ids beside it) and a picture (--png): thumbnails drawn at their coordinates (the report's Figure 3.4) or points coloured by --label-field. Image paths come from --images (NDJSON {id, image}; relative paths are taken from the current directory, else from that file's directory) or from the embeddings' ids records. KL(P || Q) is printed on stderr as it falls.`,
  positionals: [{ name: 'embeddings', describe: 'embeddings .npy (rows in the order of its ids NDJSON)', type: 'string', demandOption: true }],
  options: {
    ids: { describe: 'ids NDJSON of the rows (default: <embeddings>.ids.ndjson)', type: 'string' },
    'id-field': { describe: 'field holding the id in the ids, images and labels NDJSON', type: 'string', default: 'id' },
    out: { alias: 'o', describe: 'coordinates NDJSON {id, x, y, ...} (- for stdout)', type: 'string', default: '-' },
    npy: { describe: 'also write the coordinates as an n x 2 float32 .npy (ids beside it)', type: 'string' },
    png: { describe: 'draw the map to this PNG (or .svg for the points style)', type: 'string' },
    style: { describe: 'picture: thumbnails at their coordinates, or points coloured by label (auto: thumbnails when image paths are known)', choices: ['auto', 'thumbnails', 'points'], default: 'auto' },
    images: { describe: 'NDJSON with an id and an image path per line, for thumbnails', type: 'string' },
    'image-field': { describe: 'field of --images holding the image path', type: 'string', default: 'image' },
    labels: { describe: 'NDJSON with an id and a label per line (may be the --images file)', type: 'string' },
    'label-field': { describe: 'field of --labels to colour points by and copy into the output', type: 'string', default: 'label' },
    sample: { describe: 'map only this many rows, chosen at random with --seed (0: all)', type: 'number', default: 0, check: nonNegativeInt },
    perplexity: { describe: 'effective number of neighbours of each point (lowered to (n-1)/3 for small n)', type: 'number', default: 30, check: positiveNumber },
    iterations: { describe: 'gradient descent iterations', type: 'number', default: 1000, check: positiveInt },
    theta: { describe: 'Barnes-Hut accuracy: 0 is exact repulsion, larger is faster and coarser', type: 'number', default: 0.5, check: numberIn(0, 1.5) },
    exact: { describe: `exact O(n^2) gradient and dense affinities (up to ${EXACT_LIMIT} points)`, type: 'boolean', default: false },
    'learning-rate': { describe: 'step size (0: max(n / early-exaggeration / 4, 50))', type: 'number', default: 0, check: nonNegativeNumber },
    'early-exaggeration': { describe: 'factor on P during the first 250 iterations', type: 'number', default: 12, check: numberIn(1, Infinity) },
    seed: { describe: 'random seed of the initial map and of --sample', type: 'number', default: 1, check: anyInt },
    size: { describe: 'picture side in pixels', type: 'number', default: 2000, check: integerIn(64, 16384) },
    thumbnail: { describe: 'thumbnail side in pixels', type: 'number', default: 48, check: integerIn(4, 16384) },
    title: { describe: 'title of the points picture', type: 'string' },
  },
  examples: [
    ['atelier tsne emb.npy --sample 1000 --png map.png > map.ndjson', '1,000 random images as thumbnails on their t-SNE map (image paths from emb.ids.ndjson)'],
    ['atelier tsne emb.npy --labels images.ndjson --label-field pattern --style points --png pattern.png -o map.ndjson', 'points coloured by pattern'],
    ['atelier tsne small.npy --exact --perplexity 10 --npy xy.npy -o xy.ndjson', 'exact t-SNE of a small set, coordinates as .npy and NDJSON'],
  ],
  async run(args, io) {
    await checkOutputs(args);
    if (!args.embeddings) throw new UsageError('needs an embeddings .npy', { field: 'embeddings' });
    checkArgs(args);
    const array = await readNpy(args.embeddings);
    if (array.header.shape.length !== 2) throw new UsageError(`expected a 2-D matrix of row vectors, got shape (${array.header.shape.join(', ')})`, { file: args.embeddings });
    const [rowCount, dim] = array.header.shape;
    const allRows = array.data instanceof Float32Array ? array.data : Float32Array.from(array.data as ArrayLike<number>, Number);
    assertFiniteRows(allRows, dim, 0, args.embeddings);
    const rowIds = await readRowIds(args.ids ?? idsPathFor(args.embeddings), args['id-field'], io.stdin);
    await assertIdsMatchRows(rowIds, rowCount, args.embeddings);

    const chosen = sampleRows(rowCount, args.sample, args.seed);
    const n = chosen.length;
    if (n < 4) throw new UsageError(`t-SNE needs at least 4 points, got ${n}`, { file: args.embeddings });
    if (args.exact && n > EXACT_LIMIT) throw new UsageError(`--exact on ${n} points would take O(n^2) memory; use Barnes-Hut (drop --exact) or --sample`, { field: '--exact' });
    const rows = new Float32Array(n * dim);
    chosen.forEach((r, i) => rows.set(allRows.subarray(r * dim, (r + 1) * dim), i * dim));
    const ids = chosen.map((r) => rowIds.ids[r]);

    const imageById = args.images ? await readFieldById(args.images, args['id-field'], args['image-field'], true) : null;
    const labelById = args.labels ? await readFieldById(args.labels, args['id-field'], args['label-field'], false) : null;
    if (labelById && labelById.size === 0) throw new UsageError(`no record has an id and a '${args['label-field']}' field`, { file: args.labels, field: args['label-field'] });
    const images = chosen.map((r, i) => imageById?.get(ids[i]) ?? (rowIds.images[r] !== undefined ? resolveImagePath(rowIds.images[r]!, rowIds.path) : null));
    const labels = labelById ? ids.map((id) => labelById.get(id) ?? null) : null;

    const perplexity = Math.min(args.perplexity, maxPerplexity(n));
    if (perplexity < args.perplexity) io.stderr.write(`atelier ${NAME}: perplexity lowered to ${perplexity.toFixed(1)} for ${n} points\n`);
    const started = Date.now();
    const result = await tsne(rows, n, dim, {
      perplexity,
      iterations: args.iterations,
      theta: args.theta,
      exact: args.exact,
      learningRate: args['learning-rate'] || undefined,
      earlyExaggeration: args['early-exaggeration'],
      random: createRandom(args.seed),
      reportEvery: 50,
      onProgress: (iteration, kl) => {
        if (iteration % 250 === 0 || iteration === args.iterations) io.stderr.write(`atelier ${NAME}: iteration ${iteration}: KL ${kl.toFixed(4)}\n`);
      },
    });
    const seconds = (Date.now() - started) / 1000;
    io.stderr.write(`atelier ${NAME}: ${n} points of ${dim} dimensions mapped in ${seconds.toFixed(1)} s (${args.exact ? 'exact' : `Barnes-Hut, theta ${args.theta}`}), KL ${result.finalKl.toFixed(4)}\n`);

    const coordinates = result.coordinates;
    if (args.npy) {
      await writeNpy(args.npy, Float32Array.from(coordinates), [n, 2], { outputs: io.outputs });
      const idsOut = await openNdjsonWriter(idsPathFor(args.npy), { outputs: io.outputs });
      for (const [i, id] of ids.entries()) await idsOut.write(images[i] !== null ? { id, image: images[i] } : { id });
      await idsOut.close();
    }
    const out = await openNdjsonWriter(args.out, { stdout: io.stdout, outputs: io.outputs });
    try {
      for (let i = 0; i < n; i++) {
        const line: Record<string, unknown> = { id: ids[i], x: round(coordinates[2 * i]), y: round(coordinates[2 * i + 1]) };
        if (labels && labels[i] !== null) line.label = labels[i];
        if (images[i] !== null) line.image = images[i];
        await out.write(line);
      }
      await out.close();
    } catch (err) {
      await out.abort();
      throw err;
    }
    if (args.png) await drawPicture(args, coordinates, images, labels, io);
  },
});

function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}

/** Every output path checked before any work: a wrong one costs no time and leaves nothing behind. */
async function checkOutputs(args: Args): Promise<void> {
  await checkFileOutput(args.out, '--out');
  if (args.npy && !isStdio(args.npy)) {
    await checkFileOutput(args.npy, '--npy');
    await checkFileOutput(idsPathFor(args.npy), '--npy');
  }
  if (args.png && !isStdio(args.png)) await checkFileOutput(args.png, '--png', { extensions: PLOT_EXTENSIONS });
}
