// Fashion types of the vocabulary for the attention model (report §4.3), from the thesaurus; a share
// of the typed words can be held out (their type hidden in training) to measure the type classifier.
import type { Thesaurus } from '../text/thesaurus.js';
import { wordTypeIndices } from '../text/thesaurus.js';
import { splitOf } from '../random.js';
import { typeTargets, type UnknownTypes } from '../models/type-attention.js';

export interface AttentionSetup {
  types: string[];
  /** The thesaurus type of each vocabulary word (null: none), as saved in the model. */
  thesaurusTypes: Array<string | null>;
  /** Typed words whose type training did not see. */
  heldOut: string[];
  /** The type index training sees for each word (-1: none or held out). */
  trainingTypes: Int32Array;
  targets: Float32Array;
  entropy: Float32Array;
}

export function attentionSetup(thesaurus: Thesaurus, vocabulary: readonly string[], heldOutShare: number, unknown: UnknownTypes): AttentionSetup {
  const known = wordTypeIndices(thesaurus, vocabulary);
  const heldOut = vocabulary.filter((w, k) => known[k] >= 0 && splitOf(`type:${w}`, heldOutShare, 0) === 'test');
  const hidden = new Set(heldOut);
  const training = Int32Array.from(known, (t, k) => (hidden.has(vocabulary[k]) ? -1 : t));
  return {
    types: thesaurus.types,
    thesaurusTypes: Array.from(known, (t) => (t >= 0 ? thesaurus.types[t] : null)),
    heldOut,
    trainingTypes: training,
    ...typeTargets(training, thesaurus.types.length, unknown),
  };
}
