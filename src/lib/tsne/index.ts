// t-SNE: affinities, the Barnes-Hut optimiser, map quality measures and map pictures.
export { calibrateRow, denseAffinities, nearestNeighbors, pairwiseSquaredDistances, sparseAffinities } from './affinities.js';
export type { SparseAffinities } from './affinities.js';
export { barnesHutGradient, exactGradient, exactKl, maxPerplexity, sparseKl, tsne, tsneAffinities } from './embed.js';
export type { TsneOptions, TsneResult } from './embed.js';
export { QuadTree } from './quadtree.js';
export { neighborLabelAgreement, neighborLists, neighborPreservation, trustworthiness } from './quality.js';
export { canvasPlacements, labelScatterSvg, renderThumbnailMap } from './map.js';
export type { ThumbnailMapOptions } from './map.js';
