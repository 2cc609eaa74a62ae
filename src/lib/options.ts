// Typed checks of option values, one wording for every command: an option definition names its
// check (`check: positiveInt`) and the CLI applies it right after parsing, before the command runs.
import type { Options } from 'yargs';
import { UsageError } from './command.js';
import { parseByteSize } from './knn/budget.js';

/** A test of one option value and what it must be, as in "'-1' is not <what>". */
export interface OptionCheck {
  what: string;
  test(value: unknown): boolean;
}

/**
 * A yargs option with the typed check the CLI applies after parsing. A string option is a path
 * (local, `s3://` or `https://`, staged by src/lib/io/remote.ts) unless it says `path: false`: a URL
 * the command fetches itself, a pattern.
 */
export type CheckedOption = Options & { check?: OptionCheck; path?: false };

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** An integer in [min, max]. */
export function integerIn(min: number, max = Number.MAX_SAFE_INTEGER): OptionCheck {
  const what = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer >= ${min}`) : `an integer from ${min} to ${max}`;
  return { what, test: (v) => isNumber(v) && Number.isInteger(v) && v >= min && v <= max };
}

/** A finite number between `min` and `max`; `open` says which ends are excluded. */
export function numberIn(min: number, max: number, open: { min?: boolean; max?: boolean } = {}): OptionCheck {
  const low = min === -Infinity ? '' : `${open.min ? '(' : '['}${min}`;
  const high = max === Infinity ? '' : `${max}${open.max ? ')' : ']'}`;
  const what = !low && !high ? 'a number' : !high ? (open.min ? `a number > ${min}` : `a number >= ${min}`) : !low ? `a number <= ${max}` : `a number in ${low}, ${high}`;
  return {
    what,
    test: (v) => isNumber(v) && (open.min ? v > min : v >= min) && (open.max ? v < max : v <= max),
  };
}

export const positiveInt = integerIn(1);
export const nonNegativeInt = integerIn(0);
/** Seeds and other integers with no range of their own. */
export const anyInt = { ...integerIn(Number.MIN_SAFE_INTEGER), what: 'an integer' };
export const positiveNumber = { ...numberIn(0, Infinity, { min: true }), what: 'a positive number' };
export const nonNegativeNumber = numberIn(0, Infinity);
/** A share of something that must leave some of it: (0, 1]. */
export const fraction = { ...numberIn(0, 1, { min: true }), what: 'a fraction in (0, 1]' };
export const probability = { ...numberIn(0, 1), what: 'a probability in [0, 1]' };
/** A held-out share or a dropout rate: 0 is none, 1 would leave nothing. */
export const share = numberIn(0, 1, { max: true });
/** The side of a square model input or raw-pixel crop. */
export const imageSide = integerIn(1, 1024);
/** A model input: one side (square) or HxW, each side 1..1024 pixels. */
export const inputSizeText: OptionCheck = {
  what: 'N or HxW in pixels from 1 to 1024 (e.g. 96 or 96x64)',
  test: (v) => {
    const m = /^\s*(\d+)(?:x(\d+))?\s*$/i.exec(String(v));
    return !!m && [m[1], m[2] ?? m[1]].every((side) => Number(side) >= 1 && Number(side) <= 1024);
  },
};
/** A byte size like 200M, 2G or 4096. */
export const byteSize: OptionCheck = { what: 'a size like 512M or 2G', test: (v) => typeof v === 'string' && (parseByteSize(v) ?? 0) > 0 };
/** --shard: `i/n` with 0 <= i < n (0-based), or `auto` (the scheduler's environment, see shard.ts). */
export const shardText: OptionCheck = {
  what: 'i/n (0-based shard i of n, 0 <= i < n) or auto',
  test: (v) => {
    if (v === 'auto') return true;
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(String(v));
    return !!m && Number(m[2]) >= 1 && Number(m[1]) < Number(m[2]) && Number(m[2]) <= 1_000_000;
  },
};
/** Comma-separated positive integers, e.g. 256,128,64. */
export const positiveIntList: OptionCheck = {
  what: 'a comma-separated list of positive integers',
  test: (v) => typeof v === 'string' && v.split(',').every((p) => /^\s*[1-9]\d*\s*$/.test(p)),
};

/** The text the user typed for option `name` (last occurrence), for messages; else the parsed value. */
function typedText(argv: readonly string[], name: string, option: Options, value: unknown): string {
  const aliases = [name, ...[option.alias ?? []].flat()];
  const flags = aliases.flatMap((a) => (a.length === 1 ? [`-${a}`, `--${a}`] : [`--${a}`]));
  let text: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') break;
    if (flags.includes(token)) text = argv[i + 1];
    else for (const f of flags) if (token.startsWith(`${f}=`)) text = token.slice(f.length + 1);
  }
  return text ?? String(value);
}

/**
 * Applies the choices and typed checks of `options` to the parsed values; the first failure is a
 * UsageError `--name: '<typed>' is not <what>`.
 */
export function checkOptionValues(options: Record<string, CheckedOption>, parsed: Record<string, unknown>, argv: readonly string[]): void {
  for (const [name, option] of Object.entries(options)) {
    const value = parsed[name];
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    if (option.choices) {
      const choices = [option.choices].flat().map(String);
      const bad = values.find((v) => !choices.includes(String(v)));
      if (bad !== undefined) throw new UsageError(`'${String(bad)}' is not one of ${choices.join(', ')}`, { field: `--${name}` });
    }
    if (option.check && !values.every((v) => option.check!.test(v))) {
      throw new UsageError(`'${typedText(argv, name, option, value)}' is not ${option.check.what}`, { field: `--${name}` });
    }
  }
}

/** yargs' own failure messages, rewritten as one line `--name: what is wrong`. */
export function yargsFailureLine(message: string, options: Record<string, Options> = {}): string {
  const canonical = (n: string) => Object.keys(options).find((name) => [options[name].alias ?? []].flat().includes(n)) ?? n;
  const flags = (list: string) => list.split(/,\s*/).map(canonical).map((n) => (n.length === 1 ? `-${n}` : `--${n}`)).join(', ');
  let m: RegExpMatchArray | null;
  if ((m = message.match(/^Missing required arguments?: (.+)$/))) return `${flags(m[1])}: required`;
  if ((m = message.match(/^Unknown arguments?: (.+)$/))) return `${flags(m[1])}: unknown option`;
  if ((m = message.match(/^Not enough arguments following: (.+)$/))) return `${flags(m[1])}: needs a value`;
  return message.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}
