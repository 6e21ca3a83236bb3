/**
 * Electricity Maps API v3: the calls we make, strict checks of what comes back, and the grid
 * data rows built from it (CONTRACT section 4, "Carbon intensity rows").
 * https://docs.electricitymaps.com/ (endpoints carbon-intensity/latest, /history, /forecast,
 * power-breakdown/latest; header `auth-token`).
 */
import { FetchError } from './errors';
import type { ApiClient } from './http-client';
import {
  isObject,
  isoFromApi,
  optionalBoolean,
  optionalNumber,
  optionalString,
  requireNumber,
  requireObject,
  type GridRow,
} from './rows';

export const ELECTRICITY_MAPS_DEFAULT_BASE_URL = 'https://api.electricitymap.org';
export const CARBON_UNIT = 'gCO2eq/kWh';
const API = 'Electricity Maps';
const HOUR_MS = 3_600_000;

export interface CarbonPoint {
  carbonIntensity: number;
  /** ISO UTC ms. */
  datetime: string;
  isEstimated: boolean | null;
  estimationMethod: string | null;
  emissionFactorType: string | null;
}

export interface CarbonLatest extends CarbonPoint {
  zone: string | null;
  updatedAt: string | null;
}

export interface PowerBreakdown {
  fossilFreePercentage: number | null;
  renewablePercentage: number | null;
}

export interface CarbonForecast {
  points: { carbonIntensity: number; datetime: string }[];
  updatedAt: string | null;
}

function parsePoint(raw: unknown, field: string): CarbonPoint {
  const o = requireObject(raw, field, API);
  return {
    carbonIntensity: requireNumber(o.carbonIntensity, `${field}.carbonIntensity`, API),
    datetime: isoFromApi(o.datetime, `${field}.datetime`, API),
    isEstimated: optionalBoolean(o.isEstimated, `${field}.isEstimated`, API),
    estimationMethod: optionalString(o.estimationMethod),
    emissionFactorType: optionalString(o.emissionFactorType),
  };
}

function optionalIso(value: unknown, field: string): string | null {
  return value === undefined || value === null ? null : isoFromApi(value, field, API);
}

/** `carbon-intensity/latest` body → checked values; a wrong shape is an `invalid_response` error. */
export function parseCarbonLatest(body: unknown): CarbonLatest {
  const o = requireObject(body, 'response', API);
  return {
    ...parsePoint(o, 'response'),
    zone: optionalString(o.zone),
    updatedAt: optionalIso(o.updatedAt, 'updatedAt'),
  };
}

/** `power-breakdown/latest` body → the two percentages (each null when absent). */
export function parsePowerBreakdown(body: unknown): PowerBreakdown {
  const o = requireObject(body, 'response', API);
  const pct = (v: unknown, f: string) => {
    const n = optionalNumber(v, f, API);
    if (n !== null && (n < 0 || n > 100)) throw new FetchError('invalid_response', `${API}: ${f} is not a percentage`);
    return n;
  };
  return {
    fossilFreePercentage: pct(o.fossilFreePercentage, 'fossilFreePercentage'),
    renewablePercentage: pct(o.renewablePercentage, 'renewablePercentage'),
  };
}

/**
 * `carbon-intensity/history` body → the hourly points, oldest first. Hours the API has no value
 * for (`carbonIntensity: null`) are left out: a gap, never a made-up value.
 */
export function parseCarbonHistory(body: unknown): CarbonPoint[] {
  const o = requireObject(body, 'response', API);
  if (!Array.isArray(o.history)) throw new FetchError('invalid_response', `${API}: history is not an array`);
  const points: CarbonPoint[] = [];
  o.history.forEach((entry, i) => {
    if (isObject(entry) && entry.carbonIntensity === null) return;
    points.push(parsePoint(entry, `history[${i}]`));
  });
  return points.sort((a, b) => a.datetime.localeCompare(b.datetime));
}

