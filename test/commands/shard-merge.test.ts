// classify --shard merged equal to one run; --shard's one-line errors and `auto` environments;
// merge's refusals (another n, a missing or repeated shard, another model); a rerun of one shard
// redoes only that shard.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runAtelier, scratchDir } from '../helpers.js';
import { assertShardedEqualsSingle, shardImages } from '../shard-runs.js';

const dir = scratchDir();
let list: string;
let features: string;
const classifiers: string[] = [];

beforeAll(async () => {
  list = await shardImages(dir, 10);
  features = join(dir, 'features.npy');
  const embedded = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', list, '-o', features]);
  assert.equal(embedded.code, 0, embedded.stderr);
  for (const seed of [1, 2]) {
    const model = join(dir, `parity${seed}.model`);
    const head = await runAtelier(['train-classifier', '-f', features, '-i', list, '-l', 'label', '-o', model, '--epochs', '2', '--seed', String(seed)], { timeoutMs: 240_000 });
    assert.equal(head.code, 0, head.stderr);
    classifiers.push(model);
  }
});

const embedArgs = (out: string) => ['embed', '-m', 'pixels', '--pixels-size', '4', '-i', list, '-o', out];

/** The one stderr line of a refused run (the backend line aside). */
function errorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l && !l.startsWith('atelier: backend '));
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

test('classify --shard on feature rows: merged predictions equal one run', async () => {
  await assertShardedEqualsSingle(dir, 'classes', '.ndjson', (out) => ['classify', '-m', classifiers[0], '-f', features, '-o', out], (out) => [out]);
});

