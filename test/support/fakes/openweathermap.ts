/**
 * A local fake of the OpenWeatherMap API 2.5 (data/2.5/weather and data/2.5/forecast), answering
 * like the real one: the key in `appid`, `lat`/`lon` required, `units` honoured (Kelvin without
 * it), errors as `{"cod": ..., "message": "..."}` with the real status codes and texts.
 */
import { FakeApiServer, type FakeResponse, type RecordedRequest, type ScenarioOptions } from './fake-server';

export const OWM_TEST_KEY = 'owm-test-key-0c9d2e4f61';
export const OWM_401_MESSAGE = 'Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.';

export interface FakeOpenWeatherMapOptions {
  apiKey?: string;
  now?: () => number;
}

export class FakeOpenWeatherMap extends FakeApiServer {
  readonly apiKey: string;
  now: () => number;
  /** Temperature in °C the fake reports (converted when `units` is not metric). */
  temp = 21.3;
  humidity = 64;
  pressure = 1012;
  windSpeed = 3.6;
  cloudCover = 40;
  condition = 'Clouds';
  description = 'scattered clouds';
  /** The observation is this many seconds older than `now` (the API's `dt` is not the fetch time). */
  observationAgeSeconds = 120;

  constructor(opts: FakeOpenWeatherMapOptions = {}) {
    super();
    this.apiKey = opts.apiKey ?? OWM_TEST_KEY;
    this.now = opts.now ?? Date.now;
  }

  static start(opts?: FakeOpenWeatherMapOptions): Promise<FakeOpenWeatherMap> {
    return new FakeOpenWeatherMap(opts).start();
  }

  /** The `dt` of the current observation (unix seconds). */
  observationDt(): number {
    return Math.floor(this.now() / 1000) - this.observationAgeSeconds;
  }

  private temperature(celsius: number, units: string | undefined): number {
    if (units === 'metric') return celsius;
    if (units === 'imperial') return Math.round(((celsius * 9) / 5 + 32) * 100) / 100;
    return Math.round((celsius + 273.15) * 100) / 100;
  }

  private sample(dt: number, celsius: number, units: string | undefined) {
    return {
      dt,
      main: {
        temp: this.temperature(celsius, units),
        feels_like: this.temperature(celsius - 0.4, units),
        temp_min: this.temperature(celsius - 1, units),
        temp_max: this.temperature(celsius + 1, units),
        pressure: this.pressure,
        humidity: this.humidity,
        sea_level: this.pressure,
        grnd_level: this.pressure - 100,
      },
      weather: [{ id: 802, main: this.condition, description: this.description, icon: '03d' }],
      clouds: { all: this.cloudCover },
      wind: { speed: this.windSpeed, deg: 250, gust: this.windSpeed + 1.2 },
      visibility: 10000,
    };
  }

  protected answer(req: RecordedRequest): FakeResponse {
    const q = req.query;
    if (req.path !== '/data/2.5/weather' && req.path !== '/data/2.5/forecast') {
      return { status: 404, body: { cod: '404', message: 'Internal error' } };
    }
    if (q.appid !== this.apiKey) return this.errorAnswer(req, 401, {});
    if (q.lat === undefined || q.lon === undefined) return { status: 400, body: { cod: '400', message: 'Nothing to geocode' } };
    const lat = Number(q.lat);
    const lon = Number(q.lon);
    if (!Number.isFinite(lat) || lat < -90 || lat > 90) return { status: 400, body: { cod: '400', message: 'wrong latitude' } };
    if (!Number.isFinite(lon) || lon < -180 || lon > 180) return { status: 400, body: { cod: '400', message: 'wrong longitude' } };
    const coord = { lon, lat };
    if (req.path === '/data/2.5/weather') {
      return {
        status: 200,
        body: {
          coord,
          ...this.sample(this.observationDt(), this.temp, q.units),
          base: 'stations',
          sys: { type: 2, id: 2017753, country: 'IN', sunrise: this.observationDt() - 20000, sunset: this.observationDt() + 20000 },
          timezone: 19800,
          id: 1277333,
          name: 'Bengaluru',
          cod: 200,
        },
      };
    }
    // Forecast: 40 entries, every 3 hours from the next 3-hour boundary; `cod` is a string here.
    const step = 3 * 3600;
    const first = Math.ceil(Math.floor(this.now() / 1000) / step) * step;
    return {
      status: 200,
      body: {
        cod: '200',
        message: 0,
        cnt: 40,
        list: Array.from({ length: 40 }, (_, i) => ({
          ...this.sample(first + i * step, this.temp + (i % 8) - 4, q.units),
          pop: 0.2,
          sys: { pod: 'd' },
          dt_txt: new Date((first + i * step) * 1000).toISOString().replace('T', ' ').slice(0, 19),
        })),
        city: { id: 1277333, name: 'Bengaluru', coord, country: 'IN', population: 5104047, timezone: 19800 },
      },
    };
  }

  protected errorAnswer(_req: RecordedRequest, status: number, opts: ScenarioOptions): FakeResponse {
    switch (status) {
      case 401:
        return { status, body: { cod: 401, message: OWM_401_MESSAGE } };
      case 404:
        return { status, body: { cod: '404', message: 'city not found' } };
      case 429:
        return {
          status,
          headers: { 'retry-after': String(opts.retryAfter ?? 1) },
          body: {
            cod: 429,
            message:
              'Your account is temporary blocked due to exceeding of requests limitation of your subscription type. Please choose the proper subscription https://openweathermap.org/price',
          },
        };
      case 503:
        return { status, headers: { 'content-type': 'text/html' }, body: '<html><body><h1>503 Service Unavailable</h1></body></html>' };
      default:
        return { status, body: { cod: String(status), message: status >= 500 ? 'Internal error' : 'Bad request' } };
    }
  }

  protected malformedAnswer(req: RecordedRequest): FakeResponse {
    if (req.path === '/data/2.5/forecast') {
      return { status: 200, body: { cod: '200', message: 0, cnt: 1, list: [{ dt: 'tomorrow', main: { temp: 20 } }] } };
    }
    // A non-numeric temperature: a row must not be made from this.
    return { status: 200, body: { coord: { lon: 0, lat: 0 }, weather: [], main: { temp: 'warm', humidity: 50 }, dt: this.observationDt(), cod: 200 } };
  }
}
