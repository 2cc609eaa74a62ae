// The resume state of a crawl: an append-only NDJSON journal of finished work (sitemaps read, pages
// and rows done with everything taken from them). A run killed at any point leaves a journal whose
// complete lines are all true; re-running the same command replays it and only does what is missing.
// Each entry is one write(2) of one line, so a kill leaves at most a torn last line, which is dropped.
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { UsageError } from '../command.js';

export interface JournalHeader {
  kind: 'header';
  version: 1;
  /** Hash of the options that decide the output; a journal from other options is not resumed. */
  fingerprint: string;
}

export interface CrawlJournal<E> {
  path: string;
  /** Entries found when the journal was opened (empty for a new one). */
  readonly replayed: E[];
  /** Appends one entry (one line, one write). */
  append(entry: E): void;
  close(): void;
  /** Closes and deletes the journal: the run it describes is complete. */
  remove(): void;
}

function parseLines(text: string): { lines: unknown[]; validBytes: number } {
  const lines: unknown[] = [];
  let offset = 0;
  let validBytes = 0;
  while (offset < text.length) {
    const end = text.indexOf('\n', offset);
    if (end === -1) break; // torn last line: no newline, so the write did not complete
    const line = text.slice(offset, end);
    offset = end + 1;
    if (line.trim() === '') {
      validBytes = Buffer.byteLength(text.slice(0, offset));
      continue;
    }
    try {
      lines.push(JSON.parse(line));
    } catch {
      break;
    }
    validBytes = Buffer.byteLength(text.slice(0, offset));
  }
  return { lines, validBytes };
}

/**
 * Opens the journal at `path`: replays it when it exists and was written with the same fingerprint,
 * starts it afresh when it does not exist or `restart` is set. A journal of other options is a
 * UsageError (resuming it would mix two different crawls in one output).
 */
export function openJournal<E>(path: string, fingerprint: string, restart: boolean): CrawlJournal<E> {
  let replayed: E[] = [];
  let fd: number;
  if (!restart && existsSync(path)) {
    const text = readFileSync(path, 'utf8');
    const { lines, validBytes } = parseLines(text);
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
    ftruncateSync(fd, validBytes);
    if (header === undefined) writeSync(fd, JSON.stringify({ kind: 'header', version: 1, fingerprint } satisfies JournalHeader) + '\n', 0);
    replayed = lines.slice(1) as E[];
    closeSync(fd);
    fd = openSync(path, 'a');
  } else {
    try {
      fd = openSync(path, 'w');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(code === 'ENOENT' ? 'cannot write the state file: its directory does not exist' : `cannot write the state file (${code})`, { file: path });
    }
    writeSync(fd, JSON.stringify({ kind: 'header', version: 1, fingerprint } satisfies JournalHeader) + '\n');
  }
  let open = true;
  return {
    path,
    replayed,
    append(entry) {
      if (!open) throw new Error(`journal ${path} is closed`);
      const line = Buffer.from(JSON.stringify(entry) + '\n', 'utf8');
      let written = 0;
      while (written < line.length) written += writeSync(fd, line, written, line.length - written);
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
    remove() {
      if (open) {
        open = false;
        closeSync(fd);
      }
      if (existsSync(path)) unlinkSync(path);
    },
  };
}
