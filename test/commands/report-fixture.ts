// Outputs of the real commands on a slice of the fixture catalogue, as a user would make them for
// `atelier report`: raw-pixel embeddings -> knn (with a label vote) -> eval-retrieval, eval-classifier
// of the vote, tsne; plus a training log and a RISE summary in the shapes those commands write.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { defaultFixtures, runAtelier, type RunResult } from '../helpers.js';
import { multiClassReport } from '../../src/lib/metrics/classification.js';

export interface ReportInputs {
  dir: string;
  images: string;
  embeddings: string;
  knn: string;
  retrieval: string;
  classifier: string;
  falseNegatives: string;
  tsne: string;
  trainLog: string;
  rise: string;
  /** Catalogue records of the slice, in order. */
  records: Array<Record<string, unknown>>;
  /** Whether eval-classifier itself made the classifier files (else they follow its format). */
  classifierFromCommand: boolean;
}

async function ok(args: string[]): Promise<RunResult> {
  const result = await runAtelier(args);
  assert.equal(result.code, 0, `atelier ${args.join(' ')} failed:\n${result.stderr}`);
  return result;
}

/** The first `count` images of the fixture catalogue, with absolute image paths. */
export function catalogueSlice(dir: string, count: number): { path: string; records: Array<Record<string, unknown>> } {
  const lines = readFileSync(join(defaultFixtures, 'images.ndjson'), 'utf8').trim().split('\n').slice(0, count);
  const records = lines.map((l) => {
    const r = JSON.parse(l) as Record<string, unknown>;
    return { ...r, image: resolve(defaultFixtures, r.image as string) };
  });
  const path = join(dir, 'images.ndjson');
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { path, records };
}

export async function makeReportInputs(dir: string, count = 360): Promise<ReportInputs> {
  const { path: images, records } = catalogueSlice(dir, count);
  const embeddings = join(dir, 'pixels.npy');
  await ok(['embed', '-m', 'pixels', '-i', images, '-o', embeddings]);
  const knn = join(dir, 'knn.ndjson');
  await ok(['knn', '-q', embeddings, '--k', '10', '--labels', images, '--label-field', 'silhouette', '-o', knn]);
  const retrieval = join(dir, 'retrieval.json');
  await ok(['eval-retrieval', '-p', images, '-e', embeddings, '--baseline', 'random', '--name', 'raw pixels', '-o', retrieval]);
  const tsne = join(dir, 'map.ndjson');
  await ok(['tsne', embeddings, '--labels', images, '--label-field', 'silhouette', '--iterations', '300', '-o', tsne]);

  // The kNN label vote is a cheap classifier to score with eval-classifier.
  const classifier = join(dir, 'eval-classifier.json');
  const falseNegatives = join(dir, 'false-negatives.ndjson');
  const help = await runAtelier(['eval-classifier', '--help']);
  let classifierFromCommand = false;
  if (help.code === 0) {
    await ok(['eval-classifier', '-p', knn, '-t', images, '-l', 'silhouette', '-o', classifier, '--false-negatives', falseNegatives]);
    classifierFromCommand = true;
  } else {
    const votes = readFileSync(knn, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; label: string; probs: Record<string, number> });
    const truthById = new Map(records.map((r) => [r.id as string, r.silhouette as string]));
    const labels = [...new Set(records.map((r) => r.silhouette as string))].sort();
    const report = multiClassReport(votes.map((v) => labels.indexOf(truthById.get(v.id)!)), votes.map((v) => labels.indexOf(v.label)), labels);
    writeFileSync(classifier, JSON.stringify({ labels, accuracy: report.accuracy, macroF1: report.macroF1, weightedF1: report.weightedF1, perClass: report.perClass, confusion: report.confusion }));
    const missed = votes.filter((v) => v.label !== truthById.get(v.id));
    writeFileSync(falseNegatives, missed.map((v) => JSON.stringify({ label: truthById.get(v.id), id: v.id, predicted: v.label, predictedProbability: v.probs[v.label] })).join('\n') + (missed.length ? '\n' : ''));
  }

  // train-sizenet's <model>.log.json shape.
  const trainLog = join(dir, 'sizenet.model.log.json');
  writeFileSync(trainLog, JSON.stringify([1, 2, 3, 4].map((epoch) => ({ epoch, loss: 0.7 / epoch, valLoss: 0.75 / Math.sqrt(epoch), valAuc: 0.5 + 0.05 * epoch }))));
  // rise's summary lines with overlays in a directory beside them, as `rise --overlay overlays/` writes.
  const overlays = join(dir, 'overlays');
  mkdirSync(overlays);
  const riseLines: string[] = [];
  for (const [i, r] of records.slice(0, 3).entries()) {
    const overlay = join(overlays, `${String(i).padStart(5, '0')}-${r.id as string}.png`);
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 220, g: 40 + 60 * i, b: 20 } } }).png().toFile(overlay);
    riseLines.push(JSON.stringify({ id: r.id, image: r.image, class: '0', score: 0.2 + 0.3 * i, peak: { x: 10, y: 20 }, topShare: 0.3, overlay: `overlays/${String(i).padStart(5, '0')}-${r.id as string}.png` }));
  }
  const rise = join(dir, 'rise.ndjson');
  writeFileSync(rise, riseLines.join('\n') + '\n');
  return { dir, images, embeddings, knn, retrieval, classifier, falseNegatives, tsne, trainLog, rise, records, classifierFromCommand };
}
