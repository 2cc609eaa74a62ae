// Image records from NDJSON (`{id, image, ...}`) or bare paths, decoded ahead of use, with
// corrupt images skipped, warned about once each and counted.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { readNdjson, requireObject } from '../io/ndjson.js';
import { isStdio } from '../io/paths.js';
import { isRemotePath } from '../io/remote.js';
import { decodeImage, type DecodeOptions, type DecodedImage, type ImageRegion } from './decode.js';
import { prefetchImages } from './prefetch.js';
import { skipImage, type SkipCounter } from './skips.js';

export interface ImageRecord {
  /** The record's id (the `id` field, else the image path). */
  id: string;
  /** Resolved path of the image file. */
  path: string;
  /** The whole NDJSON record (empty for bare paths). */
  record: Record<string, unknown>;
  file: string;
  line: number;
}

/**
 * A relative image path is taken from the current directory when the file is there, else from the
 * directory of the NDJSON that names it (so a catalogue directory can be moved as a whole).
 */
export function resolveImagePath(imagePath: string, listFile: string): string {
  if (isRemotePath(imagePath) || isAbsolute(imagePath) || isStdio(listFile) || existsSync(imagePath)) return imagePath;
  const besideList = resolve(dirname(listFile), imagePath);
  return existsSync(besideList) ? besideList : imagePath;
}

/**
 * The image path as an output record carries it: resolved as `resolveImagePath` does, then made
 * absolute, so a reader in another directory (eval-classifier's false negatives, the report)
 * finds the same file.
 */
export function recordedImagePath(imagePath: string, listFile: string): string {
  if (isRemotePath(imagePath)) return imagePath;
  return resolve(resolveImagePath(imagePath, listFile));
}

/** Streams image records from an NDJSON file (or stdin) whose `imageField` names an image path. */
export async function* readImageRecords(path: string, imageField: string, idField: string, stdin?: NodeJS.ReadableStream): AsyncGenerator<ImageRecord> {
  for await (const { value, line, file } of readNdjson(path, { stdin })) {
    const record = requireObject(value, { file, line });
    const image = record[imageField];
    if (typeof image !== 'string' || image === '') {
      throw new UsageError(`expected an image path (string), got ${image === undefined ? 'nothing' : JSON.stringify(image)}`, { file, line, field: imageField });
    }
    const rawId = record[idField];
    const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : image;
    yield { id, path: resolveImagePath(image, path), record, file, line };
  }
}

/** Bare paths given as arguments, as image records. */
export function* pathRecords(paths: string[]): Generator<ImageRecord> {
  for (const [i, path] of paths.entries()) yield { id: path, path, record: {}, file: 'arguments', line: i + 1 };
}

export interface DecodedRecord extends ImageRecord {
  image: DecodedImage;
}

/** Decodes records ahead of the consumer, in order; corrupt images are skipped with one warning each. */
export async function* decodeRecords(
  records: AsyncIterable<ImageRecord> | Iterable<ImageRecord>,
  options: DecodeOptions,
  skips: SkipCounter,
  io: { stderr: NodeJS.WritableStream },
  commandName: string,
  regionOf?: (r: ImageRecord) => ImageRegion | undefined,
): AsyncGenerator<DecodedRecord> {
  const decoded = prefetchImages(records, async (r) => ({ r, result: await decodeImage(r.path, { ...options, region: regionOf?.(r) }) }), { concurrency: 4, ahead: 64 });
  for await (const { r, result } of decoded) {
    if (result.ok) yield { ...r, image: result.image };
    else skipImage(skips, io, commandName, r.path, result);
  }
}

/** HWC floats in [0, 1] back to bytes (exact for images sharp decoded). */
export function imageToBytes(image: DecodedImage): Uint8Array {
  const bytes = new Uint8Array(image.data.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(image.data[i] * 255);
  return bytes;
}
