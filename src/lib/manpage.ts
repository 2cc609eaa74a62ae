// Renders a command's man page (roff) from the same definition that drives --help.
import type { Options } from 'yargs';
import type { Command } from './command.js';

function roffEscape(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1').replace(/-/g, '\\-');
}

function optionSignature(name: string, option: Options): string {
  const flags = [`\\fB\\-\\-${roffEscape(name).replace(/^\\-\\-/, '')}\\fR`];
  const aliases = option.alias === undefined ? [] : Array.isArray(option.alias) ? option.alias : [option.alias];
  for (const alias of aliases) flags.unshift(alias.length === 1 ? `\\fB\\-${alias}\\fR` : `\\fB\\-\\-${roffEscape(alias)}\\fR`);
  const type = option.type && option.type !== 'boolean' ? ` \\fI${option.type.toUpperCase()}\\fR` : '';
  return flags.join(', ') + type;
}

function defaultText(option: Options): string {
  if (option.default === undefined) return '';
  return ` (default: ${roffEscape(JSON.stringify(option.default))})`;
}

/** The page for `atelier-<name>(1)`. Deterministic: no dates, so a stale page shows as a diff. */
export function renderManPage(command: Command<unknown>, version: string): string {
  const lines: string[] = [];
  const title = `ATELIER\\-${roffEscape(command.name).toUpperCase()}`;
  lines.push(`.TH ${title} 1 "" "atelier ${version}" "atelier manual"`);
  lines.push('.SH NAME');
  lines.push(`atelier\\-${roffEscape(command.name)} \\- ${roffEscape(command.summary)}`);
  lines.push('.SH SYNOPSIS');
  const positionals = (command.positionals ?? [])
    .map((p) => (p.demandOption ? `\\fI${roffEscape(p.name)}\\fR${p.variadic ? '...' : ''}` : `[\\fI${roffEscape(p.name)}\\fR${p.variadic ? '...' : ''}]`))
    .join(' ');
  lines.push(`\\fBatelier ${roffEscape(command.name)}\\fR [\\fIoptions\\fR]${positionals ? ' ' + positionals : ''}`);
  lines.push('.br');
  lines.push(`\\fBatelier\\-${roffEscape(command.name)}\\fR [\\fIoptions\\fR]${positionals ? ' ' + positionals : ''}`);
  lines.push('.SH DESCRIPTION');
  for (const paragraph of (command.description ?? command.summary).split(/\n\s*\n/)) {
    lines.push('.PP');
    lines.push(roffEscape(paragraph.replace(/\s*\n\s*/g, ' ').trim()));
  }
  if (command.positionals?.length) {
    lines.push('.SH ARGUMENTS');
    for (const p of command.positionals) {
      lines.push('.TP');
      lines.push(`\\fI${roffEscape(p.name)}\\fR`);
      lines.push(roffEscape(String(p.describe ?? '')) + defaultText(p as Options));
    }
  }
  lines.push('.SH OPTIONS');
  for (const [name, option] of Object.entries(command.options)) {
    lines.push('.TP');
    lines.push(optionSignature(name, option));
    const choices = option.choices ? ` One of: ${roffEscape(option.choices.join(', '))}.` : '';
    lines.push(roffEscape(String(option.describe ?? option.description ?? '')) + choices + defaultText(option));
  }
  lines.push('.TP');
  lines.push('\\fB\\-h\\fR, \\fB\\-\\-help\\fR');
  lines.push('Show the usage text and exit.');
  if (command.examples.length) {
    lines.push('.SH EXAMPLES');
    for (const [cmd, what] of command.examples) {
      lines.push('.TP');
      lines.push(`\\f(CW${roffEscape(cmd)}\\fR`);
      lines.push(roffEscape(what));
    }
  }
  lines.push('.SH ENVIRONMENT');
  lines.push('.TP');
  lines.push('\\fBATELIER_BACKEND\\fR');
  lines.push('Forces the compute backend (gpu, tensorflow, wasm, cpu) where the command computes.');
  lines.push('.TP');
  lines.push('\\fBATELIER_DEBUG\\fR');
  lines.push('Set to 1 to print stack traces of failures.');
  lines.push('.TP');
  lines.push('\\fBAWS_*\\fR, \\fBATELIER_S3_PATH_STYLE\\fR, \\fBATELIER_CACHE_DIR\\fR');
  lines.push('Any path may be s3://bucket/key (credentials, region and AWS_ENDPOINT_URL as for the aws CLI) or, to read, https://; remote files are cached under ATELIER_CACHE_DIR, else $XDG_CACHE_HOME/atelier (README: Models and data on object storage).');
  lines.push('.SH EXIT STATUS');
  lines.push('0 on success (also when a downstream pipe closes early), 2 for a usage or input error (one line naming file, line and field), 1 for a runtime failure.');
  lines.push('.SH SEE ALSO');
  lines.push('\\fBatelier\\fR(1)');
  return lines.join('\n') + '\n';
}

/** The index page `atelier(1)` listing every command. */
export function renderIndexPage(commands: Array<Command<unknown>>, version: string): string {
  const lines = [
    `.TH ATELIER 1 "" "atelier ${version}" "atelier manual"`,
    '.SH NAME',
    'atelier \\- fashion catalogue to visual models and answers',
    '.SH SYNOPSIS',
    '\\fBatelier\\fR \\fIcommand\\fR [\\fIoptions\\fR]',
    '.SH DESCRIPTION',
    'Composable commands that read and write NDJSON and .npy files. Each command is also installed as \\fBatelier\\-\\fR\\fIcommand\\fR.',
    '.SH COMMANDS',
  ];
  for (const c of commands) {
    lines.push('.TP', `\\fBatelier\\-${roffEscape(c.name)}\\fR(1)`, roffEscape(c.summary));
  }
  return lines.join('\n') + '\n';
}
