// The crawler's HTTP client against small node:http servers on 127.0.0.1: retries, Retry-After,
// timeouts, body cap, redirects, content types, politeness (per-host concurrency and delay), robots.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { backoffDelay, createFetcher, DEFAULT_FETCH_POLICY, isHtmlType, parseRetryAfter, type FetchPolicy } from '../../src/lib/http/fetch.js';
import { createRobotsPolicy } from '../../src/lib/http/robots.js';

type Handler = (req: IncomingMessage, res: ServerResponse, hit: number) => void;

interface TestServer {
  url: string;
  host: string;
  log: Array<{ path: string; at: number; ua: string }>;
  maxActive: number;
  close(): Promise<void>;
}

/** A loopback server; `routes` maps a path to its handler (hit = how many times that path was asked for). */
async function serve(routes: Record<string, Handler>): Promise<TestServer> {
  const hits = new Map<string, number>();
  const log: TestServer['log'] = [];
  let active = 0;
  const state = { maxActive: 0 };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const hit = (hits.get(path) ?? 0) + 1;
    hits.set(path, hit);
    log.push({ path, at: performance.now(), ua: String(req.headers['user-agent']) });
    active += 1;
    state.maxActive = Math.max(state.maxActive, active);
    res.on('close', () => (active -= 1));
    const handler = routes[path];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no');
      return;
    }
    handler(req, res, hit);
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    log,
    get maxActive() {
      return state.maxActive;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const html = (body: string): Handler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body);
};

function policy(overrides: Partial<FetchPolicy> = {}): FetchPolicy {
  return { ...DEFAULT_FETCH_POLICY, perHostDelayMs: 0, backoffBaseMs: 20, retries: 2, timeoutMs: 2000, random: () => 0.5, ...overrides };
}

test('backoff doubles per retry with bounded jitter; Retry-After as seconds or a date', () => {
  assert.equal(backoffDelay(0, 100, 10_000, () => 0), 50);
  assert.equal(backoffDelay(0, 100, 10_000, () => 0.999999) < 100, true);
  assert.equal(backoffDelay(3, 100, 10_000, () => 0), 400);
  assert.equal(backoffDelay(20, 100, 1000, () => 1), 1000);
  assert.equal(parseRetryAfter('3', 0), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter('soon', 0), null);
  assert.equal(parseRetryAfter(undefined, 0), null);
});

