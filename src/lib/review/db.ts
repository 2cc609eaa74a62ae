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
  // 3: retrieval examples (eval-retrieval, knn): each query, its neighbours with scores and whether each shows the query's item.
  `CREATE TABLE retrieval_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, source TEXT NOT NULL, imported_at TEXT NOT NULL);
   CREATE TABLE retrieval_queries (
     run_id INTEGER NOT NULL REFERENCES retrieval_runs(id),
     image_id TEXT NOT NULL REFERENCES images(id),
     item TEXT NOT NULL,
     first_rank INTEGER,
     ap REAL NOT NULL,
     relevant INTEGER NOT NULL,
     PRIMARY KEY (run_id, image_id)
   );
   CREATE TABLE retrieval_neighbors (
     run_id INTEGER NOT NULL,
     image_id TEXT NOT NULL,
     rank INTEGER NOT NULL,
     neighbor_id TEXT NOT NULL,
     score REAL,
     hit INTEGER CHECK (hit IN (0, 1)),
     PRIMARY KEY (run_id, image_id, rank),
     FOREIGN KEY (run_id, image_id) REFERENCES retrieval_queries(run_id, image_id)
   );
   CREATE INDEX retrieval_queries_image ON retrieval_queries(image_id);`,
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

/** An undo that would overwrite a later change: the server answers 409 with its message. */
export class UndoConflict extends Error {}

/**
 * Undoes a batch at once: each of its images goes back to its old label, logged as one new batch that
 * names the one it undoes. If any of its images was changed again since (by a change not itself undone),
 * nothing is undone: undo never clobbers a later change, and a batch is never half undone.
 */
