// bench/real-summary: helpers for the real-data make targets in bench/real.mk. Subcommands:
//   time FILE -- CMD...            run CMD, write {seconds, command, code} to FILE, exit with its code
//   weak --dir D                   real-weak: P@k of train-weak, linear probes weak/random/pixels -> D/weak-results.{json,md}
//   join-labels --dir D --styles S samples.ndjson + styles.csv -> D/labelled.ndjson (absolute image paths, facets)
//   facets --dir D                 real-facets: (a) pixels head, (b) weak head, (c) fine-tuned -> D/facets-results.{json,md}
//   teacher --dir D --input F      real-teacher: rows, articles, label shares, wall time -> D/teacher-results.{json,md}
//   weak-run --dir D ...           real-weak-44k/-amazon/-both: P@k/R@k, probes on 4 facets per feature -> D/weak-results.{json,md}
//   merge-vocab -o F V...          one vocabulary from several crawl-tokenize vocabularies (counts and df summed)
//   heldout --dir D --tsne N       D's held-out products (train-classifier's test split) -> D/heldout.ndjson {id, item:
//                                  articleType|baseColour} for eval-retrieval, D/heldout-tsne.ndjson (N of them, labelled)
//   retrieval-precision --features F --partition P -o J   P@1/5/10 of F's rows among P's products sharing the item
//   colour-families --input CSV --id-field F --field C --out OUT  one basic colour family per row from a free-text colour field
//                                  (rows naming none or two families left out) -> OUT.csv {id, colour}
//   colour-run --dir D --features 'M...' --reference R --pixels-dir P   colour probes on amazon-tops-16k -> D/colour-results.{json,md}
//   resumed-after --checkpoint C --out F   the epoch C (a train-weak checkpoint) ends after -> F (real.mk's REAL_RESUME_FROM)
//   runs --root R                  every weak-run under R (R/<set>-<limit>/<run>/weak-results.json), one row each -> R/weak-runs.{json,md}
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { csvLine } from '../src/lib/io/csv.js';
import { readNpy } from '../src/lib/io/npy.js';
import { splitOf } from '../src/lib/random.js';
import { topKIndices } from '../src/lib/metrics/ranking.js';
import { colourFamily } from '../src/lib/text/colour-family.js';

const FACETS = ['articleType', 'baseColour'] as const;
const FEATURES = ['weak', 'random', 'pixels'] as const;

function option(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : undefined;
  if (value !== undefined) return value;
  if (fallback === undefined) throw new Error(`real-summary: --${name} is required`);
  return fallback;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function countLines(path: string): number {
  const text = readFileSync(path, 'utf8');
  return text.split('\n').filter((l) => l.trim() !== '').length;
}

function machine(): Record<string, unknown> {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadavg: loadavg().map((x) => Number(x.toFixed(2))) };
}

function round(x: number | null | undefined, digits = 3): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits));
}

