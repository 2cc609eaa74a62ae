import { defineCommand } from '../lib/command.js';
import { findManifests, readShardSet } from '../lib/shard.js';
import { mergeShardOutputs } from '../lib/merge.js';

interface Args {
  shards: string[];
}

export default defineCommand<Args>({
  name: 'merge',
  summary: 'merge the outputs of a sharded run (--shard i/n) into the single-process outputs',
  description: `Reads the manifests that the shards of one run wrote beside their outputs (<out>.shard-I-of-N.<ext>.shard.json) and writes the outputs one process would have written, at the paths the shards were given: embed's .npy and ids in input order (ids renumbered, rows_sha256 of the merged rows on the last line), tag, classify, rise and knn (--shard-by query) NDJSON lines in input order, crawl-tokenize --import samples with the site-specific words decided over all shards' site frequencies, then its vocabulary (the same --top-k rule) and --stats, knn --shard-by gallery partial neighbour lists joined into the global top-k (higher score first, ties to the earlier gallery row, as the exact kernel breaks them), and run-wide files (rise --masks, tag --word-types) once, after checking every shard wrote the same bytes.

Give the manifests, or the single-process output paths (e.g. emb.npy): every emb.shard-I-of-N.npy.shard.json beside one is taken. The set must be shards 0 to N-1 of one run, each once, with the same N, model and settings; anything else is an error (exit 2) naming the manifest. Outputs are written atomically and together; the shard files are left in place.`,
  positionals: [{ name: 'shards', describe: 'shard manifests (*.shard.json), or the outputs they were sharded from', type: 'string', variadic: true }],
  options: {},
  examples: [
    ['atelier merge emb.npy', 'merge emb.shard-*-of-N.npy and their ids into emb.npy and emb.ids.ndjson'],
    ['atelier merge out/tags.shard-*.shard.json', 'merge the shards of a tag run, named by their manifests'],
  ],
  async run(args, io) {
    const set = await readShardSet(await findManifests(args.shards ?? []));
    const { written, records } = await mergeShardOutputs(set, io.outputs);
    io.stderr.write(`atelier merge: ${set.length} shards of '${set[0].command}', ${records} records -> ${written.join(', ')}\n`);
  },
});
