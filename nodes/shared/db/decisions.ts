/**
 * `DecisionRepository`: the `ai_decisions` table, an audit trail: rows are inserted, listed and
 * marked applied, never otherwise changed (no update of any other column exists here).
 */
import { getRow, listRows } from './list-query';
import { insertRow, updateRow } from './row-writes';
import { paramForColumn, rowFromDb, selectList, toIsoMs } from './table';
import type { TableSpec } from './table';
import type {
  AiDecision,
  AiDecisionRow,
  DecisionFilters,
  DecisionRepository,
  ListOptions,
  ListResult,
  RecentDecisionsOptions,
  SqlDatabase,
} from './types';
import { AI_DECISION, tableColumns } from '../schema';

export const DECISIONS_TABLE: TableSpec<AiDecisionRow> = {
  table: 'ai_decisions',
  columns: tableColumns(AI_DECISION) as TableSpec<AiDecisionRow>['columns'],
  filterable: ['decision_type', 'applied'],
  orderable: ['timestamp', 'created_at', 'confidence'],
  defaultOrdering: '-timestamp',
};

class SqlDecisionRepository implements DecisionRepository {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: { now(): number },
  ) {}

  insert(input: AiDecision): Promise<AiDecisionRow> {
    if (!input || typeof input.decision_type !== 'string' || typeof input.confidence !== 'number' || !Number.isFinite(input.confidence)) {
      throw new TypeError('not a validated decision');
    }
    const decision = input.decision;
    if (decision === null || typeof decision !== 'object' || Array.isArray(decision)) throw new TypeError('decision must be an object');
    return insertRow(this.db, DECISIONS_TABLE, {
      decision_type: input.decision_type,
      decision,
      confidence: input.confidence,
      reasoning: input.reasoning ?? '',
      applied: Boolean(input.applied),
      timestamp: toIsoMs(input.timestamp ?? this.clock.now()),
      created_at: toIsoMs(this.clock.now()),
    });
  }

  list(options: ListOptions<DecisionFilters>): Promise<ListResult<AiDecisionRow>> {
    return listRows(this.db, DECISIONS_TABLE, options);
  }

  get(id: number): Promise<AiDecisionRow | undefined> {
    return getRow(this.db, DECISIONS_TABLE, id);
  }

  async recent(options: RecentDecisionsOptions): Promise<AiDecisionRow[]> {
    const now = options.now ?? this.clock.now();
    const params: unknown[] = [paramForColumn('timestamp', now - options.hours * 3_600_000, this.db.dialect)];
    let where = 'timestamp >= $1';
    if (options.decision_type !== undefined) {
      if (options.decision_type.includes('\u0000')) return [];
      params.push(options.decision_type);
      where += ' AND decision_type = $2';
    }
    params.push(options.limit);
    const raw = await this.db.query<Record<string, unknown>>(
      `SELECT ${selectList(DECISIONS_TABLE)} FROM ai_decisions WHERE ${where}
       ORDER BY timestamp DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return raw.map((r) => rowFromDb(DECISIONS_TABLE, r));
  }

  async latest(decisionType?: string): Promise<AiDecisionRow | undefined> {
    if (decisionType?.includes('\u0000')) return undefined;
    const [raw] = await this.db.query<Record<string, unknown>>(
      decisionType === undefined
        ? `SELECT ${selectList(DECISIONS_TABLE)} FROM ai_decisions ORDER BY timestamp DESC, id DESC LIMIT 1`
        : `SELECT ${selectList(DECISIONS_TABLE)} FROM ai_decisions WHERE decision_type = $1 ORDER BY timestamp DESC, id DESC LIMIT 1`,
      decisionType === undefined ? [] : [decisionType],
    );
    return raw ? rowFromDb(DECISIONS_TABLE, raw) : undefined;
  }

  async setApplied(id: number, applied: boolean): Promise<AiDecisionRow | undefined> {
    if (!Number.isSafeInteger(id) || id < 1) return undefined;
    return updateRow(this.db, DECISIONS_TABLE, 'id', id, { applied: Boolean(applied) });
  }
}

export function createDecisionRepository(db: SqlDatabase, clock: { now(): number } = { now: () => Date.now() }): DecisionRepository {
  return new SqlDecisionRepository(db, clock);
}
