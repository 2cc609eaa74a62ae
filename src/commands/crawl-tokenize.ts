import { createHash } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { constants as fsConstants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { defineCommand, UsageError, warn, type CommandIO } from '../lib/command.js';
import { openNdjsonWriter, readTextLines, requireString, type NdjsonWriter } from '../lib/io/ndjson.js';
import { readRecords } from '../lib/io/csv.js';
import { checkFileOutput, isSpecialFile, writeFileAtomic } from '../lib/io/atomic.js';
import { inputDisplayName, isStdio, openInputStream } from '../lib/io/paths.js';
import { startProgress } from '../lib/progress.js';
import { createFetcher, DEFAULT_FETCH_POLICY, type FetchPolicy } from '../lib/http/fetch.js';
import { createRobotsPolicy } from '../lib/http/robots.js';
import { crawl, createImageDownloader, type CrawlEntry, type ImageOutcome, type PageEntry, type ProductSource, type SitemapEntry } from '../lib/http/crawl.js';
import { openJournal, type CrawlJournal, type EntryLocation } from '../lib/http/journal.js';
import { verifyAndStoreImage } from '../lib/http/image-store.js';
import { isStopwordLanguage, parseStopwordList, stopwordSet, type StopwordLanguage } from '../lib/text/stopwords.js';
import { normalizeStopwords } from '../lib/text/tokenize.js';
import { productBag, productSamples, TEXT_FIELDS, type TextField, type WeakLabelRecord } from '../lib/text/weak-labels.js';
import { addSiteProduct, createVocabularyCounter, removeSiteProduct, siteSpecificWords, type SiteWordFrequencies } from '../lib/text/vocabulary.js';
import { fraction, nonNegativeInt, positiveInt } from '../lib/options.js';

const NAME = 'crawl-tokenize';

interface Args {
  urls: string[];
  'url-file'?: string;
  sitemap?: string[];
  import?: string;
  'title-field': string;
  'category-field': string;
  'description-field': string;
  'image-field'?: string;
  'id-field'?: string;
  'site-field'?: string;
  'image-base'?: string;
  output: string;
  images?: string;
  state?: string;
  restart: boolean;
  vocab?: string;
  'top-k': number;
  stats?: string;
  follow?: string;
  'product-pattern'?: string;
  'site-pattern'?: string;
  'max-pages': number;
  'max-sitemaps': number;
  fields: string;
  lang: string;
  stopwords?: string;
  'min-length': number;
  'max-df': number;
  'min-site-products': number;
  'fold-accents': boolean;
  concurrency: number;
  'per-host': number;
  'host-delay': number;
  'connect-timeout': number;
  timeout: number;
  retries: number;
  backoff: number;
  'max-retry-after': number;
  'max-crawl-delay': number;
  'max-body': number;
  'max-redirects': number;
  'user-agent': string;
}

/** Journal entry of one imported row. */
interface RowEntry {
  kind: 'row';
  line: number;
  product: ProductSource;
}

type ImportEntry = RowEntry;

/** Per-run numbers; also the --stats JSON. */
interface RunStats {
  mode: 'crawl' | 'import';
  pages?: {
    queued: number;
    fetched: number;
    products: number;
    notProducts: number;
    noindex: number;
    skippedByRobots: number;
    duplicates: number;
    failed: Record<string, number>;
  };
  sitemaps?: { read: number; failed: number; urls: number };
  rows?: { read: number };
  products: { total: number; withoutImages: number };
  images: {
    referenced: number;
    saved: number;
    duplicates: number;
    corrupt: Record<string, number>;
    skipped: Record<string, number>;
    failed: Record<string, number>;
  };
  records: number;
  vocabulary: { words: number; written: number } | null;
  siteWords: Record<string, string[]>;
  run: { seconds: number; requests: number; retries: number; bytes: number; resumed: number };
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));
}

