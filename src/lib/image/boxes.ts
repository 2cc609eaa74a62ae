// Garment boxes on images: {x, y, w, h} in pixels of the source image (x, y the top-left corner),
// as train-locate reads them, locate writes them and embed --crop uses them; and images decoded
// whole (stretched to a square) with their source size, so a box converts to and from fractions.
import { UsageError } from '../command.js';
import { readNdjson, requireObject } from '../io/ndjson.js';
import { decodeImage, type ImageRegion } from './decode.js';
import { imageToBytes, type ImageRecord } from './records.js';
import { prefetchImages } from './prefetch.js';
import { skipImage, type SkipCounter } from './skips.js';
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

export interface PixelBox { x: number; y: number; w: number; h: number }

/** The box fields of a record; null when it has none of them; a UsageError when they are partial or wrong. */
export function boxOfRecord(record: Record<string, unknown>, place: { file: string; line: number }): PixelBox | null {
  const keys = ['x', 'y', 'w', 'h'] as const;
  if (keys.every((k) => record[k] === undefined)) return null;
  for (const k of keys) {
    const v = record[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageError(`expected a number (box in pixels), got ${v === undefined ? 'nothing' : JSON.stringify(v)}`, { ...place, field: k });
    if ((k === 'w' || k === 'h') && !(v > 0)) throw new UsageError(`box side must be positive, got ${v}`, { ...place, field: k });
  }
  return { x: record.x as number, y: record.y as number, w: record.w as number, h: record.h as number };
}

/** id -> box from an NDJSON of {id, x, y, w, h} (locate's output); a repeated id is an error. */
export async function readBoxes(path: string, idField = 'id', stdin?: NodeJS.ReadableStream): Promise<Map<string, PixelBox>> {
  const boxes = new Map<string, PixelBox>();
  for await (const { value, line, file } of readNdjson(path, { stdin })) {
    const record = requireObject(value, { file, line });
    const id = record[idField];
    if (typeof id !== 'string' && typeof id !== 'number') throw new UsageError(`expected an id, got ${id === undefined ? 'nothing' : JSON.stringify(id)}`, { file, line, field: idField });
    const box = boxOfRecord(record, { file, line });
    if (!box) throw new UsageError('expected a box: x, y, w, h in pixels', { file, line, field: 'x' });
    if (boxes.has(String(id))) throw new UsageError(`id ${JSON.stringify(String(id))} has a box already`, { file, line, field: idField });
    boxes.set(String(id), box);
  }
  return boxes;
}

/** The box as a region to cut out before resizing. */
export function boxRegion(box: PixelBox): ImageRegion {
  return { left: box.x, top: box.y, width: box.w, height: box.h };
}

/** The upright size (EXIF orientation applied) of an image file; null when its header gives none. */
export async function uprightImageSize(path: string): Promise<{ width: number; height: number } | null> {
  const meta = await sharp(path, { autoOrient: true }).metadata();
  const size = meta.autoOrient ?? { width: meta.width, height: meta.height };
  return size.width && size.height ? { width: size.width, height: size.height } : null;
}

export interface SquareImage<R> { item: R; pixels: Uint8Array; sourceWidth: number; sourceHeight: number }

/** Decodes each image stretched to side x side, with its upright source size; corrupt ones skipped with a warning. */
export async function* decodeSquareImages<R extends ImageRecord>(
  records: Iterable<R> | AsyncIterable<R>, side: number, skips: SkipCounter, io: { stderr: NodeJS.WritableStream }, commandName: string,
): AsyncGenerator<SquareImage<R>> {
  const decoded = prefetchImages(records, async (r) => {
    const result = await decodeImage(r.path, { width: side, height: side, fit: 'fill' });
    if (!result.ok) return { r, result, size: null };
    return { r, result, size: (await uprightImageSize(r.path)) ?? { width: side, height: side } };
  }, { concurrency: 4, ahead: 64 });
  for await (const { r, result, size } of decoded) {
    if (result.ok && size) yield { item: r, pixels: imageToBytes(result.image), sourceWidth: size.width, sourceHeight: size.height };
    else if (!result.ok) skipImage(skips, io, commandName, r.path, result);
  }
}
