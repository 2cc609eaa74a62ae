// Atomic outputs: everything is written under a hidden temp name beside its target and renamed into
// place when complete, so a killed run leaves the old output or none, never a truncated one.
// An output that already exists as a device, FIFO or socket (/dev/null, /dev/stdout, a named pipe)
// is written in place instead: renaming onto it would replace the device for the whole machine.
import { access, constants, open, rename, rm, unlink, mkdir, stat, mkdtemp, readdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { extensionOf, isStdio, siblingTempPath, staleSiblingPid } from './paths.js';

/** An open temp file that becomes `path` on commit(). */
export interface AtomicFile {
  /** The destination. */
  path: string;
  /** Where the bytes are written until commit. */
  tempPath: string;
  handle: FileHandle;
  /** True when `path` is a device, FIFO or socket written in place: write in order, without positions. */
  direct: boolean;
  /** Flushes to disk and closes the temp file, ready for commit(); an OutputGroup renames it later. */
  finish(): Promise<void>;
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
  /** Ends the stream and waits for every byte to reach the file, ready for commit(). */
  finish(): Promise<void>;
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

/** True when `path` exists and is neither a regular file nor a directory (following links, as /dev/stdout is one). */
export async function isSpecialFile(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    return !info.isFile() && !info.isDirectory();
  } catch {
    return false;
  }
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

/** Writes all of `bytes` at `position`, or in order where `position` is null (a single write may stop short). */
async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number | null): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position === null ? null : position + done);
    done += bytesWritten;
  }
}

/** Whether a process with this pid exists (signal 0; EPERM means it exists under another user). */
export function processIsAlive(pid: number): boolean {
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

/** Opens a device, FIFO or socket `path` for writing in place; commit() and abort() only close it. */
async function openDirectFile(path: string): Promise<AtomicFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'w');
  } catch (err) {
    // a socket cannot be opened as a file (ENXIO)
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') throw new UsageError('cannot write here: not a file, device or FIFO that can be opened', { file: path });
    throw outputOpenError(err, path);
  }
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return { path, tempPath: path, handle, direct: true, finish: close, commit: close, abort: () => close().catch(() => {}) };
}

/**
 * A seekable temp file in the system temp directory whose bytes are copied in order into the
 * device or FIFO `path` on commit(): for formats that patch their header last (.npy).
 */
async function openSpooledFile(path: string): Promise<AtomicFile> {
  const spoolDir = await mkdtemp(join(tmpdir(), 'atelier-spool-'));
  const tempPath = join(spoolDir, 'data');
  const handle = await open(tempPath, 'w+');
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const cleanup = async () => {
    await handle.close().catch(() => {});
    await rm(spoolDir, { recursive: true, force: true });
  };
  return {
    path,
    tempPath,
    handle,
    direct: false,
    async finish() {},
    async commit() {
      if (state !== 'open') throw new Error(`atomic write of ${path} was already ${state}`);
      state = 'committed';
      try {
        const target = await openDirectFile(path);
        try {
          const chunk = Buffer.allocUnsafe(1024 * 1024);
          for (let position = 0; ; ) {
            const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
            if (bytesRead === 0) break;
            await writeFully(target.handle, chunk.subarray(0, bytesRead), null);
            position += bytesRead;
          }
        } finally {
          await target.commit();
        }
      } finally {
        await cleanup();
      }
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await cleanup();
    },
  };
}

/**
 * Opens a temp file beside `path` for writing; nothing appears at `path` until commit(). Where
 * `path` is a device, FIFO or socket it is written in place (`direct`), or, with `seekable`, through
 * a spool file copied into it on commit().
 */
export async function openAtomicFile(path: string, opts: { seekable?: boolean; outputs?: OutputGroup } = {}): Promise<AtomicFile> {
  const file = await openFileOutput(path, opts.seekable ?? false);
  return opts.outputs ? opts.outputs.adopt(file) : file;
}

