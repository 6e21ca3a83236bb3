/**
 * A small declarative schema per REST resource (CONTRACT section 4), free of Node-RED. One
 * description drives three things that must not drift apart:
 * - body validation with DRF-style field errors `{"field": ["message"]}` (`validateBody`),
 * - the stored and returned shape (`rowJson`, `columnKinds` for the table spec),
 * - the OpenAPI 3.1 components (`openApiSchema` in ./openapi-schema.ts).
 *
 * Validation follows DRF's serializer fields where the contract is silent: numbers accept numeric
 * strings (FloatField), booleans accept `"true"`/`"false"`/`1`/`0` (BooleanField), strings accept
 * numbers (CharField), messages are DRF's own. Unknown fields are ignored; read-only fields are
 * never taken from a body. Everything read from a body is an own property, so `__proto__` and
 * friends do nothing. Strings and JSON values with a NUL character or an unpaired surrogate are
 * refused here (PostgreSQL refuses them with an error, SQLite would store them).
 */

export type FieldType = 'string' | 'number' | 'integer' | 'boolean' | 'datetime' | 'object' | 'json' | 'array';

export interface FieldSpec {
  type: FieldType;
  description: string;
  /** A create or replace body must have it (a PATCH need not). */
  required?: boolean;
  /** Set by the server: never read from a body (`id`, `created_at`, `updated_at`). */
  readOnly?: boolean;
  /** Accepted in a body, not part of the stored row (e.g. a decision's `commands`). */
  writeOnly?: boolean;
  nullable?: boolean;
  /** Used when a create or replace body omits the field; a function gets the request time. */
  default?: unknown | ((now: number) => unknown);
  /** Strings: allowed values. */
  enum?: readonly string[];
  minLength?: number;
  maxLength?: number;
  /** Strings: a full-match pattern (anchored), and its text for the error message. */
  pattern?: RegExp;
  patternText?: string;
  minimum?: number;
  maximum?: number;
  /** Arrays: the schema of each item (an object) and the largest length. */
  items?: ResourceSchema;
  maxItems?: number;
  example?: unknown;
}

export interface ResourceSchema {
  /** The OpenAPI component name, e.g. `UserPreference`. */
  name: string;
  /** DRF's verbose name, used in messages ("user preference with this preference key already exists."). */
  verboseName: string;
  description: string;
  /** In the contract's order, which is the order of a row's keys. */
  fields: Readonly<Record<string, FieldSpec>>;
}

export type FieldErrors = Record<string, string[]>;

export type ValidationResult<T = Record<string, unknown>> =
  | { ok: true; value: T }
  | { ok: false; errors: FieldErrors };

/** `create`: all required fields, defaults applied. `replace` (PUT): the same. `partial` (PATCH): only what is given. */
export type ValidationMode = 'create' | 'replace' | 'partial';

export interface ValidateOptions {
  /** The request time (ms), for time defaults. */
  now?: number;
  /** Fields that may not appear in this body although the schema knows them (their message). */
  forbidden?: Readonly<Record<string, string>>;
}

/** Nesting limit of JSON values: deeper values are refused (PostgreSQL's jsonb has its own limit, and a stack). */
export const MAX_JSON_DEPTH = 32;

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

export const MESSAGES = {
  required: 'This field is required.',
  null: 'This field may not be null.',
  blank: 'This field may not be blank.',
  string: 'Not a valid string.',
  number: 'A valid number is required.',
  integer: 'A valid integer is required.',
  boolean: 'Must be a valid boolean.',
  datetime: 'Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].',
  object: 'Expected a dictionary of items.',
  nul: 'Null characters are not allowed.',
  surrogate: 'Unpaired surrogate characters are not allowed.',
  deep: `Ensure this value is nested at most ${MAX_JSON_DEPTH} levels deep.`,
  notADict: (got: string) => `Invalid data. Expected a dictionary, but got ${got}.`,
  maxLength: (n: number) => `Ensure this field has no more than ${n} characters.`,
  minLength: (n: number) => `Ensure this field has at least ${n} characters.`,
  choice: (v: unknown) => `"${String(v)}" is not a valid choice.`,
  max: (n: number) => `Ensure this value is less than or equal to ${n}.`,
  min: (n: number) => `Ensure this value is greater than or equal to ${n}.`,
  list: (got: string) => `Expected a list of items but got type "${got}".`,
  maxItems: (n: number) => `Ensure this field has no more than ${n} elements.`,
  pattern: (text: string) => `Enter a valid value: ${text}.`,
} as const;

