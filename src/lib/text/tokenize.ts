// The report's text preprocessing (§2.6): concatenate the chosen fields, lowercase, strip punctuation,
// regexp word tokenizer, drop stopwords, non-alphabetic words and words with digits; the bag of words
// of a product is the set of what is left. Pure functions: same input, same output.
import { load } from 'cheerio/slim';
import type { AnyNode } from 'domhandler';

export interface TokenizeOptions {
  /** Words to drop (lowercase, NFC; folded too when foldAccents is on). */
  stopwords: ReadonlySet<string>;
  /** Shortest word kept, in characters (code points). */
  minLength: number;
  /** Strip accents ("écru" -> "ecru"); off by default: accented letters are kept as they are. */
  foldAccents?: boolean;
}

// A word: letters, marks and digits, with single hyphens inside ("t-shirt", "bleu-marine"). Digits are
// matched so that "2xl" is one token (then dropped) rather than leaving "xl". Apostrophes split, so an
// elision ("l'écharpe", "dell'abito") gives the article, which the stopword list or minLength removes.
const WORD = /[\p{L}\p{M}\p{N}]+(?:-[\p{L}\p{M}\p{N}]+)*/gu;
const ALPHABETIC = /^\p{L}[\p{L}\p{M}]*(?:-\p{L}[\p{L}\p{M}]*)*$/u;
const COMBINING_MARK = /\p{M}/gu;

// htmlparser2 in HTML mode (cheerio's `xml` option with xmlMode off): a fragment needs no tree-construction rules.
const HTML_PARSER = { xml: { xmlMode: false, decodeEntities: true } } as const;
// Elements whose content is not text a shopper reads.
const SKIPPED_ELEMENTS = new Set(['script', 'style', 'noscript', 'template', 'head', 'svg', 'iframe', 'object']);
// Inline elements: no word break at their edges ("<b>écr</b>u" stays one word); every other element breaks.
const INLINE_ELEMENTS = new Set([
  'a', 'abbr', 'b', 'bdi', 'bdo', 'cite', 'code', 'data', 'dfn', 'em', 'font', 'i', 'kbd', 'mark', 'q', 's',
  'samp', 'small', 'span', 'strong', 'sub', 'sup', 'time', 'u', 'var', 'wbr',
]);

/** Lowercase, NFC, and accents stripped when asked: the form every token and stopword is compared in. */
export function normalizeWord(word: string, foldAccents = false): string {
  const lower = word.normalize('NFC').toLowerCase();
  return foldAccents ? lower.normalize('NFD').replace(COMBINING_MARK, '').normalize('NFC') : lower;
}

/**
 * The visible text of an HTML fragment: tags removed, entities decoded, a space wherever a block
 * element or <br> breaks the line, whitespace collapsed. Plain text (no '<' or '&') comes back trimmed.
 */
export function htmlToText(html: string): string {
  if (!html.includes('<') && !html.includes('&')) return html.replace(/\s+/g, ' ').trim();
  const $ = load(html, HTML_PARSER, false);
  const parts: string[] = [];
  const stack: Array<AnyNode | null> = [...$.root()[0]!.children].reverse();
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || node === undefined) {
      parts.push(' ');
      continue;
    }
    if (node.type === 'text') {
      parts.push(node.data);
    } else if (node.type === 'tag' || node.type === 'script' || node.type === 'style') {
      const name = node.name.toLowerCase();
      if (SKIPPED_ELEMENTS.has(name)) continue;
      const breaks = !INLINE_ELEMENTS.has(name);
      if (breaks) {
        parts.push(' ');
        stack.push(null);
      }
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
    } else if (node.type === 'cdata') {
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
    }
  }
  return parts.join('').replace(/\s+/g, ' ').trim();
}

/** Every word of `text` in order, normalised, before any filtering (digits and stopwords included). */
export function splitWords(text: string, foldAccents = false): string[] {
  const words: string[] = [];
  for (const match of normalizeWord(text, foldAccents).matchAll(WORD)) words.push(match[0]);
  return words;
}

/** True for a word the bag of words keeps: alphabetic (no digits), long enough, not a stopword. */
export function isKeptWord(word: string, options: TokenizeOptions): boolean {
  if (!ALPHABETIC.test(word)) return false;
  if (codePointLength(word) < options.minLength) return false;
  return !options.stopwords.has(word);
}

/** The kept words of `text`, in order, repeats included. `text` is plain text (see htmlToText). */
export function tokenize(text: string, options: TokenizeOptions): string[] {
  return splitWords(text, options.foldAccents === true).filter((w) => isKeptWord(w, options));
}

/** The bag of words: each kept word once, in order of first appearance. */
export function bagOfWords(text: string, options: TokenizeOptions): string[] {
  return [...new Set(tokenize(text, options))];
}

/** The text the bag is made from: the chosen fields (HTML turned to text), in order, empty ones left out. */
export function productText(fields: ReadonlyArray<string | null | undefined>): string {
  return fields
    .map((f) => (f === null || f === undefined ? '' : htmlToText(f)))
    .filter((f) => f !== '')
    .join(' \n ');
}

/** A stopword list in the form tokens are compared in. */
export function normalizeStopwords(words: Iterable<string>, foldAccents = false): Set<string> {
  const set = new Set<string>();
  for (const word of words) set.add(normalizeWord(word, foldAccents));
  return set;
}

function codePointLength(word: string): number {
  let n = 0;
  for (const _ of word) n += 1;
  return n;
}
