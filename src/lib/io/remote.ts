// Remote paths: any path option or argument may be `s3://bucket/key` (read and write) or `https://...`
// (read). The CLI stages them before a command runs and publishes after its local atomic commit, so
// commands only ever see local files:
//  - each remote parent ("s3://b/dir/") gets one local folder in this run's staging area, so paths a
//    command derives from an option (`<out>.ids.ndjson`, `<out>.checkpoint`) land beside it and go back
//    to the same remote parent;
//  - an existing object or directory is downloaded whole into the cache (checked against its size and
//    MD5 ETag or recorded sha256), then hard-linked into the folder; a cached copy is reused while the
//    remote ETag is unchanged (https: a conditional request, If-None-Match);
//  - after the run, every entry of a folder that is new or changed is uploaded: a file whole, a
//    directory as a new version (`<key>/.v/<generation>/...`, model.json last) made current by
//    writing `<key>/atelier-directory.json` last. A reader follows that index only, so an upload
//    killed half-way leaves the previous version readable; the version before it is then deleted.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { UsageError, type Command } from '../command.js';
import { openAtomicWriteStream, processIsAlive, writeAtomicDirectory, writeFileAtomic } from './atomic.js';
import { staleSiblingPid } from './paths.js';
import { checkBucket, closeS3, deleteKeys, getObject, getObjectUnlessMatch, headObject, listKeys, parseS3Url, putBytes, putFile, s3Url, type ObjectInfo, type S3Location } from './s3.js';

/** The object that makes a directory version current; written last. */
export const DIRECTORY_INDEX = 'atelier-directory.json';
/** Where a directory's versions live under its key. */
const VERSIONS = '.v';
/** Uploaded last within a version: a model's manifest. */
const LAST_IN_VERSION = 'model.json';

export function isRemotePath(value: string): boolean {
  return /^(s3|https):\/\//i.test(value);
}

/** $ATELIER_CACHE_DIR, else $XDG_CACHE_HOME/atelier, else ~/.cache/atelier. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  if (env.ATELIER_CACHE_DIR) return env.ATELIER_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'atelier');
}

/** A directory version as listed by its index object. */
interface DirectoryIndex {
  format: 'atelier-directory';
  version: 1;
  generation: string;
  files: Array<{ path: string; size: number; sha256: string }>;
}

/** Identity of every file under a path (rel -> inode:size:mtime), to tell what a run changed. */
type Snapshot = Map<string, string>;

async function snapshot(path: string): Promise<Snapshot | null> {
  const info = await stat(path).catch(() => null);
  if (!info) return null;
  const out: Snapshot = new Map([['', `${info.isDirectory() ? 'd' : 'f'}:${info.ino}:${info.size}:${info.mtimeMs}`]]);
  if (info.isDirectory()) for (const rel of await walkFiles(path)) {
    const f = await stat(join(path, rel));
    out.set(rel, `${f.ino}:${f.size}:${f.mtimeMs}`);
  }
  return out;
}

function sameSnapshot(a: Snapshot | null | undefined, b: Snapshot | null): boolean {
  if (!a || !b || a.size !== b.size) return !a && !b;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Relative paths of the regular files under `dir`, sorted; our temp names are left out. */
async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (staleSiblingPid(entry.name)) continue;
      const full = join(at, entry.name);
      if (entry.isDirectory()) await visit(full);
      else if (entry.isFile()) out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  await visit(dir);
  return out.sort();
}

/** Counts and hashes bytes passing through. */
function hashingCounter(): Transform & { bytes: number; md5: ReturnType<typeof createHash>; sha256: ReturnType<typeof createHash> } {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      md5.update(chunk);
      sha256.update(chunk);
      (t as unknown as { bytes: number }).bytes += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { bytes: number; md5: typeof md5; sha256: typeof sha256 };
  return Object.assign(t, { bytes: 0, md5, sha256 });
}

