// The Stitch Fix deck's model: a global branch (its table: pairs of 3x3 convolutions with padding
// 1, 25% dropout, 4x4 max pooling, batch normalisation, widths 64-128-256 at 384 x 256) and the
// attention branch (branch.ts), whose features are concatenated into the embedding.
import { tf } from '../../backend/tf.js';
import { AttentionBranch, CENTRE_SHARPNESS, type AttentionBranchOptions } from './branch.js';

export const ATTENTION_MODEL_KIND = 'atelier-attention';

/** Layer names embed and the trainer rely on: embed's --layer pooled reads the global branch alone. */
export const ATTENTION_LAYER = { input: 'image', pooled: 'pooled', branch: 'attention', embedding: 'embedding', logits: 'attention_classes', cells: 'attention_cells' } as const;

export interface AttentionModelConfig extends AttentionBranchOptions {
  height: number;
  width: number;
  /** Filters of the first pair of convolutions (the deck: 64; then x2, x4). */
  filters: number;
  dropout: number;
  classes: number;
}

/** The trained network with its three views, sharing weights. */
export interface AttentionNetworks {
  /** image -> [class logits, attention maps, transforms, class evidence]: what the loss needs. */
  training: tf.LayersModel;
  /** image -> embedding (global pooled ++ textures): what is saved and what embed runs. */
  embedding: tf.LayersModel;
}

function convPair(x: tf.SymbolicTensor, filters: number, name: string, seed: number): tf.SymbolicTensor {
  for (const i of [1, 2]) {
    x = tf.layers.conv2d({
      filters, kernelSize: 3, padding: 'same', activation: 'relu', name: `${name}_conv${i}`, kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
    }).apply(x) as tf.SymbolicTensor;
  }
  return x;
}

/** Builds the model; input height and width must be multiples of 16 (two 4x4 poolings). */
export function buildAttentionModel(config: AttentionModelConfig): AttentionNetworks {
  const { seed } = config;
  const input = tf.input({ shape: [config.height, config.width, 3], name: ATTENTION_LAYER.input });
  const stage = (x: tf.SymbolicTensor, filters: number, name: string, stageSeed: number): tf.SymbolicTensor => {
    x = convPair(x, filters, name, stageSeed);
    x = tf.layers.dropout({ rate: config.dropout, seed: stageSeed + 5, name: `${name}_dropout` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 4, strides: 4, name: `${name}_pool` }).apply(x) as tf.SymbolicTensor;
    // Momentum 0.9 (PyTorch's default, what the deck trained with): Keras' 0.99 leaves the moving
    // statistics near their start after the few hundred steps of a CPU run, and inference off.
    return tf.layers.batchNormalization({ name: `${name}_bn`, momentum: 0.9 }).apply(x) as tf.SymbolicTensor;
  };
  const sampled = stage(input, config.filters, 'global1', seed);
  const x = stage(sampled, config.filters * 2, 'global2', seed + 10);
  const top = convPair(x, config.filters * 4, 'global3', seed + 30);
  const pooled = tf.layers.globalAveragePooling2d({ name: ATTENTION_LAYER.pooled }).apply(top) as tf.SymbolicTensor;
  // The transformer crops the first stage's map (1/4 of the input): fine enough for small details.
  const branch = new AttentionBranch({
    name: ATTENTION_LAYER.branch, steps: config.steps, glimpse: config.glimpse, codewords: config.codewords, textureDim: config.textureDim, hidden: config.hidden,
    sharpness: CENTRE_SHARPNESS, seed: seed + 40,
  });
  // Per-cell class logits, pooled by each step's attention map into the class evidence. From the
  // first stage (1/4 of the input) and one more conv, a receptive field of ~20 px as stn.ts's
  // localisation net: on the last map every cell sees the whole image, the evidence needs no looking
  // and the crop stayed off the patch (held-out IoU 0.27 on the patch fixture).
  const local = tf.layers.conv2d({
    filters: config.filters * 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'attention_local', kernelInitializer: tf.initializers.heNormal({ seed: seed + 44 }),
  }).apply(sampled) as tf.SymbolicTensor;
  const cells = tf.layers.conv2d({ filters: config.classes, kernelSize: 1, name: ATTENTION_LAYER.cells, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 45 }) }).apply(local) as tf.SymbolicTensor;
  // The branch attends over the same cells, with the last map upsampled beside them for context
  // (keys from the upsampled last map and the raw first stage: IoU 0.40; from these: 0.64).
  const upsampled = tf.layers.upSampling2d({ size: [4, 4], name: 'attention_upsampled' }).apply(top) as tf.SymbolicTensor;
  const where = tf.layers.concatenate({ name: 'attention_where' }).apply([local, upsampled]) as tf.SymbolicTensor;
  const [textures, maps, transforms, evidence] = branch.apply([where, sampled, cells]) as tf.SymbolicTensor[];
  const embedding = tf.layers.concatenate({ name: ATTENTION_LAYER.embedding }).apply([pooled, textures]) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: config.classes, name: ATTENTION_LAYER.logits, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 50 }) }).apply(embedding) as tf.SymbolicTensor;
  return {
    training: tf.model({ inputs: input, outputs: [logits, maps, transforms, evidence], name: 'atelier_attention_training' }),
    embedding: tf.model({ inputs: input, outputs: embedding, name: 'atelier_attention' }),
  };
}

