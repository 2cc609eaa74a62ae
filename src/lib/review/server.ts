// The review app's HTTP server. Reads are pages and images; writes are two JSON endpoints that
// need the session token in a header. Only images the database names are served, looked up by id
// (a request never names a path), opened without following a final symlink, image types only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { open } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { extname } from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../command.js';
import { currentReport, falseNegatives, falsePositives, needsReview } from './analysis.js';
import { getImage, getSetting, history, neighborsOf, overlaysOf, predictionsOf, retag, retrievalOf, retrievalQueries, retrievalRuns, runs, scoredImages, undo, UndoConflict, type ReviewDb } from './db.js';
import { classPage, f1Page, historyPage, imagePage, queuePage, retrievalPage, type PageFrame } from './pages.js';

export interface ReviewServerOptions {
  db: ReviewDb;
  /** Session token for writes; random when not given. */
  token?: string;
  /** When set, every request (reads too) must carry the token: for a non-loopback --host. */
  tokenForReads?: boolean;
  user: string;
  title?: string;
  /** Cards shown per grid. */
  limit?: number;
}

const IMAGE_TYPES: Record<string, string> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.gif': 'image/gif' };

// No outside requests: everything comes from this server, scripts and styles inline.
const CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export function newSessionToken(): string {
  return randomBytes(24).toString('base64url');
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(req: IncomingMessage): string | undefined {
  const m = /(?:^|;\s*)atelier_token=([^;]+)/.exec(req.headers.cookie ?? '');
  return m ? decodeURIComponent(m[1]) : undefined;
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'expected Content-Type: application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1 << 20) throw new HttpError(413, 'body over 1 MiB');
    chunks.push(chunk as Buffer);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'body is not a JSON object');
  }
}

