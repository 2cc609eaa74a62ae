import { access, mkdir, readFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { defineCommand, UsageError, warn } from '../lib/command.js';
import { openNdjsonWriter, type NdjsonWriter } from '../lib/io/ndjson.js';
import { checkFileOutput, isSpecialFile, writeFileAtomic } from '../lib/io/atomic.js';
import { isStdio } from '../lib/io/paths.js';
import { startProgress } from '../lib/progress.js';
import { createFetcher, DEFAULT_FETCH_POLICY, type FetchPolicy } from '../lib/http/fetch.js';
import { createRobotsPolicy } from '../lib/http/robots.js';
import type { ProductSource } from '../lib/http/crawl.js';
import type { CrawlJournal, EntryLocation } from '../lib/http/journal.js';
import { isHttpUrl, normalizeUrl, readStartUrls } from '../lib/http/urls.js';
import { crawlCatalogue } from '../lib/catalogue/crawl.js';
import { importCatalogue } from '../lib/catalogue/import.js';
import { summaryLines, type RunStats } from '../lib/catalogue/stats.js';
import { isStopwordLanguage, parseStopwordList, stopwordSet, type StopwordLanguage } from '../lib/text/stopwords.js';
import { normalizeStopwords } from '../lib/text/tokenize.js';
import { labelProducts, productBag, TEXT_FIELDS, type TextField } from '../lib/text/weak-labels.js';
import { addSiteProduct, removeSiteProduct, type SiteWordFrequencies } from '../lib/text/vocabulary.js';
import { writeSamples, type WrittenSamples } from '../lib/catalogue/write.js';
import { fraction, nonNegativeInt, positiveInt } from '../lib/options.js';
import { inShard, requireShardFile, resolveShard, shardOption, shardPath, writeShardManifest } from '../lib/shard.js';
import { siteSidecarPath, writeSiteSidecar } from '../lib/catalogue/shard.js';

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
  shard?: string;
}

/** A --follow, --product-pattern or --site-pattern that is not a regular expression: a usage error now, before any request. */
function checkRegex(pattern: string | undefined, option: string): void {
  if (pattern === undefined) return;
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw new UsageError(`not a valid regular expression: ${(err as Error).message}`, { field: `--${option}` });
  }
}

