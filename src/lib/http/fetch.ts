// The crawler's HTTP client on undici: polite per-host scheduling (concurrency and a delay between
// request starts), a global concurrency cap, connect and total timeouts, retries with exponential
// backoff and jitter, 429/503 Retry-After honoured, a body size cap, redirects followed by hand
// (limit and loop detection, each hop checked by the caller, e.g. against robots.txt), content-type checks.
import type * as undiciModule from 'undici';
import { lazyModule } from '../lazy-module.js';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

const undici = lazyModule<typeof undiciModule>('undici');

export interface FetchPolicy {
  /** Sent as User-Agent; robots.txt groups are matched on its product token (before the first '/'). */
  userAgent: string;
  /** Requests in flight over all hosts. */
  globalConcurrency: number;
  /** Requests in flight to one host; 0 for no limit. */
  perHostConcurrency: number;
  /** Least time between two request starts to one host, in ms (a robots.txt Crawl-delay may raise it per host). */
  perHostDelayMs: number;
  /** Time allowed to open a connection, in ms. */
  connectTimeoutMs: number;
  /** Time allowed for one attempt, headers and body, in ms. */
  timeoutMs: number;
  /** Attempts after the first on network errors, timeouts, 5xx and 429. */
  retries: number;
  /** First retry waits about this long; each next one twice as long (jittered), capped by backoffMaxMs. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A Retry-After longer than this fails the request as 'rate-limited' instead of waiting. */
  maxRetryAfterMs: number;
  /** Bodies longer than this (after decompression) are cut and fail as 'too-large'. */
  maxBodyBytes: number;
  /** Redirects followed before failing as 'too-many-redirects'. */
  maxRedirects: number;
  /** Jitter source in [0, 1); Math.random unless a test fixes it. */
  random?: () => number;
}

export const DEFAULT_FETCH_POLICY: FetchPolicy = {
  userAgent: 'atelier-crawler/0.1 (+https://example.invalid/atelier)',
  globalConcurrency: 16,
  perHostConcurrency: 2,
  perHostDelayMs: 250,
  connectTimeoutMs: 10_000,
  timeoutMs: 30_000,
  retries: 3,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  maxRetryAfterMs: 120_000,
  maxBodyBytes: 20 * 1024 * 1024,
  maxRedirects: 5,
};

/**
 * Why a fetch failed: `http-<status>` for a final non-2xx answer, or one of the named reasons.
 * 'blocked' means the caller's allowUrl refused a URL (robots.txt), possibly a redirect target.
 */
export type FetchFailureReason =
  | `http-${number}`
  | 'timeout'
  | 'network'
  | 'too-large'
  | 'redirect-loop'
  | 'too-many-redirects'
  | 'content-type'
  | 'rate-limited'
  | 'invalid-url'
  | 'blocked'
  | 'bad-encoding';

export interface FetchRequest {
  url: string;
  /** Accept header sent. */
  accept?: string;
  /** True for a content type (lowercase, parameters removed) the caller can use; others fail as 'content-type'. */
  acceptContentType?: (contentType: string) => boolean;
  /** Checked before every request, the first and each redirect target: a reason string blocks it. */
  allowUrl?: (url: string) => Promise<string | null>;
  /**
   * Keep only the first this many body bytes and stop the download there (asked uncompressed); the
   * result succeeds with `truncated` set instead of failing as 'too-large'. For robots.txt, which is read to a cap.
   */
  truncateAt?: number;
}

export interface FetchSuccess {
  ok: true;
  /** The URL asked for. */
  requestedUrl: string;
  /** The URL that answered, after redirects. */
  url: string;
  status: number;
  /** Lowercase, without parameters ('' when absent). */
  contentType: string;
  headers: Record<string, string>;
  body: Buffer;
  /** URLs redirected through, in order (requested URL first); empty without redirects. */
  redirects: string[];
  attempts: number;
  /** The body was cut at the request's truncateAt. */
  truncated?: boolean;
}

export interface FetchFailure {
  ok: false;
  requestedUrl: string;
  /** The URL that failed (a redirect target, when a redirect led there). */
  url: string;
  reason: FetchFailureReason;
  /** What went wrong, on one line. */
  message: string;
  status?: number;
  redirects: string[];
  attempts: number;
  /** The blocking reason returned by allowUrl, when reason is 'blocked'. */
  blockedBy?: string;
}

