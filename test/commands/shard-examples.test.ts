// examples/: the Slurm array script run with Slurm's variables simulated (a stand-in sbatch runs
// every task, then the merge it was queued after), the GNU parallel script run for real when
// `parallel` is installed, and the Kubernetes manifest checked structurally (and by kubectl when
// one is installed and can validate offline). Each merged output must equal one embed run.
import { beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atelierBin, repoRoot, runAtelier, scratchDir } from '../helpers.js';
import { shardImages } from '../shard-runs.js';
import { parseYamlDocuments } from '../mini-yaml.js';

const dir = scratchDir();
const examples = join(repoRoot, 'examples');
let list: string;
let single: string;

beforeAll(async () => {
  list = await shardImages(dir, 20);
  single = join(dir, 'single.npy');
  const r = await runAtelier(['embed', '-m', 'pixels', '-i', list, '-o', single]);
  assert.equal(r.code, 0, r.stderr);
});

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** The merged .npy and ids equal the single-process ones byte for byte. */
function assertEqualsSingle(out: string): void {
  assert.ok(readFileSync(out).equals(readFileSync(single)), `${out} differs from one run`);
  assert.ok(readFileSync(out.replace(/\.npy$/, '.ids.ndjson')).equals(readFileSync(single.replace(/\.npy$/, '.ids.ndjson'))));
}

// A stand-in for sbatch: an array script's tasks run at once with the variables Slurm sets
// (the range from --array or the script's #SBATCH line); --wrap runs its command. Calls are logged.
const FAKE_SBATCH = `#!/bin/bash
set -euo pipefail
array=""; wrap=""; script=""; dependency=""
while [ $# -gt 0 ]; do
  case "$1" in
    --array=*) array=\${1#--array=} ;;
    --dependency=*) dependency=\${1#--dependency=} ;;
    --wrap) wrap=$2; shift ;;
    --*) ;;
    *) script=$1 ;;
  esac
  shift
done
id=$((1000 + $(wc -l < "$SBATCH_LOG" 2>/dev/null || echo 0)))
echo "$id $dependency" >> "$SBATCH_LOG"
if [ -n "$wrap" ]; then bash -c "$wrap"; echo "$id"; exit 0; fi
[ -n "$array" ] || array=$(sed -n 's/^#SBATCH --array=//p' "$script")
first=\${array%-*}; last=\${array#*-}
pids=()
for task in $(seq "$first" "$last"); do
  SLURM_ARRAY_JOB_ID=$id SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_MIN=$first SLURM_ARRAY_TASK_MAX=$last SLURM_ARRAY_TASK_COUNT=$((last - first + 1)) \\
    bash "$script" > "$SBATCH_LOG.$id.$task" 2>&1 & pids+=($!)
done
for pid in "\${pids[@]}"; do wait "$pid"; done
echo "$id"
`;

test('examples/slurm: the array script, each task with its simulated SLURM_* variables, then the queued merge, equals one run', async () => {
  const bin = join(dir, 'fake-bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'sbatch'), FAKE_SBATCH);
  chmodSync(join(bin, 'sbatch'), 0o755);
  const out = join(dir, 'slurm', 'emb.npy');
  mkdirSync(join(dir, 'slurm'));
  const log = join(dir, 'sbatch.log');
  const r = spawnSync('bash', [join(examples, 'slurm', 'submit.sh')], {
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, SBATCH_LOG: log, ATELIER: atelierBin, MODEL: 'pixels', CATALOGUE: list, OUT: out, ATELIER_BACKEND: 'wasm' },
  });
  assert.equal(r.status, 0, r.stderr + readdirSync(dir).filter((f) => f.startsWith('sbatch.log.')).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n'));
  // The merge was queued after the array's job id.
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.deepEqual(calls, ['1000 ', '1001 afterok:1000']);
  assert.equal(readdirSync(join(dir, 'slurm')).filter((f) => f.endsWith('.shard.json')).length, 16);
  assertEqualsSingle(out);
});

test('examples/parallel: the GNU parallel one-liner, run for real, equals one run', async (t) => {
  if (!onPath('parallel')) {
    t.skip('GNU parallel is not on PATH');
    return;
  }
  const out = join(dir, 'parallel', 'emb.npy');
  mkdirSync(join(dir, 'parallel'));
  const r = spawnSync('bash', [join(examples, 'parallel', 'embed.sh')], {
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, ATELIER: atelierBin, MODEL: 'pixels', CATALOGUE: list, OUT: out, SHARDS: '3', JOBS: '2', ATELIER_BACKEND: 'wasm' },
  });
  assert.equal(r.status, 0, r.stderr);
  assertEqualsSingle(out);
});

