// A small labelled catalogue for `atelier review`: solid-colour PNGs in three classes, two views per
// product, and a model's predictions (probabilities from a fixed seed) that get about a third wrong.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { atelierBin, repoRoot, runAtelier } from '../helpers.js';
import { createRandom } from '../../src/lib/random.js';

export const REVIEW_LABELS = ['a-line', 'sheath', 'shift'];

export interface ReviewFixture {
  dir: string;
  labels: string;
  predictions: string;
  db: string;
  records: Array<{ id: string; product: string; image: string; silhouette: string }>;
}

export async function makeReviewFixture(dir: string, count = 60): Promise<ReviewFixture> {
  mkdirSync(join(dir, 'img'), { recursive: true });
  const random = createRandom(7);
  const records: ReviewFixture['records'] = [];
  const predictions: string[] = [];
  for (let i = 0; i < count; i++) {
    const c = i % REVIEW_LABELS.length;
    const id = `img-${String(i).padStart(4, '0')}`;
    const image = `img/${id}.png`;
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 80 * c, g: (i * 37) % 255, b: 120 } } }).png().toFile(join(dir, image));
    records.push({ id, product: `p${Math.floor(i / 2)}`, image, silhouette: REVIEW_LABELS[c] });
    const scores = REVIEW_LABELS.map((_, j) => random.next() + (j === c && i % 3 !== 0 ? 1.5 : 0));
    const sum = scores.reduce((a, b) => a + b, 0);
    const probs = Object.fromEntries(REVIEW_LABELS.map((l, j) => [l, Number((scores[j] / sum).toFixed(4))]));
    const best = REVIEW_LABELS.reduce((a, l) => (probs[l] > probs[a] ? l : a), REVIEW_LABELS[0]);
    predictions.push(JSON.stringify({ id, label: best, probs }));
  }
  const labels = join(dir, 'images.ndjson');
  writeFileSync(labels, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const predictionsPath = join(dir, 'predictions.ndjson');
  writeFileSync(predictionsPath, predictions.join('\n') + '\n');
  return { dir, labels, predictions: predictionsPath, db: join(dir, 'labels.sqlite'), records };
}

/** `atelier review import` of the fixture's labels and predictions. */
export async function importFixture(f: ReviewFixture): Promise<void> {
  const r = await runAtelier(['review', 'import', '--db', f.db, '--labels', f.labels, '--label-field', 'silhouette', '-p', f.predictions, '--name', 'model-1']);
  assert.equal(r.code, 0, r.stderr);
}

export interface RunningServer {
  child: ChildProcess;
  base: string;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts `atelier review --db db --port 0 ...` and waits for its address on stderr. */
export function startReviewServer(db: string, extra: string[] = []): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [atelierBin, 'review', '--db', db, '--port', '0', '--user', 'tester', ...extra], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^/\s]+)\//.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          base: m[1],
          stderr: () => err,
          stop: () => new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
}

/** The session token a page carries. */
export async function pageToken(base: string): Promise<string> {
  const html = await (await fetch(`${base}/`)).text();
  const m = /<meta name="atelier-token" content="([^"]+)">/.exec(html);
  assert.ok(m, 'no token in the page');
  return m[1];
}

export async function postJson(base: string, path: string, body: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(token ? { 'X-Atelier-Token': token } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export interface RetrievalFiles {
  partition: string;
  knn: string;
  /** Query id -> its gallery image (the other view of its product). */
  queries: Map<string, string>;
}

/**
 * An In-Shop style split of the fixture: the first view of each product is a query, the second the
 * gallery. Each query's knn line lists gallery images with decreasing scores; where its own product's
 * view lands varies (first, later, or not at all), and every line also names itself, another query
 * and an image outside the partition, which retrieval leaves out.
 */
export function makeRetrievalFiles(f: ReviewFixture): RetrievalFiles {
  const partition = join(f.dir, 'partition.ndjson');
  const knn = join(f.dir, 'knn-queries.ndjson');
  const split = (i: number) => (i % 2 === 0 ? 'query' : 'gallery');
  writeFileSync(partition, f.records.map((r, i) => JSON.stringify({ id: r.id, item: r.product, split: split(i) })).join('\n') + '\n');
  const gallery = f.records.filter((_, i) => split(i) === 'gallery').map((r) => r.id);
  const queries = new Map<string, string>();
  const lines: string[] = [];
  f.records.forEach((r, i) => {
    if (split(i) !== 'query') return;
    const own = f.records[i + 1].id;
    queries.set(r.id, own);
    const others = gallery.filter((g) => g !== own);
    const q = i / 2;
    const list = [others[q % others.length], others[(q + 1) % others.length], others[(q + 2) % others.length], others[(q + 3) % others.length]];
    if (q % 4 !== 3) list.splice(q % 4, 0, own); // at rank 1, 2 or 3; missing from every fourth list
    const named = [r.id, ...list.slice(0, 2), f.records[(i + 2) % f.records.length].id, 'not-in-partition', ...list.slice(2)];
    lines.push(JSON.stringify({ id: r.id, neighbors: named.map((id, k) => ({ id, score: Number((0.95 - 0.05 * k).toFixed(2)) })) }));
  });
  writeFileSync(knn, lines.join('\n') + '\n');
  return { partition, knn, queries };
}
