// One place that turns argv into a command run and any failure into an exit code.
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { loadCommand, loadCommands } from './commands/index.js';
import { UsageError, formatPlace, type Command, type CommandIO } from './lib/command.js';
import { OutputGroup } from './lib/io/atomic.js';
import { checkOptionValues, yargsFailureLine } from './lib/options.js';
import { releaseAll } from './lib/backend/release.js';
import { stageRemoteArgs, type RemoteRun } from './lib/io/remote.js';
import { closeS3 } from './lib/io/s3.js';

const processIO: CommandIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };

/** Builds the yargs parser of one command from its definition. */
export function commandParser(command: Command<unknown>, argv: string[], io: CommandIO): Argv {
  let parser: Argv = yargs(argv)
    .scriptName(`atelier ${command.name}`)
    .usage([usageLine(command), command.summary, ...(command.description ?? '').split(/\n\s*\n/).filter(Boolean)].map((p) => wrapText(p, 100)).join('\n\n'))
    .options(withValueRequired(command.options))
    .strictOptions()
    .help('help')
    .alias('help', 'h')
    .version(false)
    .wrap(null)
    .parserConfiguration({ 'duplicate-arguments-array': false });
  for (const p of command.positionals ?? []) {
    const { name, variadic: _variadic, path: _path, ...rest } = p;
    parser = parser.positional(name, rest);
  }
  for (const [cmd, what] of command.examples) parser = parser.example(cmd, what);
  return parser;
}

/** An option that takes a value must be given one: `--top` alone is an error, not "unset". */
function withValueRequired(options: Command<unknown>['options']): Command<unknown>['options'] {
  const out: Command<unknown>['options'] = {};
  for (const [name, o] of Object.entries(options)) out[name] = (o.type === 'string' || o.type === 'number') && !o.array ? { ...o, requiresArg: true } : o;
  return out;
}

/** Wraps a paragraph at word boundaries (yargs would cut words in the usage text). */
function wrapText(paragraph: string, width: number): string {
  const words = paragraph.replace(/\s+/g, ' ').trim().split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

export function usageLine(command: Command<unknown>): string {
  const pos = (command.positionals ?? [])
    .map((p) => (p.demandOption ? `<${p.name}${p.variadic ? '..' : ''}>` : `[${p.name}${p.variadic ? '..' : ''}]`))
    .join(' ');
  return `atelier ${command.name} [options]${pos ? ' ' + pos : ''}`;
}

async function topHelp(): Promise<string> {
  const commands = await loadCommands();
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'atelier <command> [options]',
    '',
    'Fashion catalogue -> visual models and answers. Each command is also installed as atelier-<command>.',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `atelier <command> --help` for its options. Environment: ATELIER_BACKEND forces the compute backend,',
    'ATELIER_DEBUG=1 prints stack traces.',
    '',
  ].join('\n');
}

/**
 * yargs-parser takes `--input -` as an empty string and a positional `-` (short options are fine), so
 * `--name -` becomes `--name=-` for the command's string options: `-` is stdin/stdout everywhere.
 */
export function joinDashValues(command: Command<unknown>, argv: string[]): string[] {
  const takesString = new Set<string>();
  for (const [name, option] of Object.entries(command.options)) {
    const opt = option as { type?: string; alias?: string | string[] };
    if (opt.type !== 'string') continue;
    for (const n of [name, ...[opt.alias ?? []].flat()]) takesString.add(n);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('--') && !arg.includes('=') && argv[i + 1] === '-' && takesString.has(arg.slice(2))) {
      out.push(`${arg}=-`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** Parses argv for `command`, assigning positionals to their names. */
async function parseArgs(command: Command<unknown>, rawArgv: string[], io: CommandIO): Promise<Record<string, unknown> | null> {
  const argv = joinDashValues(command, rawArgv);
  let helpShown = false;
  let failure: string | null = null;
  const parser = commandParser(command, argv, io)
    .exitProcess(false)
    .fail((msg, err) => {
      // Choices are checked below with the typed checks, in our wording.
      if (msg?.startsWith('Invalid values:')) return;
      failure ??= yargsFailureLine(msg ?? err?.message ?? 'invalid arguments', command.options);
    });
  let output = '';
  const parsed = (await parser.parse(argv, {}, (_err: unknown, _argv: unknown, out: string) => {
    if (out) {
      output = out;
    }
  })) as Record<string, unknown>;
  if (failure) throw new UsageError(failure);
  if (parsed.help) helpShown = true;
  if (helpShown) {
    io.stdout.write(output + '\n');
    return null;
  }
  checkOptionValues(command.options, parsed, argv);
  const rest = (parsed._ as Array<string | number>).map(String);
  for (const p of command.positionals ?? []) {
    if (p.variadic) {
      parsed[p.name] = rest.splice(0);
    } else if (rest.length) {
      parsed[p.name] = rest.shift();
    } else if (p.demandOption) {
      throw new UsageError(`missing argument <${p.name}>`);
    } else if (p.default !== undefined) {
      parsed[p.name] = p.default;
    }
  }
  if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
  return parsed;
}

/** Runs `atelier <argv>`; returns the exit code. Never throws. */
export async function main(argv: string[], io: CommandIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(await topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout.write(`${(await import('./lib/version.js')).atelierVersion}\n`);
    return 0;
  }
  const command = await loadCommand(name);
  if (!command) {
    io.stderr.write(`atelier: unknown command '${name}' (see atelier --help)\n`);
    return 2;
  }
  const outputs = new OutputGroup();
  let remote: RemoteRun | null = null;
  try {
    const args = await parseArgs(command, rest, io);
    if (args === null) return 0;
    // s3:// and https:// paths become local files for the command; s3 outputs are uploaded after the local commit.
    remote = await stageRemoteArgs(command, args, io.env, (line) => io.stderr.write(`atelier ${command.name}: ${line}\n`));
    await command.run(args, { ...io, ...(remote ? { stderr: remote.translating(io.stderr) } : {}), outputs });
    await outputs.commitAll();
    await remote?.publish();
    return 0;
  } catch (err) {
    await outputs.abortAll();
    return reportFailure(command.name, remote ? remote.explain(err) : err, io);
  } finally {
    await remote?.close();
    // Image paths inside records may have opened a client without any remote option.
    await closeS3();
    // A live GPU device keeps Node running after the work is done.
    await releaseAll();
  }
}

/** Maps an error to its exit code and one line on stderr. */
export function reportFailure(commandName: string, err: unknown, io: CommandIO): number {
  const e = err as NodeJS.ErrnoException & { place?: object };
  if (e && e.code === 'EPIPE') return 0;
  const debug = io.env.ATELIER_DEBUG === '1';
  if (err instanceof UsageError) {
    io.stderr.write(`atelier ${commandName}: ${formatPlace(err.message, err.place)}\n`);
    if (debug && err.stack) io.stderr.write(err.stack + '\n');
    return 2;
  }
  const message = e instanceof Error ? e.message : String(err);
  io.stderr.write(`atelier ${commandName}: ${message.split('\n')[0]}\n`);
  if (debug && e instanceof Error && e.stack) io.stderr.write(e.stack + '\n');
  return 1;
}
