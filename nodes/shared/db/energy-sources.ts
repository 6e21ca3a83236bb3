/**
 * `EnergySourceRepository`: the `energy_sources` table, one row per `source_type`, listed by
 * priority (highest first). `updated_at` is set on every change from the repository's clock.
 */
import { getRow, listRows } from './list-query';
import { insertRowUnlessExists, isUniqueViolation, updateRow } from './row-writes';
import { rowFromDb, selectList, toIsoMs } from './table';
import type { TableSpec } from './table';
import { ConflictError } from './types';
import type { EnergySource, EnergySourceRepository, EnergySourceRow, ListOptions, ListResult, SqlDatabase } from './types';
import { ENERGY_SOURCE, tableColumns } from '../schema';

export const ENERGY_SOURCES_TABLE: TableSpec<EnergySourceRow> = {
  table: 'energy_sources',
  columns: tableColumns(ENERGY_SOURCE) as TableSpec<EnergySourceRow>['columns'],
  filterable: ['source_type', 'is_available'],
  orderable: ['priority', 'updated_at'],
  defaultOrdering: '-priority',
};

const FIELDS = ['source_type', 'is_available', 'capacity', 'current_output', 'priority'] as const;

class SqlEnergySourceRepository implements EnergySourceRepository {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: { now(): number },
  ) {}

  list(options: ListOptions<Record<string, never>>): Promise<ListResult<EnergySourceRow>> {
    return listRows(this.db, ENERGY_SOURCES_TABLE, { ...options, filters: undefined, ordering: options.ordering ?? '-priority' });
  }

  async available(): Promise<EnergySourceRow[]> {
    const raw = await this.db.query<Record<string, unknown>>(
      `SELECT ${selectList(ENERGY_SOURCES_TABLE)} FROM energy_sources WHERE is_available = $1 ORDER BY priority DESC, id DESC`,
      [this.db.dialect === 'sqlite' ? 1 : true],
    );
    return raw.map((r) => rowFromDb(ENERGY_SOURCES_TABLE, r));
  }

  get(id: number): Promise<EnergySourceRow | undefined> {
    return getRow(this.db, ENERGY_SOURCES_TABLE, id);
  }

  async create(input: EnergySource): Promise<EnergySourceRow> {
    const row = await insertRowUnlessExists(
      this.db,
      ENERGY_SOURCES_TABLE,
      { ...this.complete(input), updated_at: toIsoMs(this.clock.now()) },
      'source_type',
    );
    if (!row) throw new ConflictError('source_type', input.source_type);
    return row;
  }

  replace(id: number, input: EnergySource): Promise<EnergySourceRow | undefined> {
    return this.update(id, this.complete(input));
  }

  patch(id: number, fields: Partial<EnergySource>): Promise<EnergySourceRow | undefined> {
    const values: Record<string, unknown> = {};
    for (const k of FIELDS) if (k in fields && fields[k] !== undefined) values[k] = fields[k];
    return this.update(id, values);
  }

  private complete(input: EnergySource): Record<string, unknown> {
    return {
      source_type: input.source_type,
      is_available: input.is_available ?? true,
      capacity: input.capacity ?? null,
      current_output: input.current_output ?? 0,
      priority: input.priority ?? 0,
    };
  }

  private async update(id: number, values: Record<string, unknown>): Promise<EnergySourceRow | undefined> {
    if (!Number.isSafeInteger(id) || id < 1) return undefined;
    try {
      return await updateRow(this.db, ENERGY_SOURCES_TABLE, 'id', id, { ...values, updated_at: toIsoMs(this.clock.now()) });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('source_type', values.source_type);
      throw err;
    }
  }
}

export function createEnergySourceRepository(db: SqlDatabase, clock: { now(): number } = { now: () => Date.now() }): EnergySourceRepository {
  return new SqlEnergySourceRepository(db, clock);
}
