// bench/teacher-score: wall time and peak memory of `atelier teacher-score` on 1M synthetic sales
// streamed from NDJSON and CSV (and 100k, to show memory follows articles, not sales), on the
// RentTheRunway fit data when shared/ has it, and the agreement of its ln L with
// scipy.stats.binom.logpmf (Debian python3-scipy) and mpmath on the real (n, k, p).
// Usage: node dist/bench/teacher-score.js [--events 1000000] [--articles 20000] [--out bench/out/teacher-score]
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import teacherScore from '../src/commands/teacher-score.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const atelierBin = join(repoRoot, 'bin', 'atelier');
const python = '/usr/bin/python3';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const eventCount = Number(option('events', '1000000'));
const articleCount = Number(option('articles', '20000'));
const outDir = resolve(option('out', join(repoRoot, 'bench', 'out', 'teacher-score')));
const fitData = process.env.ATELIER_FIT_DATA ?? join(repoRoot, '..', 'shared', 'data', 'fit', 'renttherunway_fit.csv.gz');
mkdirSync(outDir, { recursive: true });

/** mulberry32: a seeded generator so the synthetic sales are the same on every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CATEGORIES = ['dress', 'gown', 'sheath', 'shift', 'jumpsuit', 'top', 'maxi', 'romper', 'jacket', 'skirt', 'coat', 'blazer'];
const DAY_MS = 86_400_000;
const START_MS = Date.UTC(2016, 0, 1);

/** Writes `events` sales of `articles` articles over two years as NDJSON and CSV; returns the paths. */
async function writeSyntheticSales(events: number, articles: number, seed: number): Promise<{ ndjson: string; csv: string }> {
  const random = generator(seed);
  const baseRate = CATEGORIES.map(() => 0.1 + 0.25 * random());
  const category = Array.from({ length: articles }, () => Math.floor(random() * CATEGORIES.length));
  const slim = Array.from({ length: articles }, () => random() < 0.2);
  const ndjsonPath = join(outDir, `sales-${events}.ndjson`);
  const csvPath = join(outDir, `sales-${events}.csv`);
  const ndjson = createWriteStream(ndjsonPath);
  const csv = createWriteStream(csvPath);
  csv.write('id,category,date,returned\n');
  let ndjsonBatch = '';
  let csvBatch = '';
  for (let i = 0; i < events; i++) {
    // Skewed popularity: a few articles sell a lot.
    const article = Math.floor(articles * random() ** 2);
    const day = Math.floor(random() * 730);
    const month = new Date(START_MS + day * DAY_MS).getUTCMonth();
    const seasonal = month === 0 || month === 6 ? 1.3 : 1;
    const returned = random() < Math.min(0.95, baseRate[category[article]!]! * seasonal * (slim[article] ? 2.5 : 1));
    const id = `a${article}`;
    const date = new Date(START_MS + day * DAY_MS).toISOString().slice(0, 10);
    const name = CATEGORIES[category[article]!]!;
    ndjsonBatch += `{"id":"${id}","category":"${name}","date":"${date}","returned":${returned}}\n`;
    csvBatch += `${id},${name},${date},${returned}\n`;
    if (ndjsonBatch.length > 1 << 20) {
      if (!ndjson.write(ndjsonBatch)) await once(ndjson, 'drain');
      if (!csv.write(csvBatch)) await once(csv, 'drain');
      ndjsonBatch = '';
      csvBatch = '';
    }
  }
  ndjson.end(ndjsonBatch);
  csv.end(csvBatch);
  await Promise.all([once(ndjson, 'finish'), once(csv, 'finish')]);
  return { ndjson: ndjsonPath, csv: csvPath };
}

interface Timed {
  seconds: number;
  /** User + system CPU seconds: on a busy shared machine this says more than the wall time. */
  cpuSeconds: number | null;
  peakRssMiB: number | null;
  stderr: string;
}

/** Runs atelier under /usr/bin/time (for CPU time and peak RSS) when it exists; the best wall time of `repeats`. */
function timeAtelier(args: string[], repeats: number): Timed {
  let best: Timed | null = null;
  const gnuTime = existsSync('/usr/bin/time');
  for (let r = 0; r < repeats; r++) {
    const command = gnuTime ? '/usr/bin/time' : process.execPath;
    const commandArgs = gnuTime ? ['-f', 'ATELIER_BENCH_RSS_KB %M %U %S', process.execPath, atelierBin, ...args] : [atelierBin, ...args];
    const started = process.hrtime.bigint();
    const run = spawnSync(command, commandArgs, { encoding: 'utf8', maxBuffer: 1 << 30 });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (run.status !== 0) throw new Error(`atelier ${args.join(' ')} failed (${run.status}): ${run.stderr}`);
    const usage = /ATELIER_BENCH_RSS_KB (\d+) ([\d.]+) ([\d.]+)/.exec(run.stderr);
    const timed = {
      seconds,
      cpuSeconds: usage ? Number(usage[2]) + Number(usage[3]) : null,
      peakRssMiB: usage ? Number(usage[1]) / 1024 : null,
      stderr: run.stderr.replace(/ATELIER_BENCH_RSS_KB .*\n?/, ''),
    };
    if (!best || timed.seconds < best.seconds) best = timed;
  }
  return best!;
}

/** The command's own time, in this process (no CLI start-up, no module loading): best of `repeats`. */
async function timeInProcess(options: Record<string, unknown>, repeats: number): Promise<number> {
  const args: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(teacherScore.options)) {
    args[name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = spec.default;
  }
  Object.assign(args, options, { quiet: true });
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const sink = new PassThrough();
    sink.resume();
    const started = process.hrtime.bigint();
    await teacherScore.run(args as never, { stdin: process.stdin, stdout: sink, stderr: sink, env: process.env });
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return best;
}

