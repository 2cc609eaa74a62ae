// The table of commands: adding a command is adding its file and one line here.
import type { Command } from '../lib/command.js';
import info from './info.js';
import npy from './npy.js';
import trainWeak from './train-weak.js';
import tag from './tag.js';
import embed from './embed.js';
import teacherScore from './teacher-score.js';
import crawlTokenize from './crawl-tokenize.js';
import trainSizenet from './train-sizenet.js';
import predictSizenet from './predict-sizenet.js';
import rise from './rise.js';
import knn from './knn.js';
import evalRetrieval from './eval-retrieval.js';
import trainClassifier from './train-classifier.js';
import classify from './classify.js';
import evalClassifier from './eval-classifier.js';
import trainTriplet from './train-triplet.js';
import tsne from './tsne.js';
import report from './report.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: Array<Command<any>> = [info, npy, trainWeak, tag, embed, teacherScore, crawlTokenize, trainSizenet, predictSizenet, rise, knn, evalRetrieval, trainClassifier, classify, evalClassifier, trainTriplet, tsne, report];

export function findCommand(name: string): Command<unknown> | undefined {
  return commands.find((c) => c.name === name);
}
