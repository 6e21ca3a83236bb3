/**
 * `PreferencesRepository`: the `user_preferences` table, addressed by its unique
 * `preference_key`. `updated_at` is set on every change from the repository's clock.
 */
import { listRows } from './list-query';
import { findRow, insertRowUnlessExists, isUniqueViolation, unmatchable, updateRow } from './row-writes';
import { toIsoMs } from './table';
import type { TableSpec } from './table';
import { ConflictError } from './types';
import type { ListOptions, ListResult, PreferencesRepository, SqlDatabase, UserPreference, UserPreferenceRow } from './types';
import { tableColumns, USER_PREFERENCE } from '../schema';

export const PREFERENCES_TABLE: TableSpec<UserPreferenceRow> = {
  table: 'user_preferences',
  columns: tableColumns(USER_PREFERENCE) as TableSpec<UserPreferenceRow>['columns'],
  filterable: [],
  orderable: ['id', 'created_at', 'updated_at', 'preference_key'],
  // Newest first by id (ids only grow): walks the primary key; `-created_at` has no index and
  // sorted 100k rows per page (measured 33 ms).
  defaultOrdering: '-id',
};

/** Longest key a row can have (the column's CHECK): a longer one finds nothing without a query. */
const MAX_KEY = 100;

const pick = (input: Partial<UserPreference>): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const k of ['preference_key', 'preference_value', 'description'] as const) {
    if (input[k] !== undefined) out[k] = input[k];
  }
  return out;
};

function conflict(key: string): ConflictError {
  return new ConflictError('preference_key', key);
}

class SqlPreferencesRepository implements PreferencesRepository {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: { now(): number },
  ) {}

  private findable(key: string): boolean {
    return typeof key === 'string' && key.length >= 1 && key.length <= MAX_KEY && !unmatchable(key);
  }

  list(options: ListOptions<Record<string, never>>): Promise<ListResult<UserPreferenceRow>> {
    return listRows(this.db, PREFERENCES_TABLE, { ...options, filters: undefined });
  }

  async getByKey(key: string): Promise<UserPreferenceRow | undefined> {
    if (!this.findable(key)) return undefined;
    return findRow(this.db, PREFERENCES_TABLE, 'preference_key', key);
  }

  async create(input: UserPreference): Promise<UserPreferenceRow> {
    const now = toIsoMs(this.clock.now());
    const values = {
      preference_key: input.preference_key,
      preference_value: input.preference_value ?? null,
      description: input.description ?? '',
      created_at: now,
      updated_at: now,
    };
    // JSON null must be stored as the JSON text `null`, not SQL NULL (the column is NOT NULL).
    const row = await insertRowUnlessExists(this.db, PREFERENCES_TABLE, jsonNull(values), 'preference_key');
    if (!row) throw conflict(input.preference_key);
    return row;
  }

  replace(key: string, input: UserPreference): Promise<UserPreferenceRow | undefined> {
    return this.update(key, {
      preference_key: input.preference_key,
      preference_value: input.preference_value ?? null,
      description: input.description ?? '',
    });
  }

  patch(key: string, fields: Partial<UserPreference>): Promise<UserPreferenceRow | undefined> {
    const values = pick(fields);
    if ('preference_value' in fields && fields.preference_value === null) values.preference_value = null;
    return this.update(key, values);
  }

  private async update(key: string, values: Record<string, unknown>): Promise<UserPreferenceRow | undefined> {
    if (!this.findable(key)) return undefined;
    try {
      return await updateRow(this.db, PREFERENCES_TABLE, 'preference_key', key, jsonNull({ ...values, updated_at: toIsoMs(this.clock.now()) }));
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(String(values.preference_key));
      throw err;
    }
  }

  async delete(key: string): Promise<boolean> {
    if (!this.findable(key)) return false;
    return (await this.db.execute('DELETE FROM user_preferences WHERE preference_key = $1', [key])) > 0;
  }
}

/** `preference_value: null` → a marker that `paramForColumn` turns into the JSON text `null`. */
function jsonNull(values: Record<string, unknown>): Record<string, unknown> {
  if ('preference_value' in values && values.preference_value === null) return { ...values, preference_value: JSON_NULL };
  return values;
}

/** Serialises as JSON `null` (paramForColumn JSON.stringify's any non-null value). */
const JSON_NULL = { toJSON: () => null };

export function createPreferencesRepository(db: SqlDatabase, clock: { now(): number } = { now: () => Date.now() }): PreferencesRepository {
  return new SqlPreferencesRepository(db, clock);
}
