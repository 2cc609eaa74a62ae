// Gallery labels for the kNN label vote: one label per gallery id, from NDJSON records {id, <field>}.
import { UsageError } from '../command.js';
import { readNdjson, requireId, requireObject } from '../io/ndjson.js';

/** Gallery id -> label; a record without the label is skipped, an id may repeat only with the same label. */
export async function readGalleryLabels(path: string, field: string, idField: string, stdin: NodeJS.ReadableStream): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  for await (const { value, file, line } of readNdjson(path, { stdin })) {
    const record = requireObject(value, { file, line });
    const id = requireId(record, idField, { file, line });
    const label = record[field];
    if (label === undefined || label === null) continue;
    if (typeof label !== 'string' && typeof label !== 'number' && typeof label !== 'boolean') {
      throw new UsageError('expected a string, number or boolean label', { file, line, field });
    }
    const previous = labels.get(String(id));
    if (previous !== undefined && previous !== String(label)) throw new UsageError(`id ${JSON.stringify(String(id))} already has the label ${JSON.stringify(previous)}`, { file, line, field });
    labels.set(String(id), String(label));
  }
  return labels;
}
