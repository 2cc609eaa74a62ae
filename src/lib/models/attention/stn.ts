// A spatial transformer in front of any tower (Jaderberg et al. 2015; GILT's "spatial transformer
// attachment in existing networks"): a small localisation net reads the whole image, predicts a
// scale-and-translate transform, and the bilinear sampler crops the image to the tower's input
// size, so the tower sees the chosen region at full resolution instead of the downscaled whole.
import { LayerBase, tf, whenTfjsLoads } from '../../backend/tf.js';
import { bilinearSample, cellCentreGrid, scaleTranslateTheta } from './sampler.js';
import type { InputSize } from '../towers/spec.js';

/** Layer names: the crop layer's second output is the transform (sx, sy, tx, ty) per image. */
export const STN_LAYER = { crop: 'stn_crop', score: 'stn_score', scale: 'stn_scale', tower: 'stn_tower' } as const;

export interface SpatialTransformerOptions {
  /** Size of the crop, i.e. of the tower's input. */
  output: InputSize;
  /** Bounds of the crop's side as a fraction of the image's (the deck's L_loc keeps it in [beta, alpha]; here a hard bound). */
  minScale: number;
  maxScale: number;
  /** Filters of the localisation net's first convolution (then 2x). */
  filters: number;
  seed: number;
}

/**
 * The centre is the soft argmax of the score map sharpened by this factor: it follows the
 * strongest cells instead of being pulled to the image's centre by the mass left on the
 * background (measured on the patch fixture: centre error 0.19 -> 0.10 of the half-side).
 */
export const CENTRE_SHARPNESS = 8;

/** The crop centre (tx, ty) [N] of flat cell scores [N, h * w]: the soft argmax of the scores times `sharpness`. */
export function sharpenedCentre(flatScores: tf.Tensor2D, h: number, w: number, sharpness = CENTRE_SHARPNESS): { tx: tf.Tensor1D; ty: tf.Tensor1D } {
  return tf.tidy(() => {
    const peak = tf.softmax(tf.mul(flatScores, sharpness)) as tf.Tensor2D;
    const centres = cellCentreGrid(h, w);
    return { tx: tf.sum(tf.mul(peak, centres.x), 1) as tf.Tensor1D, ty: tf.sum(tf.mul(peak, centres.y), 1) as tf.Tensor1D };
  });
}

/** Class evidence [N, K]: the cells' class logits [N, h, w, K] pooled by the softmax attention map [N, h * w]. */
export function pooledEvidence(cellLogits: tf.Tensor4D, map: tf.Tensor2D): tf.Tensor2D {
  const [n, h, w] = cellLogits.shape;
  return tf.tidy(() => tf.sum(tf.mul(tf.reshape(cellLogits, [n, h * w, -1]), tf.reshape(map, [n, h * w, 1])), 1) as tf.Tensor2D);
}

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];
interface CropOptions { outHeight: number; outWidth: number; minScale: number; maxScale: number }

/**
 * Inputs: [image [N, H, W, C], score map [N, h, w, 1], scale logits [N, 2], optional cell class
 * logits [N, h, w, K]]. Outputs: the crop [N, outHeight, outWidth, C], the transform [N, 4] as
 * (sx, sy, tx, ty), and with cell logits the class evidence [N, K]: the cells' logits pooled by
 * the softmax score map.
 * The centre is the soft argmax of the score map (the expected cell centre), as the attention
 * branch places its glimpses: translation-equivariant, so a patch found anywhere moves the crop
 * there; the scale is minScale + (maxScale - minScale) sigmoid(logit) per axis.
 * Why the evidence: the sampler's gradient w.r.t. the translation comes from the image's own
 * gradient inside the crop, which for a texture oscillates at the texture's period and does not
 * lead the crop to it (measured on the patch fixture: the crop never left the centre). A cross-
 * entropy on the evidence trains the score map from the label, as attention pooling does: only
 * the cells that show the label's evidence can raise it, so the map, and the crop, go there.
 */
export class SpatialCrop extends LayerBase {
  static className = 'AtelierSpatialCrop';
  readonly crop: CropOptions;

