// `atelier review` as a user runs it: import, the real server on 127.0.0.1, retag and undo over
// HTTP, restart, export; the token on writes; images only by database id; kill -9 mid-burst.
import { describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import Database from 'better-sqlite3';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { splitOf } from '../../src/lib/random.js';
import { MIGRATIONS } from '../../src/lib/review/db.js';
import { importFixture, makeRetrievalFiles, makeReviewFixture, pageToken, postJson, startReviewServer } from './review-fixture.js';

// Independent scratch databases: the three run side by side (most of their time is process start-up).
describe.concurrent('atelier review', () => {
  test('import, retag, undo, restart, export: labels persist, splits never move', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-'));
    await importFixture(f);
    let server = await startReviewServer(f.db);
    try {
      const token = await pageToken(server.base);
      const f1 = await (await fetch(`${server.base}/`)).text();
      assert.match(f1, /id="f1-table"/);
      assert.match(f1, /id="confusion-matrix"/);
      // ?split=test scores only the test split, as fixed at import.
      const testPage = await (await fetch(`${server.base}/?split=test`)).text();
      const cells = [...testPage.matchAll(/<td data-sort="(\d+)" class="[^"]*" style=/g)].reduce((a, m) => a + Number(m[1]), 0);
      assert.equal(cells, f.records.filter((r) => splitOf(r.product, 0.2, 0.1) === 'test').length);

      // The queue: the most confident disagreement first.
      const queue = await (await fetch(`${server.base}/queue`)).text();
      const queued = [...queue.matchAll(/<figure class="card" data-id="([^"]+)">/g)].map((m) => m[1]);
      const preds = new Map(parseNdjson(await import('node:fs').then((fs) => fs.readFileSync(f.predictions, 'utf8'))).map((p) => [p.id as string, p]));
      const byId = new Map(f.records.map((r) => [r.id, r]));
      const disagreement = (id: string) => {
        const p = preds.get(id)!;
        const probs = p.probs as Record<string, number>;
        return probs[p.label as string] - probs[byId.get(id)!.silhouette];
      };
      const expected = f.records.filter((r) => preds.get(r.id)!.label !== r.silhouette).map((r) => r.id).sort((a, b) => disagreement(b) - disagreement(a) || a.localeCompare(b));
      assert.ok(expected.length >= 5, `the fixture has ${expected.length} mistakes`);
      assert.deepEqual(queued, expected);

      const first = queued[0];
      const newLabel = preds.get(first)!.label as string;
      const retag = await postJson(server.base, '/api/retag', { ids: [first, queued[1]], label: newLabel, who: 'ana' }, token);
      assert.equal(retag.status, 200, JSON.stringify(retag.body));
      const batch = retag.body.batch as number;
      // A second batch, then undo it: the second image goes back.
      const other = await postJson(server.base, '/api/retag', { ids: [queued[2]], label: otherLabel(preds.get(queued[2])!.label as string, byId.get(queued[2])!.silhouette) }, token);
      assert.equal(other.status, 200);
      const undone = await postJson(server.base, '/api/undo', { batch: other.body.batch }, token);
      assert.equal(undone.status, 200, JSON.stringify(undone.body));
      assert.equal((await postJson(server.base, '/api/undo', { batch: other.body.batch }, token)).status, 400, 'a batch is undone once');
      await server.stop();

      server = await startReviewServer(f.db);
      const state = (await (await fetch(`${server.base}/api/image/${encodeURIComponent(first)}`)).json()) as { label: string; split: string; history: Array<{ old_label: string; new_label: string; who: string; batch: number }> };
      assert.equal(state.label, newLabel);
      assert.equal(state.split, splitOf(byId.get(first)!.product, 0.2, 0.1));
      assert.deepEqual(state.history.map((h) => [h.old_label, h.new_label, h.who, h.batch]), [[byId.get(first)!.silhouette, newLabel, 'ana', batch]]);
      const third = (await (await fetch(`${server.base}/api/image/${encodeURIComponent(queued[2])}`)).json()) as { label: string; history: unknown[] };
      assert.equal(third.label, byId.get(queued[2])!.silhouette);
      assert.equal(third.history.length, 2);
      const historyPage = await (await fetch(`${server.base}/history`)).text();
      assert.match(historyPage, /undoes/);
    } finally {
      await server.stop();
    }

    const out = join(f.dir, 'relabelled.ndjson');
    const exported = await runAtelier(['review', 'export', '--db', f.db, '-o', out]);
    assert.equal(exported.code, 0, exported.stderr);
    const records = parseNdjson(await import('node:fs').then((fs) => fs.readFileSync(out, 'utf8')));
    assert.equal(records.length, f.records.length);
    const changed = records.filter((r) => r.silhouette !== f.records.find((o) => o.id === r.id)!.silhouette);
    assert.equal(changed.length, 2);
    // The exported file reads as train-classifier's input: image paths resolve beside it, groups intact.
    for (const r of records) assert.equal(r.image, `img/${r.id}.png`);
    const db = new Database(f.db, { readonly: true });
    try {
      for (const r of f.records) {
        const split = db.prepare('SELECT split FROM images WHERE id = ?').pluck().get(r.id);
        assert.equal(split, splitOf(r.product, 0.2, 0.1), `${r.id} stays in its split`);
      }
    } finally {
      db.close();
    }
  });

  function otherLabel(a: string, b: string): string {
    return ['a-line', 'sheath', 'shift'].find((l) => l !== a && l !== b)!;
  }

  test('writes need the session token; only database images are served; Host is checked', { timeout: 90_000 }, async () => {
    const dir = scratchDir('atelier-review-sec-');
    const f = await makeReviewFixture(dir, 12);
    // One record whose image is a symlink to a file outside: refused although the database names it.
    writeFileSync(join(dir, 'secret.png'), 'not for the browser');
    symlinkSync(join(dir, 'secret.png'), join(dir, 'img', 'link.png'));
    writeFileSync(f.labels, (await import('node:fs')).readFileSync(f.labels, 'utf8') + JSON.stringify({ id: 'linked', product: 'px', image: 'img/link.png', silhouette: 'shift' }) + '\n');
    await importFixture(f);
    const server = await startReviewServer(f.db);
    try {
      const token = await pageToken(server.base);
      const id = f.records[0].id;
      assert.equal((await postJson(server.base, '/api/retag', { ids: [id], label: 'shift' })).status, 403);
      assert.equal((await postJson(server.base, '/api/retag', { ids: [id], label: 'shift' }, token + 'x')).status, 403);
      assert.equal((await postJson(server.base, '/api/retag', { ids: [id], label: 'no-such-label' }, token)).status, 400);
      assert.equal((await postJson(server.base, '/api/retag', { ids: [id, 'no-such-id'], label: 'shift' }, token)).status, 400);
      const unchanged = (await (await fetch(`${server.base}/api/image/${id}`)).json()) as { label: string };
      assert.equal(unchanged.label, f.records[0].silhouette, 'a batch with an unknown id changes nothing');

      const good = await fetch(`${server.base}/img/${id}`);
      assert.equal(good.status, 200);
      assert.equal(good.headers.get('content-type'), 'image/png');
      assert.match(good.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      for (const path of ['/img/..%2Fimages.ndjson', '/img/../images.ndjson', '/img/%2Fetc%2Fpasswd', '/img//etc/passwd', `/img/${encodeURIComponent(join(dir, 'images.ndjson'))}`, '/img/img%2Fimg-0000.png', '/img/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/img/linked', '/images.ndjson', '/img/%E0%A4%A']) {
        const res = await fetch(`${server.base}${path}`);
        assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
        assert.doesNotMatch(await res.text(), /root:|not for the browser|silhouette/);
      }
      // DNS rebinding: a page on another name that resolves here is refused (fetch cannot set Host).
      const rebound = await new Promise<number>((resolve, reject) => {
        request(`${server.base}/`, { headers: { Host: 'evil.example:80' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject).end();
      });
      assert.equal(rebound, 421);
    } finally {
      await server.stop();
    }
    const exposed = await runAtelier(['review', '--db', f.db, '--host', '0.0.0.0', '--port', '0']);
    assert.equal(exposed.code, 2);
    assert.match(exposed.stderr, /^atelier review: --host: .*--token\n$/);
  });

  test('off loopback every request needs --token; a newer schema version is refused', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-remote-'), 9);
    await importFixture(f);
    const server = await startReviewServer(f.db, ['--host', '0.0.0.0', '--token', 'a-long-shared-secret']);
    try {
      assert.equal((await fetch(`${server.base}/`)).status, 401);
      assert.equal((await fetch(`${server.base}/img/${f.records[0].id}`)).status, 401);
      const login = await fetch(`${server.base}/queue?token=a-long-shared-secret`, { redirect: 'manual' });
      assert.equal(login.status, 303);
      assert.equal(login.headers.get('location'), '/queue');
      const cookie = login.headers.get('set-cookie')!.split(';')[0];
      assert.match(login.headers.get('set-cookie')!, /HttpOnly; SameSite=Strict/);
      assert.equal((await fetch(`${server.base}/queue`, { headers: { cookie } })).status, 200);
      assert.equal((await postJson(server.base, '/api/retag', { ids: [f.records[0].id], label: 'shift' }, 'a-long-shared-secret')).status, 200);
    } finally {
      await server.stop();
    }
    const db = new Database(f.db);
    db.prepare('UPDATE schema_version SET version = 99').run();
    db.close();
    const refused = await runAtelier(['review', 'export', '--db', f.db]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^atelier review: .*labels\.sqlite: schema version 99 is newer than this atelier understands \(\d+\)\n$/);
  });

  test('a version-1 database migrates; knn neighbours and RISE overlays show on the image page', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-migrate-'), 9);
    const old = new Database(f.db);
    old.exec('CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);');
    old.exec(MIGRATIONS[0]);
    old.close();
    const [a, b, c] = f.records;
    const knn = join(f.dir, 'knn.ndjson');
    writeFileSync(knn, JSON.stringify({ id: a.id, neighbors: [{ id: b.id, score: 0.9 }, { id: 'not-in-db', score: 0.5 }] }) + '\n');
    const rise = join(f.dir, 'rise.ndjson');
    writeFileSync(rise, JSON.stringify({ id: a.id, image: a.image, class: 'shift', score: 0.42, overlay: c.image }) + '\n');
    const imported = await runAtelier(['review', 'import', '--db', f.db, '--labels', f.labels, '--label-field', 'silhouette', '-p', f.predictions, '--knn', knn, '--rise', rise]);
    assert.equal(imported.code, 0, imported.stderr);
    const summary = JSON.parse(imported.stdout) as { knn: { stored: number }; rise: { stored: number } };
    assert.deepEqual([summary.knn.stored, summary.rise.stored], [1, 1]);
    const check = new Database(f.db, { readonly: true });
    assert.equal(check.prepare('SELECT version FROM schema_version').pluck().get(), MIGRATIONS.length);
    check.close();
    // A second model run: the F1 view compares each class's F1 with the previous model's.
    const second = await runAtelier(['review', 'import', '--db', f.db, '-p', f.predictions, '--name', 'model-2']);
    assert.equal(second.code, 0, second.stderr);
    const server = await startReviewServer(f.db);
    try {
      const f1 = await (await fetch(`${server.base}/`)).text();
      assert.match(f1, /<a href="\/\?run=1">predictions\.ndjson<\/a> · <strong>model-2<\/strong>/);
      assert.equal([...f1.matchAll(/<td data-sort="0">\+0\.000<\/td>/g)].length, 3);
      const page = await (await fetch(`${server.base}/image/${a.id}`)).text();
      assert.match(page, new RegExp(`id="neighbors".*1\\. ${b.id} \\(0\\.900\\).*2\\. not-in-db \\(0\\.500\\)`, 's'));
      assert.match(page, /RISE P\(shift\) = 0\.420/);
      const overlay = await fetch(`${server.base}/overlay/${a.id}/shift`);
      assert.equal(overlay.status, 200);
      assert.equal(overlay.headers.get('content-type'), 'image/png');
      assert.equal((await fetch(`${server.base}/overlay/${a.id}/sheath`)).status, 404);
      assert.equal((await fetch(`${server.base}/overlay/${a.id}/..%2F..%2Fimages.ndjson`)).status, 404);
    } finally {
      await server.stop();
    }
  });

  test('a version-2 database migrates to 3 keeping its rows; eval-retrieval outputs import as retrieval examples, worst first', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-retrieval-'), 24);
    await importFixture(f);
    // Turn the fresh database back into a version-2 one with a reviewed label, as the previous release left it.
    const old = new Database(f.db);
    old.exec('DROP TABLE retrieval_neighbors; DROP TABLE retrieval_queries; DROP TABLE retrieval_runs; UPDATE schema_version SET version = 2;');
    old.prepare("UPDATE images SET label = 'shift' WHERE id = ?").run(f.records[0].id);
    old.prepare("INSERT INTO history (batch, image_id, old_label, new_label, at, who) VALUES (1, ?, ?, 'shift', '2026-01-01T00:00:00Z', 'ana')").run(f.records[0].id, f.records[0].silhouette);
    old.close();
    assert.equal(MIGRATIONS.length, 3);

    const r = makeRetrievalFiles(f);
    // eval-retrieval itself scores the knn lines: its per-query ranks and AP are what the app shows.
    const perQuery = join(f.dir, 'per-query.ndjson');
    const evaluated = await runAtelier(['eval-retrieval', '-p', r.partition, '--knn', r.knn, '--per-query', perQuery, '-o', join(f.dir, 'retrieval.json')]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const expected = parseNdjson(readFileSync(perQuery, 'utf8')) as Array<{ id: string; rank: number | null; ap: number }>;
    assert.equal(expected.length, r.queries.size);

    const imported = await runAtelier(['review', 'import', '--db', f.db, '--knn', r.knn, '--partition', r.partition, '--per-query', perQuery, '--retrieval-name', 'weak']);
    assert.equal(imported.code, 0, imported.stderr);
    const summary = JSON.parse(imported.stdout) as { retrieval: { run: number; queries: number; skipped: Record<string, number> } };
    assert.equal(summary.retrieval.queries, r.queries.size);
    // Per line: itself, another query and an image outside the partition are left out, as eval-retrieval does.
    assert.equal(summary.retrieval.skipped.neighborsNotInGallery, 2 * r.queries.size);
    // Without --per-query the ranks and AP come from the knn lists: the same numbers.
    const again = await runAtelier(['review', 'import', '--db', f.db, '--knn', r.knn, '--partition', r.partition]);
    assert.equal(again.code, 0, again.stderr);
    // The same split as an In-Shop list naming images by path: database images match it by their paths.
    const list = join(f.dir, 'list_eval_partition.txt');
    const rows = parseNdjson(readFileSync(r.partition, 'utf8')).map((p) => `${f.records.find((x) => x.id === p.id)!.image} ${p.item} ${p.split}`);
    writeFileSync(list, `${rows.length}\nimage_name item_id evaluation_status\n${rows.join('\n')}\n`);
    const byPath = await runAtelier(['review', 'import', '--db', f.db, '--knn', r.knn, '--partition', list]);
    assert.equal(byPath.code, 0, byPath.stderr);

    const db = new Database(f.db, { readonly: true });
    try {
      assert.equal(db.prepare('SELECT version FROM schema_version').pluck().get(), 3);
      assert.equal(db.prepare('SELECT label FROM images WHERE id = ?').pluck().get(f.records[0].id), 'shift', 'the reviewed label survives the migration');
      assert.equal(db.prepare('SELECT COUNT(*) FROM history').pluck().get(), 1);
      for (const run of [1, 2, 3]) {
        const stored = db.prepare('SELECT image_id, first_rank, ap FROM retrieval_queries WHERE run_id = ? ORDER BY image_id').all(run) as Array<{ image_id: string; first_rank: number | null; ap: number }>;
        assert.deepEqual(stored.map((q) => [q.image_id, q.first_rank, Number(q.ap.toFixed(4))]), [...expected].sort((a, b) => a.id.localeCompare(b.id)).map((q) => [q.id, q.rank, Number(q.ap.toFixed(4))]), `run ${run}`);
      }
      // Hits: exactly the neighbour that is the query's own product's other view.
      const hits = db.prepare('SELECT image_id, neighbor_id FROM retrieval_neighbors WHERE run_id = 1 AND hit = 1 ORDER BY image_id').all() as Array<{ image_id: string; neighbor_id: string }>;
      assert.deepEqual(hits.map((h) => [h.image_id, h.neighbor_id]), [...r.queries].filter(([q]) => expected.find((e) => e.id === q)!.rank !== null).sort((a, b) => a[0].localeCompare(b[0])));
      assert.equal(db.prepare('SELECT COUNT(*) FROM retrieval_neighbors WHERE hit IS NULL').pluck().get(), 0);
    } finally {
      db.close();
    }

    const server = await startReviewServer(f.db);
    try {
      const page = await (await fetch(`${server.base}/retrieval?run=1`)).text();
      const order = [...page.matchAll(/<div class="retrieval-example" id="q-[^"]+" data-query="([^"]+)">/g)].map((m) => m[1]);
      const noHitFirst = (a: { rank: number | null }, b: { rank: number | null }) => (a.rank === null) !== (b.rank === null) ? (a.rank === null ? -1 : 1) : (b.rank ?? 0) - (a.rank ?? 0);
      const worst = [...expected].sort((a, b) => a.ap - b.ap || noHitFirst(a, b) || a.id.localeCompare(b.id)).map((q) => q.id);
      assert.deepEqual(order, worst);
      assert.equal(expected.find((q) => q.id === order[0])!.rank, null, 'a query with no hit comes first');
      const hitMarks = (page.match(/class="card neighbor correct"/g) ?? []).length;
      assert.equal(hitMarks, expected.filter((q) => q.rank !== null).length);
      assert.equal((page.match(/✗<\/figcaption>/g) ?? []).length, (page.match(/class="card neighbor wrong"/g) ?? []).length);
      assert.match(page, /<a href="\/retrieval\?run=2">knn-queries\.ndjson<\/a>/);
      // The image page links to the query's examples.
      const image = await (await fetch(`${server.base}/image/${order[0]}`)).text();
      assert.match(image, new RegExp(`<a href="/retrieval\\?run=1#q-${order[0]}">weak</a>: first hit at none, AP 0\\.000`));
    } finally {
      await server.stop();
    }
    const wrong = await runAtelier(['review', 'import', '--db', f.db, '--per-query', perQuery]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /^atelier review: --per-query: needs --partition/);
  });

  test('batch retag and batch undo: one transaction, one batch id; an undo that would clobber a later change is refused', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-batch-'), 12);
    await importFixture(f);
    const server = await startReviewServer(f.db);
    try {
      const token = await pageToken(server.base);
      const label = async (id: string) => {
        const { label, split } = (await (await fetch(`${server.base}/api/image/${id}`)).json()) as { label: string; split: string };
        return { label, split };
      };
      const [a, b, c] = f.records.filter((r) => r.silhouette !== 'shift');
      const before = await Promise.all([a, b, c].map((r) => label(r.id)));
      assert.equal((await postJson(server.base, '/api/retag', { ids: [a.id, b.id, c.id], label: 'shift' })).status, 403, 'no token');
      // A failing item in the middle rolls back the ones before it.
      const failed = await postJson(server.base, '/api/retag', { ids: [a.id, 'no-such-id', b.id], label: 'shift' }, token);
      assert.equal(failed.status, 400);
      assert.match(failed.body.error as string, /no-such-id/);
      assert.deepEqual(await Promise.all([a, b, c].map((r) => label(r.id))), before);

      const batch = await postJson(server.base, '/api/retag', { ids: [a.id, b.id, c.id], label: 'shift', who: 'ana' }, token);
      assert.equal(batch.status, 200);
      assert.equal((batch.body.changed as unknown[]).length, 3);
      const db = new Database(f.db, { readonly: true });
      const batchOf = (id: string) => db.prepare('SELECT batch FROM history WHERE image_id = ? ORDER BY seq DESC LIMIT 1').pluck().get(id);
      assert.deepEqual([a, b, c].map((r) => batchOf(r.id)), [batch.body.batch, batch.body.batch, batch.body.batch]);

      // b changes again: undoing the first batch would overwrite that, so nothing is undone.
      const later = await postJson(server.base, '/api/retag', { ids: [b.id], label: 'a-line' }, token);
      assert.equal(later.status, 200);
      const refused = await postJson(server.base, '/api/undo', { batch: batch.body.batch }, token);
      assert.equal(refused.status, 409);
      assert.match(refused.body.error as string, new RegExp(`^batch ${batch.body.batch} not undone: 1 of its 3 images changed since: ${b.id} \\(batch ${later.body.batch}\\)$`));
      assert.deepEqual((await Promise.all([a, b, c].map((r) => label(r.id)))).map((x) => x.label), ['shift', 'a-line', 'shift']);
      assert.equal((await postJson(server.base, '/api/undo', { batch: batch.body.batch })).status, 403, 'undo needs the token too');

      // Undo the later change, then the batch: all three back at once, as one new batch.
      assert.equal((await postJson(server.base, '/api/undo', { batch: later.body.batch }, token)).status, 200);
      const undone = await postJson(server.base, '/api/undo', { batch: batch.body.batch, who: 'ana' }, token);
      assert.equal(undone.status, 200, JSON.stringify(undone.body));
      assert.equal((undone.body.changed as unknown[]).length, 3);
      assert.deepEqual(await Promise.all([a, b, c].map((r) => label(r.id))), before, 'labels and splits as before');
      assert.deepEqual([a, b, c].map((r) => batchOf(r.id)), [undone.body.batch, undone.body.batch, undone.body.batch]);
      assert.equal(db.prepare('SELECT COUNT(*) FROM history WHERE undoes = ?').pluck().get(batch.body.batch), 3);
      db.close();
    } finally {
      await server.stop();
    }
  });

  test('kill -9 during a burst of retags: every acknowledged change survives, integrity ok', { timeout: 90_000 }, async () => {
    const f = await makeReviewFixture(scratchDir('atelier-review-kill-'), 48);
    await importFixture(f);
    const server = await startReviewServer(f.db);
    const token = await pageToken(server.base);
    const acknowledged: Array<{ id: string; label: string; batch: number }> = [];
    let sent = 0;
    const labels = ['a-line', 'sheath', 'shift'];
    // 8 clients retag in a loop; the server is killed after 100 requests.
    const client = async (c: number) => {
      for (let i = 0; ; i++) {
        // Each client owns its own images, so the last acknowledged label of an image is unambiguous.
        const r = f.records[c + 8 * (i % Math.floor(f.records.length / 8))];
        const label = labels[(c + i) % 3];
        sent++;
        try {
          const res = await postJson(server.base, '/api/retag', { ids: [r.id], label, who: `c${c}` }, token);
          if (res.status !== 200) throw new Error(`status ${res.status}`);
          if ((res.body.changed as unknown[]).length) acknowledged.push({ id: r.id, label, batch: res.body.batch as number });
          if (sent >= 100 && server.child.exitCode === null) server.child.kill('SIGKILL');
        } catch {
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, c) => client(c)));
    await new Promise((r) => (server.child.signalCode ? r(null) : server.child.once('exit', r)));
    assert.equal(server.child.signalCode, 'SIGKILL');
    assert.ok(acknowledged.length > 10);
    const db = new Database(f.db);
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      // Every acknowledged change is in the history; each image's label is its last history row's
      // (a change committed as the server died, unacknowledged, may follow the last acknowledged one).
      const logged = db.prepare('SELECT new_label FROM history WHERE batch = ? AND image_id = ?').pluck();
      for (const a of acknowledged) assert.equal(logged.get(a.batch, a.id), a.label, `batch ${a.batch} ${a.id}`);
      const rows = db.prepare('SELECT i.id, i.label, (SELECT new_label FROM history h WHERE h.image_id = i.id ORDER BY seq DESC LIMIT 1) AS last FROM images i').all() as Array<{ id: string; label: string; last: string | null }>;
      for (const r of rows) if (r.last !== null) assert.equal(r.label, r.last, r.id);
      const lastAck = new Map(acknowledged.map((a) => [a.id, a.batch]));
      const latest = db.prepare('SELECT MAX(batch) FROM history WHERE image_id = ?').pluck();
      for (const [id, batch] of lastAck) assert.ok((latest.get(id) as number) >= batch, id);
    } finally {
      db.close();
    }
    // And it serves again after the crash.
    const again = await startReviewServer(f.db);
    await again.stop();
  });
});
