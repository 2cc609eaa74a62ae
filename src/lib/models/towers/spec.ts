// What a tower is, as saved in model metadata (`tower` field): the family, the input H x W and
// the family's own numeric parameters. buildTower(spec) rebuilds the same graph from it.
import { tf } from '../../backend/tf.js';

/** Input height and width in pixels (RGB, channels last). */
export interface InputSize {
  height: number;
  width: number;
}

export interface TowerSpec {
  /** Registered family name: small, resnet18, resnet34, resnet50, mobilenetv2, ... */
  family: string;
  input: InputSize;
  /** Family parameters (small: width, blocks, stages; resnet*, mobilenetv2: alpha). */
  params: Record<string, number>;
  /** Seed of the initialisers: two builds with one spec hold the same weights. */
  seed: number;
}

/** One tower family: its defaults and how it maps an image input to a feature map. */
export interface TowerFamily {
  name: string;
  /** One line for --help and errors. */
  summary: string;
  /** Parameter defaults; `:x` after the family name sets `alpha` where the family has one. */
  defaults: Record<string, number>;
  /** Smallest input side (each of H and W) the family accepts with these parameters. */
  minimumSide(params: Record<string, number>): number;
  /** image -> last feature map [n, h, w, c]; layer names unique within the model. */
  build(image: tf.SymbolicTensor, params: Record<string, number>, seed: number): tf.SymbolicTensor;
}

/** Layer names every tower exposes: the image input and the pooled feature vector. */
export const TOWER_LAYER = { input: 'image', pooled: 'pooled' } as const;
