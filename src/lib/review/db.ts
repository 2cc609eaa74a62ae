// The review database (GILT: "keep a persistent dataset, and change the tags of the samples"):
// SQLite through better-sqlite3, WAL mode, a schema version with migrations, every retag one
// transaction. A split is written once, at import, and no statement ever updates it.
import Database from 'better-sqlite3';
import { UsageError } from '../command.js';

export type ReviewDb = Database.Database;

/** Migrations in order; migration i brings the schema from version i to i + 1. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE images (
     id TEXT PRIMARY KEY,
     path TEXT NOT NULL,
     grp TEXT NOT NULL,
     split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
     label TEXT NOT NULL,
     record TEXT NOT NULL
   );
   CREATE INDEX images_label ON images(label);
   CREATE TABLE history (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     batch INTEGER NOT NULL,
     image_id TEXT NOT NULL REFERENCES images(id),
     old_label TEXT NOT NULL,
     new_label TEXT NOT NULL,
     at TEXT NOT NULL,
     who TEXT NOT NULL,
     undoes INTEGER
   );
   CREATE INDEX history_image ON history(image_id);
   CREATE INDEX history_batch ON history(batch);
   CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, source TEXT NOT NULL, labels TEXT NOT NULL, imported_at TEXT NOT NULL);
   CREATE TABLE predictions (
     run_id INTEGER NOT NULL REFERENCES runs(id),
     image_id TEXT NOT NULL REFERENCES images(id),
     label TEXT NOT NULL,
     probs TEXT,
     PRIMARY KEY (run_id, image_id)
   );`,
  // 2: nearest neighbours (knn) and RISE overlays, shown on an image's page.
  `CREATE TABLE neighbors (image_id TEXT NOT NULL REFERENCES images(id), rank INTEGER NOT NULL, neighbor_id TEXT NOT NULL, score REAL, PRIMARY KEY (image_id, rank));
   CREATE TABLE overlays (image_id TEXT NOT NULL REFERENCES images(id), class TEXT NOT NULL, score REAL NOT NULL, path TEXT NOT NULL, PRIMARY KEY (image_id, class));`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Opens (creating when asked) a review database and brings its schema up to date. */
export function openReviewDb(path: string, opts: { create?: boolean } = {}): ReviewDb {
  let db: ReviewDb;
  try {
    db = new Database(path, { fileMustExist: !opts.create });
  } catch (err) {
    throw new UsageError(`cannot open the database: ${(err as Error).message}`, { file: path });
  }
  db.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before the server answers, so an acknowledged retag survives a crash.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, path);
  return db;
}

function migrate(db: ReviewDb, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  let version = row?.version ?? 0;
  if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
  if (version > SCHEMA_VERSION) throw new UsageError(`schema version ${version} is newer than this atelier understands (${SCHEMA_VERSION})`, { file: path });
  while (version < SCHEMA_VERSION) {
    const next = version + 1;
    db.transaction(() => {
      db.exec(MIGRATIONS[version]);
      db.prepare('UPDATE schema_version SET version = ?').run(next);
    })();
    version = next;
  }
}

