// Downloaded images are verified by decoding them (a JPEG header on a truncated or non-image body
// proves nothing) and stored once per content: DIR/<first 2 hex>/<sha256>.<ext>, written atomically.
import { createHash } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage, type ImageSkipReason } from '../image/decode.js';
import { writeFileAtomic } from '../io/atomic.js';

export type StoredImage = { ok: true; sha256: string; path: string; bytes: number; alreadyStored: boolean };
export type RejectedImage = { ok: false; reason: ImageSkipReason; message: string };

/** File extension for the image format the bytes start with ('img' when unknown to us but decodable). */
export function imageExtension(bytes: Uint8Array): string {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return 'gif';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'webp';
  if (b.length >= 12 && b[4] === 0x66 && b[5] === 0x74 && b[6] === 0x79 && b[7] === 0x70) return 'avif';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 0x2a))) return 'tif';
  return 'img';
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Where an image with this hash and extension lives under `dir`. */
export function imagePathFor(dir: string, sha256: string, extension: string): string {
  return join(dir, sha256.slice(0, 2), `${sha256}.${extension}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Decodes `bytes` to check they are a whole image, then stores them by hash unless that content is already there. */
export async function verifyAndStoreImage(bytes: Uint8Array, dir: string, pixelLimit?: number): Promise<StoredImage | RejectedImage> {
  // A tiny decode target: libvips still reads every scanline, so truncation shows, but the resize is cheap.
  const decoded = await decodeImage(bytes, { width: 8, height: 8, pixelLimit });
  if (!decoded.ok) return { ok: false, reason: decoded.reason, message: decoded.message };
  const sha256 = sha256Hex(bytes);
  const path = imagePathFor(dir, sha256, imageExtension(bytes));
  if (await exists(path)) return { ok: true, sha256, path, bytes: bytes.length, alreadyStored: true };
  await mkdir(join(dir, sha256.slice(0, 2)), { recursive: true });
  await writeFileAtomic(path, bytes);
  return { ok: true, sha256, path, bytes: bytes.length, alreadyStored: false };
}