export function undo(db: ReviewDb, batch: number, who: string): RetagResult {
  return db.transaction((): RetagResult => {
    const rows = db.prepare('SELECT seq, image_id, old_label, new_label FROM history WHERE batch = ? ORDER BY seq').all(batch) as Array<{ seq: number; image_id: string; old_label: string; new_label: string }>;
    if (rows.length === 0) throw new UsageError(`no change batch ${batch}`, { field: 'batch' });
    if (db.prepare('SELECT 1 FROM history WHERE undoes = ?').get(batch)) throw new UsageError(`batch ${batch} is already undone`, { field: 'batch' });
    // A later change still in force: not an undo, and not undone since (an undone change restored this batch's label).
    const later = db.prepare('SELECT batch FROM history h WHERE image_id = ? AND seq > ? AND undoes IS NULL AND NOT EXISTS (SELECT 1 FROM history u WHERE u.undoes = h.batch) ORDER BY seq LIMIT 1').pluck();
    const changedSince = rows.map((r) => ({ id: r.image_id, by: later.get(r.image_id, r.seq) as number | undefined })).filter((r) => r.by !== undefined);
    if (changedSince.length) {
      const list = changedSince.slice(0, 5).map((r) => `${r.id} (batch ${r.by})`).join(', ');
      throw new UndoConflict(`batch ${batch} not undone: ${changedSince.length} of its ${rows.length} images changed since: ${list}${changedSince.length > 5 ? ', ...' : ''}`);
    }
    const next = nextBatch(db);
    const at = new Date().toISOString();
    const update = db.prepare('UPDATE images SET label = ? WHERE id = ?');
    const log = db.prepare('INSERT INTO history (batch, image_id, old_label, new_label, at, who, undoes) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const changed: RetagResult['changed'] = rows.map((r) => {
      update.run(r.old_label, r.image_id);
      log.run(next, r.image_id, r.new_label, r.old_label, at, who, batch);
      return { id: r.image_id, old: r.new_label, new: r.old_label };
    });
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

export interface RetrievalQueryIn {
  imageId: string;
  item: string;
  firstRank: number | null;
  ap: number;
  relevant: number;
  neighbors: Array<{ id: string; score: number | null; hit: boolean | null }>;
}

/** Stores one retrieval run's examples in one transaction. */
export function insertRetrievalRun(db: ReviewDb, name: string, source: string, queries: RetrievalQueryIn[]): number {
  return db.transaction((): number => {
    const run = Number(db.prepare('INSERT INTO retrieval_runs (name, source, imported_at) VALUES (?, ?, ?)').run(name, source, new Date().toISOString()).lastInsertRowid);
    const query = db.prepare('INSERT INTO retrieval_queries (run_id, image_id, item, first_rank, ap, relevant) VALUES (?, ?, ?, ?, ?, ?)');
    const neighbor = db.prepare('INSERT INTO retrieval_neighbors (run_id, image_id, rank, neighbor_id, score, hit) VALUES (?, ?, ?, ?, ?, ?)');
    for (const q of queries) {
      query.run(run, q.imageId, q.item, q.firstRank, q.ap, q.relevant);
      q.neighbors.forEach((n, i) => neighbor.run(run, q.imageId, i + 1, n.id, n.score, n.hit === null ? null : n.hit ? 1 : 0));
    }
    return run;
  })();
}

export interface RetrievalRunRow {
  id: number;
  name: string;
  source: string;
  imported_at: string;
  queries: number;
  mean_ap: number | null;
  with_hit: number;
}

export function retrievalRuns(db: ReviewDb): RetrievalRunRow[] {
  return db.prepare(`SELECT r.*, COUNT(q.image_id) AS queries, AVG(q.ap) AS mean_ap, COALESCE(SUM(q.first_rank IS NOT NULL), 0) AS with_hit
    FROM retrieval_runs r LEFT JOIN retrieval_queries q ON q.run_id = r.id GROUP BY r.id ORDER BY r.id`).all() as RetrievalRunRow[];
}

export interface RetrievalQueryRow {
  image_id: string;
  label: string;
  split: string;
  item: string;
  first_rank: number | null;
  ap: number;
  relevant: number;
  neighbors: Array<{ rank: number; neighbor_id: string; score: number | null; hit: boolean | null; known: boolean }>;
}

/** A run's queries, the worst first: lowest average precision, then the latest (or no) first hit. */
export function retrievalQueries(db: ReviewDb, run: number, opts: { limit?: number; imageId?: string } = {}): RetrievalQueryRow[] {
  const where = opts.imageId !== undefined ? 'AND q.image_id = @imageId' : '';
  const rows = db.prepare(`SELECT q.image_id, i.label, i.split, q.item, q.first_rank, q.ap, q.relevant FROM retrieval_queries q JOIN images i ON i.id = q.image_id
    WHERE q.run_id = @run ${where} ORDER BY q.ap ASC, q.first_rank IS NOT NULL, q.first_rank DESC, q.image_id LIMIT @limit`).all({ run, limit: opts.limit ?? -1, ...(opts.imageId !== undefined ? { imageId: opts.imageId } : {}) }) as Array<Omit<RetrievalQueryRow, 'neighbors'>>;
  const neighbors = db.prepare('SELECT n.rank, n.neighbor_id, n.score, n.hit, i.id IS NOT NULL AS known FROM retrieval_neighbors n LEFT JOIN images i ON i.id = n.neighbor_id WHERE n.run_id = ? AND n.image_id = ? ORDER BY n.rank');
  return rows.map((r) => ({
    ...r,
    neighbors: (neighbors.all(run, r.image_id) as Array<{ rank: number; neighbor_id: string; score: number | null; hit: number | null; known: number }>).map((n) => ({ ...n, hit: n.hit === null ? null : n.hit === 1, known: n.known === 1 })),
  }));
}

/** The retrieval runs in which an image is a query, with its first-hit rank and AP there. */
export function retrievalOf(db: ReviewDb, id: string): Array<{ run: number; name: string; first_rank: number | null; ap: number }> {
  return db.prepare('SELECT r.id AS run, r.name, q.first_rank, q.ap FROM retrieval_queries q JOIN retrieval_runs r ON r.id = q.run_id WHERE q.image_id = ? ORDER BY r.id DESC').all(id) as Array<{ run: number; name: string; first_rank: number | null; ap: number }>;
}
