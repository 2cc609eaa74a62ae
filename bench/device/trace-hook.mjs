// Preloaded with `node --import` (through NODE_OPTIONS, so child processes too): appends every file
// the process loads (ES modules through a resolve hook, CommonJS modules and native addons from the
// require cache) to $ATELIER_TRACE, one file:// URL a line. bench/device/bundle.sh reads it.
import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';

const out = process.env.ATELIER_TRACE;
register(new URL('./trace-resolve.mjs', import.meta.url));
const Module = createRequire(import.meta.url)('node:module');
process.on('exit', () => appendFileSync(out, Object.keys(Module._cache).map((f) => `file://${f}\n`).join('')));
