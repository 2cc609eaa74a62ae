// Output paths, for every command: devices and FIFOs are written in place, files are never replaced by
// model directories, and a wrong output path is refused before any work.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atelierBin, parseNdjson, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { readNpy, writeNpy } from '../../src/lib/io/npy.js';
import { createRandom } from '../../src/lib/random.js';

const dir = scratchDir();
const rows = 300;
const dim = 4;
let features: string;
let teacher: string;
const notes = 'my notes, not a model\n';

beforeAll(async () => {
  // Features whose first column decides the label: enough for a one-epoch student.
  const random = createRandom(5);
  const data = Float32Array.from({ length: rows * dim }, () => random.next() * 2 - 1);
  features = join(dir, 'f.npy');
  await writeNpy(features, data, [rows, dim]);
  const ids = Array.from({ length: rows }, (_, i) => `a${i}`);
  writeFileSync(join(dir, 'f.ids.ndjson'), ids.map((id) => JSON.stringify({ id }) + '\n').join(''));
  teacher = join(dir, 'teacher.ndjson');
  writeFileSync(teacher, ids.map((id, i) => JSON.stringify({ id, label: data[i * dim]! > 0 ? 'size issue' : 'no size issue', w: 1 }) + '\n').join(''));
});

function sizenetArgs(out: string, extra: string[] = []): string[] {
  return ['train-sizenet', '-f', features, '-t', teacher, '-o', out, '--epochs', '1', '--hidden', '4,4,4', ...extra];
}

/** stderr lines, without blank ones. */
function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

/** A file holding `notes`, to see whether a run touched it. */
function notesFile(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, notes);
  return path;
}

/** Character devices to write to: /dev/null, and (as root) a private null device that no other run can break. */
function nullDevices(): string[] {
  const devices = existsSync('/dev/null') && statSync('/dev/null').isCharacterDevice() ? ['/dev/null'] : [];
  const own = join(dir, 'null-device');
  if (spawnSync('mknod', ['-m', '666', own, 'c', '1', '3']).status === 0) devices.push(own);
  return devices;
}

test('-o /dev/null writes through the device and leaves it a character device', async (t) => {
  const devices = nullDevices();
  if (devices.length === 0) return t.skip('no character device to write to');
  for (const device of devices) {
    const knn = await runAtelier(['knn', '-q', features, '--k', '3', '-o', device]);
    assert.equal(knn.code, 0, knn.stderr);
    assert.ok(statSync(device).isCharacterDevice(), `knn -o ${device} left it a character device`);
    // .npy patches its header last, so it goes through a spool file; the device must survive that too.
    const npy = await runAtelier(['npy', 'from-ndjson', '-', '-o', device], { input: '[1,2]\n[3,4]\n' });
    assert.equal(npy.code, 0, npy.stderr);
    assert.ok(statSync(device).isCharacterDevice(), `npy -o ${device} left it a character device`);
    const sizenet = await runAtelier(sizenetArgs(join(dir, 'dev.model'), ['--report', device]));
    assert.equal(sizenet.code, 0, sizenet.stderr);
    assert.ok(statSync(device).isCharacterDevice(), `train-sizenet --report ${device} left it a character device`);
    const model = await runAtelier(sizenetArgs(device));
    assert.equal(model.code, 2, 'a device is not a model directory');
    assert.ok(statSync(device).isCharacterDevice());
    // A crawl journal is read back and deleted at the end: a device is refused as one (tried on our
    // own device only: a regression would delete it).
    if (device === '/dev/null') continue;
    const products = join(dir, 'products.ndjson');
    writeFileSync(products, '{"id":"p1","title":"red dress"}\n');
    const crawl = await runAtelier(['crawl-tokenize', '--import', products, '-o', join(dir, 'samples.ndjson'), '--state', device]);
    assert.equal(crawl.code, 2, crawl.stderr);
    assert.deepEqual(lines(crawl.stderr), [`atelier crawl-tokenize: ${device}: --state: is a device, FIFO or socket; expected a regular file`]);
    assert.ok(statSync(device).isCharacterDevice());
  }
});

/** Starts a reader of the FIFO `path`; resolves with every byte it received once the writer closes (fails after 60 s). */
function readFifo(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`nothing closed the FIFO ${path} in 60 s`)), 60_000).unref();
    const chunks: Buffer[] = [];
    createReadStream(path)
      .on('data', (c) => chunks.push(c as Buffer))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
}

