// The settings of a crawl or import checked and read before any request, so every mistake a user
// can fix is reported first: text fields, stopword languages and file, patterns, start URLs.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../command.js';
import { isHttpUrl, normalizeUrl, readStartUrls } from '../http/urls.js';
import { isStopwordLanguage, parseStopwordList, type StopwordLanguage } from '../text/stopwords.js';
import { TEXT_FIELDS, type TextField } from '../text/weak-labels.js';

/** The non-empty names of a comma-separated list, trimmed. */
export function splitNames(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** A --follow, --product-pattern or --site-pattern that is not a regular expression: a usage error now, before any request. */
export function checkRegex(pattern: string | undefined, option: string): void {
  if (pattern === undefined) return;
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw new UsageError(`not a valid regular expression: ${(err as Error).message}`, { field: `--${option}` });
  }
}

/** --fields: the text fields whose words make the bag. */
export function textFieldsOf(text: string): TextField[] {
  const fields = splitNames(text);
  for (const f of fields) if (!(TEXT_FIELDS as readonly string[]).includes(f)) throw new UsageError(`unknown field '${f}' (title, category, description)`, { field: '--fields' });
  return fields as TextField[];
}

/** --lang: the stopword languages ('none' names none). */
export function stopwordLanguagesOf(text: string): StopwordLanguage[] {
  const languages: StopwordLanguage[] = [];
  for (const code of splitNames(text.toLowerCase())) {
    if (code === 'none') continue;
    if (!isStopwordLanguage(code)) throw new UsageError(`no stopword list for '${code}' (en, fr, it)`, { field: '--lang' });
    languages.push(code);
  }
  return languages;
}

/** --stopwords: the extra stopwords of a file (none without one). */
export async function readStopwordFile(path: string | undefined): Promise<string[]> {
  if (path === undefined) return [];
  try {
    return parseStopwordList(await readFile(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the stopword file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { file: path });
  }
}

/** Absolute http(s) URLs, normalised; `field` names where they came from. */
function httpUrls(urls: readonly string[], field: string): string[] {
  return urls.map((url) => {
    if (!isHttpUrl(url)) throw new UsageError(`not an absolute http(s) URL: ${JSON.stringify(url.slice(0, 80))}`, { field });
    return normalizeUrl(url);
  });
}

/** Where a run's products come from, as given on the command line. */
export interface CatalogueSources {
  urls: string[];
  urlFile?: string;
  sitemaps?: string[];
  /** --import: product records instead of a crawl. */
  import?: string;
  imageField?: string;
  imagesDir?: string;
}

/** A crawl's first level (start URLs, --url-file, sitemaps); checks that an import names no URL. */
export async function crawlStarts(s: CatalogueSources, stdin: NodeJS.ReadableStream): Promise<{ startUrls: string[]; sitemapUrls: string[] }> {
  if (s.import !== undefined) {
    if (s.urls.length > 0 || s.urlFile !== undefined || s.sitemaps !== undefined) {
      throw new UsageError('--import reads product records instead of crawling; leave out start URLs, --url-file and --sitemap');
    }
    if (s.imageField !== undefined && s.imagesDir === undefined) throw new UsageError('required with --image-field (where the images are saved)', { field: '--images' });
    return { startUrls: [], sitemapUrls: [] };
  }
  const startUrls = httpUrls(s.urls, 'urls');
  if (s.urlFile !== undefined) startUrls.push(...(await readStartUrls(s.urlFile, stdin)));
  const sitemapUrls = httpUrls(s.sitemaps ?? [], '--sitemap');
  if (startUrls.length === 0 && sitemapUrls.length === 0) throw new UsageError('nothing to crawl: give start URLs, --url-file, --sitemap, or --import FILE');
  if (s.imagesDir === undefined) throw new UsageError('required when crawling (where the images are saved)', { field: '--images' });
  return { startUrls, sitemapUrls };
}
