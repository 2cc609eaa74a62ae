// Reading a catalogue row: a column name or a dotted path into nested JSON, its text, its image references.

/** A field value of a record: a column name or a dotted path into nested JSON; arrays are joined. */
export function fieldValue(record: Record<string, unknown>, path: string): unknown {
  if (path in record) return record[path];
  let value: unknown = record;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

export function hasField(record: Record<string, unknown>, path: string): boolean {
  return fieldValue(record, path) !== undefined;
}

export function textOf(value: unknown, separator: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value.trim() === '' ? null : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const parts = value.map((v) => textOf(v, separator)).filter((v): v is string => v !== null);
    return parts.length === 0 ? null : parts.join(separator);
  }
  return null;
}

/** Joins several named fields (comma-separated flag value) into one text. */
export function joinedField(record: Record<string, unknown>, names: string[], separator: string): string | null {
  const parts = names.map((n) => textOf(fieldValue(record, n), separator)).filter((v): v is string => v !== null);
  return parts.length === 0 ? null : parts.join(separator);
}

/** Image references of a field: a string (several joined by '|'), an array, or objects with a url or path. */
export function imageRefs(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.flatMap(imageRefs);
  if (typeof value === 'object') {
    const url = (value as Record<string, unknown>).url ?? (value as Record<string, unknown>).path;
    return typeof url === 'string' ? imageRefs(url) : [];
  }
  return String(value)
    .split('|')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
