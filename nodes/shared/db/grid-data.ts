/**
 * `GridDataRepository`: the `grid_data` table. One row per (data_type, zone, timestamp): a later
 * fetch of the same time replaces value, unit and metadata (an estimate refined).
 */
import { deleteOlderThan, getRow, latestPerGroup, listRows } from './list-query';
import { DEFAULT_DELETE_BATCH } from './readings';
import { SQLITE_MAX_VARIABLES } from './sqlite';
import { paramForColumn, rowFromDb, selectList, toIsoMs } from './table';
import type { TableSpec } from './table';
import type { GridData, GridDataFilters, GridDataRepository, GridDataRow, ListOptions, ListResult, SqlDatabase } from './types';

export const GRID_DATA_TABLE: TableSpec<GridDataRow> = {
  table: 'grid_data',
  columns: {
    id: 'id',
    data_type: 'text',
    value: 'number',
    unit: 'text',
    zone: 'text',
    metadata: 'json',
    timestamp: 'timestamp',
    created_at: 'timestamp',
  },
  filterable: ['data_type', 'zone'],
  orderable: ['timestamp', 'created_at'],
  defaultOrdering: '-timestamp',
};

const INSERT_COLUMNS = ['data_type', 'value', 'unit', 'zone', 'metadata', 'timestamp'] as const;
const SQLITE_CHUNK = Math.floor(SQLITE_MAX_VARIABLES / INSERT_COLUMNS.length);
const RETURNING = `RETURNING ${selectList(GRID_DATA_TABLE)}`;
const ON_CONFLICT = `ON CONFLICT (data_type, zone, timestamp) DO UPDATE
  SET value = excluded.value, unit = excluded.unit, metadata = excluded.metadata`;

type GridParams = Record<(typeof INSERT_COLUMNS)[number], unknown>;

function normalize(r: GridData, index: number, dialect: SqlDatabase['dialect']): GridParams {
  if (!r || typeof r.data_type !== 'string' || typeof r.value !== 'number' || !Number.isFinite(r.value)) {
    throw new TypeError(`grid data row ${index} has no data_type or no finite value`);
  }
  let timestamp: string;
  try {
    timestamp = toIsoMs(r.timestamp);
  } catch {
    throw new TypeError(`grid data row ${index} has an invalid timestamp: ${String(r.timestamp)}`);
  }
  const metadata = r.metadata ?? {};
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new TypeError(`grid data row ${index}: metadata must be an object`);
  }
  return {
    data_type: r.data_type,
    value: r.value,
    unit: r.unit ?? '',
    zone: r.zone ?? '',
    metadata: paramForColumn('json', metadata, dialect),
    timestamp,
  };
}

class SqlGridDataRepository implements GridDataRepository {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: { now(): number },
  ) {}

  async upsertMany(input: readonly GridData[]): Promise<GridDataRow[]> {
    if (input.length === 0) return [];
    // The same key twice in one statement is an error for DO UPDATE (PostgreSQL: "cannot affect
    // row a second time"): the last one wins, as it would over two calls.
    const byKey = new Map<string, GridParams>();
    input.forEach((r, i) => {
      const p = normalize(r, i, this.db.dialect);
      const key = `${p.data_type}\u0000${p.zone}\u0000${p.timestamp}`;
      byKey.delete(key);
      byKey.set(key, p);
    });
    const rows = [...byKey.values()];
    let raw: Record<string, unknown>[];
    if (this.db.dialect === 'postgres') {
      raw = await this.db.query(
        `INSERT INTO grid_data (${INSERT_COLUMNS.join(', ')})
         SELECT * FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
         ${ON_CONFLICT} ${RETURNING}`,
        INSERT_COLUMNS.map((c) => rows.map((r) => r[c])),
      );
    } else {
      raw = await this.db.transaction(async (tx) => {
        const out: Record<string, unknown>[] = [];
        for (let start = 0; start < rows.length; start += SQLITE_CHUNK) {
          const part = rows.slice(start, start + SQLITE_CHUNK);
          const values = part
            .map((_, i) => `(${INSERT_COLUMNS.map((__, j) => `$${i * INSERT_COLUMNS.length + j + 1}`).join(', ')})`)
            .join(', ');
          out.push(
            ...(await tx.query<Record<string, unknown>>(
              `INSERT INTO grid_data (${INSERT_COLUMNS.join(', ')}) VALUES ${values} ${ON_CONFLICT} ${RETURNING}`,
              part.flatMap((r) => INSERT_COLUMNS.map((c) => r[c])),
            )),
          );
        }
        return out;
      });
    }
    return raw.map((r) => rowFromDb(GRID_DATA_TABLE, r));
  }

  list(options: ListOptions<GridDataFilters>): Promise<ListResult<GridDataRow>> {
    return listRows(this.db, GRID_DATA_TABLE, options);
  }

  get(id: number): Promise<GridDataRow | undefined> {
    return getRow(this.db, GRID_DATA_TABLE, id);
  }

  async latest(dataType?: string): Promise<GridDataRow[]> {
    if (dataType === undefined) return latestPerGroup(this.db, GRID_DATA_TABLE, ['data_type'], 'timestamp');
    if (dataType.includes('\u0000')) return [];
    const raw = await this.db.query<Record<string, unknown>>(
      `SELECT ${selectList(GRID_DATA_TABLE)} FROM grid_data WHERE data_type = $1
       ORDER BY timestamp DESC, id DESC LIMIT 1`,
      [dataType],
    );
    return raw.map((r) => rowFromDb(GRID_DATA_TABLE, r));
  }

  async recent(dataType: string, hours: number, limit: number, now = this.clock.now()): Promise<GridDataRow[]> {
    if (dataType.includes('\u0000')) return [];
    const raw = await this.db.query<Record<string, unknown>>(
      `SELECT ${selectList(GRID_DATA_TABLE)} FROM grid_data WHERE data_type = $1 AND timestamp >= $2
       ORDER BY timestamp DESC, id DESC LIMIT $3`,
      [dataType, toIsoMs(now - hours * 3_600_000), limit],
    );
    return raw.map((r) => rowFromDb(GRID_DATA_TABLE, r));
  }

  deleteOlderThan(cutoffIso: string, batchSize = DEFAULT_DELETE_BATCH): Promise<number> {
    return deleteOlderThan(this.db, GRID_DATA_TABLE, 'timestamp', cutoffIso, batchSize);
  }
}

export function createGridDataRepository(db: SqlDatabase, clock: { now(): number } = { now: () => Date.now() }): GridDataRepository {
  return new SqlGridDataRepository(db, clock);
}
