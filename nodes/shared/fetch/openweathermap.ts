/**
 * OpenWeatherMap API 2.5: current weather and the 5 day / 3 hour forecast, strict checks of what
 * comes back, and the grid data rows built from it (CONTRACT section 4, "Weather rows").
 * https://openweathermap.org/current, https://openweathermap.org/forecast5
 */
import { FetchError, kindOfStatus, sanitize } from './errors';
import type { ApiClient } from './http-client';
import type { FetchResult, RequestOptions } from './electricitymaps';
import { isoFromUnixSeconds, optionalNumber, optionalString, requireNumber, requireObject, isObject, type GridRow } from './rows';

export const OPENWEATHER_DEFAULT_BASE_URL = 'https://api.openweathermap.org';
export const WEATHER_UNIT = 'celsius';
const API = 'OpenWeatherMap';

/**
 * OpenWeatherMap puts a status in the body as `cod`, a number in `weather` and a string in
 * `forecast` ('200'); a body whose `cod` is not 200 is an error whatever the HTTP status said.
 */
export function checkCod(body: Record<string, unknown>, secrets: readonly (string | undefined)[] = []): void {
  if (body.cod === undefined) return;
  const cod = typeof body.cod === 'string' ? Number(body.cod.trim()) : body.cod;
  if (cod === 200) return;
  if (typeof cod !== 'number' || !Number.isInteger(cod)) {
    throw new FetchError('invalid_response', `${API}: cod is not a status code`);
  }
  const said = typeof body.message === 'string' ? `: ${body.message}` : '';
  const kind = cod >= 400 && cod < 600 ? kindOfStatus(cod) : 'invalid_response';
  throw new FetchError(kind, sanitize(`${API}: error ${cod}${said}`, secrets), cod);
}

/** The values of one weather sample (current weather or a forecast entry). */
export interface WeatherSample {
  temp: number;
  /** ISO UTC ms, from `dt`. */
  time: string;
  humidity: number | null;
  pressure: number | null;
  cloudCover: number | null;
  windSpeed: number | null;
  condition: string | null;
  description: string | null;
}

function parseSample(raw: unknown, field: string): WeatherSample {
  const o = requireObject(raw, field, API);
  const main = requireObject(o.main, `${field}.main`, API);
  const weather = Array.isArray(o.weather) && isObject(o.weather[0]) ? o.weather[0] : {};
  const wind = isObject(o.wind) ? o.wind : {};
  const clouds = isObject(o.clouds) ? o.clouds : {};
  return {
    temp: requireNumber(main.temp, `${field}.main.temp`, API),
    time: isoFromUnixSeconds(o.dt, `${field}.dt`, API),
    humidity: optionalNumber(main.humidity, `${field}.main.humidity`, API),
    pressure: optionalNumber(main.pressure, `${field}.main.pressure`, API),
    cloudCover: optionalNumber(clouds.all, `${field}.clouds.all`, API),
    windSpeed: optionalNumber(wind.speed, `${field}.wind.speed`, API),
    condition: optionalString(weather.main),
    description: optionalString(weather.description),
  };
}

/** `data/2.5/weather` body → checked values; a wrong shape is an `invalid_response` error. */
export function parseCurrentWeather(body: unknown, secrets: readonly (string | undefined)[] = []): WeatherSample {
  const o = requireObject(body, 'response', API);
  checkCod(o, secrets);
  return parseSample(o, 'response');
}

/** `data/2.5/forecast` body → checked samples, oldest first. */
export function parseWeatherForecast(body: unknown, secrets: readonly (string | undefined)[] = []): WeatherSample[] {
  const o = requireObject(body, 'response', API);
  checkCod(o, secrets);
  if (!Array.isArray(o.list)) throw new FetchError('invalid_response', `${API}: list is not an array`);
  return o.list.map((e, i) => parseSample(e, `list[${i}]`)).sort((a, b) => a.time.localeCompare(b.time));
}

function weatherRow(dataType: 'weather' | 'weather_forecast', s: WeatherSample, zone: string, fetchedAt: string): GridRow {
  return {
    data_type: dataType,
    value: s.temp,
    unit: WEATHER_UNIT,
    zone,
    timestamp: s.time,
    metadata: {
      humidity: s.humidity,
      cloud_cover: s.cloudCover,
      weather_condition: s.condition,
      description: s.description,
      wind_speed: s.windSpeed,
      pressure: s.pressure,
      fetched_at: fetchedAt,
      source: 'openweathermap',
    },
  };
}

/** The `weather` row: the temperature at the API's `dt`. */
export function buildWeatherRow(s: WeatherSample, zone: string, fetchedAt: string): GridRow {
  return weatherRow('weather', s, zone, fetchedAt);
}

/** One `weather_forecast` row per forecast entry. */
export function buildWeatherForecastRows(samples: WeatherSample[], zone: string, fetchedAt: string): GridRow[] {
  return samples.map((s) => weatherRow('weather_forecast', s, zone, fetchedAt));
}

export class OpenWeatherApi {
  constructor(
    private readonly client: ApiClient,
    private readonly apiKey: string,
  ) {}

  private get(path: string, lat: number, lon: number, o: RequestOptions): Promise<unknown> {
    return this.client.getJson(path, {
      query: { lat, lon, appid: this.apiKey, units: 'metric' },
      signal: o.signal,
      timeoutMs: o.timeoutMs,
    });
  }

  async current(lat: number, lon: number, o: RequestOptions = {}): Promise<WeatherSample> {
    return parseCurrentWeather(await this.get('/data/2.5/weather', lat, lon, o), [this.apiKey]);
  }

  async forecast(lat: number, lon: number, o: RequestOptions = {}): Promise<WeatherSample[]> {
    return parseWeatherForecast(await this.get('/data/2.5/forecast', lat, lon, o), [this.apiKey]);
  }
}

export interface WeatherFetchOptions extends RequestOptions {
  lat: number;
  lon: number;
  zone: string;
  mode: 'current' | 'forecast';
  fetchedAt: string;
}

/** One weather fetch: the current weather (one row) or the forecast (one row per entry). */
export async function fetchWeather(api: OpenWeatherApi, o: WeatherFetchOptions): Promise<FetchResult> {
  const req = { signal: o.signal, timeoutMs: o.timeoutMs };
  if (o.mode === 'forecast') {
    const samples = await api.forecast(o.lat, o.lon, req);
    return { rows: buildWeatherForecastRows(samples, o.zone, o.fetchedAt), headline: samples[0]?.temp ?? null, notes: [] };
  }
  const sample = await api.current(o.lat, o.lon, req);
  return { rows: [buildWeatherRow(sample, o.zone, o.fetchedAt)], headline: sample.temp, notes: [] };
}