function splitNames(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
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
  positionals: [{ name: 'urls', variadic: true, path: false, describe: 'start URLs (http or https)', type: 'string' }],
  options: {
    'url-file': { type: 'string', describe: "start URLs, one per line or NDJSON {url} ('-' = stdin)" },
    sitemap: { type: 'string', array: true, path: false, describe: 'sitemap.xml URL(s) whose pages are crawled (a sitemap index is followed)' },
    import: { type: 'string', describe: "product records (NDJSON or CSV) to label instead of crawling ('-' = stdin)" },
    'title-field': { type: 'string', default: 'title', describe: 'import: field(s) holding the title (comma-separated, joined with spaces)' },
    'category-field': { type: 'string', default: 'category', describe: "import: field(s) holding the category (comma-separated, joined with ' > ')" },
    'description-field': { type: 'string', default: 'description', describe: 'import: field(s) holding the description (HTML allowed)' },
    'image-field': { type: 'string', describe: 'import: field holding image URLs or paths (| separated, or a JSON array)' },
    'id-field': { type: 'string', describe: 'import: field holding the product id (record id = it, -N appended when it has several images); a repeated id is an error at its second row' },
    'site-field': { type: 'string', describe: 'import: field naming the site/shop of a row (default: one site, the input file)' },
    'image-base': { type: 'string', path: false, describe: "import: URL or directory that relative image values are resolved against (default: the input file's directory)" },
    output: { alias: 'o', type: 'string', default: '-', describe: "NDJSON output, one record per product image ('-' = stdout)" },
    images: { type: 'string', describe: 'directory the images are saved in, as <sha256[0:2]>/<sha256>.<ext> (required when there are images)' },
    state: { type: 'string', describe: 'resume journal (default: OUTPUT.state when --output is a file; none for stdout)' },
    restart: { type: 'boolean', default: false, describe: 'ignore an existing state file and start over' },
    vocab: { type: 'string', describe: 'write the top-K vocabulary {word, count, df} as NDJSON here' },
    'top-k': { type: 'number', default: 30000, describe: 'vocabulary size written by --vocab', check: positiveInt },
    stats: { type: 'string', describe: 'write the run statistics as JSON here' },
    follow: { type: 'string', path: false, describe: 'follow same-host links whose absolute URL matches this regular expression' },
    'product-pattern': { type: 'string', path: false, describe: 'only pages whose URL matches are read as product pages (default: any page with a product)' },
    'site-pattern': { type: 'string', path: false, describe: 'regular expression whose first group names the site of a page URL (default: its host)' },
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
    ...shardOption,
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
    const shard = resolveShard(args.shard, io.env);
    if (shard && mode === 'crawl') throw new UsageError('a crawl follows links across whole sites; shard an --import (rows) instead', { field: '--shard' });
    requireShardFile(args.output, '--output', shard);
    requireShardFile(args.vocab, '--vocab', shard);
    const targets = { output: args.output, vocab: args.vocab, stats: args.stats };
    args = { ...args, output: shardPath(args.output, shard), vocab: args.vocab === undefined ? undefined : shardPath(args.vocab, shard), stats: args.stats === undefined ? undefined : shardPath(args.stats, shard) };

    // Flags first: every mistake a user can fix is reported before any request is sent.
    const fields = splitNames(args.fields);
    for (const f of fields) if (!(TEXT_FIELDS as readonly string[]).includes(f)) throw new UsageError(`unknown field '${f}' (title, category, description)`, { field: '--fields' });
    const languages: StopwordLanguage[] = [];
    for (const code of splitNames(args.lang.toLowerCase())) {
      if (code === 'none') continue;
      if (!isStopwordLanguage(code)) throw new UsageError(`no stopword list for '${code}' (en, fr, it)`, { field: '--lang' });
      languages.push(code);
    }
    checkRegex(args.follow, 'follow');
    checkRegex(args['product-pattern'], 'product-pattern');
    checkRegex(args['site-pattern'], 'site-pattern');

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
      if (args['url-file'] !== undefined) startUrls.push(...(await readStartUrls(args['url-file'], io.stdin)));
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
        ({ order, stats, readProduct } = await crawlCatalogue({
          startUrls,
          sitemapUrls,
          follow: args.follow,
          productPattern: args['product-pattern'],
          sitePattern: args['site-pattern'],
          maxPages: args['max-pages'],
          maxSitemaps: args['max-sitemaps'],
          imagesDir: imagesDir!,
          statePath,
          restart: args.restart,
          concurrency: args.concurrency,
          userAgent: args['user-agent'],
          fetcher,
          robots,
          robotsToken,
          onPage: (done) => progress.update(done),
          countBag,
          warn: (message) => warn(io, NAME, message),
          onJournal: (j) => (journal = j),
        }));
      } else {
        ({ order, stats, readProduct } = await importCatalogue({
          input: args.import!,
          stdin: io.stdin,
          titleFields: splitNames(args['title-field']),
          categoryFields: splitNames(args['category-field']),
          descriptionFields: splitNames(args['description-field']),
          imageField: args['image-field'],
          idField: args['id-field'],
          siteField: args['site-field'],
          imageBase: args['image-base'],
          imagesDir: imagesDir ?? null,
          statePath,
          restart: args.restart,
          concurrency: args.concurrency,
          fetcher,
          robots,
          robotsToken,
          onRow: () => progress.tick(),
          countBag,
          warn: (message) => warn(io, NAME, message),
          onJournal: (j) => (journal = j),
          keepRow: shard ? (id) => inShard(id, shard) : undefined,
        }));
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

    const textOnly = mode === 'import' && args['image-field'] === undefined;
    // A shard keeps every word: site-specific words need all sites' frequencies, so merge drops them.
    let current: ProductSource | null = null;
    const products = (function* () {
      for (const at of order) yield (current = readProduct(at));
    })();
    const labelled = labelProducts(products, sites, { ...bagOptions, siteWords: { maxDf: shard ? 1 : args['max-df'], minProducts: args['min-site-products'] }, textOnly });
    const sampleSites: string[] = [];
    const positions: number[] = [];
    let lastSource: string | null = null;
    let nth = 0;
    const samples = shard
      ? (function* () {
          for (const sample of labelled.samples) {
            // A sample's position: its row's line, then its image's place among the row's samples.
            nth = sample.source === lastSource ? nth + 1 : 0;
            lastSource = sample.source;
            positions.push(Number(sample.source.slice(sample.source.lastIndexOf(':') + 1)) * 65536 + nth);
            sampleSites.push(current!.site);
            yield sample;
          }
        })()
      : labelled.samples;
    let written: WrittenSamples;
    try {
      written = await writeSamples(samples, output, vocabWriter, args['top-k']);
    } catch (err) {
      (journal as CrawlJournal<unknown> | null)?.close();
      await output.abort();
      await vocabWriter?.abort();
      throw err;
    }
    stats.records = written.records;
    stats.products.withoutImages = labelled.productsWithoutImages;
    stats.images.saved = written.images;
    stats.images.duplicates = written.duplicates;
    stats.vocabulary = written.vocabulary;
    stats.siteWords = Object.fromEntries(labelled.siteWords);
    stats.run = {
      seconds: Math.round((Date.now() - started) / 100) / 10,
      requests: fetcher.counters.requests,
      retries: fetcher.counters.retries,
      bytes: fetcher.counters.bytes,
      resumed: stats.run.resumed,
    };
    if (args.stats !== undefined) await writeFileAtomic(args.stats, JSON.stringify(stats, null, 2) + '\n', io.outputs);
    if (shard) {
      await writeSiteSidecar(siteSidecarPath(args.output), { sites, samples: sampleSites, stats }, io.outputs);
      await writeShardManifest({
        command: NAME,
        shard,
        model: null,
        settings: { import: args.import, fields: args.fields, lang: args.lang, stopwords: args.stopwords ?? null, 'min-length': args['min-length'], 'max-df': args['max-df'], 'min-site-products': args['min-site-products'], 'fold-accents': foldAccents, 'top-k': args['top-k'], 'id-field': args['id-field'] ?? null, 'site-field': args['site-field'] ?? null, 'image-field': args['image-field'] ?? null, textOnly },
        outputs: [
          { role: 'output', kind: 'weak-samples', target: targets.output },
          ...(targets.vocab !== undefined ? [{ role: 'vocab', kind: 'derived' as const, target: targets.vocab }] : []),
          ...(targets.stats !== undefined ? [{ role: 'stats', kind: 'derived' as const, target: targets.stats }] : []),
        ],
        positions,
      }, io.outputs);
    }
    await io.outputs?.commitAll(); // the journal may go only once the outputs are in place
    (journal as CrawlJournal<unknown> | null)?.remove();
    for (const line of summaryLines(stats)) io.stderr.write(`atelier ${NAME}: ${line}\n`);
  },
});
