// The attention branch of the Stitch Fix deck ("Attention Branch": spatial transformer layer, then
// texture encoding layer), after Wang et al. 2017 ("Multi-label image recognition by recurrently
// discovering attentional regions"): K recurrent steps, each predicting a scale-and-translate
// transform that crops a glimpse out of a feature map, whose texture is encoded Deep TEN style.
import { LayerBase, tf, whenTfjsLoads } from '../../backend/tf.js';
import { bilinearSample, scaleTranslateTheta } from './sampler.js';
import { textureEncoding } from './encoding.js';
import { pooledEvidence, sharpenedCentre } from './stn.js';
export { CENTRE_SHARPNESS } from './stn.js';

export interface AttentionBranchOptions {
  /** Recurrent attention steps K. */
  steps: number;
  /** Side of the sampled glimpse, in cells. */
  glimpse: number;
  /** Deep TEN codewords. */
  codewords: number;
  /** Channels of the glimpse features the codewords live in. */
  textureDim: number;
  /** Units of the recurrent state. */
  hidden: number;
  /** The centre is the soft argmax of the scores times this (models saved before it: 1, the plain expected centre). */
  sharpness?: number;
  seed: number;
}

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];

/**
 * Inputs: [localisation map [N, h, w, Cl], sampled map [N, H, W, D], optional cell class logits
 * [N, h, w, C]]. Outputs: the texture vectors of the K glimpses [N, K * codewords * textureDim]
 * (each L2-normalised, Deep TEN), the softmax attention maps [N, K, h * w] (the deck's l_k, for
 * L_div), the transforms [N, K, 4] as (sx, sy, tx, ty) (for L_loc and to draw the crops), and with
 * cell logits the class evidence [N, C]: per label, the most of the K steps' cell logits pooled by l_k.
 *
 * At step k the recurrent state h_k = tanh(W0 gap(F) + Wh h_(k-1) + Wg g_(k-1)) (g: the previous
 * glimpse's mean feature) queries the localisation map: l_k = softmax_i(key(F_i) . query(h_k));
 * the translation is the soft argmax of the sharpened scores (stn.ts: it follows the strongest
 * cells) and the scale comes from h_k. Why the evidence: as in stn.ts, the sampler's own gradient
 * does not lead a crop onto a texture; a loss on the evidence trains l_k from the labels.
 */
export class AttentionBranch extends LayerBase {
  static className = 'AtelierAttentionBranch';
  readonly options: AttentionBranchOptions;
  private weightsOf: Record<string, tf.LayerVariable> = {};
  private mapCells = 0;
  private mapShape: [number, number] = [0, 0];

  constructor(args: AttentionBranchOptions & LayerArgs) {
    super(args);
    this.options = { steps: args.steps, glimpse: args.glimpse, codewords: args.codewords, textureDim: args.textureDim, hidden: args.hidden, sharpness: args.sharpness ?? 1, seed: args.seed };
  }

