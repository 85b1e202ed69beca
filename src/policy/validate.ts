// Strict validation of a policy as written (JSON file, user config, library object). Pure.
// Every problem is one line naming the field and the fix; unknown fields are errors, because a
// misspelt restriction that is silently ignored is a hole.
import { PolicyError } from './errors.js';
import { ENV_INHERIT, MODES, NETWORK_MODES, type PolicyInput } from './types.js';

type Shape = { [key: string]: Check };
type Check = (value: unknown, field: string) => unknown;

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;

function fail(where: string, field: string, problem: string, fix: string): never {
  throw new PolicyError(`${where}: ${field || 'policy'}: ${problem}; ${fix}`);
}

/** Edit distance, to suggest the field the user probably meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function makeValidator(where: string) {
  const object = (shape: Shape): Check => (value, field) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      fail(where, field, `expected an object, got ${describe(value)}`, `write it as { … }`);
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const check = shape[key];
      const path = field ? `${field}.${key}` : key;
      if (!check) {
        const known = Object.keys(shape);
        const lower = key.toLowerCase();
        const guess = known.find((k) => distance(k.toLowerCase(), lower) <= 2) ?? known.find((k) => lower.slice(0, 4) === k.toLowerCase().slice(0, 4));
        fail(where, path, 'unknown field', guess ? `did you mean "${guess}"?` : `known fields here: ${known.join(', ')}`);
      }
      if (v !== undefined) out[key] = check(v, path);
    }
    return out;
  };
  const oneOf = (choices: readonly string[]): Check => (value, field) => {
    if (typeof value !== 'string' || !choices.includes(value))
      fail(where, field, `expected one of ${choices.join(' | ')}, got ${describe(value)}`, `use one of those values`);
    return value;
  };
  const text: Check = (value, field) => {
    if (typeof value !== 'string' || value.length === 0) fail(where, field, `expected a non-empty string, got ${describe(value)}`, 'give a string');
    if (value.includes('\0')) fail(where, field, 'contains a NUL character', 'remove it');
    return value;
  };
  const list = (item: Check): Check => (value, field) => {
    if (!Array.isArray(value)) fail(where, field, `expected a list, got ${describe(value)}`, `write it as [ … ]`);
    return value.map((v, i) => item(v, `${field}[${i}]`));
  };
  const bool: Check = (value, field) => {
    if (typeof value !== 'boolean') fail(where, field, `expected true or false, got ${describe(value)}`, 'use true or false');
    return value;
  };
  const stringMap: Check = (value, field) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, field, `expected an object of strings, got ${describe(value)}`, 'write it as { "NAME": "value" }');
    for (const [k, v] of Object.entries(value)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(where, `${field}.${k}`, 'not a valid variable name', 'use letters, digits and _');
      text(v === '' ? ' ' : v, `${field}.${k}`);
    }
    return value;
  };
  const positiveNumber = (integer: boolean): Check => (value, field) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
      fail(where, field, `expected a positive ${integer ? 'whole ' : ''}number, got ${describe(value)}`, integer ? 'e.g. 512' : 'e.g. 1.5');
    return value;
  };
  const sizeOrNumber = (parse: (s: string) => number, example: string): Check => (value, field) => {
    if (typeof value === 'number') return positiveNumber(false)(value, field);
    if (typeof value !== 'string') fail(where, field, `expected a number or a string, got ${describe(value)}`, `e.g. ${example}`);
    try {
      parse(value);
    } catch (e) {
      fail(where, field, (e as Error).message, `e.g. ${example}`);
    }
    return value;
  };
  return { object, oneOf, text, list, bool, stringMap, positiveNumber, sizeOrNumber };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** `90`, `90s`, `1.5m`, `2h`, `500ms` → milliseconds. A bare number means seconds. */
export function parseDuration(value: number | string): number {
  if (typeof value === 'number') return Math.round(value * 1000);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) throw new Error(`cannot read ${JSON.stringify(value)} as a duration`);
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!);
  if (ms <= 0) throw new Error(`a duration must be positive, got ${JSON.stringify(value)}`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
/** `2G`, `512M`, `1.5GiB`, `1048576` → bytes (binary units). */
export function parseSize(value: number | string): number {
  if (typeof value === 'number') return Math.floor(value);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new Error(`cannot read ${JSON.stringify(value)} as a size`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
  if (bytes <= 0) throw new Error(`a size must be positive, got ${JSON.stringify(value)}`);
  return bytes;
}

/**
 * Checks `value` against the policy schema and returns it typed. `where` names the source in
 * messages (a file path, `--flags`, `library policy`). `validatePattern` checks network patterns.
 */
export function validatePolicyInput(value: unknown, where: string, validatePattern?: (p: string) => void): PolicyInput {
  const v = makeValidator(where);
  const pattern: Check = (p, field) => {
    const s = v.text(p, field) as string;
    if (validatePattern) {
      try {
        validatePattern(s);
      } catch (e) {
        fail(where, field, (e as Error).message.replace(/^cordon: /, ''), 'see the network section of the README');
      }
    }
    return s;
  };
  const paths = v.list(v.text);
  const shape = v.object({
    mode: v.oneOf(MODES),
    workspace: v.text,
    filesystem: v.object({ write: paths, protect: paths, denyRead: paths, allowRead: paths }),
    network: v.object({ mode: v.oneOf(NETWORK_MODES), allow: v.list(pattern), deny: v.list(pattern), transparent: v.bool }),
    sockets: v.object({ allow: paths }),
    env: v.object({ inherit: v.oneOf(ENV_INHERIT), scrub: v.list(v.text), keep: v.list(v.text), set: v.stringMap }),
    limits: v.object({
      timeout: v.sizeOrNumber(parseDuration, '"30s", "10m" or 600'),
      memory: v.sizeOrNumber(parseSize, '"2G" or "512M"'),
      pids: v.positiveNumber(true),
      cpu: v.positiveNumber(false),
    }),
    allowReduced: v.bool,
  });
  return shape(value, '') as PolicyInput;
}
