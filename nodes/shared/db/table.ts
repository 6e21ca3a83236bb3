/**
 * Per-table description that drives the generic queries: the column whitelist (with the kind of
 * each column, for converting rows and parameters between the dialects), which columns may be
 * filtered and ordered on, and the default ordering. Column and table names in SQL come only
 * from these specs, never from a client.
 */
import type { Dialect } from './types';

export type ColumnKind = 'id' | 'text' | 'number' | 'integer' | 'boolean' | 'timestamp' | 'json';

export interface TableSpec<Row> {
  table: string;
  /** Every column, in the contract's order (the order of the output rows' keys). */
  columns: { readonly [K in keyof Row & string]: ColumnKind };
  /** Exact-match filters allowed in `list`. */
  filterable: readonly (keyof Row & string)[];
  /** Columns allowed in `ordering` (`field` or `-field`). */
  orderable: readonly (keyof Row & string)[];
  /** Default `ordering`, e.g. `-timestamp` (newest first). */
  defaultOrdering: string;
}

/** ISO 8601 UTC with milliseconds and `Z`; the only text form of a time we store or compare. */
export function toIsoMs(value: string | number | Date): string {
  const d = value instanceof Date ? value : new Date(value);
  const t = d.getTime();
  if (Number.isNaN(t)) throw new TypeError(`invalid timestamp: ${String(value)}`);
  return d.toISOString();
}

/** The SELECT list of a table, `t.` prefixed when `alias` is given. */
export function selectList<Row>(spec: TableSpec<Row>, alias?: string): string {
  const prefix = alias ? `${alias}.` : '';
  return Object.keys(spec.columns)
    .map((c) => prefix + c)
    .join(', ');
}

/** A driver row → the API row: same keys and JS types from PostgreSQL and SQLite. */
export function rowFromDb<Row>(spec: TableSpec<Row>, raw: Record<string, unknown>): Row {
  const out: Record<string, unknown> = {};
  for (const [col, kind] of Object.entries(spec.columns) as [string, ColumnKind][]) {
    const v = raw[col];
    if (v === null || v === undefined) {
      out[col] = null;
      continue;
    }
    switch (kind) {
      case 'id':
      case 'integer':
      case 'number':
        out[col] = typeof v === 'number' ? v : Number(v);
        break;
      case 'boolean':
        out[col] = v === true || v === 1 || v === '1' || v === 't';
        break;
      case 'json':
        out[col] = typeof v === 'string' ? JSON.parse(v) : v;
        break;
      case 'timestamp':
        // PostgreSQL's per-pool parser and SQLite's stored text are both ISO already.
        out[col] = typeof v === 'string' ? v : toIsoMs(v as Date);
        break;
      default:
        out[col] = String(v);
    }
  }
  return out as Row;
}

/** A JS value → the parameter for a column of this kind in this dialect. */
export function paramForColumn(kind: ColumnKind, value: unknown, dialect: Dialect): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'boolean':
      return dialect === 'sqlite' ? (value ? 1 : 0) : Boolean(value);
    case 'json':
      // Always as JSON text: pg would turn a JS array into a PostgreSQL array, not jsonb.
      return JSON.stringify(value);
    case 'timestamp':
      return toIsoMs(value as string);
    default:
      return value;
  }
}
