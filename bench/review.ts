// Load on `atelier review` (issue 20): --clients concurrent clients retag --images images over
// HTTP on 127.0.0.1, each owning its own slice and going over it --rounds times (a bounded loop).
// Measures request latency (p50, p95, p99, max) and throughput, then checks the database: one
// history row per acknowledged change (none lost, none duplicated), each image's label the last
// one acknowledged, PRAGMA integrity_check ok.
//
//   node dist/bench/review.js [--clients 50] [--images 2000] [--rounds 2] [--out bench/out/review.json]
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flag, loadAverage, machineInfo, outDir, repoRoot, writeResults } from './common.js';

const clients = Number(flag('clients', '50'));
const imageCount = Number(flag('images', '2000'));
const rounds = Number(flag('rounds', '2'));
const outFile = flag('out', join(outDir, 'review.json'));
const workDir = join(outDir, 'review');
const LABELS = ['a-line', 'sheath', 'shift', 'wrap'];

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'atelier'), ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`atelier ${args.join(' ')}: exit ${code}`))));
  });
}

async function main(): Promise<void> {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  const records = Array.from({ length: imageCount }, (_, i) => ({ id: `b${i}`, product: `p${i >> 1}`, image: `img/b${i}.png`, label: LABELS[i % LABELS.length] }));
  writeFileSync(join(workDir, 'labels.ndjson'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(workDir, 'predictions.ndjson'), records.map((r, i) => JSON.stringify({ id: r.id, label: LABELS[(i * 7) % LABELS.length], probs: Object.fromEntries(LABELS.map((l, j) => [l, j === (i * 7) % LABELS.length ? 0.7 : 0.1])) })).join('\n') + '\n');
  const db = join(workDir, 'labels.sqlite');
  await run(['review', 'import', '--db', db, '--labels', join(workDir, 'labels.ndjson'), '-p', join(workDir, 'predictions.ndjson')]);

  const server = spawn(process.execPath, [join(repoRoot, 'bin', 'atelier'), 'review', '--db', db, '--port', '0', '--user', 'bench'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const base = await new Promise<string>((resolve, reject) => {
    let err = '';
    server.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^/\s]+)\//.exec(err);
      if (m) resolve(m[1]);
    });
    server.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
  const token = /<meta name="atelier-token" content="([^"]+)">/.exec(await (await fetch(`${base}/history`)).text())![1];

  const latencies: number[] = [];
  const lastAck = new Map<string, string>();
  let acknowledgedChanges = 0;
  let failures = 0;
  const load = loadAverage();
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const mine = records.filter((_, i) => i % clients === c);
    for (let round = 0; round < rounds; round++) {
      for (const [j, r] of mine.entries()) {
        const label = LABELS[(r.id.length + j + round + 1) % LABELS.length];
        const t0 = performance.now();
        const res = await fetch(`${base}/api/retag`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Atelier-Token': token }, body: JSON.stringify({ ids: [r.id], label, who: `client-${c}` }) });
        const body = (await res.json()) as { changed?: unknown[] };
        latencies.push(performance.now() - t0);
        if (res.status !== 200) {
          failures++;
          continue;
        }
        acknowledgedChanges += body.changed!.length;
        lastAck.set(r.id, label);
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));

  const check = new Database(db, { readonly: true });
  const historyRows = check.prepare('SELECT COUNT(*) FROM history').pluck().get() as number;
  const label = check.prepare('SELECT label FROM images WHERE id = ?').pluck();
  let wrongLabels = 0;
  for (const [id, l] of lastAck) if (label.get(id) !== l) wrongLabels++;
  const integrity = check.pragma('integrity_check', { simple: true });
  check.close();

  latencies.sort((a, b) => a - b);
  const q = (p: number) => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2));
  const results = {
    machine: machineInfo(), loadBefore: load, loadAfter: loadAverage(),
    clients, images: imageCount, rounds, requests: latencies.length, failures, seconds: Number(seconds.toFixed(2)),
    requestsPerSecond: Number((latencies.length / seconds).toFixed(1)),
    latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1 - 1e-9) },
    acknowledgedChanges, historyRows, lost: acknowledgedChanges - historyRows, wrongLabels, integrity,
  };
  writeResults(outFile, results);
  process.stdout.write(JSON.stringify(results.latencyMs) + ` ${results.requestsPerSecond} req/s, ${acknowledgedChanges} changes, history ${historyRows}, wrong ${wrongLabels}, integrity ${integrity}\n`);
  if (failures || acknowledgedChanges !== historyRows || wrongLabels || integrity !== 'ok') process.exitCode = 1;
}

await main();
