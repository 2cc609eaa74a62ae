// Inputs of a facet or similarity model: labelled records matched to precomputed feature rows, or
// their images decoded once into memory (bytes at the stored size, for random crops), corrupt ones
// skipped and counted.
import { resolveImagePath, decodeRecords, imageToBytes, type ImageRecord } from '../image/records.js';
import type { SkipCounter } from '../image/skips.js';
import { storedSizeFor } from '../models/image-features.js';
import { inputSides, type ImageStore, type InputShape } from '../image/batch.js';
import type { ImageFit } from '../image/decode.js';
import { UsageError } from '../command.js';

export interface ImageSource {
  id: string;
  record: Record<string, unknown>;
  file: string;
  line: number;
}

/** The image record of a labelled record: its image field resolved beside the file naming it. */
export function imageRecordOf(source: ImageSource, imageField: string): ImageRecord {
  const image = source.record[imageField];
  if (typeof image !== 'string' || image === '') {
    throw new UsageError(`expected an image path (string), got ${image === undefined ? 'nothing' : JSON.stringify(image)}`, { file: source.file, line: source.line, field: imageField });
  }
  return { id: source.id, path: resolveImagePath(image, source.file), record: source.record, file: source.file, line: source.line };
}

/**
 * Decodes the images of `sources` at the stored size for `inputSize`; returns the store and, for
 * each stored image, the index of its source. Undecodable images are skipped (one warning each).
 */
export async function decodeImageStore(
  sources: ImageSource[],
  imageField: string,
  inputSize: InputShape,
  skips: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  commandName: string,
  onImage?: () => void,
  fit: ImageFit = 'cover',
): Promise<{ store: ImageStore; sourceIndex: number[] }> {
  const sides = inputSides(inputSize);
  const stored = { height: storedSizeFor(sides.height), width: storedSizeFor(sides.width) };
  const indexOf = new Map<ImageSource['record'], number>(sources.map((s, i) => [s.record, i]));
  const records = sources.map((s) => imageRecordOf(s, imageField));
  const pixels: Uint8Array[] = [];
  const sourceIndex: number[] = [];
  for await (const r of decodeRecords(records, { width: stored.width, height: stored.height, fit }, skips, io, commandName)) {
    pixels.push(imageToBytes(r.image));
    sourceIndex.push(indexOf.get(r.record)!);
    onImage?.();
  }
  return { store: { pixels, storedSize: stored.height, storedWidth: stored.width }, sourceIndex };
}
