// Nearest-neighbour search: exact (streamed, memory-bounded) and HNSW, label vote, retrieval partitions.
export { METRICS, arrayVectorSource, assertFiniteRows, assertSameDimension, gatherRows, isMetric, normalizeRows, openNpyVectorSource } from './source.js';
export type { Metric, VectorSource } from './source.js';
export { TopKHeaps } from './topk.js';
export { KERNEL_NAMES, chooseExactKernel, createExactKernel, distanceKindOf, dotTile, loadUsearch, scoreTile, squaredDistanceTile, typedArrayKernel, usearchKernel } from './kernel.js';
export type { DistanceKind, ExactKernel, KernelName } from './kernel.js';
export { DEFAULT_MEMORY_BYTES, DEFAULT_TILE_ROWS, exactNeighbors, kernelScratchBytes, planExactSearch, planExactSearchFor, searchWithKernel } from './exact.js';
export type { ExactPlanCosts, ExactSearchOptions, ExactSearchPlan, NeighborBlock } from './exact.js';
export { DEFAULT_HNSW, buildHnswIndex, createHnswIndex, hnswNeighbors, openUsearchFile } from './hnsw.js';
export type { HnswIndex, HnswParameters } from './hnsw.js';
export { HNSW_FILES, assertIndexDimension, assertIndexMetric, assertIndexedGallery, buildSavedIndex, fileSha256, openSavedIndex, readHnswMeta, rowsSha256Of } from './saved-index.js';
export type { HnswMeta, IdList, SavedIndex } from './saved-index.js';
export { labelVote, voteWeight } from './vote.js';
export type { LabelVote } from './vote.js';
export { PartitionLookup, SPLITS, readRetrievalPartition } from './partition.js';
export type { PartitionEntry, RetrievalPartition, RetrievalSplit } from './partition.js';
export { formatByteSize, parseByteSize } from './budget.js';
export { assertIdsMatchRows, assertUniqueIds, readRowIds } from '../io/features.js';
export type { RowIds } from '../io/features.js';
