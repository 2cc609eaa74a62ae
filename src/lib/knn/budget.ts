// Memory budgets as a person types them ("512M", "2G", "1.5GiB", "100000000"), and what of one is left for data.
import { UsageError } from '../command.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Bytes in a size like 512M or 2G (binary units; an optional trailing B or iB); null when unreadable. */
export function parseByteSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!match) return null;
  const bytes = Number(match[1]) * UNITS[match[2].toLowerCase()];
  return Number.isFinite(bytes) && bytes > 0 ? Math.floor(bytes) : null;
}

/** A size in the largest binary unit that keeps it at least 1, e.g. 1.5 GiB. */
export function formatByteSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

/** Room left after the data budget for the V8 heap to grow and for buffers V8 has not collected yet. */
const RUNTIME_HEADROOM_BYTES = 24 * 1024 * 1024;

/**
 * The data budget: `total` (--memory) minus what the process holds now (the runtime, the addons, the
 * ids already read) and a headroom for garbage; so call it once everything but the vectors is loaded.
 */
export function dataBudget(total: number): number {
  const held = process.memoryUsage().rss;
  const budget = total - held - RUNTIME_HEADROOM_BYTES;
  if (budget < 8 * 1024 * 1024) {
    throw new UsageError(`${formatByteSize(total)} leaves no room for data: the process already holds ${formatByteSize(held)}`, { field: '--memory' });
  }
  return budget;
}