function countsText(counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function compileRegex(pattern: string | undefined, option: string): RegExp | null {
  if (pattern === undefined) return null;
  try {
    return new RegExp(pattern, 'u');
  } catch (err) {
    throw new UsageError(`not a valid regular expression: ${(err as Error).message}`, { field: `--${option}` });
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
  } catch {
    return false;
  }
}

function normalizeUrl(text: string): string {
  const u = new URL(text);
  u.hash = '';
  return u.href;
}

/** Start URLs from a file: one URL per line, or NDJSON lines `{"url": ...}`; blank lines and `#` comments skipped. */
async function readStartUrls(path: string, io: CommandIO): Promise<string[]> {
  const name = inputDisplayName(path);
  const urls: string[] = [];
  const stream = await openInputStream(path, io.stdin);
  for await (const { text, line } of readTextLines(stream, name)) {
    const trimmed = text.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    let url = trimmed;
    if (trimmed.startsWith('{')) {
      let value: unknown;
      try {
        value = JSON.parse(trimmed);
      } catch (err) {
        throw new UsageError(`invalid JSON: ${(err as Error).message}`, { file: name, line });
      }
      url = requireString(value, 'url', { file: name, line }).trim();
    }
    if (!isHttpUrl(url)) throw new UsageError(`not an absolute http(s) URL: ${JSON.stringify(url.slice(0, 80))}`, { file: name, line });
    urls.push(normalizeUrl(url));
  }
  return urls;
}

function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** A field value of a record: a column name or a dotted path into nested JSON; arrays are joined. */
function fieldValue(record: Record<string, unknown>, path: string): unknown {
  if (path in record) return record[path];
  let value: unknown = record;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function hasField(record: Record<string, unknown>, path: string): boolean {
  return fieldValue(record, path) !== undefined;
}

function textOf(value: unknown, separator: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value.trim() === '' ? null : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const parts = value.map((v) => textOf(v, separator)).filter((v): v is string => v !== null);
    return parts.length === 0 ? null : parts.join(separator);
  }
  return null;
}

/** Joins several named fields (comma-separated flag value) into one text. */
function joinedField(record: Record<string, unknown>, names: string[], separator: string): string | null {
  const parts = names.map((n) => textOf(fieldValue(record, n), separator)).filter((v): v is string => v !== null);
  return parts.length === 0 ? null : parts.join(separator);
}

function splitNames(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function imageRefs(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.flatMap(imageRefs);
  if (typeof value === 'object') {
    const url = (value as Record<string, unknown>).url ?? (value as Record<string, unknown>).path;
    return typeof url === 'string' ? imageRefs(url) : [];
  }
  return String(value)
    .split('|')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export default defineCommand<Args>({
  name: NAME,
  summary: 'crawl product pages (or import catalogue rows) into images, each with the bag of words of its product',
  description: [
    'The first step of the weakly supervised pipeline (the report §2.6): product pages become one NDJSON record per product image, {id, source, url, image, sha256, title, category, description, tokens}, with the image saved under --images by its SHA-256 (stored once however often it is seen) and tokens = the bag of words of the title, category and description.',
    'Crawling: start URLs (arguments, or --url-file with one URL per line or NDJSON {url}) and --sitemap files form the first level; same-host links matching --follow form the next levels, admitted in page and link order once a level is done, up to --max-pages. Requests are polite: per-host concurrency and delay, robots.txt (Crawl-delay included; a 5xx robots.txt disallows everything; only its first 500 KiB are read, as Google does, with a warning), X-Robots-Tag and meta robots (noindex, nofollow, noimageindex), retries with exponential backoff and jitter on network errors, timeouts, 5xx and 429 (Retry-After honoured), a body size cap, redirects with a limit and loop detection. Pages must be HTML; images must be image/* and decode (sharp). Products are read from JSON-LD (@graph and arrays included), then OpenGraph, then microdata, then h1/title/meta description and unlinked images.',
    'Import: --import FILE reads product rows from NDJSON or CSV instead (fields named by --title-field etc., comma-separated lists joined, dotted paths into nested JSON); --image-field values are URLs or file paths (several separated by |, or a JSON array), relative ones resolved against --image-base (default: the input file\'s directory). Without --image-field every row gives one text-only record (url, image, sha256 null).',
    'Tokens: HTML turned to text, NFC, lowercase, words of Unicode letters (accents kept unless --fold-accents; a hyphen inside a word is kept: t-shirt), words with digits and non-alphabetic ones dropped, EN/FR/IT stopwords (--lang) and --stopwords FILE dropped, words shorter than --min-length dropped, and the words found in more than --max-df of one site\'s products but not of the other sites\' dropped (shop names, "buy"; sites are hosts, or the first group of --site-pattern, or --site-field; sites under --min-site-products are left alone; with a single site nothing is compared, so nothing is dropped). Each record\'s tokens are a set, in order of first appearance.',
    'Order and resume: records are written when the run ends, sorted by source URL then image order on the page for a crawl, in input order for an import, so a run is reproducible. The state file (--state, default OUTPUT.state) journals every finished page, sitemap and row; re-running the same command after a kill continues from it and writes the same output as an uninterrupted run; it is deleted after a complete run. All outputs are written atomically. Stats go to stderr at the end and, as JSON, to --stats.',
  ].join('\n\n'),
  positionals: [{ name: 'urls', variadic: true, describe: 'start URLs (http or https)', type: 'string' }],
  options: {
    'url-file': { type: 'string', describe: "start URLs, one per line or NDJSON {url} ('-' = stdin)" },
    sitemap: { type: 'string', array: true, describe: 'sitemap.xml URL(s) whose pages are crawled (a sitemap index is followed)' },
    import: { type: 'string', describe: "product records (NDJSON or CSV) to label instead of crawling ('-' = stdin)" },
    'title-field': { type: 'string', default: 'title', describe: 'import: field(s) holding the title (comma-separated, joined with spaces)' },
    'category-field': { type: 'string', default: 'category', describe: "import: field(s) holding the category (comma-separated, joined with ' > ')" },
    'description-field': { type: 'string', default: 'description', describe: 'import: field(s) holding the description (HTML allowed)' },
    'image-field': { type: 'string', describe: 'import: field holding image URLs or paths (| separated, or a JSON array)' },
    'id-field': { type: 'string', describe: 'import: field holding the product id (record id = it, -N appended when it has several images); a repeated id is an error at its second row' },
    'site-field': { type: 'string', describe: 'import: field naming the site/shop of a row (default: one site, the input file)' },
    'image-base': { type: 'string', describe: "import: URL or directory that relative image values are resolved against (default: the input file's directory)" },
    output: { alias: 'o', type: 'string', default: '-', describe: "NDJSON output, one record per product image ('-' = stdout)" },
    images: { type: 'string', describe: 'directory the images are saved in, as <sha256[0:2]>/<sha256>.<ext> (required when there are images)' },
    state: { type: 'string', describe: 'resume journal (default: OUTPUT.state when --output is a file; none for stdout)' },
    restart: { type: 'boolean', default: false, describe: 'ignore an existing state file and start over' },
    vocab: { type: 'string', describe: 'write the top-K vocabulary {word, count, df} as NDJSON here' },
    'top-k': { type: 'number', default: 30000, describe: 'vocabulary size written by --vocab', check: positiveInt },
    stats: { type: 'string', describe: 'write the run statistics as JSON here' },
    follow: { type: 'string', describe: 'follow same-host links whose absolute URL matches this regular expression' },
    'product-pattern': { type: 'string', describe: 'only pages whose URL matches are read as product pages (default: any page with a product)' },
    'site-pattern': { type: 'string', describe: 'regular expression whose first group names the site of a page URL (default: its host)' },
    'max-pages': { type: 'number', default: 10000, describe: 'pages admitted to the crawl at most', check: positiveInt },
    'max-sitemaps': { type: 'number', default: 100, describe: 'sitemap files read at most', check: nonNegativeInt },
    fields: { type: 'string', default: 'title,category,description', describe: 'fields whose text makes the bag of words' },
    lang: { type: 'string', default: 'en,fr,it', describe: "stopword languages (en, fr, it; comma-separated; 'none' for none)" },
    stopwords: { type: 'string', describe: 'file of extra stopwords (whitespace or comma separated, # comments)' },
    'min-length': { type: 'number', default: 2, describe: 'shortest word kept, in characters', check: nonNegativeInt },
    'max-df': { type: 'number', default: 0.5, describe: "a word in more than this fraction of one site's products (and not of the others') is dropped; 1 = off", check: fraction },
    'min-site-products': { type: 'number', default: 10, describe: 'sites with fewer products keep all their words', check: nonNegativeInt },
    'fold-accents': { type: 'boolean', default: false, describe: 'strip accents from words (écru -> ecru)' },
    concurrency: { type: 'number', default: 16, describe: 'requests in flight over all hosts', check: positiveInt },
    'per-host': { type: 'number', default: 2, describe: 'requests in flight to one host (0 = no limit)', check: nonNegativeInt },
    'host-delay': { type: 'number', default: 250, describe: "least time between two requests to one host, ms (robots.txt Crawl-delay can raise it)", check: nonNegativeInt },
    'connect-timeout': { type: 'number', default: 10000, describe: 'connect timeout, ms', check: positiveInt },
    timeout: { type: 'number', default: 30000, describe: 'total time for one request (headers and body), ms', check: positiveInt },
    retries: { type: 'number', default: 3, describe: 'retries on network errors, timeouts, 5xx and 429', check: nonNegativeInt },
    backoff: { type: 'number', default: 500, describe: 'first retry delay, ms (doubled each retry, jittered)', check: nonNegativeInt },
    'max-retry-after': { type: 'number', default: 120000, describe: 'longest Retry-After waited for, ms (longer: the URL fails as rate-limited)', check: nonNegativeInt },
    'max-crawl-delay': { type: 'number', default: 30000, describe: 'robots.txt Crawl-delay values are capped at this, ms', check: nonNegativeInt },
    'max-body': { type: 'number', default: 20971520, describe: 'largest body read, bytes (larger ones are cut and fail as too-large)', check: positiveInt },
    'max-redirects': { type: 'number', default: 5, describe: 'redirects followed per request', check: nonNegativeInt },
    'user-agent': { type: 'string', default: DEFAULT_FETCH_POLICY.userAgent, describe: 'User-Agent sent; robots.txt rules are matched on its name before the /' },
  },
  examples: [
    [
      'atelier crawl-tokenize --sitemap http://127.0.0.1:8080/sitemap.xml --images out/img -o out/samples.ndjson --vocab out/vocab.ndjson',
      'crawl every page of a shop sitemap',
    ],
    [
      "atelier crawl-tokenize http://127.0.0.1:8080/ --follow '/(c|p)/' --max-pages 500 --images img -o samples.ndjson",
      'crawl from the home page, following category and product links',
    ],
    [
      'atelier crawl-tokenize --import styles.csv --title-field productDisplayName --category-field articleType,subCategory --image-field image --image-base images --id-field id --images img -o samples.ndjson',
      'label a catalogue export without crawling',
    ],
  ],
  async run(args, io) {
    const started = Date.now();
    const mode: 'crawl' | 'import' = args.import !== undefined ? 'import' : 'crawl';

    // Flags first: every mistake a user can fix is reported before any request is sent.
    const fields = splitNames(args.fields);
    for (const f of fields) if (!(TEXT_FIELDS as readonly string[]).includes(f)) throw new UsageError(`unknown field '${f}' (title, category, description)`, { field: '--fields' });
    const languages: StopwordLanguage[] = [];
    for (const code of splitNames(args.lang.toLowerCase())) {
      if (code === 'none') continue;
      if (!isStopwordLanguage(code)) throw new UsageError(`no stopword list for '${code}' (en, fr, it)`, { field: '--lang' });
      languages.push(code);
    }
    const follow = compileRegex(args.follow, 'follow');
    const productPattern = compileRegex(args['product-pattern'], 'product-pattern');
    const sitePattern = compileRegex(args['site-pattern'], 'site-pattern');

    let extraStopwords: string[] = [];
    if (args.stopwords !== undefined) {
      try {
        extraStopwords = parseStopwordList(await readFile(args.stopwords, 'utf8'));
      } catch (err) {
        throw new UsageError(`cannot read the stopword file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { file: args.stopwords });
      }
    }
    const foldAccents = args['fold-accents'];
    const stopwords = normalizeStopwords([...stopwordSet(languages), ...extraStopwords], foldAccents);

    const startUrls: string[] = [];
    const sitemapUrls: string[] = [];
    if (mode === 'crawl') {
      for (const url of args.urls ?? []) {
        if (!isHttpUrl(url)) throw new UsageError(`not an absolute http(s) URL: ${JSON.stringify(url.slice(0, 80))}`, { field: 'urls' });
        startUrls.push(normalizeUrl(url));
      }
      if (args['url-file'] !== undefined) startUrls.push(...(await readStartUrls(args['url-file'], io)));
      for (const url of args.sitemap ?? []) {
        if (!isHttpUrl(url)) throw new UsageError(`not an absolute http(s) URL: ${JSON.stringify(url.slice(0, 80))}`, { field: '--sitemap' });
        sitemapUrls.push(normalizeUrl(url));
      }
      if (startUrls.length === 0 && sitemapUrls.length === 0) throw new UsageError('nothing to crawl: give start URLs, --url-file, --sitemap, or --import FILE');
      if (args.images === undefined) throw new UsageError('required when crawling (where the images are saved)', { field: '--images' });
    } else {
      if ((args.urls ?? []).length > 0 || args['url-file'] !== undefined || args.sitemap !== undefined) {
        throw new UsageError('--import reads product records instead of crawling; leave out start URLs, --url-file and --sitemap');
      }
      if (args['image-field'] !== undefined && args.images === undefined) throw new UsageError('required with --image-field (where the images are saved)', { field: '--images' });
    }

    // Outputs: open (or check) them now so a bad path fails before the crawl, not after it.
    // A journal is read back and deleted at the end: never a device (-o /dev/null has none by default).
    const statePath = args.state ?? (isStdio(args.output) || (await isSpecialFile(args.output)) ? null : `${args.output}.state`);
    await checkFileOutput(args.output, '--output');
    await checkFileOutput(args.vocab, '--vocab');
    await checkFileOutput(args.stats, '--stats');
    if (statePath !== null) await checkFileOutput(statePath, '--state', { regular: true });
    const imagesDir = args.images;
    if (imagesDir !== undefined) {
      try {
        await mkdir(imagesDir, { recursive: true });
        await access(imagesDir, fsConstants.W_OK);
      } catch (err) {
        throw new UsageError(`cannot create or write the image directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file: imagesDir, field: '--images' });
      }
    }
    const output: NdjsonWriter = await openNdjsonWriter(args.output, { stdout: io.stdout, outputs: io.outputs });
    let vocabWriter: NdjsonWriter | null = null;
    try {
      vocabWriter = args.vocab !== undefined ? await openNdjsonWriter(args.vocab, { stdout: io.stdout, outputs: io.outputs }) : null;
    } catch (err) {
      await output.abort();
      throw err;
    }

    const policy: FetchPolicy = {
      ...DEFAULT_FETCH_POLICY,
      userAgent: args['user-agent'],
      globalConcurrency: args.concurrency,
      perHostConcurrency: args['per-host'],
      perHostDelayMs: args['host-delay'],
      connectTimeoutMs: args['connect-timeout'],
      timeoutMs: args.timeout,
      retries: args.retries,
      backoffBaseMs: args.backoff,
      maxRetryAfterMs: args['max-retry-after'],
      maxBodyBytes: args['max-body'],
      maxRedirects: args['max-redirects'],
    };
    const robotsToken = args['user-agent'].split('/')[0]!.trim().toLowerCase();
    const fetcher = createFetcher(policy);
    const robots = createRobotsPolicy({ fetcher, userAgent: args['user-agent'], maxCrawlDelayMs: args['max-crawl-delay'], warn: (message) => warn(io, NAME, message) });
    const resolvedImages = imagesDir === undefined ? null : resolve(imagesDir);
    const progress = startProgress(io.stderr, { label: mode === 'crawl' ? 'crawl' : 'import' });

    // Products are not kept in memory: each is journalled as it completes, its bag counted into its
    // site's document frequencies, and only where it lies (and what orders it) is remembered. The
    // output is written after the crawl by reading them back in output order.
    const bagOptions = { tokenize: { stopwords, minLength: args['min-length'], foldAccents }, fields: fields as TextField[] };
    const sites = new Map<string, SiteWordFrequencies>();
    const countBag = (product: ProductSource, sign: 1 | -1) => (sign > 0 ? addSiteProduct : removeSiteProduct)(sites, product.site, productBag(product, bagOptions));
    let order: EntryLocation[];
    let stats: RunStats;
    let journal: CrawlJournal<unknown> | null = null;
    let readProduct: (at: EntryLocation) => ProductSource;
    try {
      if (mode === 'crawl') {
        const siteOf = (url: string): string => {
          const match = sitePattern?.exec(url);
          if (match && match[1] !== undefined) return match[1];
          return new URL(url).host;
        };
        const fingerprint = fingerprintOf({
          mode,
          startUrls,
          sitemapUrls,
          follow: args.follow ?? null,
          productPattern: args['product-pattern'] ?? null,
          sitePattern: args['site-pattern'] ?? null,
          maxPages: args['max-pages'],
          maxSitemaps: args['max-sitemaps'],
          images: resolvedImages,
          userAgent: args['user-agent'],
        });
        const crawlJournal = openRunJournal<CrawlEntry>(statePath, fingerprint, args.restart);
        journal = crawlJournal;
        readProduct = (at) => (crawlJournal.read(at) as PageEntry).product!;
        const tally = createCrawlTally(readProduct, countBag);
        let done = 0;
        const result = await crawl({
          fetcher,
          robots,
          robotsToken,
          startUrls,
          sitemapUrls,
          follow,
          productPattern,
          maxPages: args['max-pages'],
          maxSitemaps: args['max-sitemaps'],
          imagesDir: imagesDir!,
          siteOf,
          workers: Math.max(4, args.concurrency * 2),
          journal: crawlJournal,
          onEntry: tally.add,
          onPage: () => progress.update(++done),
          warn: (message) => warn(io, NAME, message),
        });
        ({ order, stats } = tally.finish(result.sitemaps, result.resumedPages));
      } else {
        ({ order, stats, readProduct } = await importRows(
          args,
          io,
          { fetcher, robots, robotsToken, imagesDir: imagesDir ?? null, statePath, onRow: () => progress.tick(), countBag },
          (j) => (journal = j),
        ));
      }
    } catch (err) {
      progress.stop();
      (journal as CrawlJournal<unknown> | null)?.close();
      await fetcher.close().catch(() => {});
      await output.abort();
      await vocabWriter?.abort();
      throw err;
    }
    progress.stop();
    await fetcher.close();

    const siteWords = siteSpecificWords(sites, { maxDf: args['max-df'], minProducts: args['min-site-products'] });
    const siteWordSets = new Map([...siteWords].map(([site, words]) => [site, new Set(words)]));
    const textOnly = mode === 'import' && args['image-field'] === undefined;
    const vocabulary = createVocabularyCounter();
    const seenHashes = new Set<string>();
    let duplicates = 0;
    let records = 0;
    let productsWithoutImages = 0;
    try {
      for (const at of order) {
        const product = readProduct(at);
        const drop = siteWordSets.get(product.site);
        const bag = productBag(product, bagOptions);
        const samples = productSamples(product, drop ? bag.filter((w) => !drop.has(w)) : bag, textOnly);
        if (samples.length === 0) productsWithoutImages += 1;
        for (const record of samples) {
          await output.write(record satisfies WeakLabelRecord);
          records += 1;
          vocabulary.add(record.tokens, record.source);
          if (record.sha256 !== null) {
            if (seenHashes.has(record.sha256)) duplicates += 1;
            seenHashes.add(record.sha256);
          }
        }
      }
      await output.close();
      if (vocabWriter !== null) {
        for (const entry of vocabulary.top(args['top-k'])) await vocabWriter.write(entry);
        await vocabWriter.close();
      }
    } catch (err) {
      (journal as CrawlJournal<unknown> | null)?.close();
      await output.abort();
      await vocabWriter?.abort();
      throw err;
    }

    stats.records = records;
    stats.products.withoutImages = productsWithoutImages;
    stats.images.saved = seenHashes.size;
    stats.images.duplicates = duplicates;
    stats.vocabulary = { words: vocabulary.size, written: vocabWriter === null ? 0 : Math.min(vocabulary.size, args['top-k']) };
    stats.siteWords = Object.fromEntries(siteWords);
    stats.run = {
      seconds: Math.round((Date.now() - started) / 100) / 10,
      requests: fetcher.counters.requests,
      retries: fetcher.counters.retries,
      bytes: fetcher.counters.bytes,
      resumed: stats.run.resumed,
    };
    if (args.stats !== undefined) await writeFileAtomic(args.stats, JSON.stringify(stats, null, 2) + '\n', io.outputs);
    await io.outputs?.commitAll(); // the journal may go only once the outputs are in place
    (journal as CrawlJournal<unknown> | null)?.remove();
    writeSummary(io, stats);
  },
});

/**
 * The journal of a run: the state file when there is one, else a private temporary file (deleted with
 * the journal), so products can be read back after the crawl without being held in memory.
 */
function openRunJournal<E>(statePath: string | null, fingerprint: string, restart: boolean): CrawlJournal<E> {
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

function emptyImageStats(): RunStats['images'] {
  return { referenced: 0, saved: 0, duplicates: 0, corrupt: {}, skipped: {}, failed: {} };
}

/** Counts one image outcome in (by 1) or back out (by -1). */
function countImage(images: RunStats['images'], outcome: ImageOutcome, by: 1 | -1 = 1): void {
  images.referenced += by;
  if (outcome.ok) return;
  const counts = outcome.corrupt ? images.corrupt : outcome.reason === 'noimageindex' || outcome.reason === 'robots' ? images.skipped : images.failed;
  counts[outcome.reason] = (counts[outcome.reason] ?? 0) + by;
}

function finishImageStats(images: RunStats['images']): RunStats['images'] {
  const nonZero = (counts: Record<string, number>) => sortedCounts(Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0)));
  return { ...images, corrupt: nonZero(images.corrupt), skipped: nonZero(images.skipped), failed: nonZero(images.failed) };
}

/** Where a kept product lies in the journal and its place in crawl order (level, then order). */
interface CrawlProductRef {
  level: number;
  order: number;
  at: EntryLocation;
}

/**
 * Counts the pages of a crawl as they finish and keeps one product per final URL: the first in crawl
 * order, whatever order they finish in (a later-finishing earlier page replaces the one counted).
 * `finish` gives the products' journal locations sorted by source URL, and the stats.
 */
function createCrawlTally(readProduct: (at: EntryLocation) => ProductSource, countBag: (product: ProductSource, sign: 1 | -1) => void) {
  const failed: Record<string, number> = {};
  const pageStats = { queued: 0, fetched: 0, products: 0, notProducts: 0, noindex: 0, skippedByRobots: 0, duplicates: 0, failed };
  const bySource = new Map<string, CrawlProductRef>();
  const images = emptyImageStats();
  const add = (page: PageEntry, at: EntryLocation): void => {
    pageStats.queued += 1;
    if (page.status === 'blocked') pageStats.skippedByRobots += 1;
    else if (page.status === 'failed') increment(failed, page.reason ?? 'failed');
    else pageStats.fetched += 1;
    if (page.status === 'no-product') pageStats.notProducts += 1;
    if (page.status === 'noindex') pageStats.noindex += 1;
    if (page.status !== 'product' || page.product === undefined) return;
    const product = page.product;
    const previous = bySource.get(product.source);
    if (previous !== undefined) {
      pageStats.duplicates += 1;
      if (previous.level < page.level || (previous.level === page.level && previous.order < page.order)) return;
      const replaced = readProduct(previous.at);
      countBag(replaced, -1);
      for (const image of replaced.images) countImage(images, image, -1);
    }
    bySource.set(product.source, { level: page.level, order: page.order, at });
    countBag(product, 1);
    for (const image of product.images) countImage(images, image);
  };
  const finish = (sitemaps: SitemapEntry[], resumed: number): { order: EntryLocation[]; stats: RunStats } => {
    const sources = [...bySource.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const order = sources.map((source) => bySource.get(source)!.at);
    pageStats.products = order.length;
    return {
      order,
      stats: {
        mode: 'crawl',
        pages: { ...pageStats, failed: sortedCounts(failed) },
        sitemaps: {
          read: sitemaps.filter((s) => s.ok).length,
          failed: sitemaps.filter((s) => !s.ok).length,
          urls: sitemaps.reduce((n, s) => n + s.urls.length, 0),
        },
        products: { total: order.length, withoutImages: 0 },
        images: finishImageStats(images),
        records: 0,
        vocabulary: null,
        siteWords: {},
        run: { seconds: 0, requests: 0, retries: 0, bytes: 0, resumed },
      },
    };
  };
  return { add, finish };
}

interface ImportContext {
  fetcher: ReturnType<typeof createFetcher>;
  robots: ReturnType<typeof createRobotsPolicy>;
  robotsToken: string;
  imagesDir: string | null;
  statePath: string | null;
  onRow(): void;
  /** Counts a product's bag into (1) or out of (-1) its site's document frequencies. */
  countBag(product: ProductSource, sign: 1 | -1): void;
}

/** Import mode: rows of an NDJSON/CSV catalogue, each journalled with its images once they are stored. */
async function importRows(
  args: Args,
  io: CommandIO,
  ctx: ImportContext,
  exposeJournal: (journal: CrawlJournal<unknown>) => void,
): Promise<{ order: EntryLocation[]; stats: RunStats; readProduct: (at: EntryLocation) => ProductSource }> {
  const inputPath = args.import!;
  const name = inputDisplayName(inputPath);
  const titleFields = splitNames(args['title-field']);
  const categoryFields = splitNames(args['category-field']);
  const descriptionFields = splitNames(args['description-field']);
  const imageField = args['image-field'];
  const idField = args['id-field'];
  const siteField = args['site-field'];
  const imageBase = args['image-base'] ?? (isStdio(inputPath) ? process.cwd() : dirname(resolve(inputPath)));
  const baseIsUrl = isHttpUrl(imageBase);
  const defaultSite = isStdio(inputPath) ? 'stdin' : basename(inputPath);

  const fingerprint = fingerprintOf({
    mode: 'import',
    input: isStdio(inputPath) ? '-' : resolve(inputPath),
    titleFields,
    categoryFields,
    descriptionFields,
    imageField: imageField ?? null,
    idField: idField ?? null,
    siteField: siteField ?? null,
    imageBase: baseIsUrl ? imageBase : resolve(imageBase),
    images: ctx.imagesDir === null ? null : resolve(ctx.imagesDir),
  });
  const checkFields = (value: Record<string, unknown>, file: string, line: number): void => {
    const named: Array<[string, string]> = [
      ...titleFields.map((f) => ['--title-field', f] as [string, string]),
      ...categoryFields.map((f) => ['--category-field', f] as [string, string]),
      ...descriptionFields.map((f) => ['--description-field', f] as [string, string]),
      ...[imageField, idField, siteField].flatMap((f, i) => (f === undefined ? [] : [[['--image-field', '--id-field', '--site-field'][i]!, f] as [string, string]])),
    ];
    for (const [option, field] of named) {
      if (!hasField(value, field)) {
        const columns = Object.keys(value).slice(0, 12).join(', ');
        throw new UsageError(`no such column or field (${option}); the first record has: ${columns}`, { file, line, field });
      }
    }
  };
  // Record ids come from --id-field: two rows with one id would give two products one id.
  const idLines = new Map<string, number>();
  const checkUniqueId = (value: Record<string, unknown>, file: string, line: number): void => {
    if (idField === undefined) return;
    const id = textOf(fieldValue(value, idField), ' ');
    if (id === null || id === undefined) return;
    const first = idLines.get(id);
    if (first !== undefined) throw new UsageError(`id ${JSON.stringify(id)} is already on line ${first}; every row needs its own id`, { file, line, field: idField });
    idLines.set(id, line);
  };
  // A file is read once through before any work, so a bad row costs nothing and leaves no state file.
  if (!isStdio(inputPath)) {
    let first = true;
    for await (const { value, file, line } of readRecords(inputPath)) {
      if (first) checkFields(value, file, line);
      first = false;
      checkUniqueId(value, file, line);
    }
  }
  const journal = openRunJournal<ImportEntry>(isStdio(inputPath) ? null : ctx.statePath, fingerprint, args.restart);
  exposeJournal(journal as CrawlJournal<unknown>);
  const done = new Map<number, { entry: RowEntry; at: EntryLocation }>();
  const known = new Map<string, ImageOutcome>();
  for (const [i, entry] of journal.replayed.entries()) {
    if (entry.kind !== 'row') continue;
    done.set(entry.line, { entry, at: journal.replayedAt[i]! });
    for (const image of entry.product.images) known.set(image.url, image);
  }
  const download = createImageDownloader({
    fetcher: ctx.fetcher,
    robots: ctx.robots,
    robotsToken: ctx.robotsToken,
    imagesDir: ctx.imagesDir ?? '',
    known,
  });
  const localOutcomes = new Map<string, Promise<ImageOutcome>>();
  const storeLocal = (path: string): Promise<ImageOutcome> => {
    let outcome = localOutcomes.get(path);
    if (outcome === undefined) {
      outcome = (async (): Promise<ImageOutcome> => {
        const previous = known.get(path);
        if (previous) return previous;
        let bytes: Buffer;
        try {
          bytes = await readFile(path);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          return { url: path, ok: false, reason: code === 'ENOENT' ? 'missing-file' : 'unreadable', message: code ?? String(err) };
        }
        const stored = await verifyAndStoreImage(bytes, ctx.imagesDir!);
        if (!stored.ok) return { url: path, ok: false, reason: stored.reason, message: stored.message, corrupt: true };
        return { url: path, ok: true, sha256: stored.sha256, path: stored.path };
      })();
      localOutcomes.set(path, outcome);
    }
    return outcome;
  };
  const resolveImage = (ref: string): string => {
    if (isHttpUrl(ref)) return normalizeUrl(ref);
    if (baseIsUrl) return normalizeUrl(new URL(ref, imageBase.endsWith('/') ? imageBase : `${imageBase}/`).href);
    return isAbsolute(ref) ? ref : resolve(imageBase, ref);
  };

  // Rows kept: their line (output order) and where the journal holds them; images counted as they come.
  const rows: Array<{ line: number; at: EntryLocation }> = [];
  const images = emptyImageStats();
  const keep = (entry: RowEntry, at: EntryLocation) => {
    rows.push({ line: entry.line, at });
    ctx.countBag(entry.product, 1);
    for (const image of entry.product.images) countImage(images, image);
  };
  let resumed = 0;
  let checked = false;
  const inFlight = new Set<Promise<void>>();
  const limit = Math.max(2, args.concurrency);
  const handleRow = async (record: Record<string, unknown>, line: number): Promise<void> => {
    const previous = done.get(line);
    if (previous) {
      done.delete(line);
      keep(previous.entry, previous.at);
      resumed += 1;
      return;
    }
    const refs = imageField === undefined ? [] : imageRefs(fieldValue(record, imageField));
    const images = await Promise.all(
      refs.map((ref) => {
        const target = resolveImage(ref);
        return isHttpUrl(target) ? download(target) : storeLocal(target);
      }),
    );
    for (const image of images) {
      if (!image.ok && image.reason !== 'noimageindex' && image.reason !== 'robots') warn(io, NAME, `${name}:${line}: image ${image.url} skipped, ${image.reason} (${image.message})`);
    }
    const productId = idField === undefined ? undefined : textOf(fieldValue(record, idField), ' ') ?? undefined;
    const entry: RowEntry = {
      kind: 'row',
      line,
      product: {
        source: `${name}:${line}`,
        site: (siteField === undefined ? null : textOf(fieldValue(record, siteField), ' ')) ?? defaultSite,
        ...(productId !== undefined ? { productId } : {}),
        title: joinedField(record, titleFields, ' '),
        category: joinedField(record, categoryFields, ' > '),
        description: joinedField(record, descriptionFields, ' '),
        images,
      },
    };
    keep(entry, journal.append(entry));
  };
  try {
    for await (const { value, line, file } of readRecords(inputPath, { stdin: io.stdin })) {
      if (!checked) {
        checked = true;
        checkFields(value, file, line);
      }
      if (isStdio(inputPath)) checkUniqueId(value, file, line);
      const task = handleRow(value, line).then(() => {
        inFlight.delete(task);
        ctx.onRow();
      });
      inFlight.add(task);
      if (inFlight.size >= limit) await Promise.race(inFlight);
    }
  } catch (err) {
    // A bad row on stdin: let the rows in flight finish before the journal is closed under them.
    await Promise.allSettled(inFlight);
    throw err;
  }
  await Promise.all(inFlight);
  rows.sort((a, b) => a.line - b.line);
  return {
    order: rows.map((r) => r.at),
    readProduct: (at) => journal.read(at).product,
    stats: {
      mode: 'import',
      rows: { read: rows.length },
      products: { total: rows.length, withoutImages: 0 },
      images: finishImageStats(images),
      records: 0,
      vocabulary: null,
      siteWords: {},
      run: { seconds: 0, requests: 0, retries: 0, bytes: 0, resumed },
    },
  };
}

function writeSummary(io: CommandIO, stats: RunStats): void {
  const line = (text: string) => io.stderr.write(`atelier ${NAME}: ${text}\n`);
  if (stats.pages) {
    const p = stats.pages;
    line(
      `pages: ${p.queued} queued, ${p.fetched} fetched, ${p.products} products, ${p.notProducts} without a product, ${p.skippedByRobots} skipped by robots.txt, ${p.noindex} noindex; failed: ${countsText(p.failed)}`,
    );
  }
  if (stats.rows) line(`rows: ${stats.rows.read} read, ${stats.products.total} products`);
  const im = stats.images;
  line(
    `images: ${im.referenced} referenced, ${im.saved} saved, ${im.duplicates} duplicates; corrupt: ${countsText(im.corrupt)}; skipped: ${countsText(im.skipped)}; failed: ${countsText(im.failed)}`,
  );
  const siteWordCount = Object.values(stats.siteWords).reduce((n, w) => n + w.length, 0);
  line(
    `records: ${stats.records} (${stats.products.withoutImages} products without a usable image); vocabulary ${stats.vocabulary?.words ?? 0} words; ${siteWordCount} site-specific words dropped; ${stats.run.seconds} s, ${stats.run.requests} requests, ${stats.run.retries} retries${stats.run.resumed > 0 ? `, ${stats.run.resumed} resumed from the state file` : ''}`,
  );
}