async function openFileOutput(path: string, seekable: boolean): Promise<AtomicFile> {
  if (await isSpecialFile(path)) return seekable ? openSpooledFile(path) : openDirectFile(path);
  await removeStaleSiblings(path);
  const tempPath = siblingTempPath(path);
  let handle: FileHandle;
  try {
    handle = await open(tempPath, 'wx');
  } catch (err) {
    throw outputOpenError(err, path);
  }
  let state: 'open' | 'finished' | 'committed' | 'aborted' = 'open';
  const file: AtomicFile = {
    path,
    tempPath,
    handle,
    direct: false,
    async finish() {
      if (state !== 'open') return;
      try {
        await handle.sync();
        await handle.close();
        state = 'finished';
      } catch (err) {
        state = 'aborted';
        await handle.close().catch(() => {});
        await removeQuietly(tempPath).catch(() => {});
        throw err;
      }
    },
    async commit() {
      if (state === 'committed' || state === 'aborted') throw new Error(`atomic write of ${path} was already ${state}`);
      await file.finish();
      state = 'committed';
      try {
        await rename(tempPath, path);
      } catch (err) {
        await removeQuietly(tempPath).catch(() => {});
        throw err;
      }
      await syncDirectory(dirname(path));
    },
    async abort() {
      if (state === 'committed' || state === 'aborted') return;
      if (state === 'open') await handle.close().catch(() => {});
      state = 'aborted';
      await removeQuietly(tempPath);
    },
  };
  return file;
}

/**
 * Writes `data` to `path` atomically: a reader sees the old file or the complete new one. With
 * `outputs`, the file waits under its temp name until the group commits.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, outputs?: OutputGroup): Promise<void> {
  const file = await openAtomicFile(path);
  try {
    await file.handle.writeFile(data);
    await file.finish();
  } catch (err) {
    await file.abort();
    throw err;
  }
  if (outputs) outputs.adopt(file);
  else await file.commit();
}

/** Opens a write stream to a temp file beside `path`; commit() renames it into place. */
export async function openAtomicWriteStream(path: string, outputs?: OutputGroup): Promise<AtomicWriteStream> {
  const file = await openAtomicFile(path);
  // A plain Writable over the handle: fs write streams keep their own claim on a FileHandle, which
  // would stop commit() from fsyncing and closing it.
  let position = 0;
  const at = () => (file.direct ? null : position);
  const stream = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      writeFully(file.handle, chunk, at()).then(() => {
        position += chunk.length;
        callback();
      }, callback);
    },
    writev(chunks, callback) {
      const joined = Buffer.concat(chunks.map((c) => c.chunk as Buffer));
      writeFully(file.handle, joined, at()).then(() => {
        position += joined.length;
        callback();
      }, callback);
    },
  });
  let streamError: Error | null = null;
  stream.on('error', (err) => {
    streamError ??= err;
  });
  let ended = false;
  const output: AtomicWriteStream = {
    path,
    tempPath: file.tempPath,
    stream,
    async finish() {
      if (ended) return;
      ended = true;
      try {
        if (streamError) throw streamError;
        stream.end();
        await finished(stream);
        await file.finish();
      } catch (err) {
        await file.abort();
        throw err;
      }
    },
    async commit() {
      await output.finish();
      await file.commit();
    },
    async abort() {
      stream.destroy();
      await file.abort();
    },
  };
  return outputs ? outputs.adopt(output) : output;
}

/**
 * The outputs of one run, kept under their temp names until commitAll() renames them one after the
 * other, so a run that fails (or is killed) before its end leaves every earlier output as it was.
 */
export class OutputGroup {
  private pending: Array<{ commit(): Promise<void>; abort(): Promise<void> }> = [];

  /**
   * Takes over the commit of `output`: the copy returned commits only as far as `finish` (when it
   * has one: bytes on disk, file closed); the rename waits for commitAll().
   */
  adopt<T extends { commit(): Promise<void>; abort(): Promise<void>; finish?(): Promise<void> }>(output: T): T {
    this.pending.push({ commit: () => output.commit(), abort: () => output.abort() });
    return { ...output, commit: async () => output.finish?.() };
  }

  /** Commits every output in the order added; after a failure the rest are aborted. */
  async commitAll(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const [i, output] of pending.entries()) {
      try {
        await output.commit();
      } catch (err) {
        for (const rest of pending.slice(i + 1)) await rest.abort().catch(() => {});
        throw err;
      }
    }
  }

  /** Deletes every temp output; the targets are left as they were. */
  async abortAll(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const output of pending) await output.abort().catch(() => {});
  }
}

/**
 * Creates a temp directory beside `finalDir` (for a model or any multi-file output); commit() puts it
 * in place of `finalDir`. A run killed before or during commit leaves the old directory or none.
 */