test('a FIFO given as -o receives every row, and stays a FIFO', async (ctx) => {
  if (spawnSync('mkfifo', ['--version']).status !== 0) ctx.skip('no mkfifo');
  const fifo = join(dir, 'rows.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const received = readFifo(fifo);
  const knn = await runAtelier(['knn', '-q', features, '--k', '2', '-o', fifo]);
  assert.equal(knn.code, 0, knn.stderr);
  const records = parseNdjson((await received).toString('utf8'));
  assert.equal(records.length, rows, 'one line per query row');
  assert.deepEqual(records.map((r) => r.id), Array.from({ length: rows }, (_, i) => `a${i}`));
  assert.ok(statSync(fifo).isFIFO());

  const npyFifo = join(dir, 'matrix.fifo');
  assert.equal(spawnSync('mkfifo', [npyFifo]).status, 0);
  const bytes = readFifo(npyFifo);
  const npy = await runAtelier(['npy', 'from-ndjson', '-', '-o', npyFifo], { input: '[1,2,3]\n[4,5,6]\n' });
  assert.equal(npy.code, 0, npy.stderr);
  const copy = join(dir, 'from-fifo.npy');
  writeFileSync(copy, await bytes);
  const back = await readNpy(copy);
  assert.deepEqual(back.header.shape, [2, 3]);
  assert.deepEqual(Array.from(back.data as Float32Array), [1, 2, 3, 4, 5, 6]);
  assert.ok(statSync(npyFifo).isFIFO());
});

test('an existing file given as a model output is refused before any work, and kept', async () => {
  const cases: Array<[string, string[]]> = [
    ['train-sizenet', sizenetArgs(notesFile('sizenet-notes.txt'))],
    ['train-weak', ['train-weak', '-i', join(dir, 'samples.ndjson'), '--vocab', join(dir, 'vocab.ndjson'), '-o', notesFile('weak-notes.txt')]],
    ['train-classifier', ['train-classifier', '-i', join(dir, 'images.ndjson'), '-l', 'label', '-o', notesFile('classifier-notes.txt')]],
    ['train-triplet', ['train-triplet', '-i', join(dir, 'images.ndjson'), '-o', notesFile('triplet-notes.txt')]],
  ];
  const runs = await Promise.all(cases.map(([, args]) => runAtelier(args)));
  for (const [i, [name, args]] of cases.entries()) {
    const out = args[args.indexOf('-o') + 1]!;
    assert.equal(runs[i]!.code, 2, `${name}: ${runs[i]!.stderr}`);
    assert.deepEqual(lines(runs[i]!.stderr), [`atelier ${name}: ${out}: --out: exists and is not an atelier model directory; refusing to replace it`]);
    assert.equal(readFileSync(out, 'utf8'), notes, `${name} kept the file`);
  }
});

test('a model directory of ours is replaced; a directory of something else is not', async () => {
  const model = join(dir, 'student.model');
  const first = await runAtelier(sizenetArgs(model));
  assert.equal(first.code, 0, first.stderr);
  const again = await runAtelier(sizenetArgs(model));
  assert.equal(again.code, 0, again.stderr);
  assert.ok(existsSync(join(model, 'model.json')));

  const project = join(dir, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'thesis.tex'), notes);
  const refused = await runAtelier(sizenetArgs(project));
  assert.equal(refused.code, 2, refused.stderr);
  assert.deepEqual(lines(refused.stderr), [`atelier train-sizenet: ${project}: --out: is a directory but not an atelier model directory (no model.json); refusing to replace it`]);
  assert.deepEqual(readdirSync(project), ['thesis.tex']);
});

test('a directory given as a file output is refused up front, not with EISDIR after the work', async () => {
  const folder = join(dir, 'a-folder');
  mkdirSync(folder, { recursive: true });
  const runs = await Promise.all([
    runAtelier(['knn', '-q', features, '--k', '2', '-o', folder]),
    runAtelier(['npy', 'from-ndjson', '-', '-o', folder], { input: '[1]\n' }),
    runAtelier(sizenetArgs(join(dir, 'r.model'), ['--report', folder])),
  ]);
  for (const [i, flag] of ['--out', '--output', '--report'].entries()) {
    assert.equal(runs[i]!.code, 2, runs[i]!.stderr);
    assert.deepEqual(lines(runs[i]!.stderr).slice(-1), [`atelier ${['knn', 'npy', 'train-sizenet'][i]}: ${folder}: ${flag}: is a directory; expected a file name`]);
    assert.equal(lines(runs[i]!.stderr).length, 1, 'nothing ran before the error');
  }
  assert.ok(!existsSync(join(dir, 'r.model')), 'no model was trained');
});

