// The table of commands: adding a command is adding its file and one line here. Modules load only
// when needed, so `atelier teacher-score` does not pay for TensorFlow.js at start-up.
import type { Command } from '../lib/command.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type CommandModule = { default: Command<any> };

const table: Array<[string, () => Promise<CommandModule>]> = [
  ['info', () => import('./info.js')],
  ['npy', () => import('./npy.js')],
  ['train-weak', () => import('./train-weak.js')],
  ['tag', () => import('./tag.js')],
  ['embed', () => import('./embed.js')],
  ['teacher-score', () => import('./teacher-score.js')],
  ['crawl-tokenize', () => import('./crawl-tokenize.js')],
  ['train-sizenet', () => import('./train-sizenet.js')],
  ['predict-sizenet', () => import('./predict-sizenet.js')],
  ['rise', () => import('./rise.js')],
  ['knn', () => import('./knn.js')],
  ['eval-retrieval', () => import('./eval-retrieval.js')],
  ['train-classifier', () => import('./train-classifier.js')],
  ['classify', () => import('./classify.js')],
  ['eval-classifier', () => import('./eval-classifier.js')],
  ['train-triplet', () => import('./train-triplet.js')],
  ['tsne', () => import('./tsne.js')],
  ['report', () => import('./report.js')],
  ['import-backbone', () => import('./import-backbone.js')],
  ['export', () => import('./export.js')],
  ['train-attention', () => import('./train-attention.js')],
  ['review', () => import('./review.js')],
  ['eval-words', () => import('./eval-words.js')],
  ['train-word2vec', () => import('./train-word2vec.js')],
  ['train-locate', () => import('./train-locate.js')],
  ['locate', () => import('./locate.js')],
  ['merge', () => import('./merge.js')],
];

/** Every command name, in help order. */
export const commandNames: string[] = table.map(([name]) => name);

/** The command called `name`, loaded; undefined when there is none. */
export async function loadCommand(name: string): Promise<Command<unknown> | undefined> {
  const entry = table.find(([n]) => n === name);
  return entry ? (await entry[1]()).default : undefined;
}

/** All commands, loaded (for the full help, man pages and tests). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function loadCommands(): Promise<Array<Command<any>>> {
  return Promise.all(table.map(async ([, load]) => (await load()).default));
}