test('examples/parallel: the script is valid bash and shards with --shard {}/"$SHARDS"', () => {
  const text = readFileSync(join(examples, 'parallel', 'embed.sh'), 'utf8');
  assert.equal(spawnSync('bash', ['-n', join(examples, 'parallel', 'embed.sh')]).status, 0);
  assert.match(text, /^parallel .*--shard \{\}\/"\$SHARDS" ::: \$\(seq 0 \$\(\(SHARDS - 1\)\)\) && "\$ATELIER" merge "\$OUT"$/m);
});

test('examples/kubernetes: an Indexed Job of 16 embed shards reading --shard auto, then a merge Job that waits for them', (t) => {
  const file = join(examples, 'kubernetes', 'embed-indexed-job.yaml');
  const [embed, merge] = parseYamlDocuments(readFileSync(file, 'utf8')) as Array<Record<string, any>>;
  for (const job of [embed, merge]) {
    assert.equal(job.apiVersion, 'batch/v1');
    assert.equal(job.kind, 'Job');
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');
  }
  assert.equal(embed.spec.completionMode, 'Indexed');
  const n = embed.spec.completions;
  assert.equal(n, 16);
  assert.ok(embed.spec.parallelism >= 1 && embed.spec.parallelism <= n);
  const [container] = embed.spec.template.spec.containers;
  const command: string[] = container.command;
  assert.equal(command[command.indexOf('--shard') + 1], 'auto');
  assert.equal(command[1], 'embed');
  const count = (container.env as Array<{ name: string; value: string }>).find((e) => e.name === 'ATELIER_SHARD_COUNT');
  assert.equal(count?.value, String(n), 'ATELIER_SHARD_COUNT must equal completions');
  const out = command[command.indexOf('-o') + 1];
  // The merge waits for n manifests named after that output, then merges it.
  const script = (merge.spec.template.spec.containers[0].command as string[]).at(-1)!;
  assert.ok(script.includes(`${out.replace(/\.npy$/, '')}.shard-*-of-${n}.npy.shard.json`), script);
  assert.ok(script.includes(`-ge ${n} ]`), script);
  assert.match(script, new RegExp(`exec atelier merge ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\n$`));
  for (const job of [embed, merge]) {
    const mounts = job.spec.template.spec.containers[0].volumeMounts as Array<{ name: string; mountPath: string }>;
    const volumes = job.spec.template.spec.volumes as Array<{ name: string; persistentVolumeClaim: { claimName: string } }>;
    assert.ok(out.startsWith(mounts[0].mountPath + '/'));
    assert.equal(volumes[0].name, mounts[0].name);
    assert.equal(volumes[0].persistentVolumeClaim.claimName, 'atelier-data');
  }
  if (!onPath('kubectl')) {
    t.skip('kubectl is not on PATH (structure checked above)');
    return;
  }
  const dry = spawnSync('kubectl', ['apply', '--dry-run=client', '--validate=false', '-f', file], { encoding: 'utf8', timeout: 60_000 });
  if (dry.status !== 0 && /connect|server|unable to recognize/i.test(dry.stderr)) {
    t.skip('kubectl needs an API server to map and validate kinds, and none is reachable offline (structure checked above)');
    return;
  }
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /job\.batch\/atelier-embed created \(dry run\)/);
});

test('--shard auto with the manifest\'s environment: JOB_COMPLETION_INDEX 0..15 and ATELIER_SHARD_COUNT, merged, equals one run', async () => {
  const out = join(dir, 'k8s', 'emb.npy');
  mkdirSync(join(dir, 'k8s'));
  const runs = await Promise.all(Array.from({ length: 16 }, (_, i) => runAtelier(['embed', '--shard', 'auto', '-m', 'pixels', '-i', list, '-o', out], { env: { JOB_COMPLETION_INDEX: String(i), ATELIER_SHARD_COUNT: '16' }, timeoutMs: 300_000 })));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const merged = await runAtelier(['merge', out]);
  assert.equal(merged.code, 0, merged.stderr);
  assertEqualsSingle(out);
});
