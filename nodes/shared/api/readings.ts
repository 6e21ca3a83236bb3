/**
 * REST handlers for `/api/sensor-readings/` (CONTRACT section 4), pure: a repository and an
 * `ApiRequest` in, an `ApiResponse` out. A client's mistake is a 400/404 answer, never a throw;
 * a database failure is thrown for the caller to turn into a 503.
 */
import { notFound, ok } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import type { Clock } from '../clock';
import { paginatedResponse, parseListParams, parseRecentParams, QueryParamError } from '../query-params';
import type { ListParamSpec } from '../query-params';
import type { ReadingFilters, ReadingRepository, ReadingRow } from '../db';

export const READINGS_LIST_PARAMS: ListParamSpec = {
  filters: { sensor_type: 'text', sensor_id: 'text', location: 'text' },
  ordering: ['timestamp', 'created_at'],
  defaultOrdering: '-timestamp',
};

const RECENT_FILTERS = { sensor_type: 'text', sensor_id: 'text' } as const;
/** The contract's example is `?hours=1`; without it, the last hour. */
export const DEFAULT_RECENT_HOURS = 1;

/** Exactly the contract's fields, in its order. */
export function readingJson(row: ReadingRow): ReadingRow {
  return {
    id: row.id,
    sensor_type: row.sensor_type,
    sensor_id: row.sensor_id,
    value: row.value,
    unit: row.unit,
    location: row.location,
    timestamp: row.timestamp,
    created_at: row.created_at,
  };
}

async function answering(fn: () => Promise<ApiResponse>): Promise<ApiResponse> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof QueryParamError) return err.response;
    throw err;
  }
}

function nowOf(clock?: Clock | number): number {
  if (typeof clock === 'number') return clock;
  return clock ? clock.now() : Date.now();
}

/** `GET /api/sensor-readings/`: paginated; filters sensor_type, sensor_id, location; ordering timestamp, created_at. */
export function listReadings(repo: ReadingRepository, req: ApiRequest, _clock?: Clock | number): Promise<ApiResponse> {
  return answering(async () => {
    const p = parseListParams(req.query, READINGS_LIST_PARAMS);
    const result = await repo.list({
      filters: p.filters as ReadingFilters,
      ordering: p.ordering,
      page: p.page,
      pageSize: p.pageSize,
    });
    // The repository's rows are already exactly the contract's fields in its order (rowFromDb
    // builds them from READINGS_TABLE): no second copy of every row.
    return paginatedResponse(req, p.page, result);
  });
}

/** Route parameter → a positive id, or undefined (then 404: Django's `<int:pk>` would not route it). */
export function parseId(raw: unknown): number | undefined {
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) return undefined;
  const id = Number(raw);
  return Number.isSafeInteger(id) && id >= 1 ? id : undefined;
}

/** `GET /api/sensor-readings/{id}/` */
export function getReading(repo: ReadingRepository, req: ApiRequest, _clock?: Clock | number): Promise<ApiResponse> {
  return answering(async () => {
    const id = parseId(req.params?.id);
    if (id === undefined) return notFound();
    const row = await repo.get(id);
    return row ? ok(readingJson(row)) : notFound();
  });
}

/** `GET /api/sensor-readings/latest/`: the newest reading of each (sensor_type, sensor_id), as an array. */
export function latestReadings(repo: ReadingRepository, _req: ApiRequest, _clock?: Clock | number): Promise<ApiResponse> {
  return answering(async () => ok(await repo.latest()));
}

/** `GET /api/sensor-readings/recent/?hours=1&limit=&sensor_type=&sensor_id=`: newest first, a plain array. */
export function recentReadings(repo: ReadingRepository, req: ApiRequest, clock?: Clock | number): Promise<ApiResponse> {
  return answering(async () => {
    const p = parseRecentParams(req.query, RECENT_FILTERS, DEFAULT_RECENT_HOURS);
    const options = {
      hours: p.hours,
      limit: p.limit,
      sensor_type: p.filters.sensor_type as string | undefined,
      sensor_id: p.filters.sensor_id as string | undefined,
      now: nowOf(clock),
    };
    // A caller that sends JSON bytes gets the text the database built (see recentJson).
    return ok(req.jsonText ? await repo.recentJson(options) : await repo.recent(options));
  });
}
