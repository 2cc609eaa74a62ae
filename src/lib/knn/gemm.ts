// The GEMM kernel: a query block against a gallery tile as one matrix product, scores = Q·Gᵀ
// (onnxruntime's Gemm, MLAS's packed SIMD SGEMM on `threads` cores), then TopK per query inside the
// same graph, so only k+2 candidates a query cross into JavaScript. Inner product only (cosine and
// dot); faiss's IndexFlatIP does the same, a BLAS sgemm and a heap.
import { encodeModel, DataType, type NodeInit } from '../onnx/proto.js';
import { loadOrt } from '../onnx/runtime.js';
import type { ExactKernel, TileSearch } from './kernel.js';

type Ort = typeof import('onnxruntime-node');

/** Queries per Gemm call: a 256 x 4096 score matrix (4 MiB) plus MLAS's packed panels stay small. */
export const GEMM_QUERIES_PER_CALL = 256;

/** scores [q, n] = Q [q, d] · G [n, d]ᵀ; values, indices = TopK(scores, K), largest first, ties to the lower index. */
function scoreTopKModel(): Uint8Array {
  const nodes: NodeInit[] = [
    { opType: 'Gemm', name: 'scores', input: ['queries', 'tile'], output: ['scores'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
    {
      opType: 'TopK',
      name: 'topk',
      input: ['scores', 'k'],
      output: ['values', 'indices'],
      attribute: [{ name: 'largest', type: 2, i: 1 }, { name: 'sorted', type: 2, i: 1 }, { name: 'axis', type: 2, i: 1 }],
    },
  ];
  return encodeModel({
    graphName: 'knn_gemm_topk',
    nodes,
    initializers: [],
    inputs: [{ name: 'queries', shape: ['q', 'd'] }, { name: 'tile', shape: ['n', 'd'] }, { name: 'k', shape: [1], elemType: DataType.INT64 }],
    outputs: [{ name: 'values', shape: ['q', 'kk'] }, { name: 'indices', shape: ['q', 'kk'], elemType: DataType.INT64 }],
    metadata: {},
    producerVersion: 'atelier',
  });
}

/** The GEMM kernel on onnxruntime, or the error that kept onnxruntime from loading. */
export async function openGemmKernel(threads: number, queriesPerCall = GEMM_QUERIES_PER_CALL): Promise<ExactKernel | Error> {
  const ort = await loadOrt();
  if (ort instanceof Error) return ort;
  const session = await ort.InferenceSession.create(scoreTopKModel(), { intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
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
      const { dim, heaps, tileRows, excludeSelf } = s;
      const k = heaps.k;
      // k + 1 tells a tie at the k-th place; + 1 more when the query itself may be among them.
      const count = Math.min(tileRows, k + (excludeSelf ? 2 : 1));
      for (let q0 = 0; q0 < s.queryRows; q0 += queriesPerCall) {
        const rows = Math.min(queriesPerCall, s.queryRows - q0);
        const { values, indices } = await run(s.queries.subarray(q0 * dim, (q0 + rows) * dim), rows, s.tile, tileRows, dim, count);
        for (let r = 0; r < rows; r++) {
          const q = q0 + r;
          const self = excludeSelf ? s.queryStart + q - s.tileStart : -1;
          const base = r * count;
          if (count < tileRows) {
            let kept = 0;
            let kth = NaN;
            for (let t = 0; t < count; t++) {
              if (Number(indices[base + t]) === self) continue;
              if (++kept === k) kth = values[base + t];
            }
            if (kept > k && values[base + count - 1] === kth) {
              // The list ends in a tie: rows past it may tie too, so this query takes the whole tile.
              const all = await run(s.queries.subarray(q * dim, (q + 1) * dim), 1, s.tile, tileRows, dim, tileRows);
              for (let t = 0; t < tileRows; t++) {
                const j = Number(all.indices[t]);
                if (j !== self) heaps.push(q, -all.values[t], s.tileStart + j);
              }
              continue;
            }
          }
          let worst = heaps.worstDistance(q);
          for (let t = 0; t < count; t++) {
            // Smaller is closer: the score is negated. Candidates come best first, ties to the lower row.
            const distance = -values[base + t];
            if (distance > worst) break;
            const j = Number(indices[base + t]);
            if (j === self) continue;
            heaps.push(q, distance, s.tileStart + j);
            worst = heaps.worstDistance(q);
          }
        }
      }
    },
    toScore: (distance) => -distance,
  };
}
