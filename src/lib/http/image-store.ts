// Downloaded images are verified by decoding them (a JPEG header on a truncated or non-image body
// proves nothing) the first time their content is seen, and stored once per content:
// DIR/<first 2 hex>/<sha256>.<ext>, written atomically.
import { createHash } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';
import { decodeImage, DEFAULT_PIXEL_LIMIT, type ImageSkipReason } from '../image/decode.js';
import { writeFileAtomic } from '../io/atomic.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

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

// Below this many bytes a full-size decode is cheaper than libvips setting up a resize; above it,
// an 8x8 resize lets JPEG shrink-on-load skip most of the IDCT work (every scanline is still read).
const FULL_DECODE_MAX_BYTES = 48 * 1024;

/** True when sharp decodes every pixel of `bytes` without error (a truncated file fails: sharp's failOn is 'warning'). */
async function decodesCompletely(bytes: Uint8Array, pixelLimit: number): Promise<boolean> {
  try {
    const pipeline = sharp(bytes, { limitInputPixels: pixelLimit });
    if (bytes.length > FULL_DECODE_MAX_BYTES) pipeline.resize(8, 8, { fit: 'outside' });
    await pipeline.raw().toBuffer();
    return true;
  } catch {
    return false;
  }
}

/** Hashes known to be stored in one image directory, so a repeated image costs no file-system check. */
export interface StoredHashes {
  has(sha256: string): boolean;
  add(sha256: string): void;
}

/** A StoredHashes that remembers the `limit` most recently added hashes (memory stays bounded). */
export function recentStoredHashes(limit: number): StoredHashes {
  const hashes = new Set<string>();
  return {
    has: (sha256) => hashes.has(sha256),
    add(sha256) {
      hashes.delete(sha256);
      hashes.add(sha256);
      // A Set iterates in insertion order: its first value is the least recently added.
      if (hashes.size > limit) hashes.delete(hashes.values().next().value!);
    },
  };
}

/**
 * Stores `bytes` by hash unless that content is already there. New content is decoded first to check it
 * is a whole image; content already stored was checked when it was stored, so it is not decoded again.
 * `stored` (optional) remembers what this directory holds across calls.
 */
export async function verifyAndStoreImage(bytes: Uint8Array, dir: string, pixelLimit?: number, stored?: StoredHashes): Promise<StoredImage | RejectedImage> {
  const sha256 = sha256Hex(bytes);
  const path = imagePathFor(dir, sha256, imageExtension(bytes));
  if (bytes.length > 0 && (stored?.has(sha256) || (await exists(path)))) {
    stored?.add(sha256);
    return { ok: true, sha256, path, bytes: bytes.length, alreadyStored: true };
  }
  if (bytes.length === 0 || !(await decodesCompletely(bytes, pixelLimit ?? DEFAULT_PIXEL_LIMIT))) {
    // The failure path only: decodeImage names the reason (truncated, not-an-image, too-large, ...).
    const decoded = await decodeImage(bytes, { width: 8, height: 8, pixelLimit });
    if (!decoded.ok) return { ok: false, reason: decoded.reason, message: decoded.message };
  }
  await mkdir(join(dir, sha256.slice(0, 2)), { recursive: true });
  await writeFileAtomic(path, bytes);
  stored?.add(sha256);
  return { ok: true, sha256, path, bytes: bytes.length, alreadyStored: false };
}
