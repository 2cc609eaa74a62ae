import { defineCommand, UsageError, warn } from '../lib/command.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { startProgress } from '../lib/progress.js';
import { createFetcher, DEFAULT_FETCH_POLICY } from '../lib/http/fetch.js';
import { createRobotsPolicy } from '../lib/http/robots.js';
import type { ProductSource } from '../lib/http/crawl.js';
import { collectProducts, type ProductCollection } from '../lib/catalogue/collect.js';
import { labelCatalogue } from '../lib/catalogue/label.js';
import { openCatalogueOutputs } from '../lib/catalogue/outputs.js';
import { checkRegex, crawlStarts, readStopwordFile, splitNames, stopwordLanguagesOf, textFieldsOf } from '../lib/catalogue/settings.js';
import { completeRunStats, summaryLines } from '../lib/catalogue/stats.js';
import { stopwordSet } from '../lib/text/stopwords.js';
import { normalizeStopwords } from '../lib/text/tokenize.js';
import { productBag } from '../lib/text/weak-labels.js';
import { addSiteProduct, removeSiteProduct, type SiteWordFrequencies } from '../lib/text/vocabulary.js';
import { writeSamples, type WrittenSamples } from '../lib/catalogue/write.js';
import { fraction, nonNegativeInt, positiveInt } from '../lib/options.js';
import { inShard, requireShardFile, resolveShard, shardOption, shardPath } from '../lib/shard.js';
import { writeCatalogueShard } from '../lib/catalogue/shard.js';

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
    const fields = textFieldsOf(args.fields);
    const languages = stopwordLanguagesOf(args.lang);
    checkRegex(args.follow, 'follow');
    checkRegex(args['product-pattern'], 'product-pattern');
    checkRegex(args['site-pattern'], 'site-pattern');
    const foldAccents = args['fold-accents'];
    const stopwords = normalizeStopwords([...stopwordSet(languages), ...(await readStopwordFile(args.stopwords))], foldAccents);
    const sources = { urls: args.urls ?? [], urlFile: args['url-file'], sitemaps: args.sitemap, import: args.import, imageField: args['image-field'], imagesDir: args.images };
    const { startUrls, sitemapUrls } = await crawlStarts(sources, io.stdin);
    const outputs = await openCatalogueOutputs({ output: args.output, vocab: args.vocab, stats: args.stats, state: args.state, imagesDir: args.images }, io);

    const fetcher = createFetcher({
      ...DEFAULT_FETCH_POLICY, userAgent: args['user-agent'], globalConcurrency: args.concurrency, perHostConcurrency: args['per-host'], perHostDelayMs: args['host-delay'],
      connectTimeoutMs: args['connect-timeout'], timeoutMs: args.timeout, retries: args.retries, backoffBaseMs: args.backoff, maxRetryAfterMs: args['max-retry-after'], maxBodyBytes: args['max-body'], maxRedirects: args['max-redirects'],
    });
    const robots = createRobotsPolicy({ fetcher, userAgent: args['user-agent'], maxCrawlDelayMs: args['max-crawl-delay'], warn: (message) => warn(io, NAME, message) });
    const progress = startProgress(io.stderr, { label: mode === 'crawl' ? 'crawl' : 'import' });

    // Products are not kept in memory: each is journalled as it completes, its bag counted into its
    // site's document frequencies, and only where it lies (and what orders it) is remembered. The
    // output is written after the crawl by reading them back in output order.
    const bagOptions = { tokenize: { stopwords, minLength: args['min-length'], foldAccents }, fields };
    const sites = new Map<string, SiteWordFrequencies>();
    const countBag = (product: ProductSource, sign: 1 | -1) => (sign > 0 ? addSiteProduct : removeSiteProduct)(sites, product.site, productBag(product, bagOptions));
    const robotsToken = args['user-agent'].split('/')[0]!.trim().toLowerCase();
    const common = { statePath: outputs.statePath, restart: args.restart, concurrency: args.concurrency, robots, robotsToken, countBag, warn: (message: string) => warn(io, NAME, message) };
    const collection: ProductCollection = mode === 'crawl'
      ? { crawl: { ...common, startUrls, sitemapUrls, follow: args.follow, productPattern: args['product-pattern'], sitePattern: args['site-pattern'], maxPages: args['max-pages'], maxSitemaps: args['max-sitemaps'], imagesDir: args.images!, userAgent: args['user-agent'] } }
      : {
          import: {
            ...common, input: args.import!, stdin: io.stdin, titleFields: splitNames(args['title-field']), categoryFields: splitNames(args['category-field']), descriptionFields: splitNames(args['description-field']),
            imageField: args['image-field'], idField: args['id-field'], siteField: args['site-field'], imageBase: args['image-base'], imagesDir: args.images ?? null, keepRow: shard ? (id) => inShard(id, shard) : undefined,
          },
        };
    const { order, stats, readProduct, journal } = await collectProducts(collection, fetcher, progress, outputs.abort);

    const textOnly = mode === 'import' && args['image-field'] === undefined;
    // A shard keeps every word: site-specific words need all sites' frequencies, so merge drops them.
    const { labelled, samples, positions, sampleSites } = labelCatalogue(order, readProduct, sites, { ...bagOptions, siteWords: { maxDf: shard ? 1 : args['max-df'], minProducts: args['min-site-products'] }, textOnly }, shard !== null);
    let written: WrittenSamples;
    try {
      written = await writeSamples(samples, outputs.samples, outputs.vocab, args['top-k']);
    } catch (err) {
      journal?.close();
      await outputs.abort();
      throw err;
    }
    completeRunStats(stats, written, labelled, { seconds: Math.round((Date.now() - started) / 100) / 10, ...fetcher.counters });
    if (args.stats !== undefined) await writeFileAtomic(args.stats, JSON.stringify(stats, null, 2) + '\n', io.outputs);
    if (shard) {
      const settings = { import: args.import, fields: args.fields, lang: args.lang, stopwords: args.stopwords ?? null, 'min-length': args['min-length'], 'max-df': args['max-df'], 'min-site-products': args['min-site-products'], 'fold-accents': foldAccents, 'top-k': args['top-k'], 'id-field': args['id-field'] ?? null, 'site-field': args['site-field'] ?? null, 'image-field': args['image-field'] ?? null, textOnly };
      await writeCatalogueShard(shard, { samplesFile: args.output, sidecar: { sites, samples: sampleSites, stats }, settings, targets, positions }, io.outputs);
    }
    await io.outputs?.commitAll(); // the journal may go only once the outputs are in place
    journal?.remove();
    for (const line of summaryLines(stats)) io.stderr.write(`atelier ${NAME}: ${line}\n`);
  },
});
