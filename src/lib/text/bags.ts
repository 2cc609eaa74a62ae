// Bags of words of crawl-tokenize records as vocabulary ids, for word2vec.
import { UsageError } from '../command.js';
import { readNdjson, requireObject } from '../io/ndjson.js';

/**
 * One id sentence per product (the first record of each --group-field value), words in their order.
 * `heldOut` leaves out the products it names (a validation split kept from the baseline): they count in
 * `records` and `heldOutProducts`, not in the sentences.
 */
export async function readWordSentences(
  path: string,
  vocabulary: readonly string[],
  fields: { tokens: string; group: string },
  stdin?: NodeJS.ReadableStream,
  heldOut?: (group: string) => boolean,
): Promise<{ sentences: Int32Array[]; records: number; heldOutProducts: number }> {
  const wordId = new Map(vocabulary.map((w, i) => [w, i]));
  const seen = new Set<string>();
  const sentences: Int32Array[] = [];
  let records = 0;
  let heldOutProducts = 0;
  for await (const { value, file, line } of readNdjson(path, { stdin })) {
    const record = requireObject(value, { file, line });
    records++;
    const tokens = record[fields.tokens];
    if (!Array.isArray(tokens)) throw new UsageError(`expected an array of words, got ${tokens === undefined ? 'nothing' : JSON.stringify(tokens).slice(0, 40)}`, { file, line, field: fields.tokens });
    const group = record[fields.group] ?? record.id;
    if (group !== undefined) {
      // Views of one product repeat its bag: counted once, as the product's text is.
      if (seen.has(String(group))) continue;
      seen.add(String(group));
      if (heldOut?.(String(group))) {
        heldOutProducts++;
        continue;
      }
    }
    const ids = tokens.flatMap((t) => (typeof t === 'string' && wordId.has(t) ? [wordId.get(t)!] : []));
    if (ids.length) sentences.push(Int32Array.from(ids));
  }
  return { sentences, records, heldOutProducts };
}
