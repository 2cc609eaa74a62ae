// Memory budgets as a person types them ("512M", "2G", "1.5GiB", "100000000").

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