export type FetchResult = FetchSuccess | FetchFailure;

export interface FetchCounters {
  /** HTTP requests sent (each attempt and each redirect hop counts). */
  requests: number;
  /** Attempts repeated after a retryable failure. */
  retries: number;
  /** Body bytes received (before decompression). */
  bytes: number;
}

export interface Fetcher {
  fetch(req: FetchRequest): Promise<FetchResult>;
  /** Raises one host's delay between request starts (e.g. to its robots.txt Crawl-delay); never lowers it below the policy's. */
  setHostDelay(host: string, delayMs: number): void;
  readonly counters: FetchCounters;
  /** Closes the connection pool. */
  close(): Promise<void>;
}

interface HostState {
  active: number;
  nextStartAt: number;
  delayMs: number;
  waiting: Array<() => void>;
  timer: NodeJS.Timeout | null;
}

class RetryableFailure {
  constructor(
    readonly failure: Omit<FetchFailure, 'requestedUrl' | 'redirects' | 'attempts'>,
    readonly waitMs: number | null,
  ) {}
}

/** Milliseconds a Retry-After header asks for (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/** Exponential backoff with "equal jitter": half the step is fixed, half random, so retries spread out. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** retry);
  return step / 2 + random() * (step / 2);
}

/** The media type of a Content-Type header: lowercase, parameters dropped. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

export function isHtmlType(contentType: string): boolean {
  return contentType === 'text/html' || contentType === 'application/xhtml+xml';
}

export function isImageType(contentType: string): boolean {
  return contentType.startsWith('image/');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Classifies an error thrown by undici or the abort signal. */
function networkFailure(url: string, err: unknown, timedOut: boolean): RetryableFailure {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code ?? '';
  const message = oneLine(`${e?.message ?? String(err)}${e?.cause?.message ? ` (${e.cause.message})` : ''}`);
  if (timedOut || /TIMEOUT/i.test(code) || e?.name === 'TimeoutError') {
    return new RetryableFailure({ ok: false, url, reason: 'timeout', message: timedOut ? 'no complete answer in time' : message }, null);
  }
  return new RetryableFailure({ ok: false, url, reason: 'network', message: code ? `${code}: ${message}` : message }, null);
}

function decodeBody(body: Buffer, encoding: string | undefined, maxBytes: number): Buffer {
  const coding = (encoding ?? '').trim().toLowerCase();
  const options = { maxOutputLength: maxBytes };
  if (coding === '' || coding === 'identity') return body;
  if (coding === 'gzip' || coding === 'x-gzip') return gunzipSync(body, options);
  if (coding === 'deflate') return inflateSync(body, options);
  if (coding === 'br') return brotliDecompressSync(body, options);
  throw new Error(`unsupported content-encoding '${coding}'`);
}

