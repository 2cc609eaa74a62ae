// onnxruntime-node itself: loaded on first use (a missing or broken install is a value, not a
// throw), and the session options every atelier session uses.
import { availableParallelism, cpus } from 'node:os';

export type Ort = typeof import('onnxruntime-node');

let ortModule: Promise<Ort | Error> | undefined;

/** onnxruntime-node, or the error that kept it from loading. */
export function loadOrt(): Promise<Ort | Error> {
  ortModule ??= import('onnxruntime-node').then(
    (m) => ((m as { default?: Ort }).default ?? m) as Ort,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  return ortModule;
}

export function ortThreads(): number {
  return availableParallelism?.() ?? cpus().length;
}

export function sessionOptions(threads = ortThreads()): import('onnxruntime-node').InferenceSession.SessionOptions {
  // No spinning: onnxruntime's idle intra-op threads otherwise busy-wait between operators, CPU
  // that the image decoding beside them (and anything else on the machine) needs; measured on
  // ResNet-18 at 96 px, 2 threads, a shared machine: 106-118 images per CPU second against 93-98.
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

