// The one tfjs instance of the toolkit. The umbrella package registers gradients, chained ops,
// layers and the plain CPU backend on the shared tfjs-core; the WASM backend registers on the same
// core. Every module that needs tensors imports `tf` from here, never from a package directly.
//
// It is loaded with require, not `import * as tf`: for an ES import Node lexes every CommonJS file
// of tfjs for its export names, which cost each process about 0.4 s of CPU at start-up. The
// namespace below gives back the type names that `import * as` gave (`tf.Tensor` as a type).
import { lazyModule } from '../lazy-module.js';
import type * as TF from '@tensorflow/tfjs';

// Loaded on first use (lazy-module.ts): a command that stops at a usage error, or never touches a
// tensor (knn, npy, merge, crawl-tokenize), does not pay tfjs's start-up (0.1-0.3 s of CPU).
let loaded = false;
const onLoad: Array<() => void> = [];
export const tf = lazyModule<typeof TF>('@tensorflow/tfjs', (module) => {
  loaded = true;
  Object.setPrototypeOf(LayerBase, module.layers.Layer);
  Object.setPrototypeOf(LayerBase.prototype, module.layers.Layer.prototype);
  for (const run of onLoad.splice(0)) run();
});

/**
 * The base of our custom layers (`class X extends LayerBase`) in place of tf.layers.Layer, which
 * does not exist before tfjs loads: constructing one loads tfjs, and loading tfjs puts
 * tf.layers.Layer under this base, so instances, statics and instanceof are Layer's.
 */
export const LayerBase = function LayerBase(this: unknown, ...args: unknown[]) {
  return Reflect.construct(tf.layers.Layer, args, new.target);
} as unknown as typeof TF.layers.Layer;

/** A function built with tfjs (a tf.customGrad op), built on its first call rather than at import. */
export function lazyOp<F extends (...args: never[]) => unknown>(build: () => F): F {
  let op: F | undefined;
  return ((...args: Parameters<F>) => (op ??= build())(...args)) as F;
}

/** Runs `register` once tfjs is loaded (now, if it is): for serialization.registerClass and kernels. */
export function whenTfjsLoads(register: () => void): void {
  if (loaded) register();
  else onLoad.push(register);
}

// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace tf {
  type Tensor<R extends TF.Rank = TF.Rank> = TF.Tensor<R>;
  type Tensor1D = TF.Tensor1D;
  type Tensor2D = TF.Tensor2D;
  type Tensor3D = TF.Tensor3D;
  type Tensor4D = TF.Tensor4D;
  type Scalar = TF.Scalar;
  type Variable<R extends TF.Rank = TF.Rank> = TF.Variable<R>;
  type TensorInfo = TF.TensorInfo;
  type TypedArray = TF.TypedArray;
  type Rank = TF.Rank;
  type Shape = TF.Shape;
  type NamedTensorMap = TF.NamedTensorMap;
  type NamedAttrMap = TF.NamedAttrMap;
  type Optimizer = TF.Optimizer;
  type LayersModel = TF.LayersModel;
  type Sequential = TF.Sequential;
  type SymbolicTensor = TF.SymbolicTensor;
  type LayerVariable = TF.LayerVariable;
  type KernelBackend = TF.KernelBackend;
  type KernelConfig = TF.KernelConfig;
  type KernelFunc = TF.KernelFunc;
  type GradConfig = TF.GradConfig;
  type GradSaveFunc = TF.GradSaveFunc;
  namespace layers {
    type Layer = TF.layers.Layer;
  }
  namespace io {
    type ModelArtifacts = TF.io.ModelArtifacts;
    type ModelJSON = TF.io.ModelJSON;
    type IOHandler = TF.io.IOHandler;
    type WeightsManifestConfig = TF.io.WeightsManifestConfig;
    type WeightsManifestEntry = TF.io.WeightsManifestEntry;
    type CompositeArrayBuffer = TF.io.CompositeArrayBuffer;
  }
  namespace backend_util {
    type Conv2DInfo = TF.backend_util.Conv2DInfo;
    type ExplicitPadding = TF.backend_util.ExplicitPadding;
  }
  namespace serialization {
    type ConfigDict = TF.serialization.ConfigDict;
  }
}
export type Tensor = TF.Tensor;
