// Decoding runs ahead of compute: sharp works on libuv threads, so while the consumer (tfjs) is
// busy with one batch the pool is already decoding the next, with memory bounded by `ahead`.

export interface PrefetchOptions {
  /** Decodes running at once; default 4 (libuv's default thread pool size). */
  concurrency?: number;
  /** Results started but not yet taken by the consumer (decoding or done), at most; default 32. */
  ahead?: number;
}

type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * Runs `decode` over `items` with at most `concurrency` calls in flight and at most `ahead`
 * results waiting (in flight plus decoded), and yields the results in input order. A rejected
 * decode or a failing source is thrown at its place in the order. Breaking out of the loop stops
 * the pool: no new decodes start, the source is closed, and the ones in flight are awaited.
 */
export async function* prefetchImages<T, R>(
  items: AsyncIterable<T> | Iterable<T>,
  decode: (item: T) => Promise<R>,
  options: PrefetchOptions = {},
): AsyncGenerator<R, void, undefined> {
  const concurrency = options.concurrency ?? 4;
  const ahead = options.ahead ?? 32;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`prefetchImages: concurrency must be a positive integer, got ${concurrency}`);
  }
  if (!Number.isInteger(ahead) || ahead < 1) throw new RangeError(`prefetchImages: ahead must be a positive integer, got ${ahead}`);

  const source = openIterator(items);
  // Started but not yet yielded, in input order; its length is in-flight plus decoded.
  const queue: Array<Promise<Settled<R>>> = [];
  let inFlight = 0;
  let sourceDone = false;
  let stopped = false;
  let filling = false;
  let fillDone: Promise<void> = Promise.resolve();

  const start = (item: T): void => {
    inFlight++;
    const settled = (async () => decode(item))().then(
      (value): Settled<R> => ({ ok: true, value }),
      (error: unknown): Settled<R> => ({ ok: false, error }),
    );
    queue.push(
      settled.then((s) => {
        inFlight--;
        void fill();
        return s;
      }),
    );
  };

  // Pulls from the source and starts decodes while both limits allow; one pull at a time.
  const runFill = async (): Promise<void> => {
    try {
      while (!stopped && !sourceDone && inFlight < concurrency && queue.length < ahead) {
        let next: IteratorResult<T>;
        try {
          next = await source.next();
        } catch (error) {
          sourceDone = true;
          queue.push(Promise.resolve({ ok: false, error }));
          break;
        }
        if (next.done === true) sourceDone = true;
        else if (!stopped) start(next.value);
      }
    } finally {
      // Cleared in the same tick as the last check, so a wake-up after it starts a new run.
      filling = false;
    }
  };
  const fill = (): Promise<void> => {
    if (!filling) {
      filling = true;
      fillDone = runFill();
    }
    return fillDone;
  };

  try {
    for (;;) {
      if (queue.length === 0) {
        if (sourceDone) return;
        await fill();
        continue;
      }
      const settled = await queue[0];
      queue.shift();
      void fill();
      if (!settled.ok) throw settled.error;
      yield settled.value;
    }
  } finally {
    stopped = true;
    await fillDone;
    await Promise.all(queue);
    if (!sourceDone) await source.return?.();
  }
}

/** Groups items into arrays of `size`, in order; the last group may be shorter unless `dropRemainder`. */
export async function* batches<T>(
  items: AsyncIterable<T> | Iterable<T>,
  size: number,
  options: { dropRemainder?: boolean } = {},
): AsyncGenerator<T[], void, undefined> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batches: size must be a positive integer, got ${size}`);
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0 && options.dropRemainder !== true) yield batch;
}

function openIterator<T>(items: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> | Iterator<T> {
  if (Symbol.asyncIterator in items) return (items as AsyncIterable<T>)[Symbol.asyncIterator]();
  return (items as Iterable<T>)[Symbol.iterator]();
}
