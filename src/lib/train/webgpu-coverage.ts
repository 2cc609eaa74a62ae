// Which kernels our trainers run, and which of them tfjs-backend-webgpu 4.22 lacks. The kernels are
// recorded (tf.profile) from real training steps of every tower family and every loss, on the
// active backend; the WebGPU registry is read without a GPU (its kernels register on import).
import { tf } from '../backend/tf.js';
import { buildTower, towerFamilyNames } from '../models/towers/index.js';
import { fullSoftmaxLoss, sampledSoftmaxLoss } from '../models/word-losses.js';
import { weightedCrossEntropy } from '../facets/classifier-model.js';
import { l2Normalize, mineSemiHardTriplets, pairwiseSquaredDistances, tripletHingeLoss } from '../similarity/triplet.js';

export interface KernelUse {
  kernel: string;
  /** Run in a forward pass, so backprop needs its gradient. */
  forward: boolean;
  /** Which steps ran it (tower family + loss). */
  usedBy: string[];
  /** Its op gives the gradient (tf.customGrad), so the kernel needs none of its own. */
  customGradient?: boolean;
}

const PARAMS: Record<string, Record<string, number>> = { small: { width: 4 }, mobilenetv2: { alpha: 0.35 }, resnet18: { alpha: 0.25 }, resnet34: { alpha: 0.25 }, resnet50: { alpha: 0.25 } };

async function kernelsOf(f: () => void): Promise<string[]> {
  const info = await tf.profile(() => {
    f();
    return [] as unknown as tf.Tensor;
  });
  return info.kernelNames;
}

/** One step of `loss` over `vars`: the forward kernels and those of the whole step (backward, update). */
async function stepKernels(loss: () => tf.Scalar, optimizer: tf.Optimizer, vars: tf.Variable[]): Promise<{ forward: string[]; step: string[] }> {
  const forward = await kernelsOf(() => tf.tidy(() => void loss()));
  const step = await kernelsOf(() => tf.tidy(() => void optimizer.minimize(loss, false, vars)));
  return { forward, step };
}

/** Fused kernels whose op supplies its gradient with tf.customGrad (seen in a profile as `<op>__op`). */
const CUSTOM_GRADIENT_OPS: Record<string, string> = { FusedConv2D: 'fusedConv2d__op', FusedDepthwiseConv2D: 'fusedDepthwiseConv2d__op', _FusedMatMul: 'fusedMatMul__op' };

/**
 * Every kernel a trainer's step runs: each tower family at 32 px with the classifier loss, and each
 * other loss (weak full and sampled softmax, triplet) on the small tower; Adam or momentum updates.
 */
export async function trainerKernels(): Promise<KernelUse[]> {
  const uses = new Map<string, KernelUse>();
  const customGradOps = new Set<string>();
  const note = (names: string[], forward: boolean, by: string) => {
    for (const kernel of names) {
      // `<op>__op` marks a tf.customGrad scope, not a kernel.
      if (kernel.endsWith('__op')) {
        customGradOps.add(kernel);
        continue;
      }
      const use = uses.get(kernel) ?? { kernel, forward: false, usedBy: [] };
      use.forward ||= forward;
      if (!use.usedBy.includes(by)) use.usedBy.push(by);
      uses.set(kernel, use);
    }
  };
  // Four images where the triplet loss needs two pairs (the small tower); two elsewhere: the kernels
  // do not depend on the batch, and the plain JS backend's convolution gradients cost a second a step.
  const images = tf.randomUniform([4, 32, 32, 3], 0, 1, 'float32', 1);
  const pair = images.slice([0, 0, 0, 0], [2, 32, 32, 3]);
  for (const family of towerFamilyNames()) {
    const batch = family === 'small' ? images : pair;
    const size = batch.shape[0];
    const tower = buildTower({ family, input: { height: 32, width: 32 }, params: PARAMS[family] ?? {}, seed: 1 });
    const dim = tower.outputs[0].shape.at(-1) as number;
    const kernel = tf.variable(tf.randomNormal([dim, 6], 0, 0.1, 'float32', 2)) as tf.Variable<typeof tf.Rank.R2>;
    const vars = [...tower.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val), kernel];
    const features = () => tower.apply(batch, { training: true }) as tf.Tensor2D;
    const losses: Record<string, () => tf.Scalar> = {
      'classifier (weighted cross-entropy)': () => weightedCrossEntropy(tf.matMul(features(), kernel), tf.tensor1d([0, 1, 2, 1].slice(0, size), 'int32'), tf.ones([6]), tf.tensor1d([1, 0.5, 2, 1].slice(0, size))),
    };
    if (family === 'small') {
      losses['weak (full softmax)'] = () => fullSoftmaxLoss(features(), kernel, tf.tensor1d([0, 1, 2, 3], 'int32'));
      losses['weak (sampled softmax)'] = () => sampledSoftmaxLoss(features(), kernel, tf.tensor2d([0, 3, 4, 1, 2, 5, 2, 0, 1, 3, 4, 5], [4, 3], 'int32'));
      losses['triplet (semi-hard hinge)'] = () => {
        const d = pairwiseSquaredDistances(l2Normalize(features()));
        return tripletHingeLoss(d, mineSemiHardTriplets(d.dataSync(), [0, 0, 1, 1], 0.2), 0.2);
      };
    }
    for (const [name, loss] of Object.entries(losses)) {
      const optimizer = name.startsWith('weak') ? tf.train.momentum(0.01, 0.9) : tf.train.adam(0.001);
      const { forward, step } = await stepKernels(loss, optimizer, vars);
      note(forward, true, `${family} + ${name}`);
      note(step.filter((k) => !forward.includes(k)), false, `${family} + ${name}`);
      optimizer.dispose();
    }
    kernel.dispose();
    tower.dispose();
  }
  pair.dispose();
  images.dispose();
  for (const use of uses.values()) if (customGradOps.has(CUSTOM_GRADIENT_OPS[use.kernel] ?? '')) use.customGradient = true;
  return [...uses.values()].sort((a, b) => a.kernel.localeCompare(b.kernel));
}