export function getSetting(db: ReviewDb, key: string): string | undefined {
  return (db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

export function setSetting(db: ReviewDb, key: string, value: string): void {
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}

export interface ImageRow {
  id: string;
  path: string;
  grp: string;
  split: 'train' | 'val' | 'test';
  label: string;
  record: string;
}

export interface NewImage extends ImageRow {}

/** Adds images; one already in the database keeps its label and split (the database is the truth once reviewed). */
export function insertImages(db: ReviewDb, images: NewImage[]): { added: number; kept: number } {
  const insert = db.prepare('INSERT INTO images (id, path, grp, split, label, record) VALUES (@id, @path, @grp, @split, @label, @record) ON CONFLICT(id) DO NOTHING');
  let added = 0;
  db.transaction(() => {
    for (const image of images) added += insert.run(image).changes;
  })();
  return { added, kept: images.length - added };
}

export interface PredictionIn {
  id: string;
  label: string;
  probs: Record<string, number> | null;
}

/** Stores one model's predictions as a run; predictions of images not in the database are counted and left out. */
export function insertRun(db: ReviewDb, name: string, source: string, labels: string[], predictions: PredictionIn[]): { run: number; stored: number; unknown: number } {
  const known = db.prepare('SELECT 1 FROM images WHERE id = ?').pluck();
  let stored = 0;
  let unknown = 0;
  let run = 0;
  db.transaction(() => {
    run = Number(db.prepare('INSERT INTO runs (name, source, labels, imported_at) VALUES (?, ?, ?, ?)').run(name, source, JSON.stringify(labels), new Date().toISOString()).lastInsertRowid);
    const insert = db.prepare('INSERT OR REPLACE INTO predictions (run_id, image_id, label, probs) VALUES (?, ?, ?, ?)');
    for (const p of predictions) {
      if (!known.get(p.id)) {
        unknown++;
        continue;
      }
      insert.run(run, p.id, p.label, p.probs ? JSON.stringify(p.probs) : null);
      stored++;
    }
  })();
  return { run, stored, unknown };
}

export interface RetagResult {
  batch: number;
  changed: Array<{ id: string; old: string; new: string }>;
}

/**
 * Sets the label of each image in one transaction, one history row per image whose label changes.
 * An unknown id aborts the whole batch (nothing is written).
 */
export function retag(db: ReviewDb, ids: string[], label: string, who: string): RetagResult {
  const get = db.prepare('SELECT label FROM images WHERE id = ?').pluck();
  const update = db.prepare('UPDATE images SET label = ? WHERE id = ?');
  const log = db.prepare('INSERT INTO history (batch, image_id, old_label, new_label, at, who, undoes) VALUES (?, ?, ?, ?, ?, ?, ?)');
  return db.transaction((): RetagResult => {
    const batch = nextBatch(db);
    const at = new Date().toISOString();
    const changed: RetagResult['changed'] = [];
    for (const id of ids) {
      const old = get.get(id) as string | undefined;
      if (old === undefined) throw new UsageError(`no image '${id}' in the database`, { field: 'ids' });
      if (old === label) continue;
      update.run(label, id);
      log.run(batch, id, old, label, at, who, null);
      changed.push({ id, old, new: label });
    }
    return { batch, changed };
  }).immediate();
}

function nextBatch(db: ReviewDb): number {
  return ((db.prepare('SELECT MAX(batch) FROM history').pluck().get() as number | null) ?? 0) + 1;
}

/**
 * Undoes a batch: each of its images goes back to its old label, logged as a new batch that names
 * the one it undoes. An image retagged again since keeps its newer label (undo never clobbers a later change).
 */
export function undo(db: ReviewDb, batch: number, who: string): RetagResult {
  return db.transaction((): RetagResult => {
    const rows = db.prepare('SELECT image_id, old_label, new_label FROM history WHERE batch = ? ORDER BY seq').all(batch) as Array<{ image_id: string; old_label: string; new_label: string }>;
    if (rows.length === 0) throw new UsageError(`no change batch ${batch}`, { field: 'batch' });
    if (db.prepare('SELECT 1 FROM history WHERE undoes = ?').get(batch)) throw new UsageError(`batch ${batch} is already undone`, { field: 'batch' });
    const next = nextBatch(db);
    const at = new Date().toISOString();
    const changed: RetagResult['changed'] = [];
    const current = db.prepare('SELECT label FROM images WHERE id = ?').pluck();
    const update = db.prepare('UPDATE images SET label = ? WHERE id = ?');
    const log = db.prepare('INSERT INTO history (batch, image_id, old_label, new_label, at, who, undoes) VALUES (?, ?, ?, ?, ?, ?, ?)');
    for (const r of rows) {
      if (current.get(r.image_id) !== r.new_label) continue;
      update.run(r.old_label, r.image_id);
      log.run(next, r.image_id, r.new_label, r.old_label, at, who, batch);
      changed.push({ id: r.image_id, old: r.new_label, new: r.old_label });
    }
    return { batch: next, changed };
  }).immediate();
}

export interface HistoryRow {
  seq: number;
  batch: number;
  image_id: string;
  old_label: string;
  new_label: string;
  at: string;
  who: string;
  undoes: number | null;
}

export function history(db: ReviewDb, opts: { imageId?: string; limit?: number } = {}): HistoryRow[] {
  const limit = opts.limit ?? 500;
  if (opts.imageId !== undefined) return db.prepare('SELECT * FROM history WHERE image_id = ? ORDER BY seq DESC LIMIT ?').all(opts.imageId, limit) as HistoryRow[];
  return db.prepare('SELECT * FROM history ORDER BY seq DESC LIMIT ?').all(limit) as HistoryRow[];
}

export function getImage(db: ReviewDb, id: string): ImageRow | undefined {
  return db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
}

export function imagePathSet(db: ReviewDb): Set<string> {
  return new Set(db.prepare('SELECT path FROM images').pluck().all() as string[]);
}

export interface RunRow {
  id: number;
  name: string;
  source: string;
  labels: string;
  imported_at: string;
}

export function runs(db: ReviewDb): RunRow[] {
  return db.prepare('SELECT * FROM runs ORDER BY id').all() as RunRow[];
}

export interface ScoredImage {
  id: string;
  path: string;
  split: string;
  label: string;
  predicted: string;
  probs: Record<string, number> | null;
}

/** Every image with a prediction in `run`, with its current label. */
export function scoredImages(db: ReviewDb, run: number): ScoredImage[] {
  const rows = db.prepare('SELECT i.id, i.path, i.split, i.label, p.label AS predicted, p.probs FROM predictions p JOIN images i ON i.id = p.image_id WHERE p.run_id = ? ORDER BY i.id').all(run) as Array<Omit<ScoredImage, 'probs'> & { probs: string | null }>;
  return rows.map((r) => ({ ...r, probs: r.probs ? (JSON.parse(r.probs) as Record<string, number>) : null }));
}

export function predictionsOf(db: ReviewDb, id: string): Array<{ run: number; name: string; label: string; probs: Record<string, number> | null }> {
  const rows = db.prepare('SELECT r.id AS run, r.name, p.label, p.probs FROM predictions p JOIN runs r ON r.id = p.run_id WHERE p.image_id = ? ORDER BY r.id DESC').all(id) as Array<{ run: number; name: string; label: string; probs: string | null }>;
  return rows.map((r) => ({ ...r, probs: r.probs ? (JSON.parse(r.probs) as Record<string, number>) : null }));
}

export function allImages(db: ReviewDb): ImageRow[] {
  return db.prepare('SELECT * FROM images ORDER BY rowid').all() as ImageRow[];
}

export function labelsInUse(db: ReviewDb): string[] {
  return db.prepare('SELECT DISTINCT label FROM images ORDER BY label').pluck().all() as string[];
}

/** Replaces the stored neighbours of each image given; images not in the database are counted and left out. */
export function insertNeighbors(db: ReviewDb, records: Array<{ id: string; neighbors: Array<{ id: string; score: number | null }> }>): { stored: number; unknown: number } {
  const known = db.prepare('SELECT 1 FROM images WHERE id = ?').pluck();
  const clear = db.prepare('DELETE FROM neighbors WHERE image_id = ?');
  const insert = db.prepare('INSERT INTO neighbors (image_id, rank, neighbor_id, score) VALUES (?, ?, ?, ?)');
  let stored = 0;
  let unknown = 0;
  db.transaction(() => {
    for (const r of records) {
      if (!known.get(r.id)) {
        unknown++;
        continue;
      }
      clear.run(r.id);
      r.neighbors.forEach((n, rank) => insert.run(r.id, rank + 1, n.id, n.score));
      stored++;
    }
  })();
  return { stored, unknown };
}

/** Stores RISE overlays (one per image and class); images not in the database are counted and left out. */
export function insertOverlays(db: ReviewDb, records: Array<{ id: string; overlay: string | null; className: string; score: number }>): { stored: number; unknown: number } {
  const known = db.prepare('SELECT 1 FROM images WHERE id = ?').pluck();
  const insert = db.prepare('INSERT OR REPLACE INTO overlays (image_id, class, score, path) VALUES (?, ?, ?, ?)');
  let stored = 0;
  let unknown = 0;
  db.transaction(() => {
    for (const r of records) {
      if (!known.get(r.id) || r.overlay === null) {
        unknown++;
        continue;
      }
      insert.run(r.id, r.className, r.score, r.overlay);
      stored++;
    }
  })();
  return { stored, unknown };
}

export function neighborsOf(db: ReviewDb, id: string): Array<{ rank: number; neighbor_id: string; score: number | null; label: string | null }> {
  return db.prepare('SELECT n.rank, n.neighbor_id, n.score, i.label FROM neighbors n LEFT JOIN images i ON i.id = n.neighbor_id WHERE n.image_id = ? ORDER BY n.rank').all(id) as Array<{ rank: number; neighbor_id: string; score: number | null; label: string | null }>;
}

export function overlaysOf(db: ReviewDb, id: string): Array<{ class: string; score: number; path: string }> {
  return db.prepare('SELECT class, score, path FROM overlays WHERE image_id = ? ORDER BY class').all(id) as Array<{ class: string; score: number; path: string }>;
}
