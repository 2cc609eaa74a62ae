// Writing the weakly labelled samples and their vocabulary, counting what the --stats JSON reports.
import type { NdjsonWriter } from '../io/ndjson.js';
import type { WeakLabelRecord } from '../text/weak-labels.js';
import { createVocabularyCounter } from '../text/vocabulary.js';

export interface WrittenSamples {
  records: number;
  /** Distinct images (by SHA-256) and samples whose image was already written. */
  images: number;
  duplicates: number;
  vocabulary: { words: number; written: number } | null;
}

/** Writes every sample to `output` and, when given, the `topK` most frequent words to `vocab`. */
export async function writeSamples(samples: Iterable<WeakLabelRecord>, output: NdjsonWriter, vocab: NdjsonWriter | null, topK: number): Promise<WrittenSamples> {
  const vocabulary = createVocabularyCounter();
  const seenHashes = new Set<string>();
  let duplicates = 0;
  let records = 0;
  for (const record of samples) {
    await output.write(record);
    records += 1;
    vocabulary.add(record.tokens, record.source);
    if (record.sha256 !== null) {
      if (seenHashes.has(record.sha256)) duplicates += 1;
      seenHashes.add(record.sha256);
    }
  }
  await output.close();
  if (vocab !== null) {
    for (const entry of vocabulary.top(topK)) await vocab.write(entry);
    await vocab.close();
  }
  return { records, images: seenHashes.size, duplicates, vocabulary: { words: vocabulary.size, written: vocab === null ? 0 : Math.min(vocabulary.size, topK) } };
}