async function fileDigests(path: string): Promise<{ md5: string; sha256: string; size: number }> {
  const counter = hashingCounter();
  await pipeline(createReadStream(path), counter, async function* (source) {
    for await (const _ of source) {
      // drained; only the digests matter
    }
  });
  return { md5: counter.md5.digest('hex'), sha256: counter.sha256.digest('hex'), size: counter.bytes };
}

/** Writes `body` to `path` atomically; returns its size and digests. */
async function download(body: Readable, path: string): Promise<{ size: number; md5: string; sha256: string }> {
  await mkdir(dirname(path), { recursive: true });
  const out = await openAtomicWriteStream(path);
  const counter = hashingCounter();
  try {
    await pipeline(body, counter, out.stream, { end: false });
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  return { size: counter.bytes, md5: counter.md5.digest('hex'), sha256: counter.sha256.digest('hex') };
}

/** Hard-links a cached file to `to` (a copy across filesystems); the run may then replace it freely. */
async function place(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await link(from, to).catch(() => copyFile(from, to));
}

interface CachedFile {
  url: string;
  etag: string;
  size: number;
  mtimeMs: number;
}

interface CachedTree {
  url: string;
  etag: string;
  generation: string;
  files: Array<{ path: string; size: number; mtimeMs: number }>;
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** A file or directory cached with the ETag it had; an entry changed on disk since (size, mtime) is not trusted. */
class RemoteCache {
  constructor(readonly root: string) {}

  paths(url: string): { data: string; tree: string; meta: string } {
    const base = join(this.root, 'objects', createHash('sha256').update(url).digest('hex'));
    return { data: `${base}.data`, tree: `${base}.tree`, meta: `${base}.json` };
  }

  async file(url: string, etag?: string): Promise<CachedFile | null> {
    const p = this.paths(url);
    const meta = await readJson<CachedFile>(p.meta);
    if (!meta || meta.url !== url || (etag !== undefined && meta.etag !== etag)) return null;
    const info = await stat(p.data).catch(() => null);
    return info && info.size === meta.size && info.mtimeMs === meta.mtimeMs ? meta : null;
  }

  async recordFile(url: string, etag: string): Promise<void> {
    const p = this.paths(url);
    const info = await stat(p.data);
    await writeFileAtomic(p.meta, JSON.stringify({ url, etag, size: info.size, mtimeMs: info.mtimeMs } satisfies CachedFile));
  }

  async tree(url: string, etag: string): Promise<CachedTree | null> {
    const p = this.paths(url);
    const meta = await readJson<CachedTree>(p.meta);
    if (!meta || meta.url !== url || meta.etag !== etag || !Array.isArray(meta.files)) return null;
    for (const f of meta.files) {
      const info = await stat(join(p.tree, f.path)).catch(() => null);
      if (!info || info.size !== f.size || info.mtimeMs !== f.mtimeMs) return null;
    }
    return meta;
  }

  async recordTree(url: string, etag: string, generation: string, paths: string[]): Promise<void> {
    const p = this.paths(url);
    const files = [];
    for (const path of paths) {
      const info = await stat(join(p.tree, path));
      files.push({ path, size: info.size, mtimeMs: info.mtimeMs });
    }
    await writeFileAtomic(p.meta, JSON.stringify({ url, etag, generation, files } satisfies CachedTree));
  }
}

/** One remote parent ("s3://b/dir/") and the local folder that stands for it during the run. */
interface Folder {
  prefix: string;
  local: string;
  /** What each staged entry looked like before the run (absent: nothing was there). */
  before: Map<string, Snapshot | null>;
}

/** A path option or argument holding a remote path; `output` ones are never downloaded first. */
export interface RemoteValue {
  remote: string;
  output: boolean;
}

/** The staged remote paths of one run. */
export class RemoteRun {
  private folders = new Map<string, Folder>();
  /** Local paths of s3 inputs that were not found, so "no such file" can say "no such key". */
  private missing = new Set<string>();
  private readonly cache: RemoteCache;

  private constructor(
    private readonly root: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: (line: string) => void,
  ) {
    this.cache = new RemoteCache(cacheDir(env));
  }

  /** Stages `values` (downloading inputs) and returns the run; `localPath` then maps each remote to its local stand-in. */
  static async open(values: RemoteValue[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<RemoteRun> {
    const runs = join(cacheDir(env), 'runs');
    await mkdir(runs, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR'].includes(err.code ?? '') ? new UsageError(`cannot use the cache directory for s3:// and https:// paths (${err.code}): set ATELIER_CACHE_DIR or XDG_CACHE_HOME to a writable directory`, { file: cacheDir(env) }) : err;
    });
    for (const entry of await readdir(runs)) {
      const pid = Number(entry.split('-')[0]);
      if (Number.isInteger(pid) && pid !== process.pid && !processIsAlive(pid)) await rm(join(runs, entry), { recursive: true, force: true }).catch(() => {});
    }
    const root = join(runs, `${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(root);
    const run = new RemoteRun(root, env, log);
    try {
      for (const value of values) await run.stage(value);
    } catch (err) {
      await run.close();
      throw err;
    }
    return run;
  }

  /** Splits a remote path into its parent prefix and last name. */
  private static split(remote: string): { prefix: string; name: string } {
    if (/^s3:\/\//i.test(remote)) {
      const { bucket, key } = parseS3Url(remote);
      if (!key) throw new UsageError('expected s3://bucket/key (a key, not only the bucket)', { file: remote });
      const slash = key.lastIndexOf('/');
      const name = key.slice(slash + 1);
      if (name === '.' || name === '..') throw new UsageError('the key must end in a name, not . or ..', { file: remote });
      return { prefix: s3Url(bucket, key.slice(0, slash + 1)), name };
    }
    let url: URL;
    try {
      url = new URL(remote);
    } catch {
      throw new UsageError('not a valid URL', { file: remote });
    }
    const segments = url.pathname.split('/');
    const name = decodeURIComponent(segments.pop() ?? '') || 'index';
    if (name.includes('/') || name === '.' || name === '..') throw new UsageError('the URL must end in a file name', { file: remote });
    return { prefix: `${url.origin}${segments.join('/')}/`, name };
  }

  private folder(prefix: string): Folder {
    let folder = this.folders.get(prefix);
    if (!folder) {
      folder = { prefix, local: join(this.root, String(this.folders.size)), before: new Map() };
      this.folders.set(prefix, folder);
    }
    return folder;
  }

  /** The local path that stands for `remote` in this run. */
  localPath(remote: string): string {
    const { prefix, name } = RemoteRun.split(remote);
    return join(this.folder(prefix).local, name);
  }

  private async stage(value: RemoteValue): Promise<void> {
    const { prefix, name } = RemoteRun.split(value.remote);
    const folder = this.folder(prefix);
    await mkdir(folder.local, { recursive: true });
    if (folder.before.has(name)) return;
    const local = join(folder.local, name);
    if (/^https:\/\//i.test(value.remote)) {
      if (value.output) throw new UsageError('https:// is read-only here; write to s3:// or a local path', { file: value.remote });
      await this.stageHttps(value.remote, local);
      const ids = name.replace(/\.npy$/, '.ids.ndjson');
      if (name.endsWith('.npy') && !folder.before.has(ids)) {
        // As for s3 below; a 404 leaves the reader's own message ("no such file").
        await this.stageHttps(prefix + encodeURIComponent(ids), join(folder.local, ids)).catch((err) => {
          if (!(err instanceof UsageError)) throw err;
        });
        folder.before.set(ids, await snapshot(join(folder.local, ids)));
      }
    } else {
      const loc = parseS3Url(value.remote);
      if (value.output) {
        // Credentials and bucket checked now, before any work; the old output is not downloaded.
        await headObject(this.env, loc);
        await checkBucket(this.env, loc);
      } else if (!(await this.stageS3(loc, local))) {
        await checkBucket(this.env, loc);
        this.missing.add(local);
      } else if (name.endsWith('.npy')) {
        // Readers find a .npy's ids beside it by default: bring them along when they exist.
        const ids = name.replace(/\.npy$/, '.ids.ndjson');
        if (!folder.before.has(ids)) {
          if (!(await this.stageS3({ bucket: loc.bucket, key: loc.key.replace(/\.npy$/, '.ids.ndjson') }, join(folder.local, ids)))) this.missing.add(join(folder.local, ids));
          folder.before.set(ids, await snapshot(join(folder.local, ids)));
        }
      }
    }
    folder.before.set(name, await snapshot(local));
  }

  /** Downloads the object or directory at `loc` (or reuses the cache) to `local`; false when there is neither. */
  private async stageS3(loc: S3Location, local: string): Promise<boolean> {
    const url = s3Url(loc.bucket, loc.key);
    const info = await headObject(this.env, loc);
    if (info) {
      const cached = await this.cache.file(url, info.etag);
      if (!cached) await this.fetchS3File(loc, url);
      await place(this.cache.paths(url).data, local);
      return true;
    }
    const indexLoc = { bucket: loc.bucket, key: `${loc.key}/${DIRECTORY_INDEX}` };
    const indexInfo = await headObject(this.env, indexLoc);
    if (!indexInfo) return false;
    let tree = await this.cache.tree(url, indexInfo.etag);
    if (!tree) tree = await this.fetchS3Directory(loc, url, indexLoc);
    const base = this.cache.paths(url).tree;
    await mkdir(local, { recursive: true });
    for (const f of tree.files) await place(join(base, f.path), join(local, f.path));
    return true;
  }

  private async fetchS3File(loc: S3Location, url: string): Promise<void> {
    const { body, info } = await getObject(this.env, loc);
    const got = await download(body, this.cache.paths(url).data).catch((err) => {
      throw err instanceof UsageError ? err : new Error(`${url}: download failed: ${(err as Error).message}`);
    });
    checkDownload(url, got, info);
    await this.cache.recordFile(url, info.etag);
    this.log(`fetched ${url} (${got.size} bytes)`);
  }

  private async fetchS3Directory(loc: S3Location, url: string, indexLoc: S3Location): Promise<CachedTree> {
    const { body, info: indexInfo } = await getObject(this.env, indexLoc);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const index = parseIndex(Buffer.concat(chunks).toString('utf8'), s3Url(indexLoc.bucket, indexLoc.key));
    await mkdir(dirname(this.cache.paths(url).tree), { recursive: true });
    await writeAtomicDirectory(this.cache.paths(url).tree, async (tmpDir) => {
      for (const f of index.files) {
        const fileLoc = { bucket: loc.bucket, key: `${loc.key}/${VERSIONS}/${index.generation}/${f.path}` };
        const fileUrl = s3Url(fileLoc.bucket, fileLoc.key);
        const { body: fileBody, info } = await getObject(this.env, fileLoc);
        const got = await download(fileBody, join(tmpDir, f.path));
        checkDownload(fileUrl, got, info);
        if (got.size !== f.size || got.sha256 !== f.sha256) throw new UsageError(`does not match the size and sha256 in ${DIRECTORY_INDEX} (damaged or replaced)`, { file: fileUrl });
      }
    });
    await this.cache.recordTree(url, indexInfo.etag, index.generation, index.files.map((f) => f.path));
    this.log(`fetched ${url} (${index.files.length} files, version ${index.generation})`);
    return (await this.cache.tree(url, indexInfo.etag))!;
  }

  /** Downloads an https file, or revalidates the cached copy with If-None-Match. */
  private async stageHttps(url: string, local: string): Promise<void> {
    const fetched = await httpsToCache(this.cache, url);
    await place(this.cache.paths(url).data, local);
    if (fetched !== null) this.log(`fetched ${url} (${fetched} bytes)`);
  }

  /** Uploads every staged entry the run created or changed; call after the local outputs are committed. */
  async publish(): Promise<void> {
    for (const folder of this.folders.values()) {
      const names = (await readdir(folder.local).catch(() => [] as string[])).filter((n) => !staleSiblingPid(n)).sort();
      const changed: Array<{ name: string; isDir: boolean }> = [];
      for (const name of names) {
        const now = await snapshot(join(folder.local, name));
        if (sameSnapshot(folder.before.get(name), now)) continue;
        changed.push({ name, isDir: now?.get('')?.startsWith('d') ?? false });
      }
      if (!changed.length) continue;
      if (!folder.prefix.startsWith('s3://')) throw new UsageError('https:// is read-only here; write to s3:// or a local path', { file: folder.prefix + changed[0]!.name });
      // Files first: a directory (a model) is the bigger upload and is made current by its own index.
      for (const { name, isDir } of [...changed.filter((c) => !c.isDir), ...changed.filter((c) => c.isDir)]) {
        const remote = folder.prefix + name;
        const loc = parseS3Url(remote);
        const path = join(folder.local, name);
        if (isDir) await this.uploadDirectory(path, loc);
        else await this.uploadFile(path, loc);
      }
    }
  }

  private async uploadFile(path: string, loc: S3Location): Promise<ObjectInfo> {
    const url = s3Url(loc.bucket, loc.key);
    const digests = await fileDigests(path);
    const info = await putFile(this.env, loc, path, digests.size);
    if (info.etagIsMd5 && info.etag !== digests.md5) throw new Error(`${url}: upload damaged: the store's MD5 ${info.etag} is not the file's ${digests.md5}`);
    this.log(`uploaded ${url} (${digests.size} bytes)`);
    return info;
  }

  private async uploadDirectory(dir: string, loc: S3Location): Promise<void> {
    const url = s3Url(loc.bucket, loc.key);
    const indexLoc = { bucket: loc.bucket, key: `${loc.key}/${DIRECTORY_INDEX}` };
    const previous = await readIndexIfAny(this.env, indexLoc);
    const generation = `${new Date().toISOString().replace(/[-:.]/g, '')}-${randomBytes(4).toString('hex')}`;
    const paths = await walkFiles(dir);
    const ordered = [...paths.filter((p) => p !== LAST_IN_VERSION), ...paths.filter((p) => p === LAST_IN_VERSION)];
    const files: DirectoryIndex['files'] = [];
    for (const rel of ordered) {
      const fileLoc = { bucket: loc.bucket, key: `${loc.key}/${VERSIONS}/${generation}/${rel}` };
      const digests = await fileDigests(join(dir, rel));
      const info = await putFile(this.env, fileLoc, join(dir, rel), digests.size);
      if (info.etagIsMd5 && info.etag !== digests.md5) throw new Error(`${s3Url(fileLoc.bucket, fileLoc.key)}: upload damaged: MD5 mismatch`);
      files.push({ path: rel, size: digests.size, sha256: digests.sha256 });
    }
    const index: DirectoryIndex = { format: 'atelier-directory', version: 1, generation, files: files.sort((a, b) => a.path.localeCompare(b.path)) };
    // The commit point: until this object is replaced, readers see the previous version whole.
    await putBytes(this.env, indexLoc, Buffer.from(JSON.stringify(index, null, 1) + '\n'), 'application/json');
    this.log(`uploaded ${url} (${files.length} files, version ${generation})`);
    // Keep the previous version for readers that just read the old index; older ones and killed uploads go.
    const versionsPrefix = `${loc.key}/${VERSIONS}/`;
    const stale = (await listKeys(this.env, loc.bucket, versionsPrefix)).filter((key) => {
      const gen = key.slice(versionsPrefix.length).split('/')[0]!;
      return gen !== generation && gen !== previous?.generation;
    });
    await deleteKeys(this.env, loc.bucket, stale);
  }

  /** Restates an error in terms of the remote paths the user typed instead of their local stand-ins. */
  explain(err: unknown): unknown {
    const folders = [...this.folders.values()].sort((a, b) => b.local.length - a.local.length);
    const translate = (text: string) => folders.reduce((t, f) => t.split(f.local + sep).join(f.prefix), text);
    if (err instanceof UsageError) {
      const file = err.place.file;
      // A missing input read as a file ("no such file") or as a directory (its model.json) was a missing key.
      const missing = file === undefined ? undefined : [...this.missing].find((m) => (file === m && /^no such file/.test(err.message)) || file.startsWith(m + sep));
      const out = missing !== undefined ? new UsageError('no such key', { ...err.place, file: translate(missing) }) : new UsageError(translate(err.message), { ...err.place, ...(file !== undefined ? { file: translate(file) } : {}) });
      out.stack = err.stack;
      return out;
    }
    if (err instanceof Error && !(err as NodeJS.ErrnoException).code) {
      err.message = translate(err.message);
    }
    return err;
  }

  /** `stream` with the run's local stand-ins written as the remote paths they stand for (stderr lines). */
  translating<S extends NodeJS.WritableStream>(stream: S): S {
    const folders = [...this.folders.values()].sort((a, b) => b.local.length - a.local.length);
    const translate = (text: string) => folders.reduce((t, f) => t.split(f.local + sep).join(f.prefix), text);
    return new Proxy(stream, {
      get(target, prop, receiver) {
        if (prop === 'write') {
          return (chunk: unknown, ...rest: unknown[]) => (target.write as (...a: unknown[]) => boolean)(typeof chunk === 'string' ? translate(chunk) : Buffer.isBuffer(chunk) ? translate(chunk.toString('utf8')) : chunk, ...rest);
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Removes this run's staging folder. */
  async close(): Promise<void> {
    await rm(this.root, { recursive: true, force: true }).catch(() => {});
    await closeS3();
  }
}

/** Brings the https file `url` into the cache (a conditional request when a copy is there); its size when downloaded, null when the copy still holds. */
async function httpsToCache(cache: RemoteCache, url: string): Promise<number | null> {
  const cached = await cache.file(url);
  let response: Response;
  try {
    response = await fetch(url, { headers: cached ? { 'if-none-match': cached.etag } : {} });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    throw new Error(`${url}: cannot fetch: ${cause}`);
  }
  const data = cache.paths(url).data;
  if (response.status === 304 && cached) {
    await response.body?.cancel();
    return null;
  }
  if (response.status === 404 || response.status === 410) throw new UsageError(`no such file (HTTP ${response.status})`, { file: url });
  if (response.status === 401 || response.status === 403) throw new UsageError(`access denied (HTTP ${response.status})`, { file: url });
  if (response.status !== 200 || !response.body) throw response.status >= 400 && response.status < 500 ? new UsageError(`HTTP ${response.status}`, { file: url }) : new Error(`${url}: HTTP ${response.status}`);
  const got = await download(Readable.fromWeb(response.body as WebReadableStream), data).catch((err) => {
    throw new Error(`${url}: download failed: ${(err as Error).message}`);
  });
  const length = response.headers.get('content-length');
  if (length !== null && Number(length) !== got.size) throw new Error(`${url}: download stopped short: ${got.size} of ${length} bytes`);
  const etag = response.headers.get('etag');
  // Without an ETag there is nothing to revalidate with: the copy is used once.
  if (etag) await cache.recordFile(url, etag);
  return got.size;
}

/**
 * A local file with the bytes of the remote file `url` (s3:// or https://), for paths named inside
 * records (image paths): the cached copy, revalidated with one conditional request, else a download.
 */
export async function remoteFileInCache(url: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const cache = new RemoteCache(cacheDir(env));
  if (/^https:\/\//i.test(url)) {
    await httpsToCache(cache, url);
    return cache.paths(url).data;
  }
  const loc = parseS3Url(url);
  const cached = await cache.file(url);
  const got = await getObjectUnlessMatch(env, loc, cached?.etag);
  if (got) {
    const written = await download(got.body, cache.paths(url).data);
    checkDownload(url, written, got.info);
    await cache.recordFile(url, got.info.etag);
  }
  return cache.paths(url).data;
}

function checkDownload(url: string, got: { size: number; md5: string }, info: ObjectInfo): void {
  if (got.size !== info.size) throw new Error(`${url}: download stopped short: ${got.size} of ${info.size} bytes`);
  if (info.etagIsMd5 && got.md5 !== info.etag) throw new Error(`${url}: download damaged: MD5 ${got.md5} is not the ETag ${info.etag}`);
}

function parseIndex(text: string, url: string): DirectoryIndex {
  let index: DirectoryIndex;
  try {
    index = JSON.parse(text) as DirectoryIndex;
  } catch {
    throw new UsageError('not valid JSON', { file: url });
  }
  if (index?.format !== 'atelier-directory' || typeof index.generation !== 'string' || !/^[\w.-]+$/.test(index.generation) || !Array.isArray(index.files)) {
    throw new UsageError('not an atelier directory index', { file: url });
  }
  for (const f of index.files) {
    const parts = typeof f?.path === 'string' ? f.path.split('/') : [];
    if (!parts.length || parts.some((p) => p === '' || p === '.' || p === '..') || typeof f.size !== 'number' || typeof f.sha256 !== 'string') {
      throw new UsageError(`bad file entry ${JSON.stringify(f)}`, { file: url, field: 'files' });
    }
  }
  return index;
}

async function readIndexIfAny(env: NodeJS.ProcessEnv, loc: S3Location): Promise<DirectoryIndex | null> {
  if (!(await headObject(env, loc))) return null;
  const { body } = await getObject(env, loc);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  try {
    return parseIndex(Buffer.concat(chunks).toString('utf8'), s3Url(loc.bucket, loc.key));
  } catch {
    return null;
  }
}

/** Options whose value is always written, never read: an existing remote object there is not downloaded. */
const OUTPUT_OPTIONS = new Set(['out', 'output']);

const camelCase = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Stages every remote path among the parsed `args` of `command` (string options and positionals,
 * except those declared `path: false`) and rewrites them, aliases included, to their local stand-ins.
 * Returns null when there is none, so local runs never load the SDK.
 */
export async function stageRemoteArgs(command: Command<unknown>, args: Record<string, unknown>, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<RemoteRun | null> {
  const slots: Array<{ keys: string[]; output: boolean }> = [];
  for (const [name, option] of Object.entries(command.options)) {
    if (option.type !== 'string' || option.path === false) continue;
    slots.push({ keys: [name, camelCase(name), ...[option.alias ?? []].flat()], output: OUTPUT_OPTIONS.has(name) });
  }
  for (const p of command.positionals ?? []) if (p.type === 'string' && p.path !== false) slots.push({ keys: [p.name, camelCase(p.name)], output: false });
  const values: RemoteValue[] = [];
  for (const slot of slots) {
    const value = args[slot.keys[0]!];
    for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'string' && isRemotePath(v)) values.push({ remote: v, output: slot.output });
  }
  if (!values.length) return null;
  const run = await RemoteRun.open(values, env, log);
  for (const slot of slots) {
    const swap = (v: unknown) => (typeof v === 'string' && isRemotePath(v) ? run.localPath(v) : v);
    for (const key of new Set(slot.keys)) if (key in args) args[key] = Array.isArray(args[key]) ? (args[key] as unknown[]).map(swap) : swap(args[key]);
  }
  return run;
}
