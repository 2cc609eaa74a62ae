// bench/real-summary: helpers for the real-data make targets in bench/real.mk. Subcommands:
//   time FILE -- CMD...            run CMD, write {seconds, command, code} to FILE, exit with its code
//   weak --dir D                   real-weak: P@k of train-weak, linear probes weak/random/pixels -> D/weak-results.{json,md}
//   join-labels --dir D --styles S samples.ndjson + styles.csv -> D/labelled.ndjson (absolute image paths, facets)
//   facets --dir D                 real-facets: (a) pixels head, (b) weak head, (c) fine-tuned -> D/facets-results.{json,md}
//   teacher --dir D --input F      real-teacher: rows, articles, label shares, wall time -> D/teacher-results.{json,md}
//   weak-run --dir D ...           real-weak-44k/-amazon/-both: P@k/R@k, probes on 4 facets per feature -> D/weak-results.{json,md}
//   merge-vocab -o F V...          one vocabulary from several crawl-tokenize vocabularies (counts and df summed)
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';

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

function runTimed(): void {
  const out = process.argv[3];
  const dash = process.argv.indexOf('--');
  const command = process.argv.slice(dash + 1);
  if (!out || dash < 0 || command.length === 0) throw new Error('usage: real-summary time FILE -- CMD...');
  const started = process.hrtime.bigint();
  const child = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  writeFileSync(out, JSON.stringify({ seconds, command: command.join(' '), code: child.status }) + '\n');
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
  const features = [...trained.filter((m) => m !== 'pixels'), ...borrowed, ...trained.filter((m) => m === 'pixels')];
  const log = readJson<EpochLog[]>(resolve(dir, 'weak.model.log.json'));
  const metadata = readJson<{ atelier: { metadata: { config: Record<string, unknown>; vocabulary: unknown[] } } }>(resolve(dir, 'weak.model', 'model.json')).atelier.metadata;
  const best = log.reduce((a, b) => ((b.precision['1'] ?? 0) > (a.precision['1'] ?? 0) ? b : a));
  const last = log[log.length - 1]!;
  const trainSeconds = log.reduce((a, e) => a + e.seconds, 0);
  const trainImages = log.reduce((a, e) => a + e.imagesPerSecond * e.seconds, 0);
  const wall = timedSeconds(resolve(dir, 'weak.time'));
  const featureDir = (m: string) => (m === 'pixels' ? pixelsDir : borrowed.includes(m) ? reference : dir);
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
  const margins = probes.backbone
    ? Object.fromEntries(RUN_FACETS.map((f) => [f, { accuracy: round((weak[f]?.accuracy ?? NaN) - (probes.backbone![f]?.accuracy ?? NaN)), macroF1: round((weak[f]?.macroF1 ?? NaN) - (probes.backbone![f]?.macroF1 ?? NaN)) }]))
    : null;
  const load = { before: readText(resolve(dir, 'weak.load-before')), after: readText(resolve(dir, 'weak.load-after')) };
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
    trainImagesPerSecond: round(trainImages / trainSeconds, 1),
    precisionAtK: { best: { epoch: best.epoch, precision: at(best, 'precision'), recall: at(best, 'recall') }, last: { epoch: last.epoch, precision: at(last, 'precision'), recall: at(last, 'recall') } },
    mostFrequentWordPrecision1: round(last.baselinePrecision1),
    probe: option('probe', 'default settings'),
    probeSet: `myntra-44k products of ${pixelsDir} (test split: lowest 20% of id hashes, also train-weak's held-out products)`,
    dims,
    borrowedFrom: borrowed.length ? { dir: reference, features: borrowed } : null,
    probes,
    targets,
    marginOverBackbone: margins,
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
    `Settings: \`${json.settings}\`. Vocabulary ${metadata.vocabulary.length} words. ${log.length} epochs, ${Math.round(trainImages)} training samples in ${trainSeconds.toFixed(0)} s of epochs (${wall === null ? '?' : wall.toFixed(0)} s wall with start-up) = **${(trainImages / trainSeconds).toFixed(1)} training images/s**; CPU budget: that wall time on the workers named in the settings (2-core machine shared with other jobs).`,
    '',
    '| epoch | loss | P@1 | P@5 | P@10 | P@15 | R@1 | R@5 | R@10 | R@15 |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...[best, last]
      .filter((e, i, a) => a.indexOf(e) === i)
      .map((e) => `| ${e.epoch}${e === best ? ' (best P@1)' : ' (last)'} | ${e.loss.toFixed(3)} | ${['1', '5', '10', '15'].map((k) => round(e.precision[k])).join(' | ')} | ${['1', '5', '10', '15'].map((k) => round(e.recall[k])).join(' | ')} |`),
    `| most-frequent word | | ${round(last.baselinePrecision1)} | | | | | | | |`,
    '',
    `Linear probes (train-classifier head on frozen features, balanced class weights, ${json.probe}): test accuracy / macro-F1.`,
    '',
    `| features | dim | ${RUN_FACETS.join(' | ')} |`,
    `|---|---|${RUN_FACETS.map(() => '---|').join('')}`,
    ...features.map((m) => `| ${FEATURE_NAMES[m] ?? m}${borrowed.includes(m) ? ` (from ${reference})` : ''} | ${dims[m] ?? '?'} | ${RUN_FACETS.map((f) => cell(probes[m]![f])).join(' | ')} |`),
    '',
    `Test split: ${weak.articleType?.test ?? '?'} products; classes: ${RUN_FACETS.map((f) => `${f} ${weak[f]?.classes ?? '?'}`).join(', ')}.`,
    `Targets (weak features): articleType accuracy ${targets.articleTypeAccuracy.value} (target >= 0.85), macro-F1 ${targets.articleTypeMacroF1.value} (>= 0.60), baseColour accuracy ${targets.baseColourAccuracy.value} (>= 0.70).` +
      (margins ? ` Weak minus frozen backbone (accuracy / macro-F1): ${RUN_FACETS.map((f) => `${f} ${margins[f]!.accuracy} / ${margins[f]!.macroF1}`).join('; ')}.` : ''),
  ];
  writeResults(dir, 'weak', json, md);
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

const sub = process.argv[2];
if (sub === 'time') runTimed();
else if (sub === 'weak') summarizeWeak();
else if (sub === 'join-labels') joinLabels();
else if (sub === 'facets') summarizeFacets();
else if (sub === 'teacher') summarizeTeacher();
else if (sub === 'weak-run') summarizeWeakRun();
else if (sub === 'merge-vocab') mergeVocab();
else {
  process.stderr.write('usage: real-summary time|weak|join-labels|facets|teacher|weak-run|merge-vocab [--dir D] ...\n');
  process.exit(2);
}
