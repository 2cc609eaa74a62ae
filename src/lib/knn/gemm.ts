// The GEMM kernel: a query block against a gallery tile as one matrix product, scores = Q·Gᵀ
// (onnxruntime's Gemm, MLAS's packed SIMD SGEMM on `threads` cores), then TopK per query inside the
// same graph, so only 2k+2 candidates a query cross into JavaScript, where those that may enter the
// top k are rescored exactly. Inner product only (cosine and dot); faiss's IndexFlatIP does the
// same, a BLAS sgemm and a heap.
import { encodeModel, DataType, type NodeInit } from '../onnx/proto.js';
import { loadOrt, type Ort } from '../onnx/session.js';
import { dotRow, type ExactKernel, type TileSearch } from './kernel.js';


/** Queries per Gemm call: a 256 x 4096 score matrix (4 MiB) plus MLAS's packed panels stay small. */
export const GEMM_QUERIES_PER_CALL = 256;

/**
 * scores [q, n] = Q [q, d] · G [n, d]ᵀ (+ bias [n] when `biased`); values, indices = TopK(scores, K),
 * largest first, ties to the lower index. Inputs: queries, tile (, bias), k.
 */
function gemmTopKModel(biased: boolean): Uint8Array {
  const nodes: NodeInit[] = [
    { opType: 'Gemm', name: 'scores', input: ['queries', 'tile', ...(biased ? ['bias'] : [])], output: ['scores'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
    {
      opType: 'TopK',
      name: 'topk',
      input: ['scores', 'k'],
      output: ['values', 'indices'],
      attribute: [{ name: 'largest', type: 2, i: 1 }, { name: 'sorted', type: 2, i: 1 }, { name: 'axis', type: 2, i: 1 }],
    },
  ];
  return encodeModel({
    graphName: biased ? 'knn_biased_topk' : 'knn_gemm_topk',
    nodes,
    initializers: [],
    inputs: [
      { name: 'queries', shape: ['q', 'd'] },
      { name: 'tile', shape: ['n', 'd'] },
      ...(biased ? [{ name: 'bias', shape: ['n'] }] : []),
      { name: 'k', shape: [1], elemType: DataType.INT64 },
    ],
    outputs: [{ name: 'values', shape: ['q', 'kk'] }, { name: 'indices', shape: ['q', 'kk'], elemType: DataType.INT64 }],
    metadata: {},
    producerVersion: 'atelier',
  });
}

/** The GEMM kernel on onnxruntime, or the error that kept onnxruntime from loading. */
export async function openGemmKernel(threads: number, queriesPerCall = GEMM_QUERIES_PER_CALL): Promise<ExactKernel | Error> {
  const ort = await loadOrt();
  if (ort instanceof Error) return ort;
  // No arena: its blocks outlive the call, and knn's memory budget counts what a call holds.
  const session = await ort.InferenceSession.create(gemmTopKModel(false), { intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', enableCpuMemArena: false });
  return gemmKernel(ort, session, queriesPerCall);
}

function gemmKernel(ort: Ort, session: import('onnxruntime-node').InferenceSession, queriesPerCall: number): ExactKernel {
  const run = async (queries: Float32Array, rows: number, tile: Float32Array, tileRows: number, dim: number, count: number) => {
    const result = await session.run({
      queries: new ort.Tensor('float32', queries, [rows, dim]),
      tile: new ort.Tensor('float32', tile, [tileRows, dim]),
      k: new ort.Tensor('int64', BigInt64Array.of(BigInt(count)), [1]),
    });
    return { values: result.values.data as Float32Array, indices: result.indices.data as BigInt64Array };
  };
  return {
    name: 'gemm',
    kind: 'ip',
    async searchTile(s: TileSearch) {
      const { dim, heaps, tileRows, excludeSelf, tile } = s;
      const k = heaps.k;
      const count = Math.min(tileRows, 2 * k + 2);
      // A float32 sum of dim products is off by at most ~dim·2⁻²⁴·|q||g| (any order); twice that, to be safe.
      let tileNorm = 0;
      for (let j = 0; j < tileRows; j++) tileNorm = Math.max(tileNorm, squaredNorm(tile, j * dim, dim));
      const bound = (dim + 2) * 2 ** -23 * Math.sqrt(tileNorm);
      for (let q0 = 0; q0 < s.queryRows; q0 += queriesPerCall) {
        const rows = Math.min(queriesPerCall, s.queryRows - q0);
        const block = await run(s.queries.subarray(q0 * dim, (q0 + rows) * dim), rows, tile, tileRows, dim, count);
        for (let r = 0; r < rows; r++) {
          const q = q0 + r;
          const self = excludeSelf ? s.queryStart + q - s.tileStart : -1;
          const margin = bound * Math.sqrt(squaredNorm(s.queries, q * dim, dim));
          // Candidates come best first by their float32 score; each that may enter the heap is rescored
          // exactly as the other kernels score (float64 sum, rounded to float32), so results do not depend on
          // the GEMM's rounding.
          let values = block.values.subarray(r * count, (r + 1) * count);
          let indices = block.indices.subarray(r * count, (r + 1) * count);
          let t = 0;
          for (;;) {
            if (t === values.length) {
              if (values.length === tileRows) break;
              // Every candidate may still enter: this query takes the whole tile, sorted.
              const all = await run(s.queries.subarray(q * dim, (q + 1) * dim), 1, tile, tileRows, dim, tileRows);
              values = all.values;
              indices = all.indices;
              continue;
            }
            if (values[t] + margin < -heaps.worstDistance(q)) break;
            const j = Number(indices[t++]);
            if (j === self) continue;
            heaps.push(q, -Math.fround(dotRow(s.queries, q * dim, tile, j * dim, dim)), s.tileStart + j);
          }
        }
      }
    },
    toScore: (distance) => -distance,
  };
}

function squaredNorm(a: Float32Array, offset: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += a[offset + d] * a[offset + d];
  return s;
}

/** Row-wise top `count` of A·Bᵀ + bias: the nearest centroids of each row (IVF's coarse step). */
export interface ScoreTopK {
  /** For each row of `a`, the `count` rows of `b` with the highest a·b + bias[j], best first, ties to the lower row. */
  top(a: Float32Array, aRows: number, b: Float32Array, bRows: number, dim: number, bias: Float32Array, count: number): Promise<{ values: Float32Array; indices: Int32Array }>;
}

/** ScoreTopK on onnxruntime (MLAS SGEMM on `threads` cores), `GEMM_QUERIES_PER_CALL` rows of A a call; or the error that kept onnxruntime from loading. */
export async function openGemmScoreTopK(threads: number): Promise<ScoreTopK | Error> {
  const ort = await loadOrt();
  if (ort instanceof Error) return ort;
  const session = await ort.InferenceSession.create(gemmTopKModel(true), { intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', enableCpuMemArena: false });
  return {
    async top(a, aRows, b, bRows, dim, bias, count) {
      const values = new Float32Array(aRows * count);
      const indices = new Int32Array(aRows * count);
      const tile = new ort.Tensor('float32', b.subarray(0, bRows * dim), [bRows, dim]);
      const biasTensor = new ort.Tensor('float32', bias.subarray(0, bRows), [bRows]);
      const k = new ort.Tensor('int64', BigInt64Array.of(BigInt(count)), [1]);
      for (let r0 = 0; r0 < aRows; r0 += GEMM_QUERIES_PER_CALL) {
        const rows = Math.min(GEMM_QUERIES_PER_CALL, aRows - r0);
        const result = await session.run({ queries: new ort.Tensor('float32', a.subarray(r0 * dim, (r0 + rows) * dim), [rows, dim]), tile, bias: biasTensor, k });
        values.set(result.values.data as Float32Array, r0 * count);
        const found = result.indices.data as BigInt64Array;
        for (let i = 0; i < found.length; i++) indices[r0 * count + i] = Number(found[i]);
      }
      return { values, indices };
    },
  };
}