function writeResults(dir: string, name: string, json: Record<string, unknown>, markdown: string[]): void {
  writeFileSync(resolve(dir, `${name}-results.json`), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(resolve(dir, `${name}-results.md`), markdown.join('\n') + '\n');
  process.stdout.write(markdown.join('\n') + '\n');
}

interface Timed {
  seconds: number;
}

function timedCpuSeconds(path: string): number | null {
  return existsSync(path) ? (readJson<{ cpuSeconds?: number | null }>(path).cpuSeconds ?? null) : null;
}

function timedSeconds(path: string): number | null {
  return existsSync(path) ? readJson<Timed>(path).seconds : null;
}

interface SplitReport {
  accuracy: number;
  macroF1: number;
  weightedF1: number;
  support: number;
}

interface ClassifierReport {
  labels: string[];
  samples: Record<string, number>;
  epochs: number;
  bestEpoch: number;
  test: SplitReport;
  train: SplitReport;
}

function testScores(path: string): { accuracy: number | null; macroF1: number | null; classes: number; test: number; epochs: number } | null {
  if (!existsSync(path)) return null;
  const r = readJson<ClassifierReport>(path);
  return { accuracy: round(r.test.accuracy), macroF1: round(r.test.macroF1), classes: r.labels.length, test: r.test.support, epochs: r.epochs };
}

// CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat (cutime, cstime
// in clock ticks of 1/100 s on Linux): the CPU budget of a step, whatever else loads the machine.
function childrenCpuSeconds(): number | null {
  if (!existsSync('/proc/self/stat')) return null;
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function runTimed(): void {
  const out = process.argv[3];
  const dash = process.argv.indexOf('--');
  const command = process.argv.slice(dash + 1);
  if (!out || dash < 0 || command.length === 0) throw new Error('usage: real-summary time FILE -- CMD...');
  const started = process.hrtime.bigint();
  const cpuBefore = childrenCpuSeconds();
  const child = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = childrenCpuSeconds();
  const cpuSeconds = cpu === null || cpuBefore === null ? null : round(cpu - cpuBefore, 1);
  writeFileSync(out, JSON.stringify({ seconds, cpuSeconds, command: command.join(' '), code: child.status }) + '\n');
  process.exit(child.status ?? 1);
}

interface EpochLog {
  epoch: number;
  loss: number;
  seconds: number;
  imagesPerSecond: number;
  precision: Record<string, number>;
  recall: Record<string, number>;
  baselinePrecision1: number;
}

function summarizeWeak(): void {
  const dir = option('dir');
  const log = readJson<EpochLog[]>(resolve(dir, 'weak.model.log.json'));
  const metadata = readJson<{ atelier: { metadata: { config: Record<string, number>; vocabulary: unknown[] } } }>(resolve(dir, 'weak.model', 'model.json')).atelier.metadata;
  const best = log.reduce((a, b) => ((b.precision['1'] ?? 0) > (a.precision['1'] ?? 0) ? b : a));
  const last = log[log.length - 1]!;
  const trainSeconds = log.reduce((a, e) => a + e.seconds, 0);
  const trainImages = log.reduce((a, e) => a + e.imagesPerSecond * e.seconds, 0);
  const images = countLines(resolve(dir, 'samples.ndjson'));
  const embed: Record<string, { rows: number; seconds: number | null; imagesPerSecond: number | null }> = {};
  for (const m of FEATURES) {
    const seconds = timedSeconds(resolve(dir, `${m}.npy.time`));
    const rows = countLines(resolve(dir, `${m}.ids.ndjson`));
    embed[m] = { rows, seconds: round(seconds, 2), imagesPerSecond: seconds ? round(rows / seconds, 1) : null };
  }
  const probes: Record<string, Record<string, ReturnType<typeof testScores>>> = {};
  for (const m of FEATURES) {
    probes[m] = {};
    for (const f of FACETS) probes[m]![f] = testScores(resolve(dir, `probe-${m}-${f}.json`));
  }
  const pk = (e: EpochLog, k: number) => round(e.precision[String(k)]);
  const json = {
    data: 'fashion-product-images-small (Myntra, 5,000 images), title words only',
    images,
    vocabulary: metadata.vocabulary.length,
    tower: metadata.config,
    epochs: log.length,
    trainSeconds: round(trainSeconds, 1),
    trainImagesPerSecond: round(trainImages / trainSeconds, 1),
    precisionAtK: { best: { epoch: best.epoch, precision: best.precision, recall: best.recall }, last: { epoch: last.epoch, precision: last.precision, recall: last.recall } },
    mostFrequentWordPrecision1: round(last.baselinePrecision1),
    embed,
    probe: option('probe', 'default settings'),
    probes,
    machine: machine(),
  };
  const md = [
    `### real-weak: train-weak on ${images} Myntra images (fashion-product-images-small, title words only)`,
    '',
    `Tower: ${metadata.config.inputSize} px, width ${metadata.config.width}, ${metadata.config.stages} stages, ${metadata.vocabulary.length} words; ${log.length} epochs of ${Math.round(trainImages / log.length)} samples in ${trainSeconds.toFixed(0)} s = **${(trainImages / trainSeconds).toFixed(0)} training images/s** (WASM, 1 thread).`,
    '',
    '| epoch | loss | P@1 | P@5 | P@10 | P@15 | R@5 | R@15 |',
    '|---|---|---|---|---|---|---|---|',
    ...[best, last]
      .filter((e, i, a) => a.indexOf(e) === i)
      .map((e) => `| ${e.epoch}${e === best ? ' (best P@1)' : ' (last)'} | ${e.loss.toFixed(3)} | ${pk(e, 1)} | ${pk(e, 5)} | ${pk(e, 10)} | ${pk(e, 15)} | ${round(e.recall['5'])} | ${round(e.recall['15'])} |`),
    `| most-frequent word | | ${round(last.baselinePrecision1)} | | | | | |`,
    '',
    `Linear probe (train-classifier head on frozen features, balanced class weights, ${option('probe', 'default settings')}; test split = 20% of the products by hash): accuracy / macro-F1 on the test split. Embed images/s: \`atelier embed\` end to end on the ${images} images (start-up, decode, forward, write).`,
    '',
    `| features | dim | articleType acc | articleType macro-F1 | baseColour acc | baseColour macro-F1 | embed images/s |`,
    '|---|---|---|---|---|---|---|',
    ...FEATURES.map((m) => {
      const a = probes[m]!.articleType;
      const c = probes[m]!.baseColour;
      const name = m === 'weak' ? 'weak tower (trained)' : m === 'random' ? 'same tower, untrained' : 'raw pixels 16x16';
      const dim = m === 'pixels' ? 768 : metadata.config.width * 2 ** (metadata.config.stages - 1);
      return `| ${name} | ${dim} | ${a?.accuracy ?? '-'} | ${a?.macroF1 ?? '-'} | ${c?.accuracy ?? '-'} | ${c?.macroF1 ?? '-'} | ${embed[m]!.imagesPerSecond ?? '-'} |`;
    }),
    '',
    `Test split: ${probes.weak?.articleType?.test ?? '?'} images; articleType ${probes.weak?.articleType?.classes ?? '?'} classes, baseColour ${probes.weak?.baseColour?.classes ?? '?'} classes.`,
  ];
  writeResults(dir, 'weak', json, md);
}

function joinLabels(): void {
  const dir = option('dir');
  const styles = parse(readFileSync(option('styles'), 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const byId = new Map(styles.map((r) => [r.id, r]));
  const lines: string[] = [];
  for (const line of readFileSync(resolve(dir, 'samples.ndjson'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const sample = JSON.parse(line) as { id: string; image: string | null };
    const row = byId.get(sample.id);
    if (!row || !sample.image) continue;
    lines.push(JSON.stringify({ id: sample.id, image: resolve(sample.image), articleType: row.articleType, baseColour: row.baseColour }));
  }
  writeFileSync(resolve(dir, 'labelled.ndjson'), lines.join('\n') + '\n');
  process.stderr.write(`real-summary: ${lines.length} labelled images in ${resolve(dir, 'labelled.ndjson')}\n`);
}

function summarizeFacets(): void {
  const dir = option('dir');
  const epochs = option('finetune-epochs', '?');
  const rows: Array<{ name: string; facet: string; scores: ReturnType<typeof testScores>; seconds: number | null }> = [];
  for (const f of FACETS) {
    rows.push({ name: '(a) raw pixels 16x16, linear head', facet: f, scores: testScores(resolve(dir, `probe-pixels-${f}.json`)), seconds: null });
    rows.push({ name: '(b) weak features (real-weak), linear head', facet: f, scores: testScores(resolve(dir, `probe-weak-${f}.json`)), seconds: null });
    rows.push({ name: `(c) weak tower fine-tuned, ${epochs} epochs`, facet: f, scores: testScores(resolve(dir, `finetune-${f}.json`)), seconds: round(timedSeconds(resolve(dir, `finetune-${f}.json.time`)), 1) });
  }
  const json = { data: 'fashion-product-images-small (Myntra, 5,000 images)', classWeight: 'balanced', probe: option('probe', 'default settings'), results: rows, machine: machine() };
  const md = [
    `### real-facets: articleType and baseColour on the 5,000 Myntra images (balanced class weights, test split; heads: ${option('probe', 'default settings')})`,
    '',
    '| model | facet | accuracy | macro-F1 | classes | test images | wall s |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.facet} | ${r.scores?.accuracy ?? '-'} | ${r.scores?.macroF1 ?? '-'} | ${r.scores?.classes ?? '-'} | ${r.scores?.test ?? '-'} | ${r.seconds ?? ''} |`),
  ];
  writeResults(dir, 'facets', json, md);
}

interface TeacherRecord {
  category: string;
  n: number;
  k: number;
  w: number;
  label: string;
}

function summarizeTeacher(): void {
  const dir = option('dir');
  const input = option('input');
  const raw = readFileSync(input);
  const text = input.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  const inputRows = text.split('\n').filter((l) => l.trim() !== '').length - 1;
  const records = readFileSync(resolve(dir, 'teacher.ndjson'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TeacherRecord);
  const sales = records.reduce((a, r) => a + r.n, 0);
  const returns = records.reduce((a, r) => a + r.k, 0);
  const issues = records.filter((r) => r.label === 'size issue');
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const seconds = timedSeconds(resolve(dir, 'teacher.time'));
  const json = {
    input,
    inputRows,
    articles: records.length,
    sales,
    sizeReturns: returns,
    sizeReturnRate: round(returns / sales, 4),
    labels: { sizeIssue: issues.length, noSizeIssue: records.length - issues.length, sizeIssueShare: round(issues.length / records.length, 4) },
    meanW: { sizeIssue: round(mean(issues.map((r) => r.w))), noSizeIssue: round(mean(records.filter((r) => r.label !== 'size issue').map((r) => r.w))) },
    categories: new Set(records.map((r) => r.category)).size,
    wallSeconds: round(seconds, 2),
    machine: machine(),
  };
  const md = [
    '### real-teacher: teacher-score on RentTheRunway (all rentals; size return = fit small or large; monthly buckets)',
    '',
    '| rows | articles | categories | size-return rate | size issue | no size issue | mean w (issue / none) | wall s |',
    '|---|---|---|---|---|---|---|---|',
    `| ${inputRows} | ${records.length} | ${json.categories} | ${json.sizeReturnRate} | ${issues.length} (${(100 * issues.length / records.length).toFixed(1)}%) | ${records.length - issues.length} (${(100 * (records.length - issues.length) / records.length).toFixed(1)}%) | ${json.meanW.sizeIssue} / ${json.meanW.noSizeIssue} | ${json.wallSeconds ?? '-'} |`,
  ];
  writeResults(dir, 'teacher', json, md);
}

const RUN_FACETS = ['articleType', 'baseColour', 'gender', 'usage'] as const;
const FEATURE_NAMES: Record<string, string> = {
  weak: 'weak tower (trained)',
  random: 'same tower, untrained',
  backbone: 'pretrained backbone, frozen',
  pixels: 'raw pixels 16x16',
  colours: 'colour histogram of the product pixels (no model)',
  torch: 'PyTorch reference (same tower, recipe, budget)',
  'weak-stages': 'weak tower, every stage (embed --layer stages)',
  'backbone-stages': 'pretrained backbone frozen, every stage',
  'weak-stages-max': 'weak tower, every stage by mean and max (embed --layer stages-max)',
  'backbone-stages-max': 'pretrained backbone frozen, every stage by mean and max',
};

// The row width of a .npy file, from its header's shape.
function npyWidth(path: string): number | null {
  if (!existsSync(path)) return null;
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(512);
  readSync(fd, head, 0, 512, 0);
  closeSync(fd);
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(head.toString('latin1'));
  return shape ? Number(shape[2]) : null;
}

function readText(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : null;
}

function summarizeWeakRun(): void {
  const dir = option('dir');
  const pixelsDir = option('pixels-dir');
  const set = option('set');
  const trained = option('features').split(/\s+/).filter(Boolean);
  // --reference DIR: the untrained and backbone rows of another run of the same tower (their features do not
  // depend on the training set), for runs that do not recompute them.
  const reference = option('reference', '');
  const borrowed = reference ? ['random', 'backbone'].filter((m) => !trained.includes(m) && existsSync(resolve(reference, `${m}.npy`))) : [];
  // Features of the photos alone (no model) sit in the probe records' folder and end the table.
  const shared = (m: string) => m === 'pixels' || m === 'colours';
  const features = [...trained.filter((m) => !shared(m)), ...borrowed, ...trained.filter(shared)];
  const log = readJson<EpochLog[]>(resolve(dir, 'weak.model.log.json'));
  const metadata = readJson<{ atelier: { metadata: { config: Record<string, unknown>; vocabulary: unknown[] } } }>(resolve(dir, 'weak.model', 'model.json')).atelier.metadata;
  const best = log.reduce((a, b) => ((b.precision['1'] ?? 0) > (a.precision['1'] ?? 0) ? b : a));
  const last = log[log.length - 1]!;
  const trainSeconds = log.reduce((a, e) => a + e.seconds, 0);
  const trainImages = log.reduce((a, e) => a + e.imagesPerSecond * e.seconds, 0);
  const wall = timedSeconds(resolve(dir, 'weak.time'));
  const trainCpu = timedCpuSeconds(resolve(dir, 'weak.time'));
  // A run resumed from a checkpoint (train-weak --resume) timed only the epochs after it: say which.
  const resumedAfter = Number(readText(resolve(dir, 'weak.resumed-after')) ?? 0);
  const timedEpochs = { from: resumedAfter + 1, to: log.length };
  const timedNote = resumedAfter > 0 ? ` for epochs ${timedEpochs.from}-${timedEpochs.to}, resumed after epoch ${resumedAfter}; the earlier epochs' wall and CPU time are those of the run its checkpoint came from` : '';
  const featureDir = (m: string) => (shared(m) ? pixelsDir : borrowed.includes(m) ? reference : dir);
  const probes: Record<string, Record<string, ReturnType<typeof testScores>>> = {};
  const dims: Record<string, number | null> = {};
  for (const m of features) {
    probes[m] = {};
    dims[m] = npyWidth(resolve(featureDir(m), `${m}.npy`));
    for (const f of RUN_FACETS) probes[m]![f] = testScores(resolve(featureDir(m), `probe-${m}-${f}.json`));
  }
  const at = (e: EpochLog, field: 'precision' | 'recall') => Object.fromEntries(['1', '5', '10', '15'].map((k) => [k, round(e[field][k])]));
  // The issue's targets and margins, checked on the weak features; the margin is weak minus the frozen backbone.
  const weak = probes.weak ?? {};
  const targets = {
    articleTypeAccuracy: { target: 0.85, value: weak.articleType?.accuracy ?? null },
    articleTypeMacroF1: { target: 0.6, value: weak.articleType?.macroF1 ?? null },
    baseColourAccuracy: { target: 0.7, value: weak.baseColour?.accuracy ?? null },
  };
  // The same targets on the weak tower's stage features (REAL_RUN_STAGES=1 or max), where they were probed.
  const stageTargetsOf = (feature: string) => {
    const stages = probes[feature];
    return stages ? { articleTypeAccuracy: stages.articleType?.accuracy ?? null, articleTypeMacroF1: stages.articleType?.macroF1 ?? null, baseColourAccuracy: stages.baseColour?.accuracy ?? null } : null;
  };
  const stageTargets = stageTargetsOf('weak-stages');
  // Every probe of a facet tests the same products: the split's size and classes from whichever feature has one.
  const probedSplit = (facet: (typeof RUN_FACETS)[number]) => features.map((m) => probes[m]?.[facet]).find((score) => score);
  const stageMaxTargets = stageTargetsOf('weak-stages-max');
  const margins = probes.backbone
    ? Object.fromEntries(RUN_FACETS.map((f) => [f, { accuracy: round((weak[f]?.accuracy ?? NaN) - (probes.backbone![f]?.accuracy ?? NaN)), macroF1: round((weak[f]?.macroF1 ?? NaN) - (probes.backbone![f]?.macroF1 ?? NaN)) }]))
    : null;
  const load = { before: readText(resolve(dir, 'weak.load-before')), after: readText(resolve(dir, 'weak.load-after')) };
  const retrieval = Object.fromEntries(features.map((m) => [m, retrievalScores(featureDir(m), m)]));
  const neighbours = wordNeighbours(resolve(dir, 'word-neighbours.ndjson'), option('words', '').split(/\s+/).filter(Boolean));
  const tsne = tsneAgreement(resolve(dir, 'tsne-weak.ndjson'));
  const wordTriplets = { weak: wordTripletScores(resolve(dir, 'words-weak.json')), word2vec: wordTripletScores(resolve(dir, 'words-word2vec.json')) };
  const torchLog = existsSync(resolve(dir, 'torch.log.json')) ? readJson<{ threads: number; log: Array<EpochLog & { cpuSeconds: number }> }>(resolve(dir, 'torch.log.json')) : null;
  const torchWall = timedSeconds(resolve(dir, 'torch.npy.time'));
  const json = {
    set,
    trainImages: log.length ? Math.round(trainImages) : 0,
    vocabulary: metadata.vocabulary.length,
    tower: metadata.config,
    settings: option('settings', ''),
    command: option('command', ''),
    epochs: log.length,
    trainSeconds: round(trainSeconds, 1),
    trainWallSeconds: round(wall, 1),
    trainCpuSeconds: trainCpu,
    timedEpochs,
    trainImagesPerSecond: round(trainImages / trainSeconds, 1),
    precisionAtK: { best: { epoch: best.epoch, precision: at(best, 'precision'), recall: at(best, 'recall') }, last: { epoch: last.epoch, precision: at(last, 'precision'), recall: at(last, 'recall') } },
    mostFrequentWordPrecision1: round(last.baselinePrecision1),
    probe: option('probe', 'default settings'),
    probeSet: `myntra-44k products of ${pixelsDir} (test split: lowest 20% of id hashes, also train-weak's held-out products)`,
    dims,
    borrowedFrom: borrowed.length ? { dir: reference, features: borrowed } : null,
    probes,
    targets,
    stageTargets,
    stageMaxTargets,
    marginOverBackbone: margins,
    retrieval,
    wordNeighbours: neighbours,
    wordTriplets,
    word2vecSettings: option('w2v', ''),
    tsne,
    torch: torchLog ? { threads: torchLog.threads, wallSeconds: round(torchWall, 1), log: torchLog.log } : null,
    loadAverageDuringTraining: load,
    date: new Date().toISOString(),
    machine: machine(),
  };
  const cell = (s: ReturnType<typeof testScores> | undefined) => (s ? `${s.accuracy} / ${s.macroF1}` : '-');
  const md = [
    `### real-weak-run: train-weak on ${set} (title words only), probes on myntra-44k held-out products`,
    '',
    `Command: \`${json.command}\`; ${json.date.slice(0, 16)} UTC; ${json.machine.cpu} x ${json.machine.cores} cores, Node ${json.machine.node}; load average (1/5/15 min) before training ${load.before ?? '?'}, after ${load.after ?? '?'}.`,
    '',
    `Settings: \`${json.settings}\`. Vocabulary ${metadata.vocabulary.length} words. ${log.length} epochs, ${Math.round(trainImages)} training samples in ${trainSeconds.toFixed(0)} s of epochs (${wall === null ? '?' : wall.toFixed(0)} s wall with start-up${timedNote}) = **${(trainImages / trainSeconds).toFixed(1)} training images/s**; CPU budget: ${trainCpu === null ? 'that wall time on the workers named in the settings (CPU time not recorded)' : `${trainCpu.toFixed(0)} CPU-s${resumedAfter > 0 ? ` (epochs ${timedEpochs.from}-${timedEpochs.to})` : ''}`} (2-core machine shared with other jobs).`,
    '',
    '| epoch | loss | P@1 | P@5 | P@10 | P@15 | R@1 | R@5 | R@10 | R@15 |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...[best, last]
      .filter((e, i, a) => a.indexOf(e) === i)
      .map((e) => `| ${e.epoch}${e === best ? ' (best P@1)' : ' (last)'} | ${e.loss.toFixed(3)} | ${['1', '5', '10', '15'].map((k) => round(e.precision[k])).join(' | ')} | ${['1', '5', '10', '15'].map((k) => round(e.recall[k])).join(' | ')} |`),
    `| most-frequent word | | ${round(last.baselinePrecision1)} | | | | | | | |`,
    '',
    `Linear probes on frozen features (${json.probe}): test accuracy / macro-F1.`,
    '',
    `| features | dim | ${RUN_FACETS.join(' | ')} |`,
    `|---|---|${RUN_FACETS.map(() => '---|').join('')}`,
    ...features.map((m) => `| ${FEATURE_NAMES[m] ?? m}${borrowed.includes(m) ? ` (from ${reference})` : ''} | ${dims[m] ?? '?'} | ${RUN_FACETS.map((f) => cell(probes[m]![f])).join(' | ')} |`),
    '',
    `Test split: ${probedSplit('articleType')?.test ?? '?'} products; classes: ${RUN_FACETS.map((f) => `${f} ${probedSplit(f)?.classes ?? '?'}`).join(', ')}.`,
    (probes.weak
      ? `Targets (weak features): articleType accuracy ${targets.articleTypeAccuracy.value} (target >= 0.85), macro-F1 ${targets.articleTypeMacroF1.value} (>= 0.60), baseColour accuracy ${targets.baseColourAccuracy.value} (>= 0.70).`
      : 'Targets: articleType accuracy >= 0.85, macro-F1 >= 0.60, baseColour accuracy >= 0.70 (the pooled weak features were not probed in this run).') +
      (margins ? ` Weak minus frozen backbone (accuracy / macro-F1): ${RUN_FACETS.map((f) => `${f} ${margins[f]!.accuracy} / ${margins[f]!.macroF1}`).join('; ')}.` : '') +
      (stageTargets ? ` On the weak stage features: articleType accuracy ${stageTargets.articleTypeAccuracy}, macro-F1 ${stageTargets.articleTypeMacroF1}, baseColour accuracy ${stageTargets.baseColourAccuracy}.` : '') +
      (stageMaxTargets ? ` On the weak stages by mean and max: articleType accuracy ${stageMaxTargets.articleTypeAccuracy}, macro-F1 ${stageMaxTargets.articleTypeMacroF1}, baseColour accuracy ${stageMaxTargets.baseColourAccuracy}.` : ''),
  ];
  if (torchLog) {
    const t = torchLog.log;
    const seconds = t.reduce((a, e) => a + e.seconds, 0);
    const cpu = t.reduce((a, e) => a + e.cpuSeconds, 0);
    const samples = t.reduce((a, e) => a + e.imagesPerSecond * e.seconds, 0);
    const ours = log.reduce((a, e) => a + e.seconds, 0);
    md.push('', `PyTorch reference (bench/train_weak_torch.py --samples, ${torchLog.threads} threads, the same records, split, sampling, augmentation, loss, schedule and ${Math.round(samples)} samples): ${seconds.toFixed(0)} s of epochs (${cpu.toFixed(0)} CPU-s; ${torchWall === null ? '?' : torchWall.toFixed(0)} s wall and ${timedCpuSeconds(resolve(dir, 'torch.npy.time')) ?? '?'} CPU-s with decoding and embedding) = ${(samples / seconds).toFixed(1)} training images/s against atelier's ${(trainImages / ours).toFixed(1)}.`, '',
      '| run | epoch | loss | P@1 | P@5 | P@10 | P@15 | R@5 | R@15 |', '|---|---|---|---|---|---|---|---|---|',
      ...[['atelier', last] as const, ['PyTorch', t[t.length - 1]!] as const].map(([name, e]) => `| ${name} | ${e.epoch} (last) | ${e.loss.toFixed(3)} | ${['1', '5', '10', '15'].map((k) => round(e.precision[k])).join(' | ')} | ${round(e.recall['5'])} | ${round(e.recall['15'])} |`));
  }
  if (Object.values(retrieval).some(Boolean)) {
    md.push('', 'Retrieval of held-out myntra-44k products sharing articleType and baseColour (cosine on the features; every held-out product queries the others): P@k (share of the k nearest that share both), top-k accuracy (any of the k) and mAP from eval-retrieval.', '',
      '| features | P@1 | P@5 | P@10 | top-1 | top-10 | mAP |', '|---|---|---|---|---|---|---|',
      ...features.filter((m) => retrieval[m]).map((m) => { const r = retrieval[m]!; return `| ${FEATURE_NAMES[m] ?? m} | ${r.precision['1']} | ${r.precision['5']} | ${r.precision['10']} | ${r.topk['1']} | ${r.topk['10']} | ${r.map} |`; }));
    const any = Object.values(retrieval).find(Boolean)!;
    md.push(`| chance (random order) | ${any.chancePrecision} | ${any.chancePrecision} | ${any.chancePrecision} | ${any.randomTopk['1'] ?? '?'} | ${any.randomTopk['10'] ?? '?'} | ${any.randomMap ?? '?'} |`, '', `${any.queries} queries among ${any.products} held-out products, ${any.items} articleType+baseColour items.`);
  }
  if (neighbours) {
    md.push('', `Word neighbours (cosine in the weak model's word matrix, \`embed --words\` then \`knn -k 8\`), ${neighbours.filter((n) => n.neighbours).length} of ${neighbours.length} chosen words in the vocabulary:`, '',
      '| word | nearest words |', '|---|---|', ...neighbours.map((n) => `| ${n.word} | ${n.neighbours ? n.neighbours.join(', ') : '(not in the vocabulary)'} |`));
  }
  if (wordTriplets.weak || wordTriplets.word2vec) {
    const types = ['colour', 'clothing', 'texture', 'style'];
    const any = (wordTriplets.weak ?? wordTriplets.word2vec)!;
    md.push('', `Word-triplet accuracy (report 3.6; \`atelier eval-words\` on data/fashion-thesaurus.json: the word's cosine to a word of its own thesaurus group against one to a farther word; the report measured weak 68.98%, word2vec 71.01%, random 50.44%). word2vec: \`train-word2vec ${json.word2vecSettings}\` on the same bags (train-weak's training products only).`, '',
      `| word vectors | dim | triplets | accuracy | ${types.join(' | ')} |`, `|---|---|---|---|${types.map(() => '---|').join('')}`,
      ...(['weak', 'word2vec'] as const).filter((m) => wordTriplets[m]).map((m) => { const w = wordTriplets[m]!; return `| ${m === 'weak' ? "weak model's word matrix" : 'word2vec, skip-gram'} | ${w.dim} | ${w.triplets} | ${w.accuracy} | ${types.map((t) => w.byType[t] ? `${w.byType[t]!.accuracy} (${w.byType[t]!.triplets})` : '-').join(' | ')} |`; }),
      `| random vectors (measured on the same triplets) | | | ${any.random} | ${types.map(() => '').join(' | ')} |`);
  }
  if (tsne) md.push('', `t-SNE map of ${tsne.points} held-out images (weak features, \`atelier tsne\`): tsne-weak-articleType.png (points by articleType), tsne-weak-thumbnails.png. In the 2-D map, ${tsne.agreement} of each image's 10 nearest images share its articleType (chance ${tsne.chance}).`);
  writeResults(dir, 'weak', json, md);
}

interface RetrievalJson {
  queries: number;
  items: number;
  topk: Record<string, number>;
  map: number;
  baselines?: { random: { topk: Record<string, number>; map: number } };
}

function retrievalScores(dir: string, m: string) {
  const path = resolve(dir, `retrieval-${m}.json`);
  const pathP = resolve(dir, `retrieval-${m}.precision.json`);
  if (!existsSync(path) || !existsSync(pathP)) return null;
  const r = readJson<RetrievalJson>(path);
  const p = readJson<{ products: number; queries: number; items: number; precision: Record<string, number>; chancePrecision: number }>(pathP);
  return {
    products: p.products, queries: p.queries, items: p.items, precision: p.precision, chancePrecision: p.chancePrecision,
    topk: Object.fromEntries(['1', '5', '10'].map((k) => [k, round(r.topk[k])])), map: round(r.map),
    randomTopk: Object.fromEntries(['1', '5', '10'].map((k) => [k, round(r.baselines?.random.topk[k])])), randomMap: round(r.baselines?.random.map),
  };
}

/** eval-words' JSON, rounded: accuracy overall and by fashion type, and the random vectors' measured accuracy. */
function wordTripletScores(path: string): { dim: number; triplets: number; accuracy: number | null; random: number | null; byType: Record<string, { triplets: number; accuracy: number | null }> } | null {
  if (!existsSync(path)) return null;
  const r = readJson<{ dim: number; triplets: number; accuracy: number; random: { measured: number }; byType: Record<string, { triplets: number; accuracy: number }> }>(path);
  return {
    dim: r.dim, triplets: r.triplets, accuracy: round(r.accuracy), random: round(r.random.measured),
    byType: Object.fromEntries(Object.entries(r.byType).map(([t, v]) => [t, { triplets: v.triplets, accuracy: round(v.accuracy) }])),
  };
}

function wordNeighbours(path: string, words: string[]): Array<{ word: string; neighbours: string[] | null }> | null {
  if (!existsSync(path) || words.length === 0) return null;
  const lists = new Map<string, string[]>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { id: string; neighbors: Array<{ id: string }> };
    lists.set(r.id, r.neighbors.map((n) => n.id));
  }
  return words.map((word) => ({ word, neighbours: lists.get(word) ?? null }));
}

// How well the 2-D map keeps articleTypes together: the share of each point's 10 nearest map points with its label.
function tsneAgreement(path: string): { points: number; agreement: number | null; chance: number | null } | null {
  if (!existsSync(path)) return null;
  const points = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { x: number; y: number; label?: string });
  const counts = new Map<string, number>();
  for (const p of points) counts.set(String(p.label), (counts.get(String(p.label)) ?? 0) + 1);
  let agree = 0;
  const distance = new Float64Array(points.length);
  points.forEach((p, i) => {
    points.forEach((o, j) => (distance[j] = j === i ? Infinity : (p.x - o.x) ** 2 + (p.y - o.y) ** 2));
    const near = topKIndices(distance.map((d) => -d), 10);
    agree += Array.from(near).filter((j) => points[j]!.label === p.label).length / 10;
  });
  const n = points.length;
  const chance = [...counts.values()].reduce((a, c) => a + (c * (c - 1)) / (n - 1), 0) / n;
  return { points: n, agreement: round(agree / n), chance: round(chance) };
}

interface VocabEntry {
  word: string;
  count: number;
  df: number;
}

function mergeVocab(): void {
  const o = process.argv.indexOf('-o');
  const out = process.argv[o + 1];
  const files = process.argv.slice(o + 2);
  if (o < 0 || !out || files.length === 0) throw new Error('usage: real-summary merge-vocab -o FILE VOCAB...');
  const merged = new Map<string, VocabEntry>();
  for (const file of files) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const e = JSON.parse(line) as VocabEntry;
      const m = merged.get(e.word) ?? { word: e.word, count: 0, df: 0 };
      m.count += e.count;
      m.df += e.df;
      merged.set(e.word, m);
    }
  }
  // crawl-tokenize's order: by count, then by word.
  const entries = [...merged.values()].sort((a, b) => b.count - a.count || (a.word < b.word ? -1 : a.word > b.word ? 1 : 0));
  writeFileSync(out, entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
}

// Held-out products: train-classifier's test split of products.csv (group = id, test 0.2, validation 0.1),
// which is also the 20% of ids train-weak holds out (--val-fraction 0.2 hashes the same id).
function heldOut(): void {
  const dir = option('dir');
  const tsneCount = Number(option('tsne', '1000'));
  const products = parse(readFileSync(resolve(dir, 'products.csv'), 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const byId = new Map(products.map((r) => [r.id, r]));
  const partition: string[] = [];
  const tsne: string[] = [];
  for (const line of readFileSync(resolve(dir, 'samples.ndjson'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { id: string; image: string };
    const p = byId.get(r.id);
    if (!p || splitOf(r.id, 0.2, 0.1) !== 'test') continue;
    partition.push(JSON.stringify({ id: r.id, item: `${p.articleType}|${p.baseColour}` }));
    if (tsne.length < tsneCount) tsne.push(JSON.stringify({ id: r.id, image: r.image, articleType: p.articleType, baseColour: p.baseColour, gender: p.gender }));
  }
  writeFileSync(resolve(dir, 'heldout.ndjson'), partition.join('\n') + '\n');
  writeFileSync(resolve(dir, 'heldout-tsne.ndjson'), tsne.join('\n') + '\n');
}

// P@k of retrieval: the share of a held-out product's k nearest held-out products (cosine) that share its
// item (articleType|baseColour); queries whose item has no other product are left out.
async function retrievalPrecision(): Promise<void> {
  const features = option('features');
  const ks = [1, 5, 10];
  const item = new Map<string, string>();
  for (const line of readFileSync(option('partition'), 'utf8').split('\n')) if (line.trim()) { const r = JSON.parse(line) as { id: string; item: string }; item.set(r.id, r.item); }
  const ids = readFileSync(features.replace(/\.npy$/, '.ids.ndjson'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => (JSON.parse(l) as { id?: string }).id);
  const { header, data } = await readNpy(features);
  const dim = header.shape[1]!;
  const rows = ids.flatMap((id, row) => (id !== undefined && item.has(id) ? [row] : []));
  const n = rows.length;
  const unit = new Float32Array(n * dim);
  rows.forEach((row, i) => {
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += Number(data[row * dim + j]) ** 2;
    const scale = 1 / (Math.sqrt(norm) || 1);
    for (let j = 0; j < dim; j++) unit[i * dim + j] = Number(data[row * dim + j]) * scale;
  });
  const labels = rows.map((row) => item.get(ids[row]!)!);
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  const sum = Object.fromEntries(ks.map((k) => [k, 0]));
  let queries = 0;
  let chance = 0;
  const sims = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    if (counts.get(labels[q]!)! < 2) continue;
    queries++;
    chance += (counts.get(labels[q]!)! - 1) / (n - 1);
    for (let g = 0; g < n; g++) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += unit[q * dim + j]! * unit[g * dim + j]!;
      sims[g] = g === q ? -Infinity : dot;
    }
    const top = topKIndices(sims, Math.max(...ks));
    for (const k of ks) sum[k]! += Array.from(top.subarray(0, k)).filter((g) => labels[g] === labels[q]).length / k;
  }
  const out = { features, products: n, queries, items: counts.size, precision: Object.fromEntries(ks.map((k) => [k, round(sum[k]! / queries)])), chancePrecision: round(chance / queries) };
  writeFileSync(option('out'), JSON.stringify(out, null, 2) + '\n');
}

function colourFamilies(): void {
  const rows = parse(readFileSync(option('input'), 'utf8'), { columns: true, skip_empty_lines: true }) as Array<Record<string, string>>;
  const idField = option('id-field');
  const field = option('field');
  const kept = rows.flatMap((r) => {
    const family = colourFamily(r[field] ?? '');
    return family ? [csvLine([r[idField] ?? '', family])] : [];
  });
  writeFileSync(option('out'), [csvLine([idField, 'colour']), ...kept].join('\n') + '\n');
  process.stderr.write(`colour-families: ${kept.length} of ${rows.length} rows name exactly one colour family\n`);
}

/** The last epoch in a train-weak checkpoint (its metadata's checkpoint state), written for weak-run's summary. */
function resumedAfter(): void {
  const checkpoint = option('checkpoint');
  const state = readJson<{ atelier?: { metadata?: { checkpoint?: { epoch?: unknown } } } }>(resolve(checkpoint, 'model.json')).atelier?.metadata?.checkpoint;
  if (typeof state?.epoch !== 'number') throw new Error(`${checkpoint}: no checkpoint epoch in model.json`);
  writeFileSync(option('out'), `${state.epoch}\n`);
}

/** Colour probes on amazon-tops-16k's held-out products: accuracy / macro-F1 per feature, as weak-run's probe table. */
function summarizeColourRun(): void {
  const dir = option('dir');
  const reference = option('reference', '');
  const pixelsDir = option('pixels-dir');
  const features = option('features').split(/\s+/).filter(Boolean);
  const where = (m: string) => (m === 'pixels' ? pixelsDir : m !== 'weak' && reference ? reference : dir);
  const probes = Object.fromEntries(features.map((m) => [m, testScores(resolve(where(m), `probe-amazon-${m}-colour.json`))]));
  const names: Record<string, string> = { weak: 'weak tower (this run)', backbone: 'pretrained backbone, frozen', random: 'same tower, untrained', pixels: 'raw pixels 16x16' };
  const first = Object.values(probes).find(Boolean);
  const json = { dir, set: 'amazon-tops-16k', label: 'colour family of the color field', probes, date: new Date().toISOString(), machine: machine() };
  const md = [
    `### Colour probes on amazon-tops-16k (${dir})`,
    '',
    `Linear probes (bench/probe.js, L-BFGS) on frozen features of the amazon-tops-16k photos, label: the one basic colour family its \`color\` field names (\`real-summary colour-families\`; ${first?.classes ?? '?'} families, products naming none or two left out); test split: the lowest 20% of asin hashes, train-weak's held-out products on this set. Test products: ${first?.test ?? '?'}.`,
    '',
    '| features | accuracy | macro-F1 |',
    '|---|---|---|',
    ...features.map((m) => `| ${names[m] ?? m} | ${probes[m]?.accuracy ?? '-'} | ${probes[m]?.macroF1 ?? '-'} |`),
  ];
  writeResults(dir, 'colour', json, md);
}

/** One row per weak-run found under --root, sorted by set then date: the budget, the weak probes against the backbone, retrieval and word triplets. */
function summarizeRuns(): void {
  const root = option('root');
  const found: Array<{ dir: string; r: WeakRunResults }> = [];
  for (const setDir of readdirSync(root, { withFileTypes: true })) {
    if (!setDir.isDirectory()) continue;
    for (const runDir of readdirSync(resolve(root, setDir.name), { withFileTypes: true })) {
      const path = resolve(root, setDir.name, runDir.name, 'weak-results.json');
      if (runDir.isDirectory() && existsSync(path)) found.push({ dir: `${setDir.name}/${runDir.name}`, r: readJson<WeakRunResults>(path) });
    }
  }
  found.sort((a, b) => a.dir.localeCompare(b.dir));
  const cell = (p: { accuracy: number | null; macroF1: number | null } | null | undefined) => (p ? `${p.accuracy ?? '-'} / ${p.macroF1 ?? '-'}` : '-');
  const signed = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${x >= 0 ? '+' : ''}${x.toFixed(3)}`);
  const rows = found.map(({ dir, r }) => ({
    run: dir,
    set: r.set,
    samples: Math.round(r.trainImages),
    trainCpuSeconds: r.trainCpuSeconds,
    timedEpochs: r.timedEpochs ?? null,
    probes: r.probes.weak ?? null,
    marginOverBackbone: r.marginOverBackbone,
    retrievalP1: r.retrieval?.weak?.precision?.['1'] ?? null,
    wordTriplets: { weak: r.wordTriplets?.weak?.accuracy ?? null, word2vec: r.wordTriplets?.word2vec?.accuracy ?? null },
    date: r.date,
    command: r.command,
  }));
  const md = [
    `# Weak-supervision runs under ${root}`,
    '',
    'Linear probes on frozen weak features, held-out myntra-44k products, accuracy / macro-F1 (targets: articleType 0.85 / 0.60, baseColour 0.70);',
    'margin: weak minus the frozen backbone, accuracy (- where the run has no backbone row). Each run folder has its weak-results.md.',
    '',
    '| run | samples | train CPU-s | articleType | baseColour | gender | usage | margin over backbone (aT / bC / g / u) | retrieval P@1 | triplets weak / word2vec |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((x) => {
      const m = x.marginOverBackbone;
      const margin = m ? RUN_FACETS.map((f) => signed(m[f]?.accuracy)).join(' / ') : '-';
      return `| ${x.run} | ${x.samples} | ${x.trainCpuSeconds === null ? '-' : Math.round(x.trainCpuSeconds)}${x.timedEpochs && x.timedEpochs.from > 1 ? ` (epochs ${x.timedEpochs.from}-${x.timedEpochs.to})` : ''} | ${RUN_FACETS.map((f) => cell(x.probes?.[f])).join(' | ')} | ${margin} | ${x.retrievalP1 ?? '-'} | ${x.wordTriplets.weak ?? '-'} / ${x.wordTriplets.word2vec ?? '-'} |`;
    }),
    '',
    'Commands:',
    '',
    ...rows.map((x) => `- ${x.run} (${x.date?.slice(0, 10) ?? 'undated'}): \`${x.command}\``),
  ];
  writeFileSync(resolve(root, 'weak-runs.json'), JSON.stringify(rows, null, 2) + '\n');
  writeFileSync(resolve(root, 'weak-runs.md'), md.join('\n') + '\n');
}

interface WeakRunResults {
  set: string;
  trainImages: number;
  trainCpuSeconds: number | null;
  timedEpochs?: { from: number; to: number };
  probes: Record<string, Record<string, { accuracy: number | null; macroF1: number | null } | null>>;
  marginOverBackbone: Record<string, { accuracy: number | null; macroF1: number | null }> | null;
  retrieval?: Record<string, { precision?: Record<string, number | null> } | null>;
  wordTriplets?: Record<string, { accuracy: number | null } | null> | null;
  date?: string;
  command: string;
}

const sub = process.argv[2];
if (sub === 'time') runTimed();
else if (sub === 'weak') summarizeWeak();
else if (sub === 'join-labels') joinLabels();
else if (sub === 'facets') summarizeFacets();
else if (sub === 'teacher') summarizeTeacher();
else if (sub === 'weak-run') summarizeWeakRun();
else if (sub === 'merge-vocab') mergeVocab();
else if (sub === 'heldout') heldOut();
else if (sub === 'retrieval-precision') void retrievalPrecision();
else if (sub === 'runs') summarizeRuns();
else if (sub === 'resumed-after') resumedAfter();
else if (sub === 'colour-families') colourFamilies();
else if (sub === 'colour-run') summarizeColourRun();
else {
  process.stderr.write('usage: real-summary time|weak|join-labels|facets|teacher|weak-run|merge-vocab|heldout|retrieval-precision|runs|colour-families|colour-run [--dir D] ...\n');
  process.exit(2);
}
