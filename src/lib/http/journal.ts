// The resume state of a crawl: an append-only NDJSON journal of finished work (sitemaps read, pages
// and rows done with everything taken from them). A run killed at any point leaves a journal whose
// complete lines are all true; re-running the same command replays it and only does what is missing.
// Each entry is one write(2) of one line, so a kill leaves at most a torn last line, which is dropped.
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../command.js';

export interface JournalHeader {
  kind: 'header';
  version: 1;
  /** Hash of the options that decide the output; a journal from other options is not resumed. */
  fingerprint: string;
}

/** Where one entry's line lies in the journal file. */
export interface EntryLocation {
  offset: number;
  length: number;
}

export interface CrawlJournal<E> {
  path: string;
  /** Entries found when the journal was opened (empty for a new one). */
  readonly replayed: E[];
  /** Where each replayed entry lies, in the same order. */
  readonly replayedAt: EntryLocation[];
  /** Appends one entry (one line, one write); returns where it lies, for `read`. */
  append(entry: E): EntryLocation;
  /** Reads back the entry at `at` (from `append` or `replayedAt`), so callers need not keep entries in memory. */
  read(at: EntryLocation): E;
  close(): void;
  /** Closes and deletes the journal: the run it describes is complete. */
  remove(): void;
}

const NEWLINE = 0x0a;

/** The complete, parsable lines of a journal file and where each lies; a torn or unparsable line ends it. */
function parseLines(bytes: Buffer): { lines: unknown[]; at: EntryLocation[]; validBytes: number } {
  const lines: unknown[] = [];
  const at: EntryLocation[] = [];
  let offset = 0;
  let validBytes = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(NEWLINE, offset);
    if (end === -1) break; // torn last line: no newline, so the write did not complete
    const line = bytes.toString('utf8', offset, end);
    const start = offset;
    offset = end + 1;
    if (line.trim() !== '') {
      try {
        lines.push(JSON.parse(line));
      } catch {
        break;
      }
      at.push({ offset: start, length: end - start });
    }
    validBytes = offset;
  }
  return { lines, at, validBytes };
}

/**
 * Opens the journal at `path`: replays it when it exists and was written with the same fingerprint,
 * starts it afresh when it does not exist or `restart` is set. A journal of other options is a
 * UsageError (resuming it would mix two different crawls in one output).
 */
export function openJournal<E>(path: string, fingerprint: string, restart: boolean): CrawlJournal<E> {
  let replayed: E[] = [];
  let replayedAt: EntryLocation[] = [];
  let fd: number;
  let size: number;
  if (!restart && existsSync(path)) {
    const { lines, at, validBytes } = parseLines(readFileSync(path));
    const header = lines[0] as Partial<JournalHeader> | undefined;
    if (header !== undefined) {
      if (header.kind !== 'header' || header.version !== 1) {
        throw new UsageError('not an atelier crawl state file (delete it or pass --restart)', { file: path, line: 1 });
      }
      if (header.fingerprint !== fingerprint) {
        throw new UsageError('this state file was written by a run with other inputs or options; delete it or pass --restart', { file: path, line: 1 });
      }
    }
    fd = openSync(path, 'r+');
    size = header === undefined ? 0 : validBytes;
    ftruncateSync(fd, size);
    if (header === undefined) size = writeSync(fd, JSON.stringify({ kind: 'header', version: 1, fingerprint } satisfies JournalHeader) + '\n', 0);
    replayed = lines.slice(1) as E[];
    replayedAt = at.slice(1);
    closeSync(fd);
    fd = openSync(path, 'a');
  } else {
    try {
      fd = openSync(path, 'w');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(code === 'ENOENT' ? 'cannot write the state file: its directory does not exist' : `cannot write the state file (${code})`, { file: path });
    }
    size = writeSync(fd, JSON.stringify({ kind: 'header', version: 1, fingerprint } satisfies JournalHeader) + '\n');
  }
  let open = true;
  let readFd: number | null = null;
  const closeAll = () => {
    if (!open) return;
    open = false;
    closeSync(fd);
    if (readFd !== null) closeSync(readFd);
  };
  return {
    path,
    replayed,
    replayedAt,
    append(entry) {
      if (!open) throw new Error(`journal ${path} is closed`);
      const line = Buffer.from(JSON.stringify(entry) + '\n', 'utf8');
      let written = 0;
      while (written < line.length) written += writeSync(fd, line, written, line.length - written);
      const at = { offset: size, length: line.length - 1 };
      size += line.length;
      return at;
    },
    read(at) {
      if (!open) throw new Error(`journal ${path} is closed`);
      readFd ??= openSync(path, 'r');
      const bytes = Buffer.allocUnsafe(at.length);
      let got = 0;
      while (got < at.length) {
        const n = readSync(readFd, bytes, got, at.length - got, at.offset + got);
        if (n === 0) throw new Error(`journal ${path} ends before the entry at byte ${at.offset}`);
        got += n;
      }
      return JSON.parse(bytes.toString('utf8')) as E;
    },
    close: closeAll,
    remove() {
      closeAll();
      if (existsSync(path)) unlinkSync(path);
    },
  };
}

/**
 * The journal of a run: the state file when there is one, else a private temporary file (deleted with
 * the journal), so products can be read back after the crawl without being held in memory.
 */
export function openRunJournal<E>(statePath: string | null, fingerprint: string, restart: boolean): CrawlJournal<E> {
  if (statePath !== null) return openJournal<E>(statePath, fingerprint, restart);
  const dir = mkdtempSync(join(tmpdir(), 'atelier-crawl-'));
  const journal = openJournal<E>(join(dir, 'journal.ndjson'), fingerprint, true);
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  return {
    ...journal,
    close() {
      journal.close();
      removeDir();
    },
    remove() {
      journal.remove();
      removeDir();
    },
  };
}
