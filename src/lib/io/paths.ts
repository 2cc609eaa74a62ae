// Path conventions shared by every reader and writer: `-` is stdin/stdout, temp files sit beside their target.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from '../command.js';

/** The path a user types for stdin (when reading) or stdout (when writing). */
export const STDIO_PATH = '-';

export function isStdio(path: string): boolean {
  return path === STDIO_PATH;
}

/** The name error messages use for an input: the path as given, or 'stdin' for `-`. */
export function inputDisplayName(path: string): string {
  return isStdio(path) ? 'stdin' : path;
}

/** Lower-case extension without the dot ('' when none); a trailing `.gz` is not special. */
export function extensionOf(path: string): string {
  return extname(path).slice(1).toLowerCase();
}

/**
 * A hidden sibling name `.name.<tag>-<pid>-<random>` in the same directory, so a rename onto the
 * target stays on one filesystem (and so is atomic); the pid tells whose leftover it is.
 */
export function siblingTempPath(path: string, tag: 'tmp' | 'old' = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** The target, tag and pid of `entry` when it is a temp name siblingTempPath makes, else null. */
export function staleSiblingPid(entry: string): { target: string; tag: 'tmp' | 'old'; pid: number } | null {
  const match = /^\.(.+)\.(tmp|old)-(\d+)-[0-9a-f]{8}$/.exec(entry);
  return match ? { target: match[1]!, tag: match[2] as 'tmp' | 'old', pid: Number(match[3]) } : null;
}

/** Turns the open failures a user can fix into a UsageError naming the input. */
export function inputOpenError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    ENOENT: 'no such file',
    ENOTDIR: 'no such file (a parent is not a directory)',
    EISDIR: 'is a directory, not a file',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
  };
  const reason = code ? reasons[code] : undefined;
  return reason ? new UsageError(reason, { file: path }) : err;
}

/** Fails now, as openInputStream would later, when `path` (not `-`) cannot be read: checked before slow work starts. */
export async function checkInputFile(path: string): Promise<void> {
  if (isStdio(path)) return;
  ((await openInputStream(path)) as NodeJS.ReadableStream & { destroy(): void }).destroy();
}

/** A byte stream of `path`, or of `stdin` for `-`; opened eagerly so a missing file fails here, clearly. */
export async function openInputStream(path: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<NodeJS.ReadableStream> {
  if (isStdio(path)) return stdin;
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
    const info = await handle.stat();
    if (info.isDirectory()) {
      await handle.close();
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
  } catch (err) {
    throw inputOpenError(err, path);
  }
  return handle.createReadStream({ highWaterMark: 256 * 1024 });
}

/** The directory of atelier's package.json, found upward from a module, so the same code runs from dist/src and from src. */
export function packageRoot(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
  return dir;
}

/**
 * A compiled script beside a module (a worker thread's entry): Node runs JavaScript only, so a module
 * run from its .ts source (the test runner transforms sources in memory) starts the copy tsc wrote to dist/.
 */
export function compiledSibling(moduleUrl: string, file: string): URL {
  const url = new URL(file, moduleUrl);
  if (!moduleUrl.endsWith('.ts')) return url;
  const root = packageRoot(moduleUrl);
  return pathToFileURL(join(root, 'dist', relative(root, fileURLToPath(url))));
}