/** `carbon-intensity/forecast` body → the forecast points, oldest first. */
export function parseCarbonForecast(body: unknown): CarbonForecast {
  const o = requireObject(body, 'response', API);
  if (!Array.isArray(o.forecast)) throw new FetchError('invalid_response', `${API}: forecast is not an array`);
  const points = o.forecast.map((entry, i) => {
    const e = requireObject(entry, `forecast[${i}]`, API);
    return {
      carbonIntensity: requireNumber(e.carbonIntensity, `forecast[${i}].carbonIntensity`, API),
      datetime: isoFromApi(e.datetime, `forecast[${i}].datetime`, API),
    };
  });
  points.sort((a, b) => a.datetime.localeCompare(b.datetime));
  return { points, updatedAt: optionalIso(o.updatedAt, 'updatedAt') };
}

/** The `carbon_intensity` row: value and time from the API, percentages null when unknown. */
export function buildCarbonRow(point: CarbonPoint, breakdown: PowerBreakdown | null, zone: string, fetchedAt: string): GridRow {
  return {
    data_type: 'carbon_intensity',
    value: point.carbonIntensity,
    unit: CARBON_UNIT,
    zone,
    timestamp: point.datetime,
    metadata: {
      is_estimated: point.isEstimated,
      estimation_method: point.estimationMethod,
      emission_factor_type: point.emissionFactorType,
      fossil_free_percentage: breakdown?.fossilFreePercentage ?? null,
      renewable_percentage: breakdown?.renewablePercentage ?? null,
      fetched_at: fetchedAt,
      source: 'electricitymaps',
    },
  };
}

/** One `carbon_forecast` row per forecast point. */
export function buildCarbonForecastRows(forecast: CarbonForecast, zone: string, fetchedAt: string): GridRow[] {
  return forecast.points.map((p) => ({
    data_type: 'carbon_forecast',
    value: p.carbonIntensity,
    unit: CARBON_UNIT,
    zone,
    timestamp: p.datetime,
    metadata: { forecast_updated_at: forecast.updatedAt, fetched_at: fetchedAt, source: 'electricitymaps' },
  }));
}

/**
 * Whether hours are missing between the last stored row and the newest one: on first start
 * (nothing stored) or when they are more than an hour apart.
 */
export function backfillDue(lastTimestamp: string | undefined, latestTimestamp: string): boolean {
  if (!lastTimestamp) return true;
  const last = Date.parse(lastTimestamp);
  if (!Number.isFinite(last)) return true;
  return Date.parse(latestTimestamp) - last > HOUR_MS;
}