export interface LossWeights {
  /** gamma1 (deck: 0.01) on L_div. */
  diversity: number;
  /** gamma2 (deck: 0.1) on L_loc. */
  localisation: number;
  /** lambda1 on the anchor constraint L_A. */
  anchor: number;
  /** lambda2 on the positive constraint L_P. */
  positive: number;
  /** alpha of the scale constraint: |s| above it is penalised. */
  alpha: number;
  /** beta of the positive constraint: s below it is penalised. */
  beta: number;
  /** Weight of the class-evidence term (not the deck's; 0 leaves its loss as it was). */
  evidence: number;
}

/** Anchor centres c^k of the K steps: evenly on a circle of radius 0.5 (the centre for K = 1). */
export function anchorPoints(steps: number): Array<[number, number]> {
  if (steps === 1) return [[0, 0]];
  return Array.from({ length: steps }, (_, k) => [0.5 * Math.sin((2 * Math.PI * k) / steps), -0.5 * Math.cos((2 * Math.PI * k) / steps)]);
}

export interface LossParts {
  total: tf.Scalar;
  classification: tf.Scalar;
  diversity: tf.Scalar;
  localisation: tf.Scalar;
  evidence: tf.Scalar;
}

/**
 * The deck's loss L = L_cls + g1 L_div + g2 L_loc, plus w_ev L_ev, each averaged over the batch:
 * L_cls = sum_c (p^c - y^c)^2 with p = sigmoid(logits); L_div = 1/(K-1) sum_k sum_i l_(k-1),i l_k,i;
 * L_loc = L_S + l1 L_A + l2 L_P summed over steps, with L_S = sum_(s in sx, sy) max(|s| - alpha, 0)^2,
 * L_A = 1/2 ((tx - cx)^2 + (ty - cy)^2), L_P = max(0, beta - sx) + max(0, beta - sy);
 * L_ev the same squared error as L_cls on the branch's class evidence (what trains where it looks).
 */
export function attentionLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, maps: tf.Tensor3D, transforms: tf.Tensor3D, evidence: tf.Tensor2D, w: LossWeights): LossParts {
  const classification = tf.mean(tf.sum(tf.square(tf.sub(tf.sigmoid(logits), targets)), 1)) as tf.Scalar;
  const steps = maps.shape[1];
  const diversity = steps < 2
    ? tf.scalar(0)
    : tf.div(tf.mean(tf.sum(tf.mul(tf.slice(maps, [0, 0, 0], [-1, steps - 1, -1]), tf.slice(maps, [0, 1, 0], [-1, steps - 1, -1])), [1, 2])), steps - 1) as tf.Scalar;
  const [sx, sy, tx, ty] = tf.unstack(transforms, 2) as tf.Tensor2D[]; // each [N, K]
  const anchors = anchorPoints(steps);
  const cx = tf.tensor2d(anchors.map((a) => a[0]), [1, steps]);
  const cy = tf.tensor2d(anchors.map((a) => a[1]), [1, steps]);
  const over = (s: tf.Tensor) => tf.square(tf.relu(tf.sub(tf.abs(s), w.alpha)));
  const scaleTerm = tf.add(over(sx), over(sy));
  const anchorTerm = tf.mul(0.5, tf.add(tf.square(tf.sub(tx, cx)), tf.square(tf.sub(ty, cy))));
  const positiveTerm = tf.add(tf.relu(tf.sub(w.beta, sx)), tf.relu(tf.sub(w.beta, sy)));
  const localisation = tf.mean(tf.sum(tf.addN([scaleTerm, tf.mul(w.anchor, anchorTerm), tf.mul(w.positive, positiveTerm)]), 1)) as tf.Scalar;
  const evidenceTerm = tf.mean(tf.sum(tf.square(tf.sub(tf.sigmoid(evidence), targets)), 1)) as tf.Scalar;
  const total = tf.addN([classification, tf.mul(w.diversity, diversity), tf.mul(w.localisation, localisation), tf.mul(w.evidence, evidenceTerm)]) as tf.Scalar;
  return { total, classification, diversity, localisation, evidence: evidenceTerm };
}

/** A transform as a box in image fractions: (x, y) its top-left corner, w and h its size. */
export function transformBox(sx: number, sy: number, tx: number, ty: number): { x: number; y: number; w: number; h: number } {
  const w = Math.abs(sx);
  const h = Math.abs(sy);
  return { x: (tx - w + 1) / 2, y: (ty - h + 1) / 2, w, h };
}
