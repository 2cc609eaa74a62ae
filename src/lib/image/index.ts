// The image library: decode (sharp), skip accounting, prefetch pool and batching.
export {
  DEFAULT_PIXEL_LIMIT,
  decodeImage,
  stackImages,
  imageToTensor,
  imagesToTensor,
  type DecodeOptions,
  type DecodeResult,
  type DecodedImage,
  type ImageFailure,
  type ImageFit,
  type ImageInput,
  type ImageSkipReason,
} from './decode.js';
export {
  SKIP_REASON_WORDS,
  createSkipCounter,
  describeSkip,
  skipImage,
  writeSkipSummary,
  type SkipCounter,
  type SkippedImage,
} from './skips.js';
export { prefetchImages, batches, type PrefetchOptions } from './prefetch.js';
