// Atomic outputs: everything is written under a hidden temp name beside its target and renamed into
// place when complete, so a killed run leaves the old output or none, never a truncated one.
import { open, readdir, rename, rm, unlink, mkdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { dirname, join } from 'node:path';
import { UsageError } from '../command.js';
import { siblingTempPath, staleSiblingPid } from './paths.js';

/** An open temp file that becomes `path` on commit(). */
export interface AtomicFile {
  /** The destination. */
  path: string;
  /** Where the bytes are written until commit. */
  tempPath: string;
  handle: FileHandle;
  /** Flushes to disk, closes and renames the temp file onto `path`. */
  commit(): Promise<void>;
  /** Closes and deletes the temp file; `path` is left as it was. Safe to call twice or after commit. */
  abort(): Promise<void>;
}

/** A writable stream whose bytes appear at `path` only on commit(). */
export interface AtomicWriteStream {
  path: string;
  tempPath: string;
  stream: Writable;
  /** Ends the stream, waits for every byte to reach the file, then renames it into place. */
  commit(): Promise<void>;
  /** Destroys the stream and deletes the temp file. */
  abort(): Promise<void>;
}

/** A temp directory that replaces `finalDir` on commit(). */
export interface AtomicDirectory {
  finalDir: string;
  /** Write the directory's files here. */
  tmpDir: string;
  /** Moves an existing `finalDir` aside, renames `tmpDir` into place, then deletes the old one. */
  commit(): Promise<void>;
  /** Deletes `tmpDir`; `finalDir` is left as it was. */
  abort(): Promise<void>;
}

/** Turns the failures a user can fix (missing directory, no permission) into a UsageError naming the output. */
function outputOpenError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new UsageError(`cannot write here: directory '${dirname(path)}' does not exist`, { file: path });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new UsageError(`cannot write here: ${code === 'EROFS' ? 'read-only filesystem' : 'permission denied'}`, { file: path });
  return err;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Makes a rename durable across a power cut; not every filesystem lets a directory be fsynced, hence best effort. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort only
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Writes all of `bytes` at `position` (a single write may stop short). */
async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

// Directories already swept by this process: an image store writes thousands of files into one.
const sweptDirectories = new Set<string>();

/**
 * Removes the temp files and directories killed runs left in `path`'s directory (their names carry
 * the pid, and that process is gone), once per directory per process. A model moved aside by a run
 * killed mid-commit is put back when nothing took its place, so "the old output or none" holds. Best effort.
 */
export async function removeStaleSiblings(path: string): Promise<void> {
  const dir = dirname(path);
  if (sweptDirectories.has(dir)) return;
  sweptDirectories.add(dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const entry of names) {
    const stale = staleSiblingPid(entry);
    if (!stale || stale.pid === process.pid || processIsAlive(stale.pid)) continue;
    const sibling = join(dir, entry);
    if (stale.tag === 'old') {
      const restored = await rename(sibling, join(dir, stale.target)).then(
        () => true,
        () => false,
      );
      if (restored) continue;
    }
    await rm(sibling, { recursive: true, force: true }).catch(() => {});
  }
}

/** Opens a temp file beside `path` for writing; nothing appears at `path` until commit(). */
export async function openAtomicFile(path: string): Promise<AtomicFile> {
  await removeStaleSiblings(path);
  const tempPath = siblingTempPath(path);
  let handle: FileHandle;
  try {
    handle = await open(tempPath, 'wx');
  } catch (err) {
    throw outputOpenError(err, path);
  }
  let state: 'open' | 'committed' | 'aborted' = 'open';
  return {
    path,
    tempPath,
    handle,
    async commit() {
      if (state !== 'open') throw new Error(`atomic write of ${path} was already ${state}`);
      state = 'committed';
      try {
        await handle.sync();
        await handle.close();
        await rename(tempPath, path);
      } catch (err) {
        await handle.close().catch(() => {});
        await removeQuietly(tempPath).catch(() => {});
        throw err;
      }
      await syncDirectory(dirname(path));
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await handle.close().catch(() => {});
      await removeQuietly(tempPath);
    },
  };
}

/** Writes `data` to `path` atomically: a reader sees the old file or the complete new one. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const file = await openAtomicFile(path);
  try {
    await file.handle.writeFile(data);
  } catch (err) {
    await file.abort();
    throw err;
  }
  await file.commit();
}

/** Opens a write stream to a temp file beside `path`; commit() renames it into place. */
export async function openAtomicWriteStream(path: string): Promise<AtomicWriteStream> {
  const file = await openAtomicFile(path);
  // A plain Writable over the handle: fs write streams keep their own claim on a FileHandle, which
  // would stop commit() from fsyncing and closing it.
  let position = 0;
  const stream = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      writeFully(file.handle, chunk, position).then(() => {
        position += chunk.length;
        callback();
      }, callback);
    },
    writev(chunks, callback) {
      const joined = Buffer.concat(chunks.map((c) => c.chunk as Buffer));
      writeFully(file.handle, joined, position).then(() => {
        position += joined.length;
        callback();
      }, callback);
    },
  });
  let streamError: Error | null = null;
  stream.on('error', (err) => {
    streamError ??= err;
  });
  return {
    path,
    tempPath: file.tempPath,
    stream,
    async commit() {
      try {
        if (streamError) throw streamError;
        stream.end();
        await finished(stream);
      } catch (err) {
        await file.abort();
        throw err;
      }
      await file.commit();
    },
    async abort() {
      stream.destroy();
      await file.abort();
    },
  };
}

/**
 * Creates a temp directory beside `finalDir` (for a model or any multi-file output); commit() puts it
 * in place of `finalDir`. A run killed before or during commit leaves the old directory or none.
 */
export async function atomicDirectory(finalDir: string): Promise<AtomicDirectory> {
  await removeStaleSiblings(finalDir);
  const tmpDir = siblingTempPath(finalDir);
  try {
    await mkdir(tmpDir);
  } catch (err) {
    throw outputOpenError(err, finalDir);
  }
  let state: 'open' | 'committed' | 'aborted' = 'open';
  return {
    finalDir,
    tmpDir,
    async commit() {
      if (state !== 'open') throw new Error(`atomic write of ${finalDir} was already ${state}`);
      state = 'committed';
      const asidePath = siblingTempPath(finalDir, 'old');
      let movedAside = false;
      try {
        await rename(finalDir, asidePath);
        movedAside = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          await rm(tmpDir, { recursive: true, force: true });
          throw err;
        }
      }
      try {
        await rename(tmpDir, finalDir);
      } catch (err) {
        if (movedAside) await rename(asidePath, finalDir).catch(() => {});
        await rm(tmpDir, { recursive: true, force: true });
        throw err;
      }
      await syncDirectory(dirname(finalDir));
      if (movedAside) await rm(asidePath, { recursive: true, force: true });
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await rm(tmpDir, { recursive: true, force: true });
    },
  };
}
