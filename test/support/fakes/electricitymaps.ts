/**
 * A local fake of the Electricity Maps API v3 (carbon-intensity/latest, /history, /forecast,
 * power-breakdown/latest), answering like the real one: the `auth-token` header is checked,
 * `zone` is required, errors are JSON `{"error": "..."}` with the real status codes, times are
 * whole hours in ISO 8601 UTC.
 */
import { FakeApiServer, type FakeResponse, type RecordedRequest, type ScenarioOptions } from './fake-server';

export const EM_TEST_KEY = 'em-test-key-5f3a9c1e7b';
const HOUR_MS = 3_600_000;

export interface FakeElectricityMapsOptions {
  /** The key the fake accepts; default `EM_TEST_KEY`. */
  apiKey?: string;
  /** The fake's clock (the current hour is derived from it); default `Date.now`. */
  now?: () => number;
}

export class FakeElectricityMaps extends FakeApiServer {
  readonly apiKey: string;
  now: () => number;
  /** The value `carbon-intensity/latest` reports; history and forecast vary around it. */
  carbonIntensity = 512;
  isEstimated = true;
  estimationMethod: string | null = 'TIME_SLICER_AVERAGE';
  emissionFactorType = 'lifecycle';
  fossilFreePercentage = 23;
  renewablePercentage = 21;

  constructor(opts: FakeElectricityMapsOptions = {}) {
    super();
    this.apiKey = opts.apiKey ?? EM_TEST_KEY;
    this.now = opts.now ?? Date.now;
  }

  static start(opts?: FakeElectricityMapsOptions): Promise<FakeElectricityMaps> {
    return new FakeElectricityMaps(opts).start();
  }

  /** The start of the current hour, as the API's `datetime`. */
  currentHour(): string {
    return new Date(Math.floor(this.now() / HOUR_MS) * HOUR_MS).toISOString();
  }

  /** The intensity the fake reports for an hour `offset` hours from now (0 = latest). */
  intensityAt(offset: number): number {
    return offset === 0 ? this.carbonIntensity : this.carbonIntensity + offset * 3;
  }

  private hourAt(offset: number): string {
    return new Date(Date.parse(this.currentHour()) + offset * HOUR_MS).toISOString();
  }

  protected answer(req: RecordedRequest): FakeResponse {
    if (req.headers['auth-token'] !== this.apiKey) return this.errorAnswer(req, 401, {});
    const zone = req.query.zone;
    const known = ['/v3/carbon-intensity/latest', '/v3/carbon-intensity/history', '/v3/carbon-intensity/forecast', '/v3/power-breakdown/latest'];
    if (!known.includes(req.path)) return this.errorAnswer(req, 404, {});
    if (!zone) return { status: 400, body: { error: 'Missing zone or lat/lon parameter' } };
    if (!/^[A-Z]{2}(-[A-Z0-9-]+)?$/.test(zone)) return { status: 400, body: { error: `Zone '${zone}' does not exist.` } };
    const updatedAt = new Date(this.now() - 5 * 60_000).toISOString();
    switch (req.path) {
      case '/v3/carbon-intensity/latest':
        return {
          status: 200,
          body: {
            zone,
            carbonIntensity: this.carbonIntensity,
            datetime: this.currentHour(),
            updatedAt,
            createdAt: new Date(Date.parse(this.currentHour()) - 3 * 24 * HOUR_MS).toISOString(),
            emissionFactorType: this.emissionFactorType,
            isEstimated: this.isEstimated,
            estimationMethod: this.estimationMethod,
          },
        };
      case '/v3/power-breakdown/latest':
        return {
          status: 200,
          body: {
            zone,
            datetime: this.currentHour(),
            updatedAt,
            powerConsumptionBreakdown: { coal: 3100, gas: 250, hydro: 900, solar: 420, wind: 310, nuclear: 0, biomass: 60, unknown: 40 },
            powerProductionBreakdown: { coal: 3050, gas: 240, hydro: 880, solar: 420, wind: 310, nuclear: 0, biomass: 60, unknown: 40 },
            powerImportBreakdown: {},
            powerExportBreakdown: {},
            fossilFreePercentage: this.fossilFreePercentage,
            renewablePercentage: this.renewablePercentage,
            powerConsumptionTotal: 5080,
            powerProductionTotal: 5000,
            powerImportTotal: 80,
            powerExportTotal: 0,
            isEstimated: this.isEstimated,
            estimationMethod: this.estimationMethod,
          },
        };
      case '/v3/carbon-intensity/history':
        return {
          status: 200,
          body: {
            zone,
            history: Array.from({ length: 24 }, (_, i) => {
              const offset = i - 23; // the 24 hours up to and including the current one
              return {
                zone,
                carbonIntensity: this.intensityAt(offset),
                datetime: this.hourAt(offset),
                updatedAt,
                createdAt: this.hourAt(offset - 72),
                emissionFactorType: this.emissionFactorType,
                isEstimated: offset === 0 ? this.isEstimated : false,
                estimationMethod: offset === 0 ? this.estimationMethod : null,
              };
            }),
          },
        };
      default:
        return {
          status: 200,
          body: {
            zone,
            forecast: Array.from({ length: 24 }, (_, i) => ({ carbonIntensity: this.intensityAt(i + 1), datetime: this.hourAt(i + 1) })),
            updatedAt,
          },
        };
    }
  }

  protected errorAnswer(_req: RecordedRequest, status: number, opts: ScenarioOptions): FakeResponse {
    switch (status) {
      case 401:
        return { status, body: { error: 'Invalid authentication token. Please check your API key or contact support.' } };
      case 403:
        return { status, body: { error: 'Your token does not give access to this zone or endpoint.' } };
      case 404:
        return { status, body: { error: 'Not found' } };
      case 429:
        return {
          status,
          headers: { 'retry-after': String(opts.retryAfter ?? 1) },
          body: { error: 'Too many requests: rate limit exceeded.' },
        };
      case 503:
        // What a load balancer in front of the API sends: not JSON.
        return { status, headers: { 'content-type': 'text/plain' }, body: 'Service Unavailable' };
      default:
        return { status, body: { error: status >= 500 ? 'Internal server error' : 'Bad request' } };
    }
  }

  protected malformedAnswer(req: RecordedRequest): FakeResponse {
    const zone = req.query.zone ?? 'IN-KA';
    switch (req.path) {
      case '/v3/carbon-intensity/history':
        return { status: 200, body: { zone, history: 'unavailable' } };
      case '/v3/carbon-intensity/forecast':
        return { status: 200, body: { zone, forecast: [{ carbonIntensity: 'high', datetime: this.currentHour() }] } };
      case '/v3/power-breakdown/latest':
        return { status: 200, body: { zone, fossilFreePercentage: 'many' } };
      default:
        // carbonIntensity missing: a row must not be made from this.
        return { status: 200, body: { zone, datetime: this.currentHour(), updatedAt: this.currentHour(), isEstimated: true } };
    }
  }
}