/** Creates a fetcher; its pool lives until close(). No state is shared between fetchers. */
export function createFetcher(policy: FetchPolicy): Fetcher {
  const random = policy.random ?? Math.random;
  const agent = new undici.Agent({
    connect: { timeout: policy.connectTimeoutMs },
    headersTimeout: policy.timeoutMs,
    bodyTimeout: policy.timeoutMs,
    connections: policy.perHostConcurrency > 0 ? policy.perHostConcurrency : null,
    keepAliveTimeout: 10_000,
  });
  const counters: FetchCounters = { requests: 0, retries: 0, bytes: 0 };
  const hosts = new Map<string, HostState>();
  let globalActive = 0;
  const globalWaiting: Array<() => void> = [];

  const hostState = (host: string): HostState => {
    let state = hosts.get(host);
    if (state === undefined) {
      state = { active: 0, nextStartAt: 0, delayMs: policy.perHostDelayMs, waiting: [], timer: null };
      hosts.set(host, state);
    }
    return state;
  };

  const pumpHost = (state: HostState): void => {
    while (state.waiting.length > 0 && (policy.perHostConcurrency <= 0 || state.active < policy.perHostConcurrency)) {
      const wait = state.nextStartAt - Date.now();
      if (wait > 0) {
        if (state.timer === null) {
          state.timer = setTimeout(() => {
            state.timer = null;
            pumpHost(state);
          }, wait);
        }
        return;
      }
      state.active += 1;
      state.waiting.shift()!();
    }
  };

  // Host slot first, then a global one: requests queued for a busy host hold no global slot.
  const acquire = async (host: string): Promise<() => void> => {
    const state = hostState(host);
    await new Promise<void>((resolve) => {
      state.waiting.push(resolve);
      pumpHost(state);
    });
    if (globalActive >= policy.globalConcurrency) await new Promise<void>((resolve) => globalWaiting.push(resolve));
    else globalActive += 1;
    // Start times are reserved at the last moment, so requests that waited for a global slot together still start spaced.
    const now = Date.now();
    const startAt = Math.max(now, state.nextStartAt);
    state.nextStartAt = startAt + state.delayMs;
    if (startAt > now) await sleep(startAt - now);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.active -= 1;
      pumpHost(state);
      const next = globalWaiting.shift();
      if (next) next();
      else globalActive -= 1;
    };
  };

  /** One request to one URL (no redirect following, no retry). */
  const attempt = async (url: URL, req: FetchRequest): Promise<{ redirect: string } | { success: Omit<FetchSuccess, 'requestedUrl' | 'redirects' | 'attempts'> }> => {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, policy.timeoutMs);
    const href = url.href;
    try {
      counters.requests += 1;
      let res: Awaited<ReturnType<typeof undiciModule.request>>;
      try {
        res = await undici.request(href, {
          method: 'GET',
          dispatcher: agent,
          signal: controller.signal,
          headers: {
            'user-agent': policy.userAgent,
            accept: req.accept ?? '*/*',
            'accept-encoding': req.truncateAt === undefined ? 'gzip, deflate, br' : 'identity',
          },
        });
      } catch (err) {
        throw networkFailure(href, err, timedOut);
      }
      const { statusCode, headers } = res;
      // Destroying a body we do not want emits an abort error; nobody needs to hear it.
      res.body.on('error', () => {});
      if (statusCode >= 300 && statusCode < 400 && statusCode !== 304) {
        await res.body.dump().catch(() => {});
        const location = headerValue(headers, 'location');
        if (location === undefined) {
          throw { final: { ok: false as const, url: href, reason: `http-${statusCode}` as const, status: statusCode, message: `HTTP ${statusCode} without a Location header` } };
        }
        return { redirect: location };
      }
      if (statusCode < 200 || statusCode >= 300) {
        await res.body.dump().catch(() => {});
        const failure = { ok: false as const, url: href, reason: `http-${statusCode}` as const, status: statusCode, message: `HTTP ${statusCode}` };
        if (statusCode === 429 || statusCode === 503) {
          const wait = parseRetryAfter(headerValue(headers, 'retry-after'), Date.now());
          if (wait !== null && wait > policy.maxRetryAfterMs) {
            throw { final: { ...failure, reason: 'rate-limited' as const, message: `HTTP ${statusCode} asks to wait ${Math.round(wait / 1000)} s (more than the ${Math.round(policy.maxRetryAfterMs / 1000)} s allowed)` } };
          }
          throw new RetryableFailure(failure, wait);
        }
        if (statusCode >= 500) throw new RetryableFailure(failure, null);
        throw { final: failure };
      }
      const contentType = mediaType(headerValue(headers, 'content-type'));
      if (req.acceptContentType && !req.acceptContentType(contentType)) {
        await res.body.dump().catch(() => {});
        throw { final: { ok: false as const, url: href, reason: 'content-type' as const, status: statusCode, message: `unexpected content type '${contentType || 'none'}'` } };
      }
      const tooLarge = (size: string) => ({ final: { ok: false as const, url: href, reason: 'too-large' as const, status: statusCode, message: `body ${size} is over the ${policy.maxBodyBytes}-byte limit` } });
      const declared = Number(headerValue(headers, 'content-length'));
      const cut = req.truncateAt;
      if (cut === undefined && Number.isFinite(declared) && declared > policy.maxBodyBytes) {
        res.body.destroy();
        throw tooLarge(`of ${declared} bytes`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      try {
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          counters.bytes += (chunk as Buffer).length;
          if (cut !== undefined && size >= cut) {
            chunks.push(chunk as Buffer);
            truncated = !(Number.isFinite(declared) && declared === size);
            res.body.destroy();
            break;
          }
          if (size > policy.maxBodyBytes) {
            res.body.destroy();
            throw tooLarge('cut');
          }
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        if ((err as { final?: unknown }).final) throw err;
        throw networkFailure(href, err, timedOut);
      }
      let body: Buffer;
      try {
        body = decodeBody(Buffer.concat(chunks), headerValue(headers, 'content-encoding'), policy.maxBodyBytes);
        if (cut !== undefined && body.length > cut) {
          body = body.subarray(0, cut);
          truncated = true;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw tooLarge('after decompression');
        throw { final: { ok: false as const, url: href, reason: 'bad-encoding' as const, status: statusCode, message: oneLine((err as Error).message) } };
      }
      return { success: { ok: true, url: href, status: statusCode, contentType, headers: flattenHeaders(headers), body, ...(truncated ? { truncated } : {}) } };
    } finally {
      clearTimeout(timer);
    }
  };

  const fetchOne = async (req: FetchRequest): Promise<FetchResult> => {
    const redirects: string[] = [];
    let attempts = 0;
    let current: URL;
    const fail = (f: Omit<FetchFailure, 'requestedUrl' | 'redirects' | 'attempts'>): FetchFailure => ({ ...f, requestedUrl: req.url, redirects, attempts });
    try {
      current = new URL(req.url);
    } catch {
      return fail({ ok: false, url: req.url, reason: 'invalid-url', message: 'not a valid absolute URL' });
    }
    const visited = new Set<string>();
    for (;;) {
      if (current.protocol !== 'http:' && current.protocol !== 'https:') {
        return fail({ ok: false, url: current.href, reason: 'invalid-url', message: `unsupported scheme '${current.protocol}'` });
      }
      current.hash = '';
      visited.add(current.href);
      if (req.allowUrl) {
        const blockedBy = await req.allowUrl(current.href);
        if (blockedBy !== null) return { ...fail({ ok: false, url: current.href, reason: 'blocked', message: blockedBy }), blockedBy };
      }
      let outcome: Awaited<ReturnType<typeof attempt>> | null = null;
      for (let retry = 0; outcome === null; retry++) {
        const release = await acquire(current.host);
        attempts += 1;
        let waitMs: number | null = null;
        let failure: RetryableFailure | null = null;
        try {
          outcome = await attempt(current, req);
        } catch (err) {
          if (err instanceof RetryableFailure) failure = err;
          else if ((err as { final?: FetchFailure }).final) return fail((err as { final: FetchFailure }).final);
          else throw err;
        } finally {
          release();
        }
        if (failure === null) break;
        if (retry >= policy.retries) return fail(failure.failure);
        counters.retries += 1;
        waitMs = failure.waitMs ?? backoffDelay(retry, policy.backoffBaseMs, policy.backoffMaxMs, random);
        if (failure.waitMs !== null) {
          // The server asked the whole host to slow down, not only this URL.
          const state = hostState(current.host);
          state.nextStartAt = Math.max(state.nextStartAt, Date.now() + failure.waitMs);
        }
        await sleep(waitMs);
      }
      if ('success' in outcome!) {
        return { ...outcome.success, requestedUrl: req.url, redirects, attempts };
      }
      let next: URL;
      try {
        next = new URL(outcome!.redirect, current);
      } catch {
        return fail({ ok: false, url: current.href, reason: 'invalid-url', message: `redirect to an invalid URL '${outcome!.redirect}'` });
      }
      next.hash = '';
      redirects.push(current.href);
      if (visited.has(next.href)) {
        return fail({ ok: false, url: next.href, reason: 'redirect-loop', message: `redirect loop back to ${next.href}` });
      }
      if (redirects.length > policy.maxRedirects) {
        return fail({ ok: false, url: next.href, reason: 'too-many-redirects', message: `more than ${policy.maxRedirects} redirects` });
      }
      current = next;
    }
  };

  return {
    fetch: fetchOne,
    setHostDelay(host, delayMs) {
      const state = hostState(host);
      state.delayMs = Math.max(policy.perHostDelayMs, delayMs);
    },
    counters,
    async close() {
      for (const state of hosts.values()) if (state.timer) clearTimeout(state.timer);
      await agent.close();
    },
  };
}
