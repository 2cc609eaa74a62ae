// Start URLs of a crawl: absolute http(s) URLs, without their fragment.
import { UsageError } from '../command.js';
import { readTextLines, requireString } from '../io/ndjson.js';
import { inputDisplayName, openInputStream } from '../io/paths.js';

export function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
  } catch {
    return false;
  }
}

/** The URL without its fragment (#...): one page, however it is linked. */
export function normalizeUrl(text: string): string {
  const u = new URL(text);
  u.hash = '';
  return u.href;
}

/** Start URLs from a file: one URL per line, or NDJSON lines `{"url": ...}`; blank lines and `#` comments skipped. */
export async function readStartUrls(path: string, stdin?: NodeJS.ReadableStream): Promise<string[]> {
  const name = inputDisplayName(path);
  const urls: string[] = [];
  const stream = await openInputStream(path, stdin);
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