  constructor(args: CropOptions & LayerArgs) {
    super(args);
    this.crop = { outHeight: args.outHeight, outWidth: args.outWidth, minScale: args.minScale, maxScale: args.maxScale };
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape[] {
    const image = (inputShape as tf.Shape[])[0];
    const shapes: tf.Shape[] = [[image[0], this.crop.outHeight, this.crop.outWidth, image[3]], [image[0], 4]];
    const cells = (inputShape as tf.Shape[])[3];
    if (cells) shapes.push([image[0], cells[3]]);
    return shapes;
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    return tf.tidy(() => {
      const [image, score, scaleLogits, cellLogits] = inputs as [tf.Tensor4D, tf.Tensor4D, tf.Tensor2D, tf.Tensor4D | undefined];
      const [n, h, w] = score.shape;
      const flat = tf.reshape(score, [n, h * w]) as tf.Tensor2D;
      const map = tf.softmax(flat) as tf.Tensor2D;
      const { tx, ty } = sharpenedCentre(flat, h, w);
      const { minScale, maxScale, outHeight, outWidth } = this.crop;
      const scale = tf.add(minScale, tf.mul(maxScale - minScale, tf.sigmoid(scaleLogits)));
      const [sx, sy] = tf.unstack(scale, 1) as tf.Tensor1D[];
      const crop = bilinearSample(image, scaleTranslateTheta(sx, sy, tx, ty), outHeight, outWidth);
      const out = [crop, tf.stack([sx, sy, tx, ty], 1)];
      if (cellLogits) out.push(pooledEvidence(cellLogits, map));
      return out;
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.crop };
  }
}

whenTfjsLoads(() => tf.serialization.registerClass(SpatialCrop));

/** The transformer on a symbolic image: its crop (the tower's input), the transform (sx, sy, tx, ty) and with `classes` the class evidence. */
export function spatialTransformer(image: tf.SymbolicTensor, options: SpatialTransformerOptions & { classes?: number }): { crop: tf.SymbolicTensor; transform: tf.SymbolicTensor; evidence?: tf.SymbolicTensor } {
  const { filters, seed } = options;
  const conv = (x: tf.SymbolicTensor, f: number, name: string, s: number, strides = 1) => tf.layers.conv2d({
    filters: f, kernelSize: 3, strides, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: seed + s }), name,
  }).apply(x) as tf.SymbolicTensor;
  // A strided conv (it sees a texture at any phase; a pooled image may not), a conv + pool, a conv:
  // the score map at 1/4 of the image, receptive field ~19 px.
  let x = conv(image, filters, 'stn_conv1', 1, 2);
  x = conv(x, filters * 2, 'stn_conv2', 2);
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'stn_pool2' }).apply(x) as tf.SymbolicTensor;
  x = conv(x, filters * 2, 'stn_conv3', 3);
  // Zero-initialised heads: a uniform score map (crop at the centre) at the middle scale.
  const score = tf.layers.conv2d({ filters: 1, kernelSize: 1, kernelInitializer: 'zeros', name: STN_LAYER.score }).apply(x) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'stn_pooled' }).apply(x) as tf.SymbolicTensor;
  const scale = tf.layers.dense({ units: 2, kernelInitializer: 'zeros', name: STN_LAYER.scale }).apply(pooled) as tf.SymbolicTensor;
  const layer = new SpatialCrop({ name: STN_LAYER.crop, outHeight: options.output.height, outWidth: options.output.width, minScale: options.minScale, maxScale: options.maxScale });
  const cells = options.classes ? [tf.layers.conv2d({ filters: options.classes, kernelSize: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 4 }), name: 'stn_cells' }).apply(x) as tf.SymbolicTensor] : [];
  const [crop, transform, evidence] = layer.apply([image, score, scale, ...cells]) as tf.SymbolicTensor[];
  return { crop, transform, evidence };
}

/**
 * image [H, W, 3] -> the transformer -> `tower` (image of its input size -> features): the same
 * output as `tower`, from a larger image. The tower is nested whole, so any tower fits. With
 * `classes`, the crop layer's third output is the localisation net's class evidence (see stnParts).
 */
export function withSpatialTransformer(tower: tf.LayersModel, image: InputSize, options: Omit<SpatialTransformerOptions, 'output'> & { classes?: number }): tf.LayersModel {
  const shape = tower.inputs[0].shape;
  const output = { height: shape[1] as number, width: shape[2] as number };
  const input = tf.input({ shape: [image.height, image.width, 3], name: 'image' });
  const { crop } = spatialTransformer(input, { ...options, output });
  const nested = tf.model({ inputs: tower.inputs, outputs: tower.outputs, name: STN_LAYER.tower });
  // The tower's output under its own name again (pooled, projection), where embed looks for it.
  const features = tf.layers.activation({ activation: 'linear', name: tower.outputLayers[0].name }).apply(nested.apply(crop)) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: features, name: `stn_${tower.name}` });
}

/** The transform (sx, sy, tx, ty) [N, 4] and, when built with classes, the class evidence [N, classes] of a model's transformer. */
export function stnParts(model: tf.LayersModel): { transform: tf.SymbolicTensor; evidence: tf.SymbolicTensor | null } {
  const outputs = model.getLayer(STN_LAYER.crop).output as tf.SymbolicTensor[];
  return { transform: outputs[1], evidence: outputs[2] ?? null };
}

/** image -> transform (sx, sy, tx, ty) of a model with the transformer, sharing its weights. */
export function transformModel(model: tf.LayersModel): tf.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: stnParts(model).transform });
}
