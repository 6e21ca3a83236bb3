/**
 * REST handlers for `/api/grid-data/` (CONTRACT section 4). Grid data is written by the fetch
 * nodes only: over REST it is read-only.
 */
import { ok } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { paginatedResponse, parseFilters, parseListParams, parseRecentParams } from '../query-params';
import type { ListParamSpec } from '../query-params';
import type { Database, GridDataFilters, GridDataRow } from '../db/types';
import { GRID_DATA, rowJson } from '../schema';
import { answering } from './common';
import type { ApiContext } from './common';

export const GRID_DATA_LIST_PARAMS: ListParamSpec = {
  filters: { data_type: 'text', zone: 'text' },
  ordering: ['timestamp', 'created_at'],
  defaultOrdering: '-timestamp',
};

/** `?hours=` default of the carbon_intensity and weather endpoints. */
export const DEFAULT_GRID_HOURS = 24;

export const gridDataJson = (row: GridDataRow): GridDataRow => rowJson<GridDataRow>(GRID_DATA, row);

/** `GET /api/grid-data/`: paginated; filters data_type, zone; ordering timestamp, created_at. */
export function listGridData(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const p = parseListParams(req.query, GRID_DATA_LIST_PARAMS);
    const result = await db.gridData.list({ filters: p.filters as GridDataFilters, ordering: p.ordering, page: p.page, pageSize: p.pageSize });
    return paginatedResponse(req, p.page, { ...result, rows: result.rows.map(gridDataJson) });
  });
}

/** `GET /api/grid-data/latest/?data_type=`: the newest row of each data_type, as an array. */
export function latestGridData(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const { data_type } = parseFilters(req.query, { data_type: 'text' });
    return ok((await db.gridData.latest(data_type as string | undefined)).map(gridDataJson));
  });
}

/** `GET /api/grid-data/{carbon_intensity|weather}/?hours=24&limit=`: newest first, a plain array. */
export function recentGridData(dataType: string) {
  return (db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> =>
    answering(async () => {
      const p = parseRecentParams(req.query, {}, DEFAULT_GRID_HOURS);
      return ok((await db.gridData.recent(dataType, p.hours, p.limit, ctx.now)).map(gridDataJson));
    });
}