/** Creates the server (not yet listening); `allowedHosts` are the Host headers it answers (DNS rebinding). */
export function createReviewServer(opts: ReviewServerOptions): { server: Server; token: string; allowHost(host: string): void } {
  const { db } = opts;
  const token = opts.token ?? newSessionToken();
  const hosts = new Set<string>();
  const limit = opts.limit ?? 200;
  const labels = (): string[] => JSON.parse(getSetting(db, 'labels') ?? '[]') as string[];
  const frame = (): PageFrame => ({ title: opts.title ?? 'atelier review', token, user: opts.user, labels: labels() });
  const whoOf = (body: Record<string, unknown>): string => {
    const who = typeof body.who === 'string' ? body.who.trim().slice(0, 64) : '';
    return who || opts.user;
  };
  const pickRun = (url: URL) => {
    const all = runs(db);
    const asked = Number(url.searchParams.get('run'));
    const run = all.find((r) => r.id === asked) ?? all[all.length - 1] ?? null;
    // GILT reads F1 per split (train and test): ?split= narrows every view to one.
    const split = ['train', 'val', 'test'].find((x) => x === url.searchParams.get('split')) ?? null;
    const scored = (id: number) => scoredImages(db, id).filter((im) => split === null || im.split === split);
    return { all, run, split, scored };
  };

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store' });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // On loopback the Host check stops DNS rebinding; off loopback every request needs the token instead.
    if (!opts.tokenForReads && !hosts.has((req.headers.host ?? '').toLowerCase())) throw new HttpError(421, 'unexpected Host header');
    const url = new URL(req.url ?? '/', 'http://review.invalid');
    if (opts.tokenForReads && req.method === 'GET') {
      const query = url.searchParams.get('token') ?? undefined;
      if (sameToken(query, token)) {
        url.searchParams.delete('token');
        res.writeHead(303, { Location: url.pathname + url.search, 'Set-Cookie': `atelier_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` });
        res.end();
        return;
      }
      if (!sameToken(cookieToken(req), token) && !sameToken(req.headers['x-atelier-token'] as string | undefined, token)) throw new HttpError(401, 'this server needs its token: open it once with ?token=...');
    }
    // The raw path, split before decoding: an encoded slash stays inside one segment.
    const segments = (req.url ?? '/').split('?')[0].split('/').slice(1);
    let decoded: string[];
    try {
      decoded = segments.map((s) => decodeURIComponent(s));
    } catch {
      throw new HttpError(400, 'bad percent-encoding');
    }
    const [head, arg] = decoded;
    if (req.method === 'POST') {
      if (!sameToken(req.headers['x-atelier-token'] as string | undefined, token)) throw new HttpError(403, 'missing or wrong X-Atelier-Token');
      const body = await readJsonBody(req);
      if (decoded.length === 2 && head === 'api' && arg === 'retag') {
        const ids = body.ids;
        if (!Array.isArray(ids) || ids.length === 0 || ids.length > 10000 || !ids.every((id) => typeof id === 'string')) throw new HttpError(400, 'ids: expected 1 to 10000 string ids');
        if (typeof body.label !== 'string' || !labels().includes(body.label)) throw new HttpError(400, `label: expected one of ${labels().join(', ')}`);
        return json(res, 200, retag(db, ids as string[], body.label, whoOf(body)));
      }
      if (decoded.length === 2 && head === 'api' && arg === 'undo') {
        if (!Number.isInteger(body.batch)) throw new HttpError(400, 'batch: expected an integer');
        try {
          return json(res, 200, undo(db, body.batch as number, whoOf(body)));
        } catch (err) {
          if (err instanceof UndoConflict) throw new HttpError(409, err.message);
          throw err;
        }
      }
      throw new HttpError(404, 'no such endpoint');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed');
    const html = (body: string) => send(res, 200, 'text/html; charset=utf-8', body);
    if (decoded.length === 1 && head === '') {
      const { all, run, split, scored } = pickRun(url);
      const index = run ? all.indexOf(run) : -1;
      const previous = index > 0 ? all[index - 1] : null;
      return html(f1Page(frame(), all, run, run ? currentReport(scored(run.id), labels()) : null, previous ? currentReport(scored(previous.id), labels()) : null, split));
    }
    if (decoded.length === 2 && head === 'class') {
      const { run, scored } = pickRun(url);
      const images = run ? scored(run.id) : [];
      return html(classPage(frame(), arg, falseNegatives(images, arg), falsePositives(images, arg), limit));
    }
    if (decoded.length === 1 && head === 'queue') {
      const { run, scored } = pickRun(url);
      return html(queuePage(frame(), run ? needsReview(scored(run.id)) : [], limit));
    }
    if (decoded.length === 1 && head === 'retrieval') {
      const all = retrievalRuns(db);
      const run = all.find((r) => r.id === Number(url.searchParams.get('run'))) ?? all[all.length - 1] ?? null;
      return html(retrievalPage(frame(), all, run, run ? retrievalQueries(db, run.id, { limit }) : []));
    }
    if (decoded.length === 1 && head === 'history') return html(historyPage(frame(), history(db)));
    if (decoded.length === 2 && head === 'image') {
      const image = getImage(db, arg);
      if (!image) throw new HttpError(404, 'no such image');
      return html(imagePage(frame(), image, predictionsOf(db, arg), history(db, { imageId: arg }), neighborsOf(db, arg), overlaysOf(db, arg), retrievalOf(db, arg)));
    }
    if (decoded.length === 3 && head === 'api' && arg === 'image') {
      const image = getImage(db, decoded[2]);
      if (!image) throw new HttpError(404, 'no such image');
      return json(res, 200, { id: image.id, label: image.label, split: image.split, history: history(db, { imageId: image.id }) });
    }
    if (decoded.length === 2 && head === 'img') return serveFile(res, getImage(db, arg)?.path);
    if (decoded.length === 3 && head === 'overlay') return serveFile(res, overlaysOf(db, arg).find((o) => o.class === decoded[2])?.path);
    throw new HttpError(404, 'not found');
  }

  /** Serves a path the database holds (never one from the request). */
  async function serveFile(res: ServerResponse, path: string | undefined): Promise<void> {
    const type = path ? IMAGE_TYPES[extname(path).toLowerCase()] : undefined;
    if (!path || !type) throw new HttpError(404, 'no such image');
    let handle;
    try {
      handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch {
      throw new HttpError(404, 'image not readable (missing, or a symlink)');
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new HttpError(404, 'not a regular file');
      const bytes = await handle.readFile();
      res.writeHead(200, { 'Content-Type': type, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'private, max-age=60' });
      res.end(bytes);
    } finally {
      await handle.close();
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof UsageError ? 400 : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (status === 500) process.stderr.write(`atelier review: ${req.method} ${req.url}: ${message}\n`);
      if (!res.headersSent) json(res, status, { error: message });
      else res.end();
    });
  });
  return { server, token, allowHost: (host: string) => hosts.add(host.toLowerCase()) };
}