test('a 500 is retried and the 200 that follows is returned; the User-Agent is sent', async () => {
  const server = await serve({ '/p': (_q, res, hit) => (hit === 1 ? res.writeHead(500).end('boom') : html('<p>ok</p>')(_q, res, hit)) });
  const fetcher = createFetcher(policy({ userAgent: 'test-bot/1.0' }));
  try {
    const r = await fetcher.fetch({ url: `${server.url}/p`, acceptContentType: isHtmlType });
    assert.equal(r.ok, true);
    assert.equal(r.attempts, 2);
    assert.equal(r.ok && r.body.toString(), '<p>ok</p>');
    assert.equal(fetcher.counters.retries, 1);
    assert.equal(server.log[0]!.ua, 'test-bot/1.0');
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('retries give up after the limit with the last status; a 404 is not retried', async () => {
  const server = await serve({ '/down': (_q, res) => res.writeHead(503).end() });
  const fetcher = createFetcher(policy({ retries: 2 }));
  try {
    const down = await fetcher.fetch({ url: `${server.url}/down` });
    assert.equal(down.ok, false);
    assert.equal(!down.ok && down.reason, 'http-503');
    assert.equal(down.attempts, 3);
    const missing = await fetcher.fetch({ url: `${server.url}/missing` });
    assert.equal(!missing.ok && missing.reason, 'http-404');
    assert.equal(missing.attempts, 1);
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('429 with Retry-After waits that long; one asking too long fails as rate-limited', async () => {
  const server = await serve({
    '/busy': (_q, res, hit) => (hit === 1 ? res.writeHead(429, { 'retry-after': '1' }).end() : html('fine')(_q, res, hit)),
    '/never': (_q, res) => res.writeHead(429, { 'retry-after': '3600' }).end(),
  });
  const fetcher = createFetcher(policy({ maxRetryAfterMs: 5000 }));
  try {
    const r = await fetcher.fetch({ url: `${server.url}/busy` });
    assert.equal(r.ok, true);
    const gap = server.log[1]!.at - server.log[0]!.at;
    assert.ok(gap >= 950, `waited ${gap} ms, Retry-After said 1 s`);
    const never = await fetcher.fetch({ url: `${server.url}/never` });
    assert.equal(!never.ok && never.reason, 'rate-limited');
    assert.equal(never.attempts, 1);
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('a server that never answers times out (total timeout), retried then failed', async () => {
  const server = await serve({ '/slow': () => {} });
  const fetcher = createFetcher(policy({ timeoutMs: 200, retries: 1 }));
  try {
    const t0 = performance.now();
    const r = await fetcher.fetch({ url: `${server.url}/slow` });
    assert.equal(!r.ok && r.reason, 'timeout');
    assert.equal(r.attempts, 2);
    assert.ok(performance.now() - t0 < 2000);
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('bodies over the cap are cut: declared by Content-Length or streamed without one', async () => {
  const big = Buffer.alloc(50_000, 0x61);
  const server = await serve({
    '/declared': (_q, res) => res.writeHead(200, { 'content-type': 'text/html', 'content-length': String(big.length) }).end(big),
    '/streamed': (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      let sent = 0;
      const pump = () => {
        while (sent < 5_000_000 && !res.destroyed) {
          sent += 10_000;
          if (!res.write(Buffer.alloc(10_000, 0x62))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
    '/gzip': (_q, res) => res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip' }).end(gzipSync(big)),
  });
  const fetcher = createFetcher(policy({ maxBodyBytes: 20_000 }));
  try {
    for (const path of ['/declared', '/streamed', '/gzip']) {
      const r = await fetcher.fetch({ url: `${server.url}${path}` });
      assert.equal(!r.ok && r.reason, 'too-large', path);
    }
    assert.ok(fetcher.counters.bytes < 1_000_000, `read ${fetcher.counters.bytes} bytes of a 5 MB stream`);
  } finally {
    await fetcher.close();
  }
  const roomy = createFetcher(policy({ maxBodyBytes: 100_000 }));
  try {
    const r = await roomy.fetch({ url: `${server.url}/gzip` });
    assert.equal(r.ok && r.body.length, big.length, 'gzip bodies are inflated');
  } finally {
    await roomy.close();
    await server.close();
  }
});

test('redirects: a chain is followed, a loop is detected, a long chain hits the limit, each hop is checked', async () => {
  const to = (location: string): Handler => (_q, res) => res.writeHead(302, { location }).end();
  const server = await serve({
    '/a': to('/b'),
    '/b': to('/c'),
    '/c': html('end'),
    '/loop1': to('/loop2'),
    '/loop2': to('/loop1'),
    ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`/n${i}`, to(`/n${i + 1}`)])),
    '/to-secret': to('/secret'),
    '/secret': html('secret'),
  });
  const fetcher = createFetcher(policy({ maxRedirects: 5 }));
  try {
    const chain = await fetcher.fetch({ url: `${server.url}/a` });
    assert.equal(chain.ok && chain.url, `${server.url}/c`);
    assert.deepEqual(chain.redirects, [`${server.url}/a`, `${server.url}/b`]);
    const loop = await fetcher.fetch({ url: `${server.url}/loop1` });
    assert.equal(!loop.ok && loop.reason, 'redirect-loop');
    const long = await fetcher.fetch({ url: `${server.url}/n0` });
    assert.equal(!long.ok && long.reason, 'too-many-redirects');
    const blocked = await fetcher.fetch({ url: `${server.url}/to-secret`, allowUrl: async (u) => (u.endsWith('/secret') ? 'disallowed' : null) });
    assert.equal(!blocked.ok && blocked.reason, 'blocked');
    assert.equal(server.log.filter((l) => l.path === '/secret').length, 0, 'the blocked target was never requested');
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('content type is checked before the body is used', async () => {
  const server = await serve({ '/img': (_q, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end('x') });
  const fetcher = createFetcher(policy());
  try {
    const r = await fetcher.fetch({ url: `${server.url}/img`, acceptContentType: isHtmlType });
    assert.equal(!r.ok && r.reason, 'content-type');
    const bad = await fetcher.fetch({ url: 'ftp://example.test/x' });
    assert.equal(!bad.ok && bad.reason, 'invalid-url');
  } finally {
    await fetcher.close();
    await server.close();
  }
});

test('politeness: at most perHost requests at once to a host, starts spaced by the host delay, global cap across hosts', async () => {
  const slow: Handler = (_q, res) => setTimeout(() => html('ok')(_q, res, 0), 60);
  const a = await serve({ '/x': slow });
  const b = await serve({ '/x': slow });
  const fetcher = createFetcher(policy({ perHostConcurrency: 2, globalConcurrency: 3 }));
  try {
    await Promise.all(Array.from({ length: 8 }, () => fetcher.fetch({ url: `${a.url}/x` })).concat(Array.from({ length: 8 }, () => fetcher.fetch({ url: `${b.url}/x` }))));
    assert.ok(a.maxActive <= 2 && b.maxActive <= 2, `per host: ${a.maxActive}, ${b.maxActive}`);
    assert.equal(a.maxActive, 2);
  } finally {
    await fetcher.close();
    await a.close();
    await b.close();
  }
  // The delay: 6 quick requests, 4 allowed at once, 50 ms between starts -> the starts span >= 250 ms
  // (measured over the whole run, so one late arrival cannot fail it; without the delay they span a few ms).
  const quick = await serve({ '/q': html('ok') });
  const spaced = createFetcher(policy({ perHostConcurrency: 4, perHostDelayMs: 50 }));
  try {
    await Promise.all(Array.from({ length: 6 }, () => spaced.fetch({ url: `${quick.url}/q` })));
    const starts = quick.log.map((l) => l.at);
    const span = Math.max(...starts) - Math.min(...starts);
    assert.ok(span >= 5 * 50 * 0.9, `6 starts spaced 50 ms span ${span} ms`);
  } finally {
    await spaced.close();
    await quick.close();
  }
  const c = await serve({ '/x': slow });
  const d = await serve({ '/x': slow });
  let peak = 0;
  let now = 0;
  const counting = createFetcher(policy({ perHostConcurrency: 0, globalConcurrency: 3 }));
  try {
    const one = async (url: string) => {
      now += 1;
      peak = Math.max(peak, now);
      await counting.fetch({ url });
      now -= 1;
    };
    await Promise.all([...Array.from({ length: 6 }, () => one(`${c.url}/x`)), ...Array.from({ length: 6 }, () => one(`${d.url}/x`))]);
    assert.ok(c.maxActive + d.maxActive <= 6);
    assert.ok(Math.max(c.maxActive, d.maxActive) <= 3, `global cap: ${c.maxActive}, ${d.maxActive}`);
  } finally {
    await counting.close();
    await c.close();
    await d.close();
  }
});

test('robots policy: rules fetched once per origin, Crawl-delay slows the host, 404 allows all, 5xx disallows all', async () => {
  const server = await serve({
    '/robots.txt': (_q, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\nDisallow: /private/\nCrawl-delay: 0.1\n'),
    '/p': html('p'),
  });
  const down = await serve({ '/robots.txt': (_q, res) => res.writeHead(500).end() });
  const none = await serve({});
  const fetcher = createFetcher(policy({ retries: 0 }));
  const robots = createRobotsPolicy({ fetcher, userAgent: 'atelier-crawler/0.1', maxCrawlDelayMs: 10_000 });
  try {
    assert.equal(await robots.check(`${server.url}/p`), null);
    assert.match((await robots.check(`${server.url}/private/x`)) ?? '', /disallowed/);
    assert.equal(server.log.filter((l) => l.path === '/robots.txt').length, 1);
    await Promise.all([1, 2, 3, 4].map(() => fetcher.fetch({ url: `${server.url}/p` })));
    const starts = server.log.filter((l) => l.path === '/p').map((l) => l.at);
    const span = Math.max(...starts) - Math.min(...starts);
    assert.ok(span >= 3 * 100 * 0.9, `Crawl-delay 0.1 s: 4 starts span ${span} ms`);
    assert.match((await robots.check(`${down.url}/anything`)) ?? '', /unreachable/);
    assert.equal(await robots.check(`${none.url}/anything`), null);
  } finally {
    await fetcher.close();
    await server.close();
    await down.close();
    await none.close();
  }
});

/** A robots.txt of `total` bytes streamed lazily: `head`, comment filler, `atCap` placed to straddle byte `cap`, then more rules. */
function hugeRobots(total: number, cap: number, head: string, atCap: string, tail: string): Handler {
  return (_req, res) => {
    const prefix = Buffer.from(head);
    const fillerLength = cap - prefix.length - (atCap.length - 1);
    const filler = Buffer.from('#'.repeat(fillerLength - 1) + '\n');
    const bytes = Buffer.concat([prefix, filler, Buffer.from(atCap), Buffer.from(tail)]);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(total) });
    let sent = 0;
    const comment = Buffer.from('#'.repeat(64 * 1024 - 1) + '\n');
    const pump = () => {
      while (sent < total) {
        const chunk = sent === 0 ? bytes : comment;
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => {});
    pump();
  };
}

test('robots.txt over 500 KiB: only its first 500 KiB are read, the download stops there, a warning says so', async () => {
  const cap = 500 * 1024;
  const total = 50 * 1024 * 1024;
  // "Disallow: /" straddles the cap: kept half, it would forbid everything; later rules are past the cap.
  const server = await serve({
    '/robots.txt': hugeRobots(total, cap, 'User-agent: *\nDisallow: /private/\n', 'Disallow: /\n', 'Disallow: /late/\n'),
    '/p': html('p'),
  });
  const fetcher = createFetcher(policy({ retries: 0, maxBodyBytes: 20 * 1024 * 1024, timeoutMs: 20_000 }));
  const warnings: string[] = [];
  const robots = createRobotsPolicy({ fetcher, userAgent: 'atelier-crawler/0.1', maxCrawlDelayMs: 10_000, warn: (m) => warnings.push(m) });
  try {
    assert.match((await robots.check(`${server.url}/private/x`)) ?? '', /disallowed by robots\.txt/);
    assert.equal(await robots.check(`${server.url}/p`), null, 'not "disallow all"');
    assert.equal(await robots.check(`${server.url}/late/x`), null, 'rules past the cap are not read');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /robots\.txt is over 512000 bytes; only its first \d+ bytes are read/);
    assert.ok(fetcher.counters.bytes < 4 * 1024 * 1024, `downloaded ${fetcher.counters.bytes} bytes of ${total}`);
  } finally {
    await fetcher.close();
    await server.close();
  }
});
