// t-SNE benchmark: our Barnes-Hut t-SNE (src/lib/tsne) against scikit-learn's on the same rows —
// time, final KL, trustworthiness (Venna & Kaski; ours and scikit-learn's implementation), the share
// of 10 nearest neighbours kept, and the 10-NN label agreement on the map.
//
//   node dist/bench/tsne.js [--sizes 1000,3000] [--dim 50] [--seed 1] [--threads 1] [--embeddings x.npy --labels-from images.ndjson --label-field silhouette]
//
// Data: Gaussian clusters (10 classes, `dim` dimensions, centres N(0, 2.5^2 I), unit noise), and
// optionally a real embeddings file with labels from an NDJSON. scikit-learn runs through Debian's
// /usr/bin/python3 (bench/tsne_sklearn.py) with OMP_NUM_THREADS=--threads; it is skipped, with a
// line saying why, when it does not import. Results go to bench/out/tsne.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, writeNpy } from '../src/lib/io/npy.js';
import { idsPathFor } from '../src/lib/io/features.js';
import { createRandom } from '../src/lib/random.js';
import { neighborLabelAgreement, neighborPreservation, trustworthiness, tsne } from '../src/lib/tsne/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const outDir = join(root, 'bench', 'out');

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

interface Dataset {
  name: string;
  rows: Float32Array;
  n: number;
  dim: number;
  labels: string[];
}

function gaussianClusters(n: number, dim: number, seed: number): Dataset {
  const random = createRandom(`tsne-bench-${seed}`);
  const gaussian = () => Math.sqrt(-2 * Math.log(random.next() + 1e-300)) * Math.cos(2 * Math.PI * random.next());
  const classes = 10;
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => 2.5 * gaussian()));
  const rows = new Float32Array(n * dim);
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels.push(String(c));
    for (let d = 0; d < dim; d++) rows[i * dim + d] = centres[c][d] + gaussian();
  }
  return { name: `clusters n=${n} d=${dim}`, rows, n, dim, labels };
}

async function embeddingsDataset(path: string, labelsPath: string, field: string, limit: number): Promise<Dataset> {
  const array = await readNpy(path);
  const [count, dim] = array.header.shape;
  const n = Math.min(count, limit);
  const rows = Float32Array.from((array.data as Float32Array).subarray(0, n * dim));
  const ids = readFileSync(idsPathFor(path), 'utf8').trim().split('\n').slice(0, n).map((l) => String((JSON.parse(l) as { id: string }).id));
  const byId = new Map(readFileSync(labelsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).map((r) => [String(r.id), String(r[field])]));
  return { name: `${path.replace(/^.*\//, '')} n=${n} d=${dim} (${field})`, rows, n, dim, labels: ids.map((id) => byId.get(id) ?? '?') };
}

interface Quality {
  seconds: number;
  kl: number | null;
  trustworthiness: number;
  neighborsKept: number;
  labelAgreement: number;
}

function quality(data: Dataset, coordinates: ArrayLike<number>, seconds: number, kl: number | null, k: number): Quality {
  return {
    seconds,
    kl,
    trustworthiness: trustworthiness(data.rows, data.dim, coordinates, data.n, k),
    neighborsKept: neighborPreservation(data.rows, data.dim, coordinates, data.n, k),
    labelAgreement: neighborLabelAgreement(coordinates, data.labels, k),
  };
}

async function main(): Promise<void> {
  const sizes = flag('sizes', '1000,3000').split(',').filter(Boolean).map(Number);
  const dim = Number(flag('dim', '50'));
  const seed = Number(flag('seed', '1'));
  const threads = flag('threads', '1');
  const k = 10;
  const perplexity = 30;
  const iterations = 1000;
  mkdirSync(outDir, { recursive: true });
  const datasets: Dataset[] = sizes.map((n) => gaussianClusters(n, dim, seed));
  const embeddings = flag('embeddings', '');
  if (embeddings) datasets.push(await embeddingsDataset(embeddings, flag('labels-from', ''), flag('label-field', 'label'), Number(flag('limit', '3000'))));

  const results: Array<Record<string, unknown>> = [];
  const fmt = (q: Quality | null) => (q ? `${q.seconds.toFixed(1).padStart(6)} s  KL ${q.kl === null ? '   –  ' : q.kl.toFixed(3)}  T(10) ${q.trustworthiness.toFixed(4)}  kNN kept ${q.neighborsKept.toFixed(3)}  label agreement ${q.labelAgreement.toFixed(3)}` : 'skipped');
  for (const data of datasets) {
    const started = performance.now();
    const ours = await tsne(data.rows, data.n, data.dim, { perplexity, iterations, theta: 0.5, exact: false, random: createRandom(seed) });
    const ourQuality = quality(data, ours.coordinates, (performance.now() - started) / 1000, ours.finalKl, k);

    const stem = join(outDir, `tsne-${data.n}-${data.dim}`);
    await writeNpy(`${stem}.input.npy`, data.rows, [data.n, data.dim]);
    await writeNpy(`${stem}.ours.npy`, Float32Array.from(ours.coordinates), [data.n, 2]);
    const peer = spawnSync('/usr/bin/python3', [join(root, 'bench', 'tsne_sklearn.py'), `${stem}.input.npy`, `${stem}.sklearn.npy`, `${stem}.ours.npy`, '--seed', String(seed), '--perplexity', String(perplexity), '--iterations', String(iterations), '--k', String(k)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads },
    });
    let sklearn: Quality | null = null;
    let sklearnInfo: Record<string, unknown> = {};
    if (peer.status === 0 && peer.stdout.trim()) {
      sklearnInfo = JSON.parse(peer.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      if (sklearnInfo.error === undefined) {
        const coords = (await readNpy(`${stem}.sklearn.npy`)).data as Float32Array;
        sklearn = quality(data, coords, sklearnInfo.seconds as number, sklearnInfo.kl as number, k);
      }
    }
    const why = sklearn ? '' : ` (${String(sklearnInfo.error ?? (peer.error?.message || peer.stderr.trim().split('\n').pop() || 'no output'))})`;
    console.log(`${data.name}\n  atelier  ${fmt(ourQuality)}\n  sklearn  ${fmt(sklearn)}${why}`);
    if (sklearn) console.log(`  scikit-learn's trustworthiness of our map: ${(sklearnInfo.trustworthinessOfOurs as number).toFixed(4)} (ours says ${ourQuality.trustworthiness.toFixed(4)})`);
    results.push({ dataset: data.name, n: data.n, dim: data.dim, perplexity, iterations, theta: 0.5, atelier: ourQuality, sklearn, sklearnInfo });
  }
  const file = join(outDir, 'tsne.json');
  writeFileSync(file, JSON.stringify({ machine: { node: process.versions.node, sklearnThreads: threads }, results }, null, 2) + '\n');
  console.log(`results -> ${file}`);
}

await main();