test('--shard: a bad value, an auto without its environment, stdout outputs: one line, exit 2', async () => {
  const out = join(dir, 'bad.npy');
  for (const [value, pattern] of [
    ['3/3', /^atelier embed: --shard: '3\/3' is not i\/n \(0-based shard i of n, 0 <= i < n\) or auto$/],
    ['1of4', /^atelier embed: --shard: '1of4' is not i\/n/],
    ['auto', /^atelier embed: --shard: auto needs JOB_COMPLETION_INDEX and ATELIER_SHARD_COUNT \(Kubernetes Indexed Job\) or SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT \(Slurm array\); neither is set$/],
  ] as const) {
    const r = await runAtelier([...embedArgs(out), '--shard', value], { env: { JOB_COMPLETION_INDEX: undefined, SLURM_ARRAY_TASK_ID: undefined } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(errorLine(r.stderr), pattern);
  }
  const k8s = await runAtelier([...embedArgs(out), '--shard', 'auto'], { env: { JOB_COMPLETION_INDEX: '4', ATELIER_SHARD_COUNT: '4' } });
  assert.equal(k8s.code, 2);
  assert.match(errorLine(k8s.stderr), /^atelier embed: --shard: JOB_COMPLETION_INDEX with ATELIER_SHARD_COUNT gives shard 4 of 4; shards are 0 to n-1$/);
  const noCount = await runAtelier([...embedArgs(out), '--shard', 'auto'], { env: { JOB_COMPLETION_INDEX: '1', ATELIER_SHARD_COUNT: undefined } });
  assert.match(errorLine(noCount.stderr), /ATELIER_SHARD_COUNT \(the Job's completions\) is not/);
  const tagged = await runAtelier(['classify', '-m', classifiers[0], '-f', features, '--shard', '0/2']);
  assert.equal(tagged.code, 2);
  assert.match(errorLine(tagged.stderr), /^atelier classify: --out: a sharded run writes files for atelier merge; give a file, not stdout$/);
});

test('--shard auto reads Kubernetes and Slurm (1-based array) environments', async () => {
  const out = join(dir, 'auto.npy');
  const runs = await Promise.all([
    runAtelier([...embedArgs(out), '--shard', 'auto'], { env: { JOB_COMPLETION_INDEX: '0', ATELIER_SHARD_COUNT: '2' } }),
    runAtelier([...embedArgs(out), '--shard', 'auto'], { env: { JOB_COMPLETION_INDEX: undefined, SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '2' } }),
  ]);
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.match(runs[1].stderr, /auto\.shard-1-of-2\.npy/);
  const merged = await runAtelier(['merge', out]);
  assert.equal(merged.code, 0, merged.stderr);
  const single = join(dir, 'auto-single.npy');
  assert.equal((await runAtelier(embedArgs(single))).code, 0);
  assert.ok(readFileSync(out).equals(readFileSync(single)));
});

test('merge refuses another n, a missing or repeated shard, another model; a rerun redoes one shard', async () => {
  const out = join(dir, 'set.npy');
  for (const shard of ['0/3', '1/3', '2/3', '0/2']) assert.equal((await runAtelier([...embedArgs(out), '--shard', shard])).code, 0);
  const manifest = (i: number, n: number) => join(dir, `set.shard-${i}-of-${n}.npy.shard.json`);

  let r = await runAtelier(['merge', out]);
  assert.equal(r.code, 2);
  assert.match(errorLine(r.stderr), /^atelier merge: \S+set\.shard-0-of-3\.npy\.shard\.json: is shard 0 of 3 but \S+set\.shard-0-of-2\.npy\.shard\.json is one of 2; all shards must come from one run$/);

  r = await runAtelier(['merge', manifest(0, 3), manifest(2, 3)]);
  assert.equal(r.code, 2);
  assert.match(errorLine(r.stderr), /^atelier merge: \S+set\.shard-0-of-3\.npy\.shard\.json: shard 1 of 3 missing$/);

  r = await runAtelier(['merge', manifest(0, 3), manifest(1, 3), manifest(2, 3), manifest(1, 3)]);
  assert.equal(r.code, 2);
  assert.match(errorLine(r.stderr), /^atelier merge: \S+set\.shard-1-of-3\.npy\.shard\.json: shard 1 of 3 is given twice \(also \S+set\.shard-1-of-3\.npy\.shard\.json\)$/);

  const other = await runAtelier([...embedArgs(out).map((a) => (a === '4' ? '5' : a)), '--shard', '1/3']);
  assert.equal(other.code, 0, other.stderr);
  r = await runAtelier(['merge', manifest(0, 3), manifest(1, 3), manifest(2, 3)]);
  assert.equal(r.code, 2);
  assert.match(errorLine(r.stderr), /^atelier merge: \S+set\.shard-1-of-3\.npy\.shard\.json: model: was made with other settings than \S+set\.shard-0-of-3\.npy\.shard\.json \("pixels 5" vs "pixels 4"\)$/);

  // Rerun only shard 1: the other shards' files are not touched, and the merge equals one run.
  const before = [0, 2].map((i) => statSync(join(dir, `set.shard-${i}-of-3.npy`)).mtimeMs);
  assert.equal((await runAtelier([...embedArgs(out), '--shard', '1/3'])).code, 0);
  assert.deepEqual([0, 2].map((i) => statSync(join(dir, `set.shard-${i}-of-3.npy`)).mtimeMs), before);
  r = await runAtelier(['merge', manifest(0, 3), manifest(1, 3), manifest(2, 3)]);
  assert.equal(r.code, 0, r.stderr);
  const single = join(dir, 'set-single.npy');
  assert.equal((await runAtelier(embedArgs(single))).code, 0);
  assert.ok(readFileSync(out).equals(readFileSync(single)));

  // Classify shards of two models.
  const classes = join(dir, 'mixed.ndjson');
  for (const [i, m] of [classifiers[0], classifiers[1]].entries()) assert.equal((await runAtelier(['classify', '-m', m, '-f', features, '-o', classes, '--shard', `${i}/2`])).code, 0);
  r = await runAtelier(['merge', classes]);
  assert.equal(r.code, 2);
  assert.match(errorLine(r.stderr), /^atelier merge: \S+mixed\.shard-1-of-2\.ndjson\.shard\.json: model: was made with another model than \S+ \(\S+parity2\.model vs \S+parity1\.model\)$/);

  // A shard output gone missing after its manifest: one line, naming it.
  renameSync(join(dir, 'set.shard-2-of-3.npy'), join(dir, 'moved.npy'));
  r = await runAtelier(['merge', out]);
  assert.equal(r.code, 2);
  copyFileSync(join(dir, 'moved.npy'), join(dir, 'set.shard-2-of-3.npy'));
});
