// Runs the WASM backend's own kernels from inside one of ours, below the engine: intermediate
// results never become engine tensors, so they are freed here and nothing leaks into tf.memory().
import { tf } from '../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type TensorInfo = tf.TensorInfo;
export type { BackendWasm };

/** The name under which the backend's own kernel stays callable once ours replaces it. */
export function builtinKernelName(kernelName: string): string {
  return `AtelierBuiltin${kernelName}`;
}

/** The arguments tfjs hands a kernel function. */
export interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: BackendWasm;
  attrs: tf.NamedAttrMap;
}

/**
 * Collects the intermediate TensorInfos of one kernel call and frees them at the end; the result
 * handed back to the engine is released from the collection with `keep`.
 */
export class KernelScratch {
  private readonly owned: TensorInfo[] = [];

  constructor(readonly backend: BackendWasm) {}

  /** Runs the kernel `name` registered for 'wasm' and tracks its output for disposal. */
  run(name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo {
    const kernel = tf.getKernel(name, 'wasm');
    if (!kernel) throw new Error(`kernel '${name}' is not registered for backend 'wasm'`);
    const out = kernel.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend: this.backend }) as TensorInfo;
    this.owned.push(out);
    return out;
  }

  /** Allocates an output on the WASM heap (uninitialised) and tracks it. */
  make(shape: number[], dtype: 'float32' | 'int32'): TensorInfo {
    const out = this.backend.makeOutput(shape, dtype);
    this.owned.push(out);
    return out;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run(tf.Reshape, { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run(tf.Transpose, { x }, { perm });
  }

  /** Slices `x` from `begin` with `size` (-1 = to the end). */
  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    return this.run(tf.Slice, { x }, { begin, size });
  }

  pad(x: TensorInfo, paddings: Array<[number, number]>): TensorInfo {
    return this.run(tf.PadV2, { x }, { paddings, constantValue: 0 });
  }

  /** NHWC forward convolution through the backend's XNNPACK Conv2D. */
  conv2d(
    x: TensorInfo,
    filter: TensorInfo,
    strides: [number, number],
    pads: { top: number; bottom: number; left: number; right: number },
    dilations: [number, number],
  ): TensorInfo {
    const pad = [[0, 0], [pads.top, pads.bottom], [pads.left, pads.right], [0, 0]];
    return this.run(tf.Conv2D, { x, filter }, { strides, pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined });
  }

  /** Removes `info` from the collection: the caller now owns it (the kernel's result). */
  keep(info: TensorInfo): TensorInfo {
    const at = this.owned.lastIndexOf(info);
    if (at >= 0) this.owned.splice(at, 1);
    return info;
  }

  /** Frees every intermediate still held; each was counted once by the kernel that made it. */
  dispose(): void {
    for (const info of this.owned.splice(0)) this.backend.disposeData(info.dataId);
  }
}

/** Runs the backend's own kernel that ours for `kernelName` replaced (registered as builtinKernelName) on the same arguments. */
export function runBuiltinKernel(kernelName: string, args: KernelArgs): TensorInfo {
  const builtin = builtinKernelName(kernelName);
  const kernel = tf.getKernel(builtin, 'wasm');
  if (!kernel) throw new Error(`kernel '${builtin}' is not registered for backend 'wasm'`);
  return kernel.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
}

/** A new float32 output of `shape` holding `values` (f64 sums rounded to f32). */
export function float32Output(backend: BackendWasm, shape: number[], values: ArrayLike<number>): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  (heapView(backend, out) as Float32Array).set(values);
  return out;
}

/** Float32 or int32 view of a tensor's data, in place on the WASM heap (valid until the next allocation). */
export function heapView(backend: BackendWasm, info: TensorInfo): Float32Array | Int32Array {
  const view = backend.typedArrayFromHeap(info);
  if (!(view instanceof Float32Array || view instanceof Int32Array)) throw new Error(`unsupported dtype ${info.dtype}`);
  return view;
}

/**
 * Runs `body` with a scratch collection and frees whatever it leaves, also when it throws;
 * returns the TensorInfo it chose to keep.
 */
export function withScratch(backend: BackendWasm, body: (scratch: KernelScratch) => TensorInfo): TensorInfo {
  const scratch = new KernelScratch(backend);
  try {
    return scratch.keep(body(scratch));
  } finally {
    scratch.dispose();
  }
}

/** Reads the NHWC-only data format attribute the conv gradients carry, refusing NCHW. */
export function assertChannelsLast(kernel: string, dataFormat: unknown): void {
  if (dataFormat != null && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${kernel} on wasm supports only NHWC data, got ${String(dataFormat)}`);
  }
}

/** Pad spec for one spatial axis that may be negative: positive parts pad, negative parts crop. */
export interface AxisWindow {
  /** rows to crop from the start of the tensor (>= 0) */
  cropBefore: number;
  /** rows kept after cropping */
  keep: number;
  /** zero rows the convolution adds before and after (>= 0) */
  padBefore: number;
  padAfter: number;
}

/** Splits a signed before/after padding of an axis of `length` into a crop and a non-negative pad. */
export function axisWindow(length: number, before: number, after: number): AxisWindow {
  const cropBefore = Math.max(0, -before);
  const cropAfter = Math.max(0, -after);
  return { cropBefore, keep: length - cropBefore - cropAfter, padBefore: Math.max(0, before), padAfter: Math.max(0, after) };
}

/** Crops axes 1 and 2 of an NHWC tensor per the two windows; returns `x` when nothing is cropped. */
export function cropSpatial(scratch: KernelScratch, x: TensorInfo, rows: AxisWindow, cols: AxisWindow): TensorInfo {
  const [n, h, w, c] = x.shape;
  if (rows.cropBefore === 0 && rows.keep === h && cols.cropBefore === 0 && cols.keep === w) return x;
  return scratch.slice(x, [0, rows.cropBefore, cols.cropBefore, 0], [n, rows.keep, cols.keep, c]);
}
