/**
 * carbon-fetch: grid carbon intensity from Electricity Maps, on a schedule and on demand, as
 * grid data rows for `cold-store` (write-grid-data). Node-RED glue only; the logic is in
 * nodes/shared/fetch.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { systemClock } from '../shared/clock';
import type { AccountConfigNode } from '../shared/fetch/account';
import { completeFetch, FetchController, TargetedFetches, type StatusView } from '../shared/fetch/controller';
import { ElectricityMapsApi, fetchCarbon, type CarbonFetchResult, type CarbonFetchState } from '../shared/fetch/electricitymaps';
import { FetchError } from '../shared/fetch/errors';
import { fetchMetricsFor, removeFetchMetrics } from '../shared/fetch/metrics';
import * as s from '../shared/fetch/settings';
import { systemTimers } from '../shared/timers';

interface CarbonFetchDef extends NodeDef {
  account: string;
  zone: string;
  /** TypedInput type of `zone`: `str` (also when missing, as in flows before it existed), `env` or `msg`. */
  zoneType?: string;
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
    const zoneType = s.settingType(config.zoneType);
    // A zone from the msg has no value until a msg comes: the node then fetches only on input.
    const zoneFromMsg = zoneType === 'msg';
    let settings = { zone: s.DEFAULT_ZONE, mode: 'latest' as 'latest' | 'forecast', intervalMs: 0, selfScheduled: true, timeoutMs: 0, retryBaseMs: 0, backfill: true };
    try {
      settings = {
        zone: zoneFromMsg ? s.DEFAULT_ZONE : s.zoneSetting(zoneType === 'env' ? RED.util.evaluateNodeProperty(config.zone, 'env', node, {}) : config.zone),
        mode: s.choiceSetting(config.mode, ['latest', 'forecast'] as const, 'mode'),
        intervalMs: s.intervalMsSetting(config.intervalMinutes),
        selfScheduled: s.choiceSetting(config.schedule, ['self', 'input'] as const, 'schedule') === 'self' && !zoneFromMsg,
        timeoutMs: s.timeoutMsSetting(config.timeoutSeconds),
        retryBaseMs: s.retryBaseMsSetting(config.retrySeconds),
        backfill: s.booleanSetting(config.backfill, true),
      };
    } catch (err) {
      blocked = err as FetchError;
    }
    blocked ??= account ? account.problem() : new FetchError('no_key', 'no Electricity Maps account selected');
    const dataType = settings.mode === 'forecast' ? 'carbon_forecast' : 'carbon_intensity';
    /** The zone the next fetch asks for (changes per msg when it comes from the msg). */
    let zone = settings.zone;
    /** The zone of the fetch that ran last: a msg that joined a fetch of another zone fetches again. */
    let fetchedZone: string | undefined;

    const controller = new FetchController<CarbonFetchResult>({
      blocked,
      run: async (signal) => {
        const api = new ElectricityMapsApi(account!.client(), account!.apiKey!);
        fetchedZone = zone;
        // Zones from msgs each keep their own newest row (else every change of zone backfills).
        const stateKey = zoneFromMsg ? `${STATE_KEY}:${fetchedZone}` : STATE_KEY;
        const result = await fetchCarbon(api, {
          ...settings,
          zone: fetchedZone,
          state: node.context().get(stateKey) as CarbonFetchState | undefined,
          fetchedAt: new Date(systemClock.now()).toISOString(),
          signal,
        });
        if (result.state) node.context().set(stateKey, result.state);
        return result;
      },
      intervalMs: settings.intervalMs,
      selfScheduled: settings.selfScheduled,
      retryBaseMs: settings.retryBaseMs,
      clock: systemClock,
      timers: systemTimers,
      metrics: fetchMetricsFor(node.id, { source: 'electricitymaps', data_type: dataType, zone: zoneFromMsg ? `msg.${config.zone}` : settings.zone }),
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

    const targeted = new TargetedFetches<string>(controller, (z) => (zone = z), (z) => fetchedZone === z);

    node.on('input', (msg, _send, done) => {
      if (!zoneFromMsg || blocked) {
        void controller.trigger().then(completeFetch(done));
        return;
      }
      let wanted: string;
      try {
        let value: unknown;
        try {
          value = RED.util.evaluateNodeProperty(config.zone, 'msg', node, msg);
        } catch {
          value = undefined; // a missing parent (msg.grid.zone without msg.grid)
        }
        wanted = msgZone(value, config.zone);
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

  RED.nodes.registerType('carbon-fetch', CarbonFetchNode);
};


/** The zone a msg names (in `msg.<property>`); missing or malformed is a `config` error of that msg. */
function msgZone(value: unknown, property: string): string {
  const text = typeof value === 'string' ? value.trim() : '';
  if (text === '') throw new FetchError('config', `msg.${property} must be a zone key like IN-KA`);
  return s.zoneSetting(text);
}
