// A reader for the block-style YAML our examples use (maps, "- " lists, flow lists of quoted
// strings, quoted and plain scalars, "|" literal blocks, "---" documents): enough to check a
// Kubernetes manifest's structure where no YAML package is installed.
type Value = string | number | boolean | null | Value[] | { [key: string]: Value };

interface Line {
  indent: number;
  text: string;
}

function stripComment(text: string): string {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || text[i - 1] === ' ')) return text.slice(0, i).trimEnd();
  }
  return text.trimEnd();
}

function scalar(text: string): Value {
  const t = text.trim();
  if (t.startsWith('[') || t.startsWith('"')) return JSON.parse(t) as Value;
  if (t.startsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
  if (/^-?\d+$/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null' || t === '~' || t === '') return null;
  return t;
}

class Parser {
  private i = 0;
  constructor(private readonly raw: string[], private readonly lines: Line[]) {}

  parse(): Value {
    return this.block(this.lines[0]?.indent ?? 0);
  }

  private block(indent: number): Value {
    const first = this.lines[this.i];
    if (!first || first.indent < indent) return null;
    return first.text.startsWith('- ') || first.text === '-' ? this.list(first.indent) : this.map(first.indent);
  }

  private list(indent: number): Value[] {
    const items: Value[] = [];
    while (this.i < this.lines.length && this.lines[this.i].indent === indent && this.lines[this.i].text.startsWith('-')) {
      const line = this.lines[this.i];
      const rest = line.text.slice(1).trimStart();
      if (rest === '|') {
        this.i++;
        items.push(this.literal(indent));
      } else if (!rest) {
        this.i++;
        items.push(this.block(indent + 1));
      } else if (/^[\w.-]+:( |$)/.test(rest)) {
        // "- key: value" opens a map whose keys sit at the item's content column.
        this.lines[this.i] = { indent: indent + line.text.length - rest.length, text: rest };
        items.push(this.map(this.lines[this.i].indent));
      } else {
        this.i++;
        items.push(scalar(rest));
      }
    }
    return items;
  }

  private map(indent: number): { [key: string]: Value } {
    const out: { [key: string]: Value } = {};
    while (this.i < this.lines.length && this.lines[this.i].indent === indent && !this.lines[this.i].text.startsWith('- ')) {
      const { text } = this.lines[this.i];
      const m = /^([\w.-]+):(?: (.*))?$/.exec(text);
      if (!m) throw new Error(`not a "key: value" line: ${text}`);
      this.i++;
      const value = (m[2] ?? '').trim();
      if (value === '|') out[m[1]] = this.literal(indent);
      else if (value !== '') out[m[1]] = scalar(value);
      else {
        const next = this.lines[this.i];
        // A list may sit at its key's indentation.
        out[m[1]] = next && (next.indent > indent || (next.indent === indent && next.text.startsWith('- '))) ? this.block(next.indent) : null;
      }
    }
    return out;
  }

  /** A "|" block: the raw lines more indented than its key, comments kept. */
  private literal(indent: number): string {
    const body: string[] = [];
    let cut = -1;
    while (this.i < this.lines.length && this.lines[this.i].indent > indent) {
      const raw = this.raw[this.i];
      if (cut < 0) cut = raw.length - raw.trimStart().length;
      body.push(raw.slice(cut));
      this.i++;
    }
    return body.join('\n') + '\n';
  }
}

/** The documents of a YAML file (split at "---"). */
export function parseYamlDocuments(text: string): Value[] {
  return text.split(/^---\s*$/m).map((doc) => {
    const raw: string[] = [];
    const lines: Line[] = [];
    let literalIndent = -1;
    for (const line of doc.split('\n')) {
      const indent = line.length - line.trimStart().length;
      // Inside a literal block, comments are content.
      if (literalIndent >= 0 && line.trim() && indent > literalIndent) {
        raw.push(line);
        lines.push({ indent, text: line.trim() });
        continue;
      }
      literalIndent = -1;
      const text = stripComment(line);
      if (!text.trim()) continue;
      if (/(:|^\s*-)\s*\|$/.test(text)) literalIndent = indent;
      raw.push(line);
      lines.push({ indent, text: text.trim() });
    }
    return new Parser(raw, lines).parse();
  }).filter((d) => d !== null);
}
