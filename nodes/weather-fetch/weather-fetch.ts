/**
 * weather-fetch: current weather or forecast from OpenWeatherMap, on a schedule and on demand,
 * as grid data rows for `cold-store` (write-grid-data). Node-RED glue only; the logic is in
 * nodes/shared/fetch.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { systemClock } from '../shared/clock';
import type { AccountConfigNode } from '../shared/fetch/account';
import { FetchController, type FetchJobResult, type StatusView } from '../shared/fetch/controller';
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
    let settings = { lat: s.DEFAULT_LAT, lon: s.DEFAULT_LON, zone: s.DEFAULT_ZONE, mode: 'current' as 'current' | 'forecast', intervalMs: 0, selfScheduled: true, timeoutMs: 0, retryBaseMs: 0 };
    try {
      settings = {
        lat: s.latitudeSetting(config.lat),
        lon: s.longitudeSetting(config.lon),
        zone: s.zoneSetting(config.zone),
        mode: s.choiceSetting(config.mode, ['current', 'forecast'] as const, 'mode'),
        intervalMs: s.intervalMsSetting(config.intervalMinutes),
        selfScheduled: s.choiceSetting(config.schedule, ['self', 'input'] as const, 'schedule') === 'self',
        timeoutMs: s.timeoutMsSetting(config.timeoutSeconds),
        retryBaseMs: s.retryBaseMsSetting(config.retrySeconds),
      };
    } catch (err) {
      blocked = err as FetchError;
    }
    blocked ??= account ? account.problem() : new FetchError('no_key', 'no OpenWeatherMap account selected');
    const dataType = settings.mode === 'forecast' ? 'weather_forecast' : 'weather';

    const controller = new FetchController<FetchJobResult>({
      blocked,
      run: (signal) =>
        fetchWeather(new OpenWeatherApi(account!.client(), account!.apiKey!), {
          ...settings,
          fetchedAt: new Date(systemClock.now()).toISOString(),
          signal,
        }),
      intervalMs: settings.intervalMs,
      selfScheduled: settings.selfScheduled,
      retryBaseMs: settings.retryBaseMs,
      clock: systemClock,
      timers: systemTimers,
      metrics: fetchMetricsFor(node.id, { source: 'openweathermap', data_type: dataType, zone: settings.zone }),
      okKey: settings.mode === 'forecast' ? 'ok-forecast' : 'ok',
      formatValue: (v) => v.toFixed(1),
      send: (result) => {
        node.send({ topic: dataType, payload: settings.mode === 'current' ? result.rows[0] : result.rows });
      },
      setStatus: (view: StatusView) =>
        node.status({ fill: view.fill, shape: view.shape, text: RED._(`weather-fetch.status.${view.key}`, view.params) }),
      warn: (message) => node.warn(message),
    });

    node.on('input', (_msg, _send, done) => {
      void controller.trigger().then((outcome) => {
        // A close aborts the fetch: that is no failure of the msg.
        if (outcome.ok || outcome.error.kind === 'aborted') done();
        else done(outcome.error);
      });
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