/** Max relative error of −s against a Python reference of ln L on the same (n, k, p). */
function agreement(outputPath: string, reference: 'scipy' | 'mpmath'): { compared: number; maxRelativeError: number; worst: unknown } | { skipped: string } {
  const script =
    reference === 'scipy'
      ? `
import json, sys
from scipy.stats import binom
worst = (0.0, None); count = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    ref = float(binom.logpmf(r['k'], r['n'], r['p']))
    err = abs(-r['s'] - ref) / max(abs(ref), 1e-300)
    count += 1
    if err > worst[0]: worst = (err, [r['n'], r['k'], r['p'], -r['s'], ref])
print(json.dumps({'compared': count, 'maxRelativeError': worst[0], 'worst': worst[1]}))
`
      : `
import json, sys, mpmath
mpmath.mp.dps = 40
worst = (0.0, None); count = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n, k, p = r['n'], r['k'], mpmath.mpf(r['p'])
    ref = mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1) + k * mpmath.log(p) + (n - k) * mpmath.log(1 - p)
    err = float(abs(-r['s'] - ref) / abs(ref))
    count += 1
    if err > worst[0]: worst = (err, [r['n'], r['k'], r['p'], -r['s'], float(ref)])
print(json.dumps({'compared': count, 'maxRelativeError': worst[0], 'worst': worst[1]}))
`;
  if (!existsSync(python)) return { skipped: `${python} not found` };
  const run = spawnSync(python, ['-c', script, outputPath], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) return { skipped: `${reference} unavailable: ${run.stderr.trim().split('\n').at(-1)}` };
  return JSON.parse(run.stdout) as { compared: number; maxRelativeError: number; worst: unknown };
}

function summaryLine(stderr: string, pattern: RegExp): string {
  return stderr.split('\n').find((line) => pattern.test(line))?.replace(/^atelier teacher-score: /, '') ?? '';
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = {
    bench: 'teacher-score',
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.versions.node}`,
  };
  const startup = timeAtelier(['teacher-score', '--help'], 3);
  results.startup = { seconds: startup.seconds, cpuSeconds: startup.cpuSeconds };
  results.loadAverage = loadavg();
  console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores`);
  console.log(`startup (atelier teacher-score --help): ${startup.seconds.toFixed(2)} s wall, ${startup.cpuSeconds?.toFixed(2) ?? '?'} s CPU`);

  for (const events of [Math.round(eventCount / 10), eventCount]) {
    const files = await writeSyntheticSales(events, articleCount, 1);
    for (const [format, path] of Object.entries(files)) {
      const out = join(outDir, `scores-${events}-${format}.ndjson`);
      const timed = timeAtelier(['teacher-score', '-o', out, path], 2);
      const mib = statSync(path).size / 2 ** 20;
      const inProcess = await timeInProcess({ input: path, output: join(outDir, 'in-process.ndjson') }, 2);
      const line = `${events} sales (${format}, ${mib.toFixed(0)} MiB, ${articleCount} articles): ${timed.seconds.toFixed(2)} s wall, ${timed.cpuSeconds?.toFixed(2) ?? '?'} s CPU, ${Math.round(events / timed.seconds).toLocaleString('en')} sales/s, peak RSS ${timed.peakRssMiB?.toFixed(0) ?? '?'} MiB; in-process ${inProcess.toFixed(2)} s`;
      console.log(line);
      results[`synthetic_${events}_${format}`] = { events, articles: articleCount, seconds: timed.seconds, cpuSeconds: timed.cpuSeconds, inProcessSeconds: inProcess, salesPerSecond: events / timed.seconds, peakRssMiB: timed.peakRssMiB };
    }
  }

  if (existsSync(fitData)) {
    const out = join(outDir, 'fit-scores.ndjson');
    const args = ['teacher-score', '--id-col', 'item_id', '--date-col', 'review_date', '--returned-col', 'fit', '--returned-values', 'small,large', '--kept-values', 'fit', '-o', out, fitData];
    const timed = timeAtelier(args, 3);
    const inProcess = await timeInProcess(
      { input: fitData, output: join(outDir, 'in-process.ndjson'), idCol: 'item_id', dateCol: 'review_date', returnedCol: 'fit', returnedValues: 'small,large', keptValues: 'fit' },
      3,
    );
    const labels = summaryLine(timed.stderr, /labels:/);
    const articles = summaryLine(timed.stderr, /articles from/);
    console.log(`RentTheRunway fit data (${fitData}): ${timed.seconds.toFixed(2)} s wall (best of 3, startup included), ${timed.cpuSeconds?.toFixed(2) ?? '?'} s CPU, peak RSS ${timed.peakRssMiB?.toFixed(0) ?? '?'} MiB; in-process ${inProcess.toFixed(2)} s`);
    console.log(`  ${articles}`);
    console.log(`  ${labels}`);
    console.log(`  ${summaryLine(timed.stderr, /w quantiles/)}`);
    const scipy = agreement(out, 'scipy');
    const mpmath = agreement(out, 'mpmath');
    console.log(`  ln L vs scipy.stats.binom.logpmf: ${JSON.stringify(scipy)}`);
    console.log(`  ln L vs mpmath (40 digits):       ${JSON.stringify(mpmath)}`);
    results.fit = { seconds: timed.seconds, cpuSeconds: timed.cpuSeconds, inProcessSeconds: inProcess, peakRssMiB: timed.peakRssMiB, articles, labels, scipy, mpmath, rows: readFileSync(out, 'utf8').split('\n').filter(Boolean).length };
  } else {
    console.log(`RentTheRunway fit data: skipped (no ${fitData})`);
    results.fit = { skipped: `no ${fitData}` };
  }
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`results: ${join(outDir, 'results.json')}`);
}

await main();
