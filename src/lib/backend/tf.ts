// The one tfjs instance of the toolkit. The umbrella package registers gradients, chained ops,
// layers and the plain CPU backend on the shared tfjs-core; the WASM backend registers on the same
// core. Every module that needs tensors imports `tf` from here, never from a package directly.
//
// It is loaded with require, not `import * as tf`: for an ES import Node lexes every CommonJS file
// of tfjs for its export names, which cost each process about 0.4 s of CPU at start-up. The
// namespace below gives back the type names that `import * as` gave (`tf.Tensor` as a type).
import { createRequire } from 'node:module';
import type * as TF from '@tensorflow/tfjs';

export const tf = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof TF;

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