export interface KernelCoverage extends KernelUse {
  onWebgpu: boolean;
  /** Only asked of forward kernels: a backward-only kernel needs no gradient. */
  hasGradient: boolean | null;
}

/** Looks each kernel up in the WebGPU registry and each forward kernel in the gradient registry. */
export async function webgpuCoverage(uses: KernelUse[]): Promise<KernelCoverage[]> {
  await import('@tensorflow/tfjs-backend-webgpu');
  const webgpu = new Set(tf.getKernelsForBackend('webgpu').map((k) => k.kernelName));
  return uses.map((u) => ({ ...u, onWebgpu: webgpu.has(u.kernel), hasGradient: u.forward ? u.customGradient === true || tf.getGradient(u.kernel) !== undefined : null }));
}

/** The coverage as the Markdown file kept in the repository (docs/webgpu-ops.md). */
export function renderCoverage(rows: KernelCoverage[], synchronousReads: Array<{ file: string; count: number }>): string {
  const gaps = rows.filter((r) => !r.onWebgpu || r.hasGradient === false);
  const lines = [
    '# Kernels our trainers run, and their WebGPU coverage',
    '',
    'Generated by `node dist/src/gen-webgpu-ops.js` (checked by test/lib/webgpu-coverage.test.ts): one training',
    'step of every tower family with every loss (classifier, weak full and sampled softmax, triplet) and its',
    'optimizer, recorded with tf.profile; each kernel looked up in @tensorflow/tfjs-backend-webgpu 4.22\'s',
    'registry and, for kernels of the forward pass, in the gradient registry (fused kernels get theirs from',
    'their op\'s tf.customGrad).',
    '',
    `## Gaps: ${gaps.length}`,
    '',
    ...(gaps.length ? gaps.map((g) => `- ${g.kernel}: ${!g.onWebgpu ? 'no WebGPU kernel' : ''}${!g.onWebgpu && g.hasGradient === false ? ', ' : ''}${g.hasGradient === false ? 'no gradient' : ''} (used by ${g.usedBy.length} steps, e.g. ${g.usedBy[0]})`) : ['None: every kernel has a WebGPU kernel and every forward kernel a gradient.']),
    '',
    `## Synchronous read-backs: ${synchronousReads.reduce((n, r) => n + r.count, 0)} in ${synchronousReads.length} files`,
    '',
    'tfjs-backend-webgpu 4.22 reads a tensor synchronously (dataSync, arraySync) through OffscreenCanvas,',
    'which Node lacks, so atelier reads tensors with `await tensor.data()` (src/lib/backend/read.ts) on',
    'every path WebGPU runs; the training loop reads step losses 16 steps at a time. Code that never runs on',
    'WebGPU (our WASM kernels, the WASM worker pools, this generator) is not counted. The count is of the',
    'source text; test/commands/no-sync-read.test.ts checks at run time that every trainer and inference',
    'command completes with synchronous reads made to throw.',
    '',
    ...(synchronousReads.length ? synchronousReads.map((r) => `- ${r.file}: ${r.count}`) : ['None.']),
    '',
    '## All kernels',
    '',
    '| kernel | pass | WebGPU kernel | gradient |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.kernel} | ${r.forward ? 'forward' : 'backward/update'} | ${r.onWebgpu ? 'yes' : '**no**'} | ${r.hasGradient === null ? '-' : r.customGradient ? 'yes (op\'s customGrad)' : r.hasGradient ? 'yes' : '**no**'} |`),
    '',
  ];
  return lines.join('\n');
}
