// The review app in a real browser (Debian's chromium, headless, driven by playwright-core): open
// the F1 view, go to a class's false negatives, pick one with the keyboard, retag it, reload: the
// label persisted and the history shows it. No request leaves the server. Skips without chromium.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../helpers.js';
import { importFixture, makeReviewFixture, startReviewServer } from './review-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); the browser test of review is skipped`;

test('review in headless chromium: F1 view -> false negative -> retag by keyboard -> reload shows it', { timeout: 60_000 }, async (ctx) => {
  if (missing) ctx.skip(String(missing));
  const dir = scratchDir('atelier-review-browser-');
  const f = await makeReviewFixture(dir, 30);
  await importFixture(f);
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
    assert.deepEqual(outside, []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
