// The prefetch pool: input order kept whatever order decodes finish in, both bounds held
// (decodes in flight, results waiting), the source read lazily, errors at their place, and a
// clean stop when the consumer breaks out.
import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { batches, prefetchImages } from '../../src/lib/image/prefetch.js';

/** A decode that takes a pseudo-random few milliseconds and records how many run and wait. */
function instrumentedDecode(seed = 1) {
  let state = seed;
  const random = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const stats = { started: 0, inFlight: 0, maxInFlight: 0, finished: 0, consumed: 0, maxWaiting: 0 };
  const decode = async (n: number): Promise<number> => {
    stats.started++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    await sleep(Math.floor(random() * 6));
    stats.inFlight--;
    stats.finished++;
    // Decoded but not yet taken by the consumer.
    stats.maxWaiting = Math.max(stats.maxWaiting, stats.finished - stats.consumed);
    return n * 10;
  };
  return { decode, stats };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function* slowSource(n: number, pulled: { count: number }, closed: { value: boolean }) {
  try {
    for (let i = 0; i < n; i++) {
      pulled.count++;
      await sleep(0);
      yield i;
    }
  } finally {
    closed.value = true;
  }
}

describe('prefetchImages', () => {
  it('yields results in input order while decodes finish out of order', async () => {
    const { decode, stats } = instrumentedDecode(7);
    const out: number[] = [];
    for await (const r of prefetchImages(range(200), decode, { concurrency: 5, ahead: 12 })) {
      stats.consumed++;
      out.push(r);
    }
    assert.deepEqual(out, range(200).map((n) => n * 10));
    assert.equal(stats.maxInFlight, 5, 'runs exactly up to the concurrency');
    assert.ok(stats.maxWaiting <= 12, `at most ahead results wait, saw ${stats.maxWaiting}`);
  });

  it('holds both bounds with a slow consumer, and fills the buffer up to ahead', async () => {
    const { decode, stats } = instrumentedDecode(3);
    let maxStartedNotTaken = 0;
    for await (const r of prefetchImages(range(60), decode, { concurrency: 3, ahead: 7 })) {
      assert.equal(r, stats.consumed * 10);
      stats.consumed++;
      await sleep(15);
      maxStartedNotTaken = Math.max(maxStartedNotTaken, stats.started - stats.consumed);
    }
    assert.equal(stats.maxInFlight, 3);
    assert.equal(stats.maxWaiting, 7, 'a slow consumer lets the pool fill ahead and no further');
    assert.equal(maxStartedNotTaken, 7, 'decoding plus decoded never passes ahead');
  });

  it('keeps decodes in flight while the consumer is busy (overlap)', async () => {
    let inFlightDuringConsumer = 0;
    let inFlight = 0;
    const decode = async (n: number): Promise<number> => {
      inFlight++;
      await sleep(5);
      inFlight--;
      return n;
    };
    for await (const _ of prefetchImages(range(20), decode, { concurrency: 4, ahead: 8 })) {
      inFlightDuringConsumer = Math.max(inFlightDuringConsumer, inFlight);
      await sleep(2);
    }
    assert.ok(inFlightDuringConsumer >= 2, `decodes were running while the consumer worked: ${inFlightDuringConsumer}`);
  });

  it('with ahead smaller than concurrency, ahead is the bound', async () => {
    const { decode, stats } = instrumentedDecode(5);
    for await (const _ of prefetchImages(range(30), decode, { concurrency: 8, ahead: 2 })) stats.consumed++;
    assert.equal(stats.maxInFlight, 2);
    assert.ok(stats.maxWaiting <= 2);
  });

  it('reads an async source lazily and closes it when the consumer breaks out', async () => {
    const pulled = { count: 0 };
    const closed = { value: false };
    const { decode, stats } = instrumentedDecode(11);
    const seen: number[] = [];
    for await (const r of prefetchImages(slowSource(1_000_000, pulled, closed), decode, { concurrency: 2, ahead: 5 })) {
      seen.push(r);
      if (seen.length === 10) break;
    }
    assert.deepEqual(seen, range(10).map((n) => n * 10));
    assert.ok(pulled.count <= 10 + 5 + 1, `pulled ${pulled.count} items for 10 consumed`);
    assert.equal(closed.value, true, "the source's finally ran");
    assert.equal(stats.inFlight, 0, 'no decode left running after the loop ends');
    const startedAtBreak = stats.started;
    await sleep(20);
    assert.equal(stats.started, startedAtBreak, 'nothing starts after the loop ends');
  });

  it('throws a failed decode at its place in the order, after the earlier results', async () => {
    const decode = async (n: number): Promise<number> => {
      await sleep(n === 4 ? 0 : 3);
      if (n === 4) throw new Error('boom at 4');
      return n;
    };
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of prefetchImages(range(10), decode, { concurrency: 3, ahead: 6 })) seen.push(r);
      })(),
      /boom at 4/,
    );
    assert.deepEqual(seen, [0, 1, 2, 3]);
  });

  it('treats a decode that throws synchronously like a rejection', async () => {
    const decode = (n: number): Promise<number> => {
      if (n === 1) throw new TypeError('sync');
      return Promise.resolve(n);
    };
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of prefetchImages([0, 1, 2], decode)) seen.push(r);
      })(),
      TypeError,
    );
    assert.deepEqual(seen, [0]);
  });

  it('throws a failing source after the items it gave', async () => {
    function* source() {
      yield 1;
      yield 2;
      throw new Error('source broke');
    }
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of prefetchImages(source(), async (n: number) => n, { concurrency: 2, ahead: 4 })) seen.push(r);
      })(),
      /source broke/,
    );
    assert.deepEqual(seen, [1, 2]);
  });

  it('handles empty input and rejects bad options', async () => {
    const out: number[] = [];
    for await (const r of prefetchImages([] as number[], async (n) => n)) out.push(r);
    assert.deepEqual(out, []);
    await assert.rejects(prefetchImages([1], async (n) => n, { concurrency: 0 }).next(), RangeError);
    await assert.rejects(prefetchImages([1], async (n) => n, { ahead: 1.5 }).next(), RangeError);
  });
});

describe('batches', () => {
  it('groups in order with a short last batch', async () => {
    const out: number[][] = [];
    for await (const b of batches(range(7), 3)) out.push(b);
    assert.deepEqual(out, [[0, 1, 2], [3, 4, 5], [6]]);
  });

  it('drops the short last batch when asked, and reads async sources', async () => {
    const out: number[][] = [];
    const pulled = { count: 0 };
    for await (const b of batches(slowSource(8, pulled, { value: false }), 3, { dropRemainder: true })) out.push(b);
    assert.deepEqual(out, [[0, 1, 2], [3, 4, 5]]);
  });

  it('composes with the pool and rejects a bad size', async () => {
    const out: number[][] = [];
    for await (const b of batches(prefetchImages(range(5), async (n) => n * 2, { concurrency: 2, ahead: 3 }), 2)) out.push(b);
    assert.deepEqual(out, [[0, 2], [4, 6], [8]]);
    const none: number[][] = [];
    for await (const b of batches([], 4)) none.push(b);
    assert.deepEqual(none, []);
    await assert.rejects(batches([1], 0).next(), RangeError);
  });
});