  build(inputShape: tf.Shape | tf.Shape[]): void {
    const [locShape, mapShape] = inputShape as tf.Shape[];
    const cl = locShape[3] as number;
    const d = mapShape[3] as number;
    this.mapShape = [locShape[1] as number, locShape[2] as number];
    this.mapCells = this.mapShape[0] * this.mapShape[1];
    const { hidden, textureDim, codewords, seed } = this.options;
    const attention = hidden;
    const glorot = (s: number) => tf.initializers.glorotUniform({ seed: seed + s });
    const add = (name: string, shape: number[], init: ReturnType<typeof tf.initializers.zeros>) => (this.weightsOf[name] = this.addWeight(name, shape, 'float32', init));
    add('context_kernel', [cl, hidden], glorot(1));
    add('recurrent_kernel', [hidden, hidden], glorot(2));
    add('glimpse_kernel', [textureDim, hidden], glorot(3));
    add('state_bias', [hidden], tf.initializers.zeros());
    add('key_kernel', [cl, attention], glorot(4));
    add('query_kernel', [hidden, attention], glorot(5));
    add('scale_kernel', [hidden, 2], tf.initializers.zeros());
    // Glimpses start at half the frame each way (scale 0.5).
    add('scale_bias', [2], tf.initializers.constant({ value: 0.5 }));
    add('texture_kernel', [d, textureDim], tf.initializers.heNormal({ seed: seed + 6 }));
    add('texture_bias', [textureDim], tf.initializers.zeros());
    add('codewords', [codewords, textureDim], tf.initializers.randomUniform({ minval: -1 / Math.sqrt(codewords), maxval: 1 / Math.sqrt(codewords), seed: seed + 7 }));
    add('smoothing', [codewords], tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: seed + 8 }));
    this.built = true;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape[] {
    const [locShape, , cellShape] = inputShape as tf.Shape[];
    const { steps, codewords, textureDim } = this.options;
    const shapes: tf.Shape[] = [[locShape[0], steps * codewords * textureDim], [locShape[0], steps, (locShape[1] as number) * (locShape[2] as number)], [locShape[0], steps, 4]];
    if (cellShape) shapes.push([locShape[0], cellShape[3]]);
    return shapes;
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    return tf.tidy(() => {
      const [features, sampled, cellLogits] = inputs as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D | undefined];
      const v = (name: string) => this.weightsOf[name].read();
      const { steps, glimpse, hidden, textureDim } = this.options;
      const n = features.shape[0];
      const cl = features.shape[3];
      const d = sampled.shape[3];
      const cells = this.mapCells;
      const [mh, mw] = this.mapShape;
      const keys = tf.reshape(tf.matMul(tf.reshape(features, [n * cells, cl]), v('key_kernel')), [n, cells, hidden]);
      const context = tf.matMul(tf.mean(features, [1, 2]) as tf.Tensor2D, v('context_kernel'));
      let state: tf.Tensor2D = tf.zeros([n, hidden]);
      let previous: tf.Tensor2D = tf.zeros([n, textureDim]);
      const textures: tf.Tensor[] = [];
      const maps: tf.Tensor[] = [];
      const transforms: tf.Tensor[] = [];
      const evidence: tf.Tensor[] = [];
      for (let k = 0; k < steps; k++) {
        state = tf.tanh(tf.add(tf.addN([context, tf.matMul(state, v('recurrent_kernel')), tf.matMul(previous, v('glimpse_kernel'))]), v('state_bias'))) as tf.Tensor2D;
        const query = tf.matMul(state, v('query_kernel')); // [N, A]
        const scores = tf.div(tf.sum(tf.mul(keys, tf.reshape(query, [n, 1, hidden])), 2), Math.sqrt(hidden));
        const map = tf.softmax(scores) as tf.Tensor2D; // l_k over the h x w cells
        const { tx, ty } = sharpenedCentre(scores as tf.Tensor2D, mh, mw, this.options.sharpness);
        if (cellLogits) evidence.push(pooledEvidence(cellLogits, map));
        const scale = tf.add(tf.matMul(state, v('scale_kernel')), v('scale_bias'));
        const [sx, sy] = tf.unstack(scale, 1) as tf.Tensor1D[];
        const crop = bilinearSample(sampled, scaleTranslateTheta(sx, sy, tx, ty), glimpse, glimpse);
        const local = tf.relu(tf.add(tf.matMul(tf.reshape(crop, [n * glimpse * glimpse, d]), v('texture_kernel')), v('texture_bias')));
        const cellsOfGlimpse = tf.reshape(local, [n, glimpse * glimpse, textureDim]) as tf.Tensor3D;
        previous = tf.mean(cellsOfGlimpse, 1) as tf.Tensor2D;
        const encoded = tf.reshape(textureEncoding(cellsOfGlimpse, v('codewords') as tf.Tensor2D, v('smoothing') as tf.Tensor1D), [n, -1]);
        textures.push(tf.div(encoded, tf.add(tf.norm(encoded, 'euclidean', 1, true), 1e-6)));
        maps.push(map);
        transforms.push(tf.stack([sx, sy, tx, ty], 1));
      }
      const out = [tf.concat(textures, 1), tf.stack(maps, 1), tf.stack(transforms, 1)];
      if (cellLogits) out.push(tf.max(tf.stack(evidence, 1), 1));
      return out;
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.options };
  }
}

whenTfjsLoads(() => tf.serialization.registerClass(AttentionBranch));
