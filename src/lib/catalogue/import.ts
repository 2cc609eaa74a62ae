// Catalogue import: rows of an NDJSON/CSV file (title, category, description, images by field) become
// products with their images verified and stored by SHA-256, journalled so an interrupted run resumes.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { readRecords } from '../io/csv.js';
import { inputDisplayName, isStdio } from '../io/paths.js';
import { createImageDownloader, type ImageOutcome, type ProductSource } from '../http/crawl.js';
import type { createFetcher } from '../http/fetch.js';
import type { createRobotsPolicy } from '../http/robots.js';
import { openRunJournal, type CrawlJournal, type EntryLocation } from '../http/journal.js';
import { verifyAndStoreImage } from '../http/image-store.js';
import { isHttpUrl, normalizeUrl } from '../http/urls.js';
import { fieldValue, hasField, imageRefs, joinedField, textOf } from './fields.js';
import { countImage, emptyImageStats, sourceStats, type RunStats } from './stats.js';

/** The hash that ties a journal to the settings of the run that wrote it. */
export function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** Journal entry of one imported row. */
interface RowEntry {
  kind: 'row';
  line: number;
  product: ProductSource;
}

type ImportEntry = RowEntry;

/** What an import needs, as plain values: which fields say what, where images go, how to fetch. */
export interface CatalogueImportSettings {
  /** Rows to import by their id (--id-field, else `<input>:<line>`); all when left out (a shard takes its own). */
  keepRow?: (id: string) => boolean;
  /** NDJSON or CSV file, or '-' for `stdin`. */
  input: string;
  stdin?: NodeJS.ReadableStream;
  titleFields: string[];
  categoryFields: string[];
  descriptionFields: string[];
  imageField?: string;
  idField?: string;
  siteField?: string;
  /** Where relative image references are taken from (a directory or URL; default: beside the input). */
  imageBase?: string;
  imagesDir: string | null;
  /** The journal that lets an interrupted import resume (null: a private temporary one). */
  statePath: string | null;
  restart: boolean;
  /** Rows handled at once. */
  concurrency: number;
  fetcher: ReturnType<typeof createFetcher>;
  robots: ReturnType<typeof createRobotsPolicy>;
  robotsToken: string;
  onRow(): void;
  /** Counts a product's bag into (1) or out of (-1) its site's document frequencies. */
  countBag(product: ProductSource, sign: 1 | -1): void;
  warn(message: string): void;
  /** Called with the run's journal as soon as it is open (the caller closes it on failure). */
  onJournal(journal: CrawlJournal<unknown>): void;
}

export interface CatalogueImport {
  /** Journal locations of the products, in row order. */
  order: EntryLocation[];
  stats: RunStats;
  readProduct(at: EntryLocation): ProductSource;
}

