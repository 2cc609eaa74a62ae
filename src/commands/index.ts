// The table of commands: adding a command is adding its file and one line here.
import type { Command } from '../lib/command.js';
import info from './info.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: Array<Command<any>> = [info];

export function findCommand(name: string): Command<unknown> | undefined {
  return commands.find((c) => c.name === name);
}
