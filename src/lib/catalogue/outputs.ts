// The outputs of a crawl or import, checked or opened before the first request so a bad path fails
// before the crawl, not after it: samples, vocabulary, stats, the resume journal and the image store.
import { access, mkdir } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { UsageError, type CommandIO } from '../command.js';
import { checkFileOutput, isSpecialFile } from '../io/atomic.js';
import { openNdjsonWriter, type NdjsonWriter } from '../io/ndjson.js';
import { isStdio } from '../io/paths.js';

export interface CatalogueOutputPaths {
  output: string;
  vocab?: string;
  stats?: string;
  /** The resume journal; default OUTPUT.state when the output is a regular file. */
  state?: string;
  imagesDir?: string;
}

export interface CatalogueOutputs {
  /** The journal's path, null for none (stdout or a device as output, and no --state). */
  statePath: string | null;
  samples: NdjsonWriter;
  vocab: NdjsonWriter | null;
  /** Drops the unfinished samples and vocabulary. */
  abort(): Promise<void>;
}

export async function openCatalogueOutputs(paths: CatalogueOutputPaths, io: Pick<CommandIO, 'stdout' | 'outputs'>): Promise<CatalogueOutputs> {
  // A journal is read back and deleted at the end: never a device (-o /dev/null has none by default).
  const statePath = paths.state ?? (isStdio(paths.output) || (await isSpecialFile(paths.output)) ? null : `${paths.output}.state`);
  await checkFileOutput(paths.output, '--output');
  await checkFileOutput(paths.vocab, '--vocab');
  await checkFileOutput(paths.stats, '--stats');
  if (statePath !== null) await checkFileOutput(statePath, '--state', { regular: true });
  if (paths.imagesDir !== undefined) {
    try {
      await mkdir(paths.imagesDir, { recursive: true });
      await access(paths.imagesDir, fsConstants.W_OK);
    } catch (err) {
      throw new UsageError(`cannot create or write the image directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file: paths.imagesDir, field: '--images' });
    }
  }
  const samples = await openNdjsonWriter(paths.output, { stdout: io.stdout, outputs: io.outputs });
  let vocab: NdjsonWriter | null = null;
  try {
    vocab = paths.vocab !== undefined ? await openNdjsonWriter(paths.vocab, { stdout: io.stdout, outputs: io.outputs }) : null;
  } catch (err) {
    await samples.abort();
    throw err;
  }
  const abort = async () => {
    await samples.abort();
    await vocab?.abort();
  };
  return { statePath, samples, vocab, abort };
}
