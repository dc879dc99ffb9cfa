// Label and field selectors as kube-apiserver parses them (the subset clients send: equality, set
// membership, existence). Pure.

export type Labels = Readonly<Record<string, string>> | undefined;
export type Matcher = (labels: Labels) => boolean;

export class SelectorError extends Error {}

/** Splits on commas that are not inside `( )`. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

const KEY = /^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?\/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/;
const VALUE = /^([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)?$/;

function checkKey(k: string): string {
  if (!KEY.test(k)) throw new SelectorError(`invalid label key "${k}"`);
  return k;
}
function checkValue(v: string): string {
  if (!VALUE.test(v)) throw new SelectorError(`invalid label value "${v}"`);
  return v;
}

function parseTerm(term: string): Matcher {
  let m = /^!\s*(\S+)$/.exec(term);
  if (m) {
    const k = checkKey(m[1]);
    return (l) => l?.[k] === undefined;
  }
  m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(term);
  if (m) {
    const k = checkKey(m[1]);
    const set = new Set(m[3].split(',').map((v) => checkValue(v.trim())));
    if (m[2] === 'in') return (l) => l?.[k] !== undefined && set.has(l[k]);
    return (l) => l?.[k] === undefined || !set.has(l[k]);
  }
  m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (m) {
    const k = checkKey(m[1]);
    const v = checkValue(m[3]);
    if (m[2] === '!=') return (l) => l?.[k] !== v;
    return (l) => l?.[k] === v;
  }
  if (KEY.test(term)) return (l) => l?.[term] !== undefined;
  throw new SelectorError(`unable to parse requirement: "${term}"`);
}

/** `a=b,c!=d,e in (f,g),!h,i`. An empty selector matches everything. */
export function parseLabelSelector(s: string | null | undefined): Matcher {
  if (!s) return () => true;
  const terms = splitTerms(s).map(parseTerm);
  return (labels) => terms.every((t) => t(labels));
}

export interface FieldSubject {
  readonly name: string;
  readonly namespace?: string;
  /** Resource-specific field labels, e.g. `type` of a Secret. */
  readonly fields?: Readonly<Record<string, string>>;
}

const FIELDS = new Set(['metadata.name', 'metadata.namespace']);

/**
 * `metadata.name` and `metadata.namespace` (every resource), plus the resource's own field labels
 * (`extra`: a Secret's `type`), with `=`, `==`, `!=`; any other label is a 400 as on a real server.
 */
export function parseFieldSelector(
  s: string | null | undefined,
  extra: readonly string[] = [],
): (o: FieldSubject) => boolean {
  if (!s) return () => true;
  const terms = splitTerms(s).map((term) => {
    const m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (!m) throw new SelectorError(`invalid field selector "${term}"`);
    const label = m[1];
    if (!FIELDS.has(label) && !extra.includes(label))
      throw new SelectorError(`field label not supported: ${label}`);
    const get =
      label === 'metadata.name'
        ? (o: FieldSubject) => o.name
        : label === 'metadata.namespace'
          ? (o: FieldSubject) => o.namespace ?? ''
          : (o: FieldSubject) => o.fields?.[label] ?? '';
    const v = m[3];
    return m[2] === '!=' ? (o: FieldSubject) => get(o) !== v : (o: FieldSubject) => get(o) === v;
  });
  return (o) => terms.every((t) => t(o));
}

/** The name a selector pins with `metadata.name=<name>` (as RBAC's `resourceNames` check reads it). */
export function selectedName(s: string | null | undefined): string | undefined {
  if (!s) return undefined;
  for (const term of splitTerms(s)) {
    const m = /^metadata\.name\s*(==|=)\s*(\S+)$/.exec(term);
    if (m) return m[2];
  }
  return undefined;
}