/** DRF's name of a JSON value's Python type, for "Expected a dictionary, but got list." */
function pyType(v: unknown): string {
  if (v === null) return 'NoneType';
  if (Array.isArray(v)) return 'list';
  switch (typeof v) {
    case 'string':
      return 'str';
    case 'number':
      return Number.isInteger(v) ? 'int' : 'float';
    case 'boolean':
      return 'bool';
    case 'object':
      return 'dict';
    default:
      return typeof v;
  }
}

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why a string cannot be stored, or undefined. */
function badText(s: string): string | undefined {
  if (s.includes('\u0000')) return MESSAGES.nul;
  if (UNPAIRED_SURROGATE.test(s)) return MESSAGES.surrogate;
  return undefined;
}

/** Why a JSON value cannot be stored (depth, NUL, surrogates, non-JSON values), or undefined. */
export function badJson(v: unknown, depth = 0): string | undefined {
  if (depth > MAX_JSON_DEPTH) return MESSAGES.deep;
  if (v === null || typeof v === 'boolean') return undefined;
  if (typeof v === 'string') return badText(v);
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : MESSAGES.number;
  if (Array.isArray(v)) {
    for (const item of v) {
      const bad = badJson(item, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  if (typeof v === 'object') {
    for (const k of Object.keys(v as object)) {
      const bad = badText(k) ?? badJson((v as Record<string, unknown>)[k], depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  return 'Value must be valid JSON.';
}

const DECIMAL = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const INTEGER_TEXT = /^\s*[+-]?\d+(?:\.0*)?\s*$/;
const TRUE_VALUES = new Set<unknown>([true, 1, 'true', 'True', 'TRUE', '1', 'yes', 'on', 't', 'T', 'y', 'Y', 'Yes', 'YES', 'On', 'ON']);
const FALSE_VALUES = new Set<unknown>([false, 0, 'false', 'False', 'FALSE', '0', 'no', 'off', 'f', 'F', 'n', 'N', 'No', 'NO', 'Off', 'OFF']);

/** ISO 8601 date and time: `T` or space, seconds and fraction optional, `Z`/offset optional (UTC). */
const DATETIME = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?\s*(Z|z|[+-]\d\d(?::?\d\d)?)?$/;

/** A date-time string → ISO 8601 UTC with milliseconds, or undefined. */
export function parseDateTime(text: string): string | undefined {
  const m = DATETIME.exec(text.trim());
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number);
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  const check = new Date(t);
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1) return undefined; // 2026-02-30
  let offsetMin = 0;
  const z = m[8];
  if (z && z !== 'Z' && z !== 'z') {
    const sign = z[0] === '-' ? -1 : 1;
    const digits = z.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || '0');
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  const out = new Date(t - offsetMin * 60_000);
  if (Number.isNaN(out.getTime()) || out.getUTCFullYear() < 1 || out.getUTCFullYear() > 9999) return undefined;
  return out.toISOString();
}

/** One field's value → `{value}` or `{error}` (a list of messages, or a flat list for items). */
function checkField(field: FieldSpec, raw: unknown, now: number): { value: unknown } | { errors: string[] } {
  if (raw === null) {
    return field.nullable ? { value: null } : { errors: [MESSAGES.null] };
  }
  switch (field.type) {
    case 'string': {
      let s: string;
      if (typeof raw === 'string') s = raw;
      else if (typeof raw === 'number' && Number.isFinite(raw)) s = String(raw);
      else return { errors: [MESSAGES.string] };
      const bad = badText(s);
      if (bad) return { errors: [bad] };
      if (field.enum) return field.enum.includes(s) ? { value: s } : { errors: [MESSAGES.choice(s.length > 64 ? `${s.slice(0, 64)}…` : s)] };
      const errors: string[] = [];
      if ((field.minLength ?? 0) > 0 && s.length === 0) return { errors: [MESSAGES.blank] };
      if (field.maxLength !== undefined && s.length > field.maxLength) errors.push(MESSAGES.maxLength(field.maxLength));
      if (field.minLength !== undefined && s.length < field.minLength) errors.push(MESSAGES.minLength(field.minLength));
      if (errors.length === 0 && field.pattern && !field.pattern.test(s)) errors.push(MESSAGES.pattern(field.patternText ?? field.pattern.source));
      return errors.length ? { errors } : { value: s };
    }
    case 'number':
    case 'integer': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && (field.type === 'integer' ? INTEGER_TEXT : DECIMAL).test(raw)) n = Number(raw);
      else return { errors: [field.type === 'integer' ? MESSAGES.integer : MESSAGES.number] };
      if (!Number.isFinite(n)) return { errors: [MESSAGES.number] };
      if (field.type === 'integer' && !Number.isInteger(n)) return { errors: [MESSAGES.integer] };
      if (field.maximum !== undefined && n > field.maximum) return { errors: [MESSAGES.max(field.maximum)] };
      if (field.minimum !== undefined && n < field.minimum) return { errors: [MESSAGES.min(field.minimum)] };
      return { value: n === 0 ? 0 : n }; // no -0 in the database
    }
    case 'boolean':
      if (TRUE_VALUES.has(raw)) return { value: true };
      if (FALSE_VALUES.has(raw)) return { value: false };
      return { errors: [MESSAGES.boolean] };
    case 'datetime': {
      if (typeof raw !== 'string') return { errors: [MESSAGES.datetime] };
      const iso = parseDateTime(raw);
      return iso === undefined ? { errors: [MESSAGES.datetime] } : { value: iso };
    }
    case 'object': {
      if (typeof raw !== 'object' || Array.isArray(raw)) return { errors: [MESSAGES.object] };
      const bad = badJson(raw);
      return bad ? { errors: [bad] } : { value: raw };
    }
    case 'json': {
      const bad = badJson(raw);
      return bad ? { errors: [bad] } : { value: raw };
    }
    case 'array': {
      if (!Array.isArray(raw)) return { errors: [MESSAGES.list(pyType(raw))] };
      if (field.maxItems !== undefined && raw.length > field.maxItems) return { errors: [MESSAGES.maxItems(field.maxItems)] };
      if (!field.items) {
        const bad = badJson(raw);
        return bad ? { errors: [bad] } : { value: raw };
      }
      const values: unknown[] = [];
      const errors: string[] = [];
      raw.forEach((item, i) => {
        const r = validateBody(field.items!, item, 'create', { now });
        if (r.ok) values.push(r.value);
        else for (const [k, msgs] of Object.entries(r.errors)) for (const m of msgs) errors.push(`Item ${i + 1}: ${k}: ${m}`);
      });
      return errors.length ? { errors } : { value: values };
    }
    default:
      return { errors: ['Unsupported field type.'] };
  }
}

function defaultOf(field: FieldSpec, now: number): unknown {
  return typeof field.default === 'function' ? (field.default as (now: number) => unknown)(now) : field.default;
}

/**
 * Validates a request body against a schema. Returns the accepted values (only the schema's
 * writable fields, in the schema's order, defaults applied for create/replace) or DRF-style
 * field errors. A body that is not an object: `{"non_field_errors": ["Invalid data. ..."]}`.
 */
export function validateBody(
  schema: ResourceSchema,
  body: unknown,
  mode: ValidationMode,
  opts: ValidateOptions = {},
): ValidationResult {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) {
    return { ok: false, errors: { non_field_errors: [MESSAGES.notADict(pyType(body))] } };
  }
  const now = opts.now ?? Date.now();
  const value: Record<string, unknown> = {};
  const errors: FieldErrors = {};
  for (const [name, field] of Object.entries(schema.fields)) {
    if (field.readOnly) continue;
    const present = hasOwn(body, name) && (body as Record<string, unknown>)[name] !== undefined;
    if (present && opts.forbidden && hasOwn(opts.forbidden, name)) {
      errors[name] = [opts.forbidden[name]];
      continue;
    }
    if (!present) {
      if (mode === 'partial') continue;
      if (field.required) errors[name] = [MESSAGES.required];
      else if (field.default !== undefined) value[name] = defaultOf(field, now);
      continue;
    }
    const r = checkField(field, (body as Record<string, unknown>)[name], now);
    if ('errors' in r) errors[name] = r.errors;
    else value[name] = r.value;
  }
  return Object.keys(errors).length ? { ok: false, errors } : { ok: true, value };
}

/** A stored row → the API shape: the schema's fields that are not write-only, in order. */
export function rowJson<T>(schema: ResourceSchema, row: object): T {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema.fields)) {
    if (field.writeOnly) continue;
    out[name] = (row as Record<string, unknown>)[name] ?? null;
  }
  return out as T;
}

/** The names of the stored fields (not write-only), in order: the table's columns. */
export function storedFields(schema: ResourceSchema): string[] {
  return Object.entries(schema.fields)
    .filter(([, f]) => !f.writeOnly)
    .map(([name]) => name);
}
