// Reads tensors back to the CPU with awaited reads only: tfjs-backend-webgpu's synchronous read
// (dataSync, arraySync) needs OffscreenCanvas, which Node lacks, and an awaited read lets the
// GPU's queue run on meanwhile. Call these outside tf.tidy (a tidy scope cannot await).
import { tf } from './tf.js';

/** The values of `t`, which is then disposed. */
export async function takeValues(t: tf.Tensor): Promise<tf.TypedArray> {
  try {
    return (await t.data()) as tf.TypedArray;
  } finally {
    t.dispose();
  }
}

/** The values of several tensors in one read (they are disposed): one GPU->CPU copy instead of one per tensor. */
export async function takeAll(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  if (tensors.length === 0) return [];
  const flat = tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1]))));
  tf.dispose(tensors);
  const values = (await takeValues(flat)) as Float32Array;
  const out: Float32Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    out.push(values.subarray(offset, offset + t.size));
    offset += t.size;
  }
  return out;
}

/** A scalar's value (the tensor is disposed). */
export async function takeScalar(t: tf.Tensor): Promise<number> {
  return (await takeValues(t))[0];
}