test('plot, report and overlay paths are checked before the work, and nothing else is written', async () => {
  const blocker = notesFile('plots-are-a-file');
  const model = join(dir, 'early.model');
  const plots = await runAtelier(sizenetArgs(model, ['--plots', blocker]));
  assert.equal(plots.code, 2, plots.stderr);
  assert.deepEqual(lines(plots.stderr), [`atelier train-sizenet: ${blocker}: --plots: exists and is not a directory`]);
  assert.ok(!existsSync(model), 'the model was not written');

  const missing = join(dir, 'no-such-dir', 'report.json');
  const report = await runAtelier(sizenetArgs(model, ['--report', missing]));
  assert.equal(report.code, 2);
  assert.deepEqual(lines(report.stderr), [`atelier train-sizenet: ${missing}: --report: cannot write here: directory '${join(dir, 'no-such-dir')}' does not exist`]);
  assert.ok(!existsSync(model));

  const coords = join(dir, 'tsne.ndjson');
  const tsne = await runAtelier(['tsne', features, '--exact', '--perplexity', '5', '-o', coords, '--png', join(dir, 'nowhere', 'map.png')]);
  assert.equal(tsne.code, 2);
  assert.equal(lines(tsne.stderr).length, 1, tsne.stderr);
  assert.match(tsne.stderr, /--png: cannot write here: directory '.*nowhere' does not exist/);
  assert.ok(!existsSync(coords), 'the coordinates were not written');

  for (const flag of ['--overlay', '--maps-dir']) {
    const rise = await runAtelier(['rise', '-m', join(dir, 'no.model'), flag, blocker, join(dir, 'photo.jpg')]);
    assert.equal(rise.code, 2);
    assert.deepEqual(lines(rise.stderr), [`atelier rise: ${blocker}: ${flag}: exists and is not a directory`]);
  }
  const skipped = join(dir, 'nowhere', 'skipped.ndjson');
  const embed = await runAtelier(['embed', '-m', 'pixels', '-o', join(dir, 'e.npy'), '--skipped', skipped, join(dir, 'photo.jpg')]);
  assert.equal(embed.code, 2);
  assert.deepEqual(lines(embed.stderr), [`atelier embed: ${skipped}: --skipped: cannot write here: directory '${join(dir, 'nowhere')}' does not exist`]);
});

test('a chart is written only under .png or .svg', async () => {
  const runs = await Promise.all([
    runAtelier(['tsne', features, '--exact', '--perplexity', '5', '-o', join(dir, 't.ndjson'), '--png', join(dir, 'map.bmp')]),
    runAtelier(['eval-retrieval', '--plot', join(dir, 'topk.gif'), '--compare', join(dir, 'missing.json')]),
    runAtelier(['eval-classifier', '-p', join(dir, 'missing.ndjson'), '--plot', join(dir, 'confusion.jpg')]),
  ]);
  for (const [i, [name, flag, file]] of ([['tsne', '--png', 'map.bmp'], ['eval-retrieval', '--plot', 'topk.gif'], ['eval-classifier', '--plot', 'confusion.jpg']] as const).entries()) {
    assert.equal(runs[i]!.code, 2, runs[i]!.stderr);
    assert.deepEqual(lines(runs[i]!.stderr), [`atelier ${name}: ${join(dir, file)}: ${flag}: expected a file name ending in .png or .svg`]);
    assert.ok(!existsSync(join(dir, file)));
  }
  assert.ok(!existsSync(join(dir, 't.ndjson')));
});

/** Runs atelier with stdout on /dev/full. */
function runToFullDisk(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [atelierBin, ...args], { cwd: repoRoot, stdio: ['ignore', full, 'pipe'], env: { ...process.env, ATELIER_BACKEND: 'wasm' } });
    closeSync(full);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('a full stdout is one line on stderr and exit 1', async (ctx) => {
  if (!existsSync('/dev/full')) ctx.skip('no /dev/full');
  for (const args of [['npy', 'info', features], ['knn', '-q', features, '--k', '2'], ['npy', 'to-ndjson', features]]) {
    const run = await runToFullDisk(args);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(lines(run.stderr).filter((l) => !/exact search/.test(l)), [`atelier ${args[0]}: stdout: cannot write: ENOSPC: no space left on device, write`]);
  }
});

test('a runtime failure is one line and exit 1', async (t) => {
  // A full disk as the output: a private full device as root (no run can break the machine's), else /dev/full.
  let full = join(dir, 'full-device');
  if (spawnSync('mknod', ['-m', '666', full, 'c', '1', '7']).status !== 0) full = '/dev/full';
  if (!existsSync(full) || !statSync(full).isCharacterDevice()) return t.skip('no full device');
  const run = await runAtelier(['knn', '-q', features, '--k', '2', '-o', full]);
  assert.equal(run.code, 1, run.stderr);
  assert.deepEqual(lines(run.stderr).filter((l) => !/exact search/.test(l)), ['atelier knn: ENOSPC: no space left on device, write']);
  assert.ok(statSync(full).isCharacterDevice());
});

test('a run that fails late commits none of its outputs and leaves no temp files', async () => {
  const work = join(dir, 'late');
  mkdirSync(work);
  // --style thumbnails without image paths is found only when the picture is drawn, after the coordinates.
  const tsne = await runAtelier(['tsne', features, '--exact', '--perplexity', '5', '--iterations', '250', '--npy', join(work, 'xy.npy'), '-o', join(work, 'xy.ndjson'), '--png', join(work, 'map.png'), '--style', 'thumbnails']);
  assert.equal(tsne.code, 2, tsne.stderr);
  assert.match(tsne.stderr, /no image paths/);
  assert.deepEqual(readdirSync(work), [], 'no coordinates, ids or temp files');
});
