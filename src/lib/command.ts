// The command framework: every command file exports one `Command`, and the CLI, the
// man-page generator and the tests all read the same definition.
import type { PositionalOptions } from 'yargs';
import type { OutputGroup } from './io/atomic.js';
import type { CheckedOption } from './options.js';

/** Streams and environment a command runs with; tests substitute their own. */
export interface CommandIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** The run's file outputs, committed together when run() succeeds and deleted when it fails (set by the CLI). */
  outputs?: OutputGroup;
}

export interface Command<A = Record<string, unknown>> {
  /** Name as typed after `atelier`, also the `atelier-<name>` binary. */
  name: string;
  /** One line for `atelier --help`. */
  summary: string;
  /** Paragraphs for `--help` and the man page DESCRIPTION. */
  description?: string;
  /** Positional arguments, in order, e.g. `{ name: 'files', variadic: true, ... }`. */
  positionals?: Array<PositionalOptions & { name: string; variadic?: boolean; path?: false }>;
  /** yargs options; every one has a `describe`, a `default` where one applies, and a typed `check` where its type allows nonsense. */
  options: Record<string, CheckedOption>;
  /** Example command lines with what they do. */
  examples: Array<[string, string]>;
  /** Subcommands are not used; a command that needs verbs takes a positional `verb`. */
  run(args: A, io: CommandIO): Promise<void>;
}

/** Where in the input a problem was found; every part is optional. */
export interface ErrorPlace {
  file?: string;
  line?: number;
  field?: string;
}

/** A usage or input error: the user can fix it. Exit code 2, one line, no stack trace. */
export class UsageError extends Error {
  readonly place: ErrorPlace;
  constructor(message: string, place: ErrorPlace = {}) {
    super(message);
    this.name = 'UsageError';
    this.place = place;
  }
}

/** `<file>:<line>: <field>: <what is wrong>`, leaving out the parts that are unknown. */
export function formatPlace(message: string, place: ErrorPlace): string {
  const parts: string[] = [];
  if (place.file !== undefined) parts.push(place.line !== undefined ? `${place.file}:${place.line}` : place.file);
  else if (place.line !== undefined) parts.push(`line ${place.line}`);
  if (place.field !== undefined) parts.push(place.field);
  parts.push(message);
  return parts.join(': ');
}

/** Defines a command with its argument type checked against its options by the caller. */
export function defineCommand<A>(command: Command<A>): Command<A> {
  return command;
}

/** Writes a warning line to stderr, prefixed like errors so a log can be grepped by command. */
export function warn(io: Pick<CommandIO, 'stderr'>, commandName: string, message: string): void {
  io.stderr.write(`atelier ${commandName}: warning: ${message}\n`);
}
