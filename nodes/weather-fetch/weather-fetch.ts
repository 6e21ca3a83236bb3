/**
 * weather-fetch: current weather or forecast from OpenWeatherMap, on a schedule and on demand,
 * as grid data rows for `cold-store` (write-grid-data). Node-RED glue only; the logic is in
 * nodes/shared/fetch.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { systemClock } from '../shared/clock';
import type { AccountConfigNode } from '../shared/fetch/account';
import { completeFetch, FetchController, TargetedFetches, type FetchJobResult, type StatusView } from '../shared/fetch/controller';
import { FetchError } from '../shared/fetch/errors';
import { fetchMetricsFor, removeFetchMetrics } from '../shared/fetch/metrics';
import { OpenWeatherApi, fetchWeather } from '../shared/fetch/openweathermap';
import * as s from '../shared/fetch/settings';
import { systemTimers } from '../shared/timers';

interface WeatherFetchDef extends NodeDef {
  account: string;
  lat: string;
  lon: string;
  zone: string;
  /** TypedInput types of lat, lon and zone: `str` (also when missing, as in older flows), `env` or `msg`. */
  latType?: string;
  lonType?: string;
  zoneType?: string;
  intervalMinutes: string;
  /** `self` (default): fetch on start and every interval; `input`: only on an input msg. */
  schedule?: string;
  mode: string;
  timeoutSeconds: string;
  retrySeconds: string;
}

export = function (RED: NodeAPI) {
  function WeatherFetchNode(this: Node, config: WeatherFetchDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const account = (RED.nodes.getNode(config.account) as unknown as AccountConfigNode | null)?.account;
    let blocked: FetchError | undefined;
    const types = { lat: s.settingType(config.latType), lon: s.settingType(config.lonType), zone: s.settingType(config.zoneType) };
    // A place from the msg has no value until a msg comes: the node then fetches only on input.
    const fromMsg = types.lat === 'msg' || types.lon === 'msg' || types.zone === 'msg';
    /** A str/env setting's value, once at start (msg ones get the default until a msg says). */
    const atStart = (name: 'lat' | 'lon' | 'zone'): unknown =>
      types[name] === 'msg' ? undefined : types[name] === 'env' ? RED.util.evaluateNodeProperty(config[name], 'env', node, {}) : config[name];
    let settings = { lat: s.DEFAULT_LAT, lon: s.DEFAULT_LON, zone: s.DEFAULT_ZONE, mode: 'current' as 'current' | 'forecast', intervalMs: 0, selfScheduled: true, timeoutMs: 0, retryBaseMs: 0 };
    try {
      settings = {
        lat: s.latitudeSetting(atStart('lat')),
        lon: s.longitudeSetting(atStart('lon')),
        zone: s.zoneSetting(atStart('zone')),
        mode: s.choiceSetting(config.mode, ['current', 'forecast'] as const, 'mode'),
        intervalMs: s.intervalMsSetting(config.intervalMinutes),
        selfScheduled: s.choiceSetting(config.schedule, ['self', 'input'] as const, 'schedule') === 'self' && !fromMsg,
        timeoutMs: s.timeoutMsSetting(config.timeoutSeconds),
        retryBaseMs: s.retryBaseMsSetting(config.retrySeconds),
      };
    } catch (err) {
      blocked = err as FetchError;
    }
    blocked ??= account ? account.problem() : new FetchError('no_key', 'no OpenWeatherMap account selected');
    const dataType = settings.mode === 'forecast' ? 'weather_forecast' : 'weather';
    /** The place the next fetch asks for (changes per msg for msg-sourced settings). */
    let place = { lat: settings.lat, lon: settings.lon, zone: settings.zone };
    /** The place of the fetch that ran last: a msg that joined a fetch of another place fetches again. */
    let fetched: typeof place | undefined;

    const controller = new FetchController<FetchJobResult>({
      blocked,
      run: (signal) => {
        fetched = place;
        return fetchWeather(new OpenWeatherApi(account!.client(), account!.apiKey!), {
          ...settings,
          ...fetched,
          fetchedAt: new Date(systemClock.now()).toISOString(),
          signal,
        });
      },
      intervalMs: settings.intervalMs,
      selfScheduled: settings.selfScheduled,
      retryBaseMs: settings.retryBaseMs,
      clock: systemClock,
      timers: systemTimers,
      metrics: fetchMetricsFor(node.id, { source: 'openweathermap', data_type: dataType, zone: types.zone === 'msg' ? `msg.${config.zone}` : settings.zone }),
      okKey: settings.mode === 'forecast' ? 'ok-forecast' : 'ok',
      formatValue: (v) => v.toFixed(1),
      send: (result) => {
        node.send({ topic: dataType, payload: settings.mode === 'current' ? result.rows[0] : result.rows });
      },
      setStatus: (view: StatusView) =>
        node.status({ fill: view.fill, shape: view.shape, text: RED._(`weather-fetch.status.${view.key}`, view.params) }),
      warn: (message) => node.warn(message),
    });

    const samePlace = (a: typeof place | undefined, b: typeof place) => a !== undefined && a.lat === b.lat && a.lon === b.lon && a.zone === b.zone;
    const targeted = new TargetedFetches<typeof place>(controller, (p) => (place = p), (p) => samePlace(fetched, p));

    node.on('input', (msg, _send, done) => {
      if (!fromMsg || blocked) {
        void controller.trigger().then(completeFetch(done));
        return;
      }
      let wanted: typeof place;
      try {
        const fromThisMsg = (name: 'lat' | 'lon' | 'zone'): unknown => {
          let value: unknown;
          try {
            value = RED.util.evaluateNodeProperty(config[name], 'msg', node, msg);
          } catch {
            value = undefined; // a missing parent (msg.place.lat without msg.place)
          }
          if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
            throw new FetchError('config', `msg.${config[name]} (${name}) is missing`);
          }
          return value;
        };
        wanted = {
          lat: types.lat === 'msg' ? s.latitudeSetting(fromThisMsg('lat')) : settings.lat,
          lon: types.lon === 'msg' ? s.longitudeSetting(fromThisMsg('lon')) : settings.lon,
          zone: types.zone === 'msg' ? s.zoneSetting(fromThisMsg('zone')) : settings.zone,
        };
      } catch (err) {
        done(err as Error);
        return;
      }
      targeted.fetch(wanted, done);
    });

    node.on('close', (removed: boolean, done: () => void) => {
      controller.stop();
      if (removed) removeFetchMetrics(node.id);
      done();
    });

    controller.start();
  }

  RED.nodes.registerType('weather-fetch', WeatherFetchNode);
};
