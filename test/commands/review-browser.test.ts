// The review app in a real browser (Debian's chromium, headless, driven by playwright-core): open
// the F1 view, go to a class's false negatives, pick one with the keyboard, retag it, reload: the
// label persisted and the history shows it; the retrieval view, worst query first, and back from an
// image page; a batch retag of false positives picked by keyboard, then its undo, checked through
// reload, history, export and the splits. No request leaves the server. Skips without chromium.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNdjson, runAtelier, scratchDir } from '../helpers.js';
import { makeRetrievalFiles, makeReviewFixture, startReviewServer } from './review-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); the browser test of review is skipped`;

test('review in headless chromium: F1 view -> false negative -> retag by keyboard -> reload shows it', { timeout: 90_000 }, async (ctx) => {
  if (missing) ctx.skip(String(missing));
  const dir = scratchDir('atelier-review-browser-');
  const f = await makeReviewFixture(dir, 30);
  const r = makeRetrievalFiles(f);
  const imported = await runAtelier(['review', 'import', '--db', f.db, '--labels', f.labels, '--label-field', 'silhouette', '-p', f.predictions, '--name', 'model-1', '--knn', r.knn, '--partition', r.partition]);
  assert.equal(imported.code, 0, imported.stderr);
  const shots = process.env.ATELIER_SCREENSHOTS ?? join(dir, 'shots');
  mkdirSync(shots, { recursive: true });
  const server = await startReviewServer(f.db, ['--user', 'browser-test']);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const outside: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(server.base + '/')) return route.continue();
      outside.push(url);
      return route.abort();
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));

    await page.goto(`${server.base}/`);
    assert.equal(await page.locator('#f1-table tbody tr').count(), 3);
    assert.equal(await page.locator('#confusion-matrix tbody tr').count(), 3);
    // Sort by F1 (ascending), as the report does.
    await page.click('#f1-table thead th:nth-child(4)');
    assert.equal(await page.getAttribute('#f1-table thead th:nth-child(4)', 'aria-sort'), 'ascending');
    await page.screenshot({ path: join(shots, 'review-f1.png'), fullPage: true });

    // The class with the most false negatives; its page lists them.
    const counts = await page.$$eval('#class-table tbody tr', (rows) => (rows as HTMLTableRowElement[]).map((r, row) => ({ row, label: r.cells[0].textContent!, fn: Number(r.cells[1].textContent) })));
    const target = [...counts].sort((a, b) => b.fn - a.fn)[0];
    assert.ok(target.fn > 0);
    await page.locator('#class-table tbody tr').nth(target.row).locator('a.fn-link').click();
    await page.waitForSelector('#false-negatives .card');
    const fnCards = page.locator('#false-negatives .card');
    assert.equal(await fnCards.count(), target.fn);
    const id = (await fnCards.first().getAttribute('data-id'))!;
    const predicted = (await fnCards.first().locator('.predicted').textContent())!.replace('predicted: ', '');

    // Keyboard: j focuses the first card's checkbox, x selects it.
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('j');
    await page.keyboard.press('x');
    assert.equal(await fnCards.first().locator('input.pick').isChecked(), true);
    assert.match((await fnCards.first().getAttribute('class'))!, /selected/);
    await page.selectOption('#retag select', predicted);
    await page.screenshot({ path: join(shots, 'review-false-negatives.png'), fullPage: true });
    await Promise.all([page.waitForEvent('load'), page.click('#retag button[type=submit]')]);

    await page.reload();
    assert.equal(await page.locator(`#false-negatives .card[data-id="${id}"]`).count(), 0, 'no longer a false negative of its old class');
    await page.goto(`${server.base}/image/${encodeURIComponent(id)}`);
    assert.equal(await page.textContent('#current-label'), predicted);
    const history = await page.$$eval('#history-table tbody tr', (rows) => (rows as HTMLTableRowElement[]).map((r) => Array.from(r.cells).map((c) => c.textContent)));
    assert.equal(history.length, 1);
    assert.deepEqual([history[0][3], history[0][4], history[0][6]], [target.label, predicted, 'browser-test']);
    await page.screenshot({ path: join(shots, 'review-image.png'), fullPage: true });

    // Retrieval, from the nav: the worst query first (no hit in its list), hits framed and marked.
    await Promise.all([page.waitForEvent('load'), page.click('nav.top a[href="/retrieval"]')]);
    const examples = page.locator('.retrieval-example');
    assert.equal(await examples.count(), r.queries.size);
    const worst = (await examples.first().getAttribute('data-query'))!;
    assert.equal(await examples.first().locator('.neighbor.correct').count(), 0);
    assert.match((await examples.first().locator('.query figcaption').textContent())!, /first hit none · AP 0\.000/);
    assert.equal(await page.locator('.neighbor.correct').count(), [...r.queries.keys()].filter((_, q) => q % 4 !== 3).length);
    assert.match((await page.locator('.neighbor.correct figcaption').first().textContent())!, /✓$/);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('j');
    assert.equal(await page.evaluate(() => document.activeElement?.closest('.retrieval-example')?.getAttribute('data-query')), worst);
    await page.screenshot({ path: join(shots, 'review-retrieval.png'), fullPage: true });
    await Promise.all([page.waitForEvent('load'), page.keyboard.press('Enter')]);
    assert.equal(new URL(page.url()).pathname, `/image/${worst}`);
    assert.ok((await page.locator('#neighbors .card').count()) > 0, 'the image page shows its nearest neighbours');
    await Promise.all([page.waitForEvent('load'), page.click('#retrieval-links a')]);
    assert.equal(new URL(page.url()).hash, `#q-${worst}`);

    // Batch: the class with the most false positives; select them by keyboard, retag them all as it.
    await page.goto(`${server.base}/`);
    const fps = await page.$$eval('#class-table tbody tr', (rows) => (rows as HTMLTableRowElement[]).map((row) => ({ label: row.cells[0].textContent!, fp: Number(row.cells[2].textContent) })));
    const busiest = [...fps].sort((a, b) => b.fp - a.fp)[0];
    assert.ok(busiest.fp >= 2, `false positives: ${JSON.stringify(fps)}`);
    await page.goto(`${server.base}/class/${encodeURIComponent(busiest.label)}`);
    const fpCards = page.locator('#false-positives .card');
    const picked = Math.min(3, busiest.fp);
    await fpCards.first().locator('input.pick').focus();
    await page.keyboard.press('x');
    for (let i = 1; i < picked; i++) {
      await page.keyboard.press('j');
      await page.keyboard.press('x');
    }
    assert.equal(await page.textContent('#selected-count'), `${picked} selected`);
    const ids = await fpCards.evaluateAll((cards, n) => cards.slice(0, n as number).map((c) => c.getAttribute('data-id')!), picked);
    const before = new Map(await Promise.all(ids.map(async (id) => [id, (await (await fetch(`${server.base}/api/image/${id}`)).json()) as { label: string; split: string }] as const)));
    await page.selectOption('#retag select', busiest.label);
    await page.screenshot({ path: join(shots, 'review-batch.png'), fullPage: true });
    await Promise.all([page.waitForEvent('load'), page.click('#retag button[type=submit]')]);
    await page.reload();
    for (const id of ids) assert.equal(await page.locator(`#false-positives .card[data-id="${id}"]`).count(), 0);
    const after = await Promise.all(ids.map(async (id) => (await (await fetch(`${server.base}/api/image/${id}`)).json()) as { label: string; split: string; history: Array<{ batch: number }> }));
    assert.deepEqual(after.map((a) => a.label), ids.map(() => busiest.label));
    assert.deepEqual(after.map((a) => a.split), ids.map((id) => before.get(id)!.split), 'splits never move');
    const batch = after[0].history[0].batch;
    assert.deepEqual(after.map((a) => a.history[0].batch), ids.map(() => batch), 'one batch');
    const out = join(dir, 'exported.ndjson');
    const exported = await runAtelier(['review', 'export', '--db', f.db, '-o', out]);
    assert.equal(exported.code, 0, exported.stderr);
    const labelled = new Map(parseNdjson(readFileSync(out, 'utf8')).map((rec) => [rec.id as string, rec.silhouette as string]));
    for (const id of ids) assert.equal(labelled.get(id), busiest.label);
    await page.goto(`${server.base}/history`);
    assert.equal(await page.locator(`#history-table tbody tr:has(td:nth-child(2)[data-sort="${batch}"])`).count(), picked);

    // Undo the batch with u from the grid: every image back at once, logged as one batch.
    await page.goto(`${server.base}/class/${encodeURIComponent(busiest.label)}`);
    assert.equal(await page.textContent('#undo-last'), `undo batch ${batch} (u)`);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await Promise.all([page.waitForEvent('load'), page.keyboard.press('u')]);
    assert.equal(await page.locator('#undo-last').count(), 0);
    assert.equal(await fpCards.count(), busiest.fp);
    const undone = await Promise.all(ids.map(async (id) => (await (await fetch(`${server.base}/api/image/${id}`)).json()) as { label: string; split: string; history: Array<{ batch: number; undoes: number | null }> }));
    assert.deepEqual(undone.map((u) => [u.label, u.split]), ids.map((id) => [before.get(id)!.label, before.get(id)!.split]));
    assert.deepEqual(undone.map((u) => u.history[0].undoes), ids.map(() => batch));
    await page.goto(`${server.base}/history`);
    assert.match((await page.textContent('#history-table'))!, new RegExp(`undoes ${batch}`));
    assert.deepEqual(outside, []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