export async function atomicDirectory(finalDir: string, outputs?: OutputGroup): Promise<AtomicDirectory> {
  const existing = await stat(finalDir).catch(() => null);
  if (existing && !existing.isDirectory()) throw new UsageError('exists and is not a directory; refusing to replace it', { file: finalDir });
  await removeStaleSiblings(finalDir);
  const tmpDir = siblingTempPath(finalDir);
  try {
    await mkdir(tmpDir);
  } catch (err) {
    throw outputOpenError(err, finalDir);
  }
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const directory: AtomicDirectory = {
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
  return outputs ? outputs.adopt(directory) : directory;
}

/**
 * A directory written through atomicDirectory: `write` fills the temp directory, which then takes
 * `finalDir`'s place; on any failure the temp directory goes and `finalDir` stays as it was.
 */
export async function writeAtomicDirectory<T>(finalDir: string, write: (tmpDir: string) => Promise<T>, outputs?: OutputGroup): Promise<T> {
  const dir = await atomicDirectory(finalDir, outputs);
  try {
    const result = await write(dir.tmpDir);
    await dir.commit();
    return result;
  } catch (err) {
    await dir.abort();
    throw err;
  }
}

// ---- checks run before any work, so a wrong output path costs no time ----------------------------

async function statOrNull(path: string) {
  return stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
    throw err;
  });
}

/** `dir` must be a directory this process may create files in; the error names `path`, the output. */
async function requireWritableDirectory(dir: string, path: string, field: string): Promise<void> {
  const info = await statOrNull(dir);
  if (!info) throw new UsageError(`cannot write here: directory '${dir}' does not exist`, { file: path, field });
  if (!info.isDirectory()) throw new UsageError(`cannot write here: '${dir}' is not a directory`, { file: path, field });
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new UsageError(`cannot write here: permission denied in '${dir}'`, { file: path, field });
  }
}

/** Where a missing directory output would be made with mkdir -p: its nearest existing ancestor must be writable. */
async function requireCreatableDirectory(path: string, field: string): Promise<void> {
  let dir = resolve(path);
  while (!(await statOrNull(dir))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  await requireWritableDirectory(dir, path, field);
}

/**
 * Checks up front that the file output `path` of option `field` can be written: `-` (stdout) and an
 * existing device or FIFO pass (unless `regular`: a file read back or deleted later); otherwise not a
 * directory, an existing writable parent, and one of `extensions` when given (e.g. ['png', 'svg']).
 */
export async function checkFileOutput(path: string | undefined, field: string, opts: { extensions?: readonly string[]; regular?: boolean } = {}): Promise<void> {
  if (path === undefined || isStdio(path)) return;
  if (path === '') throw new UsageError('expected a file name, got an empty string', { field });
  const info = await statOrNull(path);
  if (info?.isDirectory()) throw new UsageError('is a directory; expected a file name', { file: path, field });
  if (info && !info.isFile()) {
    if (opts.regular) throw new UsageError('is a device, FIFO or socket; expected a regular file', { file: path, field });
    return;
  }
  if (opts.extensions && !opts.extensions.includes(extensionOf(path))) {
    throw new UsageError(`expected a file name ending in ${opts.extensions.map((e) => '.' + e).join(' or ')}`, { file: path, field });
  }
  await requireWritableDirectory(dirname(path), path, field);
}

/** Checks up front that `path` can be used as an output directory (made if missing, kept if present). */
export async function checkDirOutput(path: string | undefined, field: string): Promise<void> {
  if (path === undefined) return;
  if (path === '') throw new UsageError('expected a directory name, got an empty string', { field });
  const info = await statOrNull(path);
  if (info && !info.isDirectory()) throw new UsageError('exists and is not a directory', { file: path, field });
  if (info) await requireWritableDirectory(path, path, field);
  else await requireCreatableDirectory(path, field);
}

/**
 * Checks up front that the directory output `path`, replaced as a whole at the end, may be replaced:
 * it is missing, empty, or holds `marker` (a file only our own outputs of this kind have).
 */
export async function checkReplaceableDirOutput(path: string | undefined, field: string, marker: string, what: string): Promise<void> {
  if (path === undefined) return;
  if (path === '') throw new UsageError('expected a directory name, got an empty string', { field });
  const info = await statOrNull(path);
  if (info && !info.isDirectory()) throw new UsageError(`exists and is not ${what}; refusing to replace it`, { file: path, field });
  if (info) {
    const entries = await readdir(path);
    if (entries.length > 0 && !entries.includes(marker)) throw new UsageError(`is a directory but not ${what} (no ${marker}); refusing to replace it`, { file: path, field });
  }
  await requireCreatableDirectory(dirname(resolve(path)), field);
}
