// Writes man/atelier.1 and man/atelier-<cmd>.1 from the command definitions, and keeps the
// package.json bin entries (atelier-<cmd>) in step. `--check` only reports what is stale (exit 1).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCommands } from './commands/index.js';
import { renderIndexPage, renderManPage } from './lib/manpage.js';
import { packageRoot } from './lib/io/paths.js';
import { atelierVersion } from './lib/version.js';

const commands = await loadCommands();

export function expectedManPages(): Map<string, string> {
  const pages = new Map<string, string>();
  pages.set('atelier.1', renderIndexPage(commands, atelierVersion));
  for (const c of commands) pages.set(`atelier-${c.name}.1`, renderManPage(c, atelierVersion));
  return pages;
}

export function expectedBinEntries(): Record<string, string> {
  const bin: Record<string, string> = { atelier: 'bin/atelier' };
  for (const c of commands) bin[`atelier-${c.name}`] = 'bin/atelier';
  return bin;
}

function main(): void {
  const root = packageRoot(import.meta.url);
  const check = process.argv.includes('--check');
  const manDir = join(root, 'man');
  const stale: string[] = [];
  mkdirSync(manDir, { recursive: true });
  const pages = expectedManPages();
  for (const [name, text] of pages) {
    let current = '';
    try {
      current = readFileSync(join(manDir, name), 'utf8');
    } catch {
      /* missing page counts as stale */
    }
    if (current !== text) {
      stale.push(`man/${name}`);
      if (!check) writeFileSync(join(manDir, name), text);
    }
  }
  for (const name of readdirSync(manDir)) {
    if (name.endsWith('.1') && !pages.has(name)) stale.push(`man/${name} (no such command)`);
  }
  const packagePath = join(root, 'package.json');
  const pkg = JSON.parse(readFileSync(packagePath, 'utf8')) as { bin?: Record<string, string> };
  const bin = expectedBinEntries();
  if (JSON.stringify(pkg.bin) !== JSON.stringify(bin)) {
    stale.push('package.json bin');
    if (!check) writeFileSync(packagePath, JSON.stringify({ ...pkg, bin }, null, 2) + '\n');
  }
  if (check && stale.length) {
    process.stderr.write(`stale: ${stale.join(', ')} (run make man)\n`);
    process.exitCode = 1;
  } else if (!check && stale.length) {
    process.stderr.write(`updated: ${stale.join(', ')}\n`);
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) main();
