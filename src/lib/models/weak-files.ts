// What a weak model directory holds besides its weights: the vocabulary, the tower config and the
// training log (metadata.json), and how an earlier model's weights seed a new one (--init).
import { UsageError } from '../command.js';
import { readNdjson, requireString } from '../io/ndjson.js';
import type { tf } from '../backend/tf.js';
import type { WeakModelConfig } from './weak-model.js';
import type { TowerRecord } from './backbone.js';
import type { VisualTypesRecord } from './visual-word-types.js';

export const WEAK_MODEL_KIND = 'atelier-weak';

export interface EpochLog {
  epoch: number;
  lr: number;
  loss: number;
  phase: 'head' | 'full';
  seconds: number;
  imagesPerSecond: number;
  precision: Record<number, number>;
  recall: Record<number, number>;
  validationImages: number;
  /** Wall seconds of scoring the validation images (absent in logs written before 2026-12-04). */
  validationSeconds?: number;
  baselinePrecision1: number;
}

export interface WeakModelMetadata {
  kind: typeof WEAK_MODEL_KIND;
  vocabulary: string[];
  config: WeakModelConfig;
  backend: string;
  log: EpochLog[];
  /** The tower (family, input, resize mode, backbone); absent in round-1 models (small, square, cover). */
  tower?: TowerRecord;
  /** Fashion-type attention (report §4.3): type names, the unknown-type option, each word's thesaurus type, the words held out, each word's type from its images. */
  attention?: { types: string[]; unknown: string; thesaurusTypes: Array<string | null>; heldOut: string[]; visualTypes?: VisualTypesRecord };
}

/** Reads the first `topK` words (0: all) of a crawl-tokenize vocabulary NDJSON ({word, count, df}). */
export async function readVocabulary(path: string, topK: number): Promise<string[]> {
  const words: string[] = [];
  const seen = new Set<string>();
  for await (const { value, file, line } of readNdjson(path)) {
    const word = requireString(value, 'word', { file, line });
    if (word === '') throw new UsageError('expected a non-empty string', { file, line, field: 'word' });
    if (seen.has(word)) throw new UsageError(`word '${word}' appears twice`, { file, line, field: 'word' });
    seen.add(word);
    words.push(word);
    if (topK > 0 && words.length >= topK) break;
  }
  if (words.length < 2) throw new UsageError(`the vocabulary has ${words.length} word(s) after filtering; at least 2 are needed`, { file: path });
  return words;
}

/** Copies every weight of `from` into `to` where the layer name and shape match; returns how many. */
export function copyMatchingWeights(from: tf.LayersModel, to: tf.LayersModel): number {
  let copied = 0;
  for (const layer of to.layers) {
    const source = from.layers.find((l) => l.name === layer.name);
    if (!source) continue;
    const target = layer.getWeights();
    const values = source.getWeights();
    if (values.length !== target.length || values.some((v, i) => v.shape.join() !== target[i].shape.join())) continue;
    layer.setWeights(values);
    copied += values.length;
  }
  return copied;
}
