// Calendar days and the time buckets the SizeNet teacher computes category return rates in
// (the paper's "article lifetime" factor: seasonality, sales events). Days are UTC day numbers.

export type BucketKind = 'month' | 'week' | 'season';
export const BUCKET_KINDS: readonly BucketKind[] = ['month', 'week', 'season'];

const MS_PER_DAY = 86_400_000;
const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const SEASONS = ['winter', 'spring', 'summer', 'autumn'] as const;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Days since 1970-01-01 of a valid calendar date, or null. */
function dayOfDate(year: number, month: number, day: number): number | null {
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  return Date.UTC(year, month - 1, day) / MS_PER_DAY;
}

/**
 * The UTC day number (days since 1970-01-01) of `YYYY-MM-DD` or an ISO 8601 timestamp
 * (`YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM]`, no zone = UTC); null when the text is not a real date.
 */
export function parseDay(text: string): number | null {
  const trimmed = text.trim();
  const date = DATE_PATTERN.exec(trimmed);
  if (date) return dayOfDate(Number(date[1]), Number(date[2]), Number(date[3]));
  const stamp = TIMESTAMP_PATTERN.exec(trimmed);
  if (!stamp) return null;
  const [, y, mo, d, h, mi, s, zone] = stamp;
  const day = dayOfDate(Number(y), Number(mo), Number(d));
  if (day === null || Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59) return null;
  let offsetMinutes = 0;
  if (zone && zone !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    const zoneHours = Number(digits.slice(0, 2));
    const zoneMinutes = Number(digits.slice(2));
    if (zoneHours > 23 || zoneMinutes > 59) return null;
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (zoneHours * 60 + zoneMinutes);
  }
  const minutes = day * 1440 + Number(h) * 60 + Number(mi) - offsetMinutes;
  return Math.floor(minutes / 1440);
}

/** `YYYY-MM-DD` of a day number. */
export function formatDay(day: number): string {
  return new Date(day * MS_PER_DAY).toISOString().slice(0, 10);
}

function pad2(value: number): string {
  return String(value).padStart(2, '0');
}

/** Monday = 0 ... Sunday = 6 (1970-01-01 was a Thursday). */
function isoWeekday(day: number): number {
  return (((day + 3) % 7) + 7) % 7;
}

/**
 * The bucket a day falls in: month `2017-03`; ISO week `2017-W09` (weeks start on Monday and belong to
 * the year of their Thursday); meteorological season `2017-winter` (December 2016 to February 2017),
 * `2017-spring` (March-May), `2017-summer` (June-August), `2017-autumn` (September-November).
 */
export function bucketOfDay(day: number, kind: BucketKind): string {
  const date = new Date(day * MS_PER_DAY);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth() + 1;
  switch (kind) {
    case 'month':
      return `${year}-${pad2(month)}`;
    case 'week': {
      const thursday = day - isoWeekday(day) + 3;
      const weekYear = new Date(thursday * MS_PER_DAY).getUTCFullYear();
      const firstOfYear = Date.UTC(weekYear, 0, 1) / MS_PER_DAY;
      return `${weekYear}-W${pad2(Math.floor((thursday - firstOfYear) / 7) + 1)}`;
    }
    case 'season': {
      const seasonYear = month === 12 ? year + 1 : year;
      return `${seasonYear}-${SEASONS[Math.floor((month % 12) / 3)]}`;
    }
  }
}

/** The first day of the bucket after the one `day` is in. */
function nextBucketStart(day: number, kind: BucketKind): number {
  const date = new Date(day * MS_PER_DAY);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  switch (kind) {
    case 'month':
      return Date.UTC(year, month + 1, 1) / MS_PER_DAY;
    case 'week':
      return day - isoWeekday(day) + 7;
    case 'season': {
      // Seasons start in March, June, September and December (months 2, 5, 8, 11 counted from 0).
      const nextStartMonth = month === 11 ? 14 : Math.floor((month + 1) / 3) * 3 + 2;
      return Date.UTC(year, nextStartMonth, 1) / MS_PER_DAY;
    }
  }
}

/**
 * How a period of `firstDay..lastDay` (inclusive) splits over buckets: each bucket with the share of
 * the period's days in it (the shares sum to 1). Walks bucket by bucket, so a long period is cheap.
 */
export function spreadOverBuckets(firstDay: number, lastDay: number, kind: BucketKind): Array<{ bucket: string; share: number }> {
  if (lastDay < firstDay) throw new RangeError(`period ends (${formatDay(lastDay)}) before it starts (${formatDay(firstDay)})`);
  const total = lastDay - firstDay + 1;
  const spread: Array<{ bucket: string; share: number }> = [];
  for (let start = firstDay; start <= lastDay; ) {
    const next = Math.min(nextBucketStart(start, kind), lastDay + 1);
    spread.push({ bucket: bucketOfDay(start, kind), share: (next - start) / total });
    start = next;
  }
  return spread;
}
