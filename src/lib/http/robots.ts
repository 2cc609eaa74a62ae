// robots.txt per origin (RFC 9309), parsed by robots-parser: fetched once per origin, its Crawl-delay
// applied to the host's request spacing. A 4xx robots.txt allows everything; a 5xx or unreachable one
// disallows everything (RFC 9309 §2.3.1.3-4), since the site may be failing to say what it forbids.
// Only the first 500 KiB are read (RFC 9309 §2.5 allows a limit of at least that; Google reads as much):
// the download stops there, so a huge file costs neither time nor memory.
import { createRequire } from 'node:module';
import type { Fetcher } from './fetch.js';

interface RobotsTxt {
  isAllowed(url: string, userAgent?: string): boolean | undefined;
  getCrawlDelay(userAgent?: string): number | undefined;
  getSitemaps(): string[];
}

// robots-parser is CommonJS with a default-export typing that NodeNext resolution cannot call; load it plainly.
const robotsParser = createRequire(import.meta.url)('robots-parser') as (url: string, contents: string) => RobotsTxt;

export interface RobotsRules {
  /** Where the rules came from: 'file' (parsed), 'missing' (4xx: all allowed), 'unreachable' (5xx, network: all disallowed). */
  source: 'file' | 'missing' | 'unreachable';
  isAllowed(url: string): boolean;
  /** Crawl-delay for our user agent, in ms, or null. */
  crawlDelayMs: number | null;
  /** Sitemap URLs listed in the file. */
  sitemaps: string[];
}

export interface RobotsPolicy {
  /** The rules of `url`'s origin (fetched on first use, then cached). */
  rulesFor(url: string): Promise<RobotsRules>;
  /** null when `url` may be fetched, else why not ('robots.txt disallows ...'). */
  check(url: string): Promise<string | null>;
}

export interface RobotsOptions {
  fetcher: Fetcher;
  userAgent: string;
  /** Crawl-delays above this are clamped (a site asking for hours between pages would stall the crawl). */
  maxCrawlDelayMs: number;
  /** Bytes of a robots.txt that are read; the rest is ignored. */
  maxRobotsBytes?: number;
  /** Told when a robots.txt is cut. */
  warn?: (message: string) => void;
}

export const MAX_ROBOTS_BYTES = 500 * 1024;

/** The rules of one robots.txt text; the same as rulesFor gives after a fetch. */
export function parseRobots(robotsUrl: string, text: string, userAgent: string, maxCrawlDelayMs: number): RobotsRules {
  const robots = robotsParser(robotsUrl, text);
  const delay = robots.getCrawlDelay(userAgent);
  return {
    source: 'file',
    // robots-parser answers undefined for another origin's URL; this rule set only speaks for its own.
    isAllowed: (url) => robots.isAllowed(url, userAgent) !== false,
    crawlDelayMs: typeof delay === 'number' && Number.isFinite(delay) && delay > 0 ? Math.min(delay * 1000, maxCrawlDelayMs) : null,
    sitemaps: robots.getSitemaps(),
  };
}

/** A robots.txt cache over `fetcher`; every origin's file is fetched at most once. */
export function createRobotsPolicy(options: RobotsOptions): RobotsPolicy {
  const cache = new Map<string, Promise<RobotsRules>>();
  const load = async (origin: URL): Promise<RobotsRules> => {
    const robotsUrl = new URL('/robots.txt', origin).href;
    const cap = options.maxRobotsBytes ?? MAX_ROBOTS_BYTES;
    const result = await options.fetcher.fetch({ url: robotsUrl, accept: 'text/plain, */*;q=0.5', truncateAt: cap });
    if (result.ok) {
      let body = result.body;
      if (result.truncated) {
        // A rule cut in half could forbid or allow more than the site says: drop the partial last line.
        const lastNewline = body.lastIndexOf(0x0a);
        body = body.subarray(0, lastNewline + 1);
        options.warn?.(`${robotsUrl}: robots.txt is over ${cap} bytes; only its first ${body.length} bytes are read`);
      }
      const rules = parseRobots(robotsUrl, body.toString('utf8'), options.userAgent, options.maxCrawlDelayMs);
      if (rules.crawlDelayMs !== null) options.fetcher.setHostDelay(origin.host, rules.crawlDelayMs);
      return rules;
    }
    const status = result.status ?? 0;
    if (status >= 400 && status < 500 && status !== 429) {
      return { source: 'missing', isAllowed: () => true, crawlDelayMs: null, sitemaps: [] };
    }
    return { source: 'unreachable', isAllowed: () => false, crawlDelayMs: null, sitemaps: [] };
  };
  const rulesFor = (url: string): Promise<RobotsRules> => {
    const parsed = new URL(url);
    const key = parsed.origin;
    let rules = cache.get(key);
    if (rules === undefined) {
      rules = load(parsed);
      cache.set(key, rules);
    }
    return rules;
  };
  return {
    rulesFor,
    async check(url) {
      const rules = await rulesFor(url);
      if (rules.isAllowed(url)) return null;
      return rules.source === 'unreachable' ? 'robots.txt unreachable (everything disallowed)' : 'disallowed by robots.txt';
    },
  };
}
