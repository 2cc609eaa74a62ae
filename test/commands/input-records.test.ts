// Bad values in input records, each a one-line exit 2 at file:line:field: eval-classifier probs,
// predict-sizenet given the wrong model, a partition listing an image twice.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/lib/backend/tf.js';
import { saveModel } from '../../src/lib/backend/model-io.js';
import { writeNpy } from '../../src/lib/io/npy.js';
import { SIZENET_MODEL_KIND } from '../../src/lib/sizenet/evaluation.js';
import { runAtelier, scratchDir } from '../helpers.js';

const dir = scratchDir();

/** One error line (the backend line is another matter: it is to move after the input checks). */
function oneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('atelier: backend '));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, pattern);
}

test('eval-classifier: probs that are not probabilities are exit 2 at file:line:probs.<label>', async () => {
  const cases: Array<[string, RegExp]> = [
    ['{"dress":"high","shirt":0.1}', /p\.ndjson:2: probs\.dress: expected a probability in \[0, 1\], got a string \("high"\)/],
    ['{"dress":1e999,"shirt":0}', /p\.ndjson:2: probs\.dress: expected a probability in \[0, 1\], got a number \(Infinity\)/],
    ['{"dress":1.5,"shirt":0}', /p\.ndjson:2: probs\.dress: expected a probability in \[0, 1\], got a number \(1\.5\)/],
    ['"dress"', /p\.ndjson:2: probs: expected an object of probabilities per label/],
  ];
  for (const [probs, pattern] of cases) {
    const predictions = join(dir, 'p.ndjson');
    writeFileSync(predictions, `{"id":"a","label":"dress","truth":"dress","probs":{"dress":0.9,"shirt":0.1}}\n{"id":"b","label":"dress","truth":"shirt","probs":${probs}}\n`);
    const r = await runAtelier(['eval-classifier', '-p', predictions]);
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr, pattern);
  }
});

test('predict-sizenet: an image model is blamed, not the features; a width mismatch names the student', async () => {
  await tf.setBackend('cpu');
  const imageModel = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [8, 8, 3] }), tf.layers.dense({ units: 1, activation: 'sigmoid' })] });
  const imageDir = join(dir, 'sizenet-image.model');
  await saveModel(imageModel, imageDir, { metadata: { kind: SIZENET_MODEL_KIND, features: 'emb.npy' } });
  const student = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1, activation: 'sigmoid' })] });
  const studentDir = join(dir, 'student.model');
  await saveModel(student, studentDir, { metadata: { kind: SIZENET_MODEL_KIND, features: 'weak-pooled.npy' } });
  const features = join(dir, 'f.npy');
  await writeNpy(features, new Float32Array(3 * 8), [3, 8]);
  writeFileSync(join(dir, 'f.ids.ndjson'), '{"id":"a"}\n{"id":"b"}\n{"id":"c"}\n');

  const wrongModel = await runAtelier(['predict-sizenet', '-m', imageDir, '-f', features]);
  assert.equal(wrongModel.code, 2, wrongModel.stderr);
  oneLine(wrongModel.stderr, new RegExp(`^atelier predict-sizenet: ${imageDir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: takes input of shape \\(8, 8, 3\\), not feature rows`));

  const mismatch = await runAtelier(['predict-sizenet', '-m', studentDir, '-f', features]);
  assert.equal(mismatch.code, 2, mismatch.stderr);
  oneLine(mismatch.stderr, /f\.npy: rows of 8 features, but the student .*student\.model was trained on 4 \(weak-pooled\.npy\)/);
});

test('eval-retrieval: an image listed twice in a partition is reported at its second line, naming the first', async () => {
  await writeNpy(join(dir, 'e.npy'), Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]);
  writeFileSync(join(dir, 'e.ids.ndjson'), '{"id":"x"}\n{"id":"y"}\n{"id":"z"}\n');
  const ndjson = join(dir, 'part.ndjson');
  writeFileSync(ndjson, '{"id":"x","item":"1","split":"query"}\n{"id":"y","item":"1","split":"gallery"}\n{"id":"z","item":"2","split":"gallery"}\n{"id":"y","item":"2","split":"gallery"}\n');
  const a = await runAtelier(['eval-retrieval', '-p', ndjson, '-e', join(dir, 'e.npy')]);
  assert.equal(a.code, 2, a.stderr);
  oneLine(a.stderr, /part\.ndjson:4: image "y" is listed twice \(first on line 2\)/);

  const list = join(dir, 'list_eval_partition.txt');
  writeFileSync(list, '4\nimage_name item_id evaluation_status\nx 1 query\ny 1 gallery\nz 2 gallery\nx 2 gallery\n');
  const b = await runAtelier(['eval-retrieval', '-p', list, '-e', join(dir, 'e.npy')]);
  assert.equal(b.code, 2, b.stderr);
  oneLine(b.stderr, /list_eval_partition\.txt:6: image "x" is listed twice \(first on line 3\)/);
});
