/**
 * Single-row INSERT / UPDATE / DELETE for the small editable tables (preferences, decisions,
 * energy sources), driven by a `TableSpec`: column names only from the spec, values always as
 * parameters, the stored row returned (`RETURNING`, both dialects).
 */
import { paramForColumn, rowFromDb, selectList } from './table';
import type { ColumnKind, TableSpec } from './table';
import type { SqlExecutor } from './types';

function kindOf<Row>(spec: TableSpec<Row>, column: string): ColumnKind {
  const kind = (spec.columns as Record<string, ColumnKind>)[column];
  if (!kind || kind === 'id') throw new RangeError(`cannot write ${spec.table}.${column}`);
  return kind;
}

/** INSERT of the given columns; returns the stored row. */
export async function insertRow<Row>(db: SqlExecutor, spec: TableSpec<Row>, values: Record<string, unknown>): Promise<Row> {
  const cols = Object.keys(values);
  const params = cols.map((c) => paramForColumn(kindOf(spec, c), values[c], db.dialect));
  const [raw] = await db.query<Record<string, unknown>>(
    `INSERT INTO ${spec.table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
     RETURNING ${selectList(spec)}`,
    params,
  );
  return rowFromDb(spec, raw);
}

/**
 * INSERT that stores nothing when a unique column already holds the value; undefined then
 * (ON CONFLICT DO NOTHING: no error, so no aborted PostgreSQL transaction either).
 */
export async function insertRowUnlessExists<Row>(
  db: SqlExecutor,
  spec: TableSpec<Row>,
  values: Record<string, unknown>,
  uniqueColumn: keyof Row & string,
): Promise<Row | undefined> {
  const cols = Object.keys(values);
  const params = cols.map((c) => paramForColumn(kindOf(spec, c), values[c], db.dialect));
  kindOf(spec, uniqueColumn);
  const [raw] = await db.query<Record<string, unknown>>(
    `INSERT INTO ${spec.table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
     ON CONFLICT (${uniqueColumn}) DO NOTHING RETURNING ${selectList(spec)}`,
    params,
  );
  return raw ? rowFromDb(spec, raw) : undefined;
}

/** UPDATE ... SET the given columns WHERE `keyColumn` = key; the changed row or undefined. */
export async function updateRow<Row>(
  db: SqlExecutor,
  spec: TableSpec<Row>,
  keyColumn: keyof Row & string,
  key: unknown,
  values: Record<string, unknown>,
): Promise<Row | undefined> {
  const cols = Object.keys(values);
  if (cols.length === 0) throw new RangeError('nothing to update');
  const keyKind = (spec.columns as Record<string, ColumnKind>)[keyColumn];
  if (!keyKind) throw new RangeError(`no column ${spec.table}.${keyColumn}`);
  const params = cols.map((c) => paramForColumn(kindOf(spec, c), values[c], db.dialect));
  params.push(paramForColumn(keyKind, key, db.dialect));
  const [raw] = await db.query<Record<string, unknown>>(
    `UPDATE ${spec.table} SET ${cols.map((c, i) => `${c} = $${i + 1}`).join(', ')}
     WHERE ${keyColumn} = $${cols.length + 1} RETURNING ${selectList(spec)}`,
    params,
  );
  return raw ? rowFromDb(spec, raw) : undefined;
}

/** One row where `column` = value (a unique column), or undefined. */
export async function findRow<Row>(db: SqlExecutor, spec: TableSpec<Row>, column: keyof Row & string, value: unknown): Promise<Row | undefined> {
  const kind = (spec.columns as Record<string, ColumnKind>)[column];
  if (!kind) throw new RangeError(`no column ${spec.table}.${column}`);
  const [raw] = await db.query<Record<string, unknown>>(
    `SELECT ${selectList(spec)} FROM ${spec.table} WHERE ${column} = $1`,
    [paramForColumn(kind, value, db.dialect)],
  );
  return raw ? rowFromDb(spec, raw) : undefined;
}

/** A unique constraint was violated: PostgreSQL SQLSTATE 23505, SQLite SQLITE_CONSTRAINT_UNIQUE. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** A text value that no row can hold (a NUL: PostgreSQL refuses it in a parameter). */
export function unmatchable(value: string): boolean {
  return value.includes('\u0000');
}