/** Rows of an NDJSON/CSV catalogue become products, each journalled with its images once they are stored. */
export async function importCatalogue(ctx: CatalogueImportSettings): Promise<CatalogueImport> {
  const inputPath = ctx.input;
  const name = inputDisplayName(inputPath);
  const { titleFields, categoryFields, descriptionFields, imageField, idField, siteField } = ctx;
  const imageBase = ctx.imageBase ?? (isStdio(inputPath) ? process.cwd() : dirname(resolve(inputPath)));
  const baseIsUrl = isHttpUrl(imageBase);
  const defaultSite = isStdio(inputPath) ? 'stdin' : basename(inputPath);

  const fingerprint = fingerprintOf({
    mode: 'import',
    input: isStdio(inputPath) ? '-' : resolve(inputPath),
    titleFields,
    categoryFields,
    descriptionFields,
    imageField: imageField ?? null,
    idField: idField ?? null,
    siteField: siteField ?? null,
    imageBase: baseIsUrl ? imageBase : resolve(imageBase),
    images: ctx.imagesDir === null ? null : resolve(ctx.imagesDir),
  });
  const checkFields = (value: Record<string, unknown>, file: string, line: number): void => {
    const named: Array<[string, string]> = [
      ...titleFields.map((f) => ['--title-field', f] as [string, string]),
      ...categoryFields.map((f) => ['--category-field', f] as [string, string]),
      ...descriptionFields.map((f) => ['--description-field', f] as [string, string]),
      ...[imageField, idField, siteField].flatMap((f, i) => (f === undefined ? [] : [[['--image-field', '--id-field', '--site-field'][i]!, f] as [string, string]])),
    ];
    for (const [option, field] of named) {
      if (!hasField(value, field)) {
        const columns = Object.keys(value).slice(0, 12).join(', ');
        throw new UsageError(`no such column or field (${option}); the first record has: ${columns}`, { file, line, field });
      }
    }
  };
  // Record ids come from --id-field: two rows with one id would give two products one id.
  const idLines = new Map<string, number>();
  const checkUniqueId = (value: Record<string, unknown>, file: string, line: number): void => {
    if (idField === undefined) return;
    const id = textOf(fieldValue(value, idField), ' ');
    if (id === null || id === undefined) return;
    const first = idLines.get(id);
    if (first !== undefined) throw new UsageError(`id ${JSON.stringify(id)} is already on line ${first}; every row needs its own id`, { file, line, field: idField });
    idLines.set(id, line);
  };
  // A file is read once through before any work, so a bad row costs nothing and leaves no state file.
  if (!isStdio(inputPath)) {
    let first = true;
    for await (const { value, file, line } of readRecords(inputPath)) {
      if (first) checkFields(value, file, line);
      first = false;
      checkUniqueId(value, file, line);
    }
  }
  const journal = openRunJournal<ImportEntry>(isStdio(inputPath) ? null : ctx.statePath, fingerprint, ctx.restart);
  ctx.onJournal(journal as CrawlJournal<unknown>);
  const done = new Map<number, { entry: RowEntry; at: EntryLocation }>();
  const known = new Map<string, ImageOutcome>();
  for (const [i, entry] of journal.replayed.entries()) {
    if (entry.kind !== 'row') continue;
    done.set(entry.line, { entry, at: journal.replayedAt[i]! });
    for (const image of entry.product.images) known.set(image.url, image);
  }
  const download = createImageDownloader({
    fetcher: ctx.fetcher,
    robots: ctx.robots,
    robotsToken: ctx.robotsToken,
    imagesDir: ctx.imagesDir ?? '',
    known,
  });
  const localOutcomes = new Map<string, Promise<ImageOutcome>>();
  const storeLocal = (path: string): Promise<ImageOutcome> => {
    let outcome = localOutcomes.get(path);
    if (outcome === undefined) {
      outcome = (async (): Promise<ImageOutcome> => {
        const previous = known.get(path);
        if (previous) return previous;
        let bytes: Buffer;
        try {
          bytes = await readFile(path);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          return { url: path, ok: false, reason: code === 'ENOENT' ? 'missing-file' : 'unreadable', message: code ?? String(err) };
        }
        const stored = await verifyAndStoreImage(bytes, ctx.imagesDir!);
        if (!stored.ok) return { url: path, ok: false, reason: stored.reason, message: stored.message, corrupt: true };
        return { url: path, ok: true, sha256: stored.sha256, path: stored.path };
      })();
      localOutcomes.set(path, outcome);
    }
    return outcome;
  };
  const resolveImage = (ref: string): string => {
    if (isHttpUrl(ref)) return normalizeUrl(ref);
    if (baseIsUrl) return normalizeUrl(new URL(ref, imageBase.endsWith('/') ? imageBase : `${imageBase}/`).href);
    return isAbsolute(ref) ? ref : resolve(imageBase, ref);
  };

  // Rows kept: their line (output order) and where the journal holds them; images counted as they come.
  const rows: Array<{ line: number; at: EntryLocation }> = [];
  const images = emptyImageStats();
  const keep = (entry: RowEntry, at: EntryLocation) => {
    rows.push({ line: entry.line, at });
    ctx.countBag(entry.product, 1);
    for (const image of entry.product.images) countImage(images, image);
  };
  let resumed = 0;
  let checked = false;
  const inFlight = new Set<Promise<void>>();
  const limit = Math.max(2, ctx.concurrency);
  const handleRow = async (record: Record<string, unknown>, line: number): Promise<void> => {
    const previous = done.get(line);
    if (previous) {
      done.delete(line);
      keep(previous.entry, previous.at);
      resumed += 1;
      return;
    }
    const refs = imageField === undefined ? [] : imageRefs(fieldValue(record, imageField));
    const images = await Promise.all(
      refs.map((ref) => {
        const target = resolveImage(ref);
        return isHttpUrl(target) ? download(target) : storeLocal(target);
      }),
    );
    for (const image of images) {
      if (!image.ok && image.reason !== 'noimageindex' && image.reason !== 'robots') ctx.warn(`${name}:${line}: image ${image.url} skipped, ${image.reason} (${image.message})`);
    }
    const productId = idField === undefined ? undefined : textOf(fieldValue(record, idField), ' ') ?? undefined;
    const entry: RowEntry = {
      kind: 'row',
      line,
      product: {
        source: `${name}:${line}`,
        site: (siteField === undefined ? null : textOf(fieldValue(record, siteField), ' ')) ?? defaultSite,
        ...(productId !== undefined ? { productId } : {}),
        title: joinedField(record, titleFields, ' '),
        category: joinedField(record, categoryFields, ' > '),
        description: joinedField(record, descriptionFields, ' '),
        images,
      },
    };
    keep(entry, journal.append(entry));
  };
  try {
    for await (const { value, line, file } of readRecords(inputPath, { stdin: ctx.stdin })) {
      if (!checked) {
        checked = true;
        checkFields(value, file, line);
      }
      if (isStdio(inputPath)) checkUniqueId(value, file, line);
      if (ctx.keepRow && !ctx.keepRow((idField === undefined ? undefined : textOf(fieldValue(value, idField), ' ')) ?? `${name}:${line}`)) continue;
      const task = handleRow(value, line).then(() => {
        inFlight.delete(task);
        ctx.onRow();
      });
      inFlight.add(task);
      if (inFlight.size >= limit) await Promise.race(inFlight);
    }
  } catch (err) {
    // A bad row on stdin: let the rows in flight finish before the journal is closed under them.
    await Promise.allSettled(inFlight);
    throw err;
  }
  await Promise.all(inFlight);
  rows.sort((a, b) => a.line - b.line);
  return {
    order: rows.map((r) => r.at),
    readProduct: (at) => journal.read(at).product,
    stats: {
      mode: 'import',
      rows: { read: rows.length },
      ...sourceStats(rows.length, images, resumed),
    },
  };
}
