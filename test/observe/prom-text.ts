// A small parser for the Prometheus text exposition format (0.0.4), so tests check what a scraper
// would read rather than trusting prom-client's own output. Throws on any line it cannot parse.

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface Exposition {
  readonly types: Map<string, string>;
  readonly help: Map<string, string>;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      help.set(rest.slice(0, sp), rest.slice(sp + 1));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!NAME.test(name) || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) {
        throw new Error(`bad TYPE line: ${line}`);
      }
      types.set(name, type);
      continue;
    }
    if (line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
    const name = line.slice(0, i);
    if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`);
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const eq = line.indexOf('=', i);
        const key = line.slice(i, eq);
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key) || line[eq + 1] !== '"')
          throw new Error(`bad label: ${line}`);
        let j = eq + 2;
        let val = '';
        while (line[j] !== '"') {
          if (j >= line.length) throw new Error(`unterminated label value: ${line}`);
          if (line[j] === '\\') {
            const c = line[j + 1];
            val += c === 'n' ? '\n' : c;
            j += 2;
          } else val += line[j++];
        }
        labels[key] = val;
        i = j + 1;
        if (line[i] === ',') i++;
      }
      i++;
    }
    const parts = line.slice(i).trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2) throw new Error(`bad sample: ${line}`);
    const v = parts[0];
    // Prometheus parses values with Go's ParseFloat, which takes NaN/Inf in any case (prom-client
    // writes `Nan` for an empty event-loop histogram).
    const lower = v.toLowerCase();
    const value =
      lower === '+inf' || lower === 'inf'
        ? Number.POSITIVE_INFINITY
        : lower === '-inf'
          ? Number.NEGATIVE_INFINITY
          : Number(v);
    if (Number.isNaN(value) && lower !== 'nan') throw new Error(`bad value: ${line}`);
    samples.push({ name, labels, value });
  }
  for (const s of samples) {
    const family = s.name.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(s.name) && !types.has(family)) throw new Error(`sample without TYPE: ${s.name}`);
  }
  return { types, help, samples };
}

export function value(
  exp: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const s = exp.samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s?.value;
}
