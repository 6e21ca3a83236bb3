/**
 * carbon-fetch: grid carbon intensity from Electricity Maps, on a schedule and on demand, as
 * grid data rows for `cold-store` (write-grid-data). Node-RED glue only; the logic is in
 * nodes/shared/fetch.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { systemClock } from '../shared/clock';
import type { AccountConfigNode } from '../shared/fetch/account';
import { FetchController, type StatusView } from '../shared/fetch/controller';
import { ElectricityMapsApi, fetchCarbon, type CarbonFetchResult, type CarbonFetchState } from '../shared/fetch/electricitymaps';
import { FetchError } from '../shared/fetch/errors';
import { fetchMetricsFor, removeFetchMetrics } from '../shared/fetch/metrics';
import * as s from '../shared/fetch/settings';
import { systemTimers } from '../shared/timers';

interface CarbonFetchDef extends NodeDef {
  account: string;
  zone: string;
  intervalMinutes: string;
  /** `self` (default): fetch on start and every interval; `input`: only on an input msg. */
  schedule?: string;
  mode: string;
  backfill: boolean | string;
  timeoutSeconds: string;
  retrySeconds: string;
}

/** Node context key of the newest row fetched (for the backfill after an outage). */
const STATE_KEY = 'carbonFetchState';

export = function (RED: NodeAPI) {
  function CarbonFetchNode(this: Node, config: CarbonFetchDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const account = (RED.nodes.getNode(config.account) as unknown as AccountConfigNode | null)?.account;
    let blocked: FetchError | undefined;
    let settings = { zone: s.DEFAULT_ZONE, mode: 'latest' as 'latest' | 'forecast', intervalMs: 0, selfScheduled: true, timeoutMs: 0, retryBaseMs: 0, backfill: true };
    try {
      settings = {
        zone: s.zoneSetting(config.zone),
        mode: s.choiceSetting(config.mode, ['latest', 'forecast'] as const, 'mode'),
        intervalMs: s.intervalMsSetting(config.intervalMinutes),
        selfScheduled: s.choiceSetting(config.schedule, ['self', 'input'] as const, 'schedule') === 'self',
        timeoutMs: s.timeoutMsSetting(config.timeoutSeconds),
        retryBaseMs: s.retryBaseMsSetting(config.retrySeconds),
        backfill: s.booleanSetting(config.backfill, true),
      };
    } catch (err) {
      blocked = err as FetchError;
    }
    blocked ??= account ? account.problem() : new FetchError('no_key', 'no Electricity Maps account selected');
    const dataType = settings.mode === 'forecast' ? 'carbon_forecast' : 'carbon_intensity';

    const controller = new FetchController<CarbonFetchResult>({
      blocked,
      run: async (signal) => {
        const api = new ElectricityMapsApi(account!.client(), account!.apiKey!);
        const result = await fetchCarbon(api, {
          ...settings,
          state: node.context().get(STATE_KEY) as CarbonFetchState | undefined,
          fetchedAt: new Date(systemClock.now()).toISOString(),
          signal,
        });
        if (result.state) node.context().set(STATE_KEY, result.state);
        return result;
      },
      intervalMs: settings.intervalMs,
      selfScheduled: settings.selfScheduled,
      retryBaseMs: settings.retryBaseMs,
      clock: systemClock,
      timers: systemTimers,
      metrics: fetchMetricsFor(node.id, { source: 'electricitymaps', data_type: dataType, zone: settings.zone }),
      okKey: settings.mode === 'forecast' ? 'ok-forecast' : 'ok',
      formatValue: (v) => String(Math.round(v)),
      send: (result) => {
        const single = settings.mode === 'latest' && result.rows.length === 1;
        node.send({ topic: dataType, payload: single ? result.rows[0] : result.rows });
      },
      setStatus: (view: StatusView) =>
        node.status({ fill: view.fill, shape: view.shape, text: RED._(`carbon-fetch.status.${view.key}`, view.params) }),
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

  RED.nodes.registerType('carbon-fetch', CarbonFetchNode);
};