/** The history points not yet fetched: after `lastTimestamp` (all when none) and before the latest point. */
export function selectBackfillPoints(
  history: CarbonPoint[],
  lastTimestamp: string | undefined,
  latestTimestamp: string,
): CarbonPoint[] {
  const after = lastTimestamp ? Date.parse(lastTimestamp) : -Infinity;
  const before = Date.parse(latestTimestamp);
  const seen = new Set<string>();
  return history.filter((p) => {
    const t = Date.parse(p.datetime);
    if (!(t > after && t < before) || seen.has(p.datetime)) return false;
    seen.add(p.datetime);
    return true;
  });
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** The four calls, each returning checked values. */
export class ElectricityMapsApi {
  constructor(
    private readonly client: ApiClient,
    private readonly apiKey: string,
  ) {}

  private get(path: string, zone: string, o: RequestOptions): Promise<unknown> {
    return this.client.getJson(path, {
      query: { zone },
      headers: { 'auth-token': this.apiKey },
      signal: o.signal,
      timeoutMs: o.timeoutMs,
    });
  }

  async latest(zone: string, o: RequestOptions = {}): Promise<CarbonLatest> {
    return parseCarbonLatest(await this.get('/v3/carbon-intensity/latest', zone, o));
  }

  async powerBreakdown(zone: string, o: RequestOptions = {}): Promise<PowerBreakdown> {
    return parsePowerBreakdown(await this.get('/v3/power-breakdown/latest', zone, o));
  }

  async history(zone: string, o: RequestOptions = {}): Promise<CarbonPoint[]> {
    return parseCarbonHistory(await this.get('/v3/carbon-intensity/history', zone, o));
  }

  async forecast(zone: string, o: RequestOptions = {}): Promise<CarbonForecast> {
    return parseCarbonForecast(await this.get('/v3/carbon-intensity/forecast', zone, o));
  }
}

/** What the node remembers between fetches (node context): the newest row stored, per zone. */
export interface CarbonFetchState {
  zone: string;
  lastTimestamp: string;
}

export interface CarbonFetchOptions extends RequestOptions {
  zone: string;
  mode: 'latest' | 'forecast';
  backfill: boolean;
  state?: CarbonFetchState;
  /** The time of this fetch, ISO (`fetched_at`). */
  fetchedAt: string;
}

export interface FetchResult {
  /** Rows for the output, oldest first; the newest value last. */
  rows: GridRow[];
  /** The value to show on the status (latest value or first forecast point). */
  headline: number | null;
  /** Non-fatal problems (power-breakdown or history failed), for the log. */
  notes: string[];
}

export interface CarbonFetchResult extends FetchResult {
  /** The state to keep for the next fetch (unchanged when the backfill could not be done). */
  state?: CarbonFetchState;
}

function rethrowAbort(err: unknown): void {
  if (err instanceof FetchError && err.kind === 'aborted') throw err;
}

/**
 * One carbon fetch. Latest mode: `carbon-intensity/latest` (its failure fails the fetch), then
 * `power-breakdown/latest` (its failure only leaves the percentages null), then, when hours are
 * missing and backfill is on, `carbon-intensity/history` for them. Forecast mode: the forecast.
 */
export async function fetchCarbon(api: ElectricityMapsApi, o: CarbonFetchOptions): Promise<CarbonFetchResult> {
  const req = { signal: o.signal, timeoutMs: o.timeoutMs };
  if (o.mode === 'forecast') {
    const forecast = await api.forecast(o.zone, req);
    return {
      rows: buildCarbonForecastRows(forecast, o.zone, o.fetchedAt),
      headline: forecast.points[0]?.carbonIntensity ?? null,
      notes: [],
    };
  }
  const notes: string[] = [];
  // Sequential on purpose: when the key is rejected or the API is down, one request is enough.
  const latest = await api.latest(o.zone, req);
  let breakdown: PowerBreakdown | null = null;
  try {
    breakdown = await api.powerBreakdown(o.zone, req);
  } catch (err) {
    rethrowAbort(err);
    notes.push(`power-breakdown failed, percentages left null: ${(err as Error).message}`);
  }
  const latestRow = buildCarbonRow(latest, breakdown, o.zone, o.fetchedAt);
  const last = o.state && o.state.zone === o.zone ? o.state.lastTimestamp : undefined;
  // Never move the mark backwards (an API answering with an older hour than before).
  const newest = last && last > latest.datetime ? last : latest.datetime;
  let state: CarbonFetchState | undefined = { zone: o.zone, lastTimestamp: newest };
  let backfillRows: GridRow[] = [];
  if (o.backfill && backfillDue(last, latest.datetime)) {
    try {
      const history = await api.history(o.zone, req);
      backfillRows = selectBackfillPoints(history, last, latest.datetime).map((p) =>
        buildCarbonRow(p, null, o.zone, o.fetchedAt),
      );
    } catch (err) {
      rethrowAbort(err);
      notes.push(`history failed, backfill left for the next fetch: ${(err as Error).message}`);
      // Keep the old mark so the next fetch tries the missing hours again.
      state = o.state;
    }
  }
  return { rows: [...backfillRows, latestRow], headline: latest.carbonIntensity, notes, state };
}
