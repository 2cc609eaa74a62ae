// Progress on stderr: a cli-progress bar when the stream is a terminal, nothing otherwise (so logs
// and pipes stay clean), or, when asked, an occasional plain line for logs of long runs.
import type cliProgressModule from 'cli-progress';
import { lazyModule } from './lazy-module.js';

const cliProgress = lazyModule<typeof cliProgressModule>('cli-progress');

export interface ProgressOptions {
  /** Expected number of steps; omitted or 0 when unknown (then only the count is shown). */
  total?: number;
  /** Words before the bar, e.g. 'embed'. */
  label?: string;
  /** When the stream is not a terminal, write one plain line every `plainIntervalMs` instead of nothing. */
  plainLines?: boolean;
  /** Least time between plain lines; default 10 s. */
  plainIntervalMs?: number;
}

/** Extra values shown after the count, e.g. `{ loss: '0.412' }`. */
export type ProgressPayload = Record<string, string | number>;

export interface Progress {
  /** Advances by n steps (default 1). */
  tick(n?: number, payload?: ProgressPayload): void;
  /** Sets the step count; the payload replaces the previous one. */
  update(value: number, payload?: ProgressPayload): void;
  /** Draws the final state and ends the line; further calls do nothing. Call it in a `finally`:
   * on a terminal the bar's redraw timer keeps the process alive until then. */
  stop(): void;
}

const SILENT: Progress = { tick() {}, update() {}, stop() {} };

/** Starts a progress display on `stream` (stderr). Silent unless it is a TTY or plain lines are asked for. */
export function startProgress(stream: NodeJS.WritableStream, options: ProgressOptions = {}): Progress {
  const isTTY = (stream as { isTTY?: boolean }).isTTY === true;
  if (isTTY) return startBar(stream, options);
  if (options.plainLines === true) return startPlainLines(stream, options);
  return SILENT;
}

function payloadText(payload: ProgressPayload): string {
  const parts = Object.entries(payload).map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? '' : ` | ${parts.join(' ')}`;
}

function startBar(stream: NodeJS.WritableStream, options: ProgressOptions): Progress {
  const total = options.total ?? 0;
  const label = options.label === undefined ? '' : `${options.label} `;
  const format =
    total > 0
      ? `${label}[{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted}{info}`
      : `${label}{value} done | {duration_formatted}{info}`;
  const bar = new cliProgress.SingleBar({ stream, format, hideCursor: false, etaBuffer: 50 }, cliProgress.Presets.legacy);
  let value = 0;
  let stopped = false;
  bar.start(total, 0, { info: '' });
  return {
    tick(n = 1, payload) {
      if (stopped) return;
      value += n;
      bar.update(value, payload === undefined ? undefined : { info: payloadText(payload) });
    },
    update(next, payload) {
      if (stopped) return;
      value = next;
      bar.update(value, payload === undefined ? undefined : { info: payloadText(payload) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

function startPlainLines(stream: NodeJS.WritableStream, options: ProgressOptions): Progress {
  const total = options.total ?? 0;
  const interval = options.plainIntervalMs ?? 10_000;
  const label = options.label ?? 'progress';
  const started = Date.now();
  let lastLine = started;
  let value = 0;
  let info = '';
  let stopped = false;
  const write = (): void => {
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    const count = total > 0 ? `${value}/${total} (${Math.floor((100 * value) / total)}%)` : `${value}`;
    stream.write(`${label}: ${count} ${seconds}s${info}\n`);
    lastLine = Date.now();
  };
  const advance = (next: number, payload: ProgressPayload | undefined): void => {
    if (stopped) return;
    value = next;
    if (payload !== undefined) info = payloadText(payload);
    if (Date.now() - lastLine >= interval) write();
  };
  return {
    tick(n = 1, payload) {
      advance(value + n, payload);
    },
    update(next, payload) {
      advance(next, payload);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      write();
    },
  };
}
