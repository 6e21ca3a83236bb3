import assert from 'assert/strict';
import { spawn, type ChildProcess } from 'child_process';
import mqtt from 'mqtt';
import path from 'path';
import { APPLIANCES, House, SENSOR_TYPES, type SensorType } from '../../app/simulator/house';
import { HELP, parseOptions, type SimOptions } from '../../app/simulator/options';
import { hashString, parseSeed, smoothNoise, uniform } from '../../app/simulator/random';
import { BAD_KINDS, encodeMessage, makeStreams, readingAt, type SimReading } from '../../app/simulator/readings';
import { Simulator, type Publish } from '../../app/simulator/runner';
import { validatePayload } from '../../nodes/sensor-validate/validate';
import { ManualClock } from '../../nodes/shared/clock';
import { requireService, MQTT_BROKER_URL, TOPIC_PREFIX } from '../support/services';

const MINUTE = 60000;
const HOUR = 3600000;
const DAY = 86400000;
/** Midnight UTC of a day well inside the range any validator accepts. */
const DAY0 = Date.parse('2026-01-26T00:00:00Z');
const LOCATIONS = ['living_room', 'kitchen', 'garage'];
const SIMULATE_JS = path.resolve(__dirname, '../../app/simulate.js');

function house(seed = 1, utcOffsetMinutes = 0): House {
  return new House({ seed, utcOffsetMinutes, energyEpoch: DAY0 });
}

function validateAt(text: string, topic: string, now: number) {
  return validatePayload(Buffer.from(text), topic, { retentionDays: 7, clock: new ManualClock(now) });
}

function baseOptions(over: Partial<SimOptions> = {}): SimOptions {
  return {
    url: 'mqtt://127.0.0.1:1883',
    prefix: 'HyperVolt',
    locations: ['living_room', 'kitchen'],
    sensors: [...SENSOR_TYPES],
    rate: 1000,
    batch: 1,
    seed: 7,
    qos: 1,
    maxInflight: 1000,
    reportSeconds: 0,
    utcOffsetMinutes: 0,
    clientId: 'test-sim',
    ...over,
  };
}

function correlation(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

describe('simulator', function () {
  describe('random', function () {
    it('is a pure function of seed, key and counter, uniform in [0, 1)', function () {
      assert.equal(uniform(1, 2, 3), uniform(1, 2, 3));
      assert.notEqual(uniform(1, 2, 3), uniform(2, 2, 3));
      assert.notEqual(uniform(1, 2, 3), uniform(1, 3, 3));
      assert.notEqual(uniform(1, 2, DAY0), uniform(1, 2, DAY0 + 1));
      // Timestamps differing only above 32 bits still differ.
      assert.notEqual(uniform(1, 2, 5), uniform(1, 2, 5 + 2 ** 32));
      let sum = 0;
      const buckets = new Array(10).fill(0);
      for (let i = 0; i < 20000; i++) {
        const u = uniform(9, hashString('x'), i);
        assert.ok(u >= 0 && u < 1);
        sum += u;
        buckets[Math.floor(u * 10)]++;
      }
      assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01, `mean ${sum / 20000}`);
      for (const b of buckets) assert.ok(b > 1800 && b < 2200, `bucket ${b}`);
    });

    it('smooth noise moves little between close points', function () {
      for (let x = 0; x < 50; x += 0.01) {
        assert.ok(Math.abs(smoothNoise(3, 4, x + 0.01) - smoothNoise(3, 4, x)) < 0.03);
      }
    });

    it('takes integer seeds as they are and hashes other text', function () {
      assert.equal(parseSeed('42'), 42);
      assert.equal(parseSeed('demo'), parseSeed('demo'));
      assert.notEqual(parseSeed('demo'), parseSeed('demo2'));
    });
  });

  describe('house', function () {
    it('is deterministic for a seed and differs between seeds', function () {
      const a = house(11);
      const b = house(11);
      const c = house(12);
      let differ = 0;
      for (let t = DAY0; t < DAY0 + DAY; t += 7 * MINUTE + 333) {
        for (const loc of LOCATIONS) {
          for (const type of SENSOR_TYPES) {
            assert.equal(a.value(type, loc, t), b.value(type, loc, t), `${type} ${loc} ${t}`);
            if (a.value(type, loc, t) !== c.value(type, loc, t)) differ++;
          }
        }
      }
      assert.ok(differ > 100, `seeds 11 and 12 differ in only ${differ} values`);
    });

    it('gives the same value at a time whatever was asked before (energy included)', function () {
      const t = DAY0 + 5 * HOUR + 1234;
      const fresh = house(5);
      const walked = house(5);
      for (let s = DAY0; s < t; s += 17 * 1000) walked.value('energy', 'kitchen', s);
      walked.value('energy', 'kitchen', t + HOUR); // ahead, then back
      assert.equal(walked.value('energy', 'kitchen', t), fresh.value('energy', 'kitchen', t));
      for (const type of SENSOR_TYPES) assert.equal(walked.value(type, 'kitchen', t), fresh.value(type, 'kitchen', t));
    });

    it('keeps humidity within 0..100 and ldr, current, power and energy at or above 0', function () {
      for (const seed of [1, 2, 3, 99, 123456]) {
        const h = house(seed);
        for (let t = DAY0; t < DAY0 + 20 * DAY; t += 13 * MINUTE + 7) {
          for (const loc of LOCATIONS) {
            const hum = h.value('humidity', loc, t);
            assert.ok(hum >= 0 && hum <= 100, `humidity ${hum}`);
            for (const type of ['ldr', 'current', 'power'] as SensorType[]) {
              assert.ok(h.value(type, loc, t) >= 0, `${type} ${h.value(type, loc, t)}`);
            }
          }
        }
        assert.ok(h.value('energy', 'kitchen', DAY0 + 2 * HOUR) > 0);
      }
    });

    it('is dark at night and bright at noon, local time, with clouds that change the days', function () {
      for (const seed of [1, 2, 3, 4, 5]) {
        // UTC+05:30: local noon is 06:30 UTC, local 03:00 is 21:30 UTC of the day before.
        const h = house(seed, 330);
        const noons: number[] = [];
        for (let d = 0; d < 14; d++) {
          const noon = DAY0 + d * DAY + 6.5 * HOUR;
          const night = noon - 9 * HOUR;
          assert.equal(Math.floor(h.localHour(noon)), 12);
          assert.equal(Math.floor(h.localHour(night)), 3);
          const noonLux = h.value('ldr', 'living_room', noon);
          for (let m = 0; m < 60; m += 5) {
            const nightLux = h.value('ldr', 'living_room', night + m * MINUTE);
            assert.ok(nightLux < 2, `night ${nightLux} lux`);
            assert.ok(nightLux < noonLux, `night ${nightLux} vs noon ${noonLux}`);
          }
          noons.push(noonLux);
        }
        assert.ok(Math.min(...noons) > 50, `noon ${Math.min(...noons)} lux`);
        assert.ok(Math.max(...noons) > 1.5 * Math.min(...noons), `clouds: noons ${noons.join(', ')}`);
      }
    });

    it('lights the room in the evening: ldr follows the lights appliance after dark', function () {
      const h = house(8);
      let lit = 0;
      for (let d = 0; d < 10; d++) {
        const t = DAY0 + d * DAY + 20 * HOUR; // 20:00, sun down
        const on = h.appliancesOn('living_room', t).includes('lights');
        const lux = h.value('ldr', 'living_room', t);
        if (on) {
          lit++;
          assert.ok(lux > 100, `lights on, ${lux} lux`);
        } else assert.ok(lux < 2, `lights off, ${lux} lux`);
      }
      assert.ok(lit >= 5, `lights on only ${lit} of 10 evenings`);
    });

    it('switches appliances in steps: the current is flat between clear jumps', function () {
      const h = house(21);
      const start = DAY0 + 6 * HOUR; // a kitchen morning: kettle, hob, fridge
      let jumps = 0;
      let flat = 0;
      let n = 0;
      let prev = h.current('kitchen', start);
      const kitchenWatts = new Map(APPLIANCES.kitchen.map((a) => [a.name, a.watts]));
      const standby = h.loadWatts('kitchen', start) - h.appliancesOn('kitchen', start).reduce((w, name) => w + kitchenWatts.get(name)!, 0);
      assert.ok(standby > 0 && standby < 100, `standby ${standby} W`);
      for (let t = start + 1000; t < start + 4 * HOUR; t += 1000) {
        const cur = h.current('kitchen', t);
        // The load is a constant standby plus exactly the appliances that are on.
        const onWatts = h.appliancesOn('kitchen', t).reduce((w, name) => w + kitchenWatts.get(name)!, 0);
        assert.ok(Math.abs(h.loadWatts('kitchen', t) - onWatts - standby) < 1e-9);
        const d = Math.abs(cur - prev);
        if (d > 0.5) jumps++;
        else if (d < 0.05 * prev) flat++;
        n++;
        prev = cur;
      }
      assert.ok(jumps >= 10, `only ${jumps} steps in 4 hours`);
      assert.ok(flat / n > 0.95, `flat ${flat} of ${n}`);
    });

    it('keeps the voltage near 230 V with noise and a sag now and then', function () {
      for (const seed of [1, 2, 3]) {
        const h = house(seed);
        let sum = 0;
        let n = 0;
        let inBand = 0;
        let sagged = 0;
        for (let t = DAY0; t < DAY0 + DAY; t += 1000) {
          const v = h.value('voltage', 'living_room', t);
          sum += v;
          n++;
          if (v >= 218 && v <= 240) inBand++;
          if (v < 212) sagged++;
          assert.ok(v > 180 && v < 245, `voltage ${v}`);
        }
        assert.ok(Math.abs(sum / n - 229) < 4, `mean ${sum / n}`);
        assert.ok(inBand / n > 0.99, `in band ${inBand / n}`);
        assert.ok(sagged > 0 && sagged < n * 0.01, `sagged ${sagged} s`);
      }
    });

    it('reports power as V×I and energy as its integral, never decreasing', function () {
      const h = house(4);
      let last = 0;
      for (let t = DAY0; t < DAY0 + 3 * HOUR; t += 37 * 1000) {
        const p = h.value('power', 'kitchen', t);
        const vi = h.value('voltage', 'kitchen', t) * h.value('current', 'kitchen', t);
        assert.ok(Math.abs(p - vi) <= 0.002 * vi + 0.2, `power ${p} vs V×I ${vi}`);
        const e = h.value('energy', 'kitchen', t);
        assert.ok(e >= last, `energy went from ${last} to ${e}`);
        last = e;
      }
      // Over an hour: the mean power (sampled every second) times one hour.
      const x = house(4);
      let sum = 0;
      for (let s = 0; s < 3600; s++) sum += x.power('kitchen', DAY0 + s * 1000);
      assert.ok(Math.abs(x.energy('kitchen', DAY0 + HOUR) - sum / 3600) < 1e-6);
      assert.equal(x.energy('kitchen', DAY0), 0);
      assert.equal(x.energy('kitchen', DAY0 - HOUR), 0);
    });

    it('drifts the temperature daily and moves humidity the other way', function () {
      for (const seed of [1, 2, 3]) {
        const h = house(seed);
        let afternoon = 0;
        let night = 0;
        const temps: number[] = [];
        const hums: number[] = [];
        for (let d = 0; d < 10; d++) {
          afternoon += h.value('temperature', 'living_room', DAY0 + d * DAY + 15 * HOUR);
          night += h.value('temperature', 'living_room', DAY0 + d * DAY + 3 * HOUR);
        }
        assert.ok(afternoon / 10 > night / 10 + 4, `15:00 ${afternoon / 10} vs 03:00 ${night / 10}`);
        for (let t = DAY0; t < DAY0 + 2 * DAY; t += 10 * MINUTE) {
          const temp = h.value('temperature', 'living_room', t);
          assert.ok(temp > 10 && temp < 40, `temperature ${temp}`);
          temps.push(temp);
          hums.push(h.value('humidity', 'living_room', t));
        }
        assert.ok(correlation(temps, hums) < -0.6, `correlation ${correlation(temps, hums)}`);
      }
    });
  });

  describe('readings', function () {
    it('makes one stream per location and sensor, ids unique per type', function () {
      const streams = makeStreams('HV', ['living_room', 'kitchen'], ['ldr', 'power']);
      assert.deepEqual(
        streams.map((s) => `${s.topic} ${s.sensor_id} ${s.unit}`),
        ['HV/sensors/living_room/ldr ldr_1 lux', 'HV/sensors/living_room/power power_1 W', 'HV/sensors/kitchen/ldr ldr_2 lux', 'HV/sensors/kitchen/power power_2 W'],
      );
    });

    it('has exactly the payload shape of the contract, and every payload passes validatePayload', function () {
      const h = house(3, 60);
      const streams = makeStreams('HyperVolt', LOCATIONS, [...SENSOR_TYPES]);
      let checked = 0;
      for (let t = DAY0 + 1; t < DAY0 + DAY; t += 11 * MINUTE + 17) {
        for (const s of streams) {
          const r = readingAt(h, s, t);
          assert.deepEqual(Object.keys(r), ['sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp']);
          assert.equal(r.timestamp, new Date(t).toISOString());
          const res = validateAt(encodeMessage([r], { array: false }), s.topic, t + 500);
          assert.deepEqual(res.rejected, [], JSON.stringify(r));
          assert.deepEqual(res.accepted, [r]);
          checked++;
        }
      }
      assert.ok(checked > 2500, `checked ${checked}`);
    });

    it('batches as a JSON array of one sensor that passes validatePayload whole', function () {
      const h = house(3);
      for (const s of makeStreams('HyperVolt', ['kitchen'], [...SENSOR_TYPES])) {
        const batch: SimReading[] = [];
        for (let i = 0; i < 200; i++) batch.push(readingAt(h, s, DAY0 + 8 * HOUR + i * 5000));
        const text = encodeMessage(batch, { array: true });
        assert.ok(text.startsWith('['));
        const res = validateAt(text, s.topic, DAY0 + 9 * HOUR);
        assert.equal(res.rejected.length, 0);
        assert.deepEqual(res.accepted, batch);
      }
      // A batch of one is still an array.
      assert.ok(encodeMessage([readingAt(h, makeStreams('P', ['kitchen'], ['ldr'])[0], DAY0)], { array: true }).startsWith('[{'));
    });

    it('makes each kind of malformed payload fail validation with its code, and only the bad reading of a batch', function () {
      const h = house(3);
      const t = DAY0 + 10 * HOUR;
      for (const s of makeStreams('HyperVolt', ['living_room'], [...SENSOR_TYPES])) {
        const good = [readingAt(h, s, t), readingAt(h, s, t + 5000), readingAt(h, s, t + 10000)];
        for (const { kind, code } of BAD_KINDS) {
          const single = validateAt(encodeMessage(good.slice(0, 1), { array: false, bad: kind }), s.topic, t + 20000);
          assert.equal(single.accepted.length, 0, `${kind} ${s.sensor_type}`);
          assert.equal(single.rejected.length, 1);
          assert.equal(single.rejected[0].error.code, code, `${kind} ${s.sensor_type}: ${JSON.stringify(single.rejected[0].error)}`);
          const batch = validateAt(encodeMessage(good, { array: true, bad: kind }), s.topic, t + 20000);
          assert.equal(batch.rejected[0].error.code, code);
          assert.equal(batch.accepted.length, kind === 'truncated_json' ? 0 : 2, kind);
        }
      }
    });
  });

  describe('options', function () {
    it('has defaults: local broker, HyperVolt, two rooms, all sensors, one reading per sensor every 5 s', function () {
      const r = parseOptions([], {}, 330);
      assert.ok(r.ok);
      const o = r.options;
      assert.equal(o.url, 'mqtt://127.0.0.1:1883');
      assert.equal(o.prefix, 'HyperVolt');
      assert.deepEqual(o.locations, ['living_room', 'kitchen']);
      assert.deepEqual(o.sensors, [...SENSOR_TYPES]);
      assert.equal(o.rate, 14 / 5);
      assert.equal(o.batch, 1);
      assert.equal(o.qos, 1);
      assert.equal(o.utcOffsetMinutes, 330);
      assert.equal(o.duration, undefined);
      assert.equal(o.count, undefined);
      assert.match(o.clientId, /^hypervolt-sim-[0-9a-f]{8}$/);
      assert.ok(Number.isInteger(o.seed));
    });

    it('reads the environment, and the command line wins', function () {
      const env = { MQTT_URL: 'mqtt://broker:1883', MQTT_TOPIC_PREFIX: 'Home', SIM_RATE: '50', SIM_SEED: '9', MQTT_USERNAME: 'pi', MQTT_PASSWORD: 's', MQTT_CLIENT_ID: 'hypervolt-pipeline' };
      const r = parseOptions(['--rate', '5000', '--batch=10', '--locations', 'a,b,c', '--sensors', 'ldr,energy', '--count', '7', '--duration', '2.5', '--bad-every', '4', '--utc-offset', '-3.5'], env);
      assert.ok(r.ok);
      const o = r.options;
      assert.equal(o.url, 'mqtt://broker:1883');
      assert.equal(o.prefix, 'Home');
      assert.equal(o.rate, 5000);
      assert.equal(o.batch, 10);
      assert.deepEqual(o.locations, ['a', 'b', 'c']);
      assert.deepEqual(o.sensors, ['ldr', 'energy']);
      assert.equal(o.count, 7);
      assert.equal(o.duration, 2.5);
      assert.equal(o.badEvery, 4);
      assert.equal(o.seed, 9);
      assert.equal(o.username, 'pi');
      assert.equal(o.password, 's');
      assert.equal(o.utcOffsetMinutes, -210);
      // The pipeline's own client id is never borrowed: it would take over the pipeline's session.
      assert.notEqual(o.clientId, 'hypervolt-pipeline');
    });

    it('refuses bad values with a clear message, and answers --help', function () {
      const bad: [string[], RegExp][] = [
        [['--rate', '0'], /--rate/],
        [['--rate', 'fast'], /--rate/],
        [['--batch', '1001'], /--batch/],
        [['--batch', '2.5'], /--batch/],
        [['--sensors', 'ldr,co2'], /co2/],
        [['--locations', 'Living Room'], /Living Room/],
        [['--locations', 'a,a'], /twice/],
        [['--prefix', 'a/#'], /--prefix/],
        [['--url', 'http://x'], /--url/],
        [['--qos', '3'], /--qos/],
        [['--count', '-1'], /--count/],
        [['--colour', 'red'], /unknown option/],
        [['--count'], /needs a value/],
      ];
      for (const [argv, re] of bad) {
        const r = parseOptions(argv, {});
        assert.ok(!r.ok && !r.help, argv.join(' '));
        if (!r.ok && !r.help) assert.match(r.error, re);
      }
      const h = parseOptions(['--rate', '5', '--help'], {});
      assert.ok(!h.ok && h.help);
      for (const flag of ['--url', '--prefix', '--locations', '--sensors', '--rate', '--batch', '--duration', '--count', '--username', '--password', '--seed', '--bad-every']) {
        assert.ok(HELP.includes(flag), flag);
      }
    });
  });

  describe('runner', function () {
    interface Sent {
      topic: string;
      payload: string;
      qos: number;
      ack: (err?: Error) => void;
    }
    function recorder(autoAck: boolean): { sent: Sent[]; publish: Publish } {
      const sent: Sent[] = [];
      return {
        sent,
        publish: (topic, payload, qos, done) => {
          sent.push({ topic, payload, qos, ack: done });
          if (autoAck) setImmediate(done);
        },
      };
    }

    it('publishes count readings, round robin, evenly spaced, each valid', async function () {
      const { sent, publish } = recorder(true);
      const sim = new Simulator(baseOptions({ rate: 1000, count: 50 }), { publish, log: () => {} });
      sim.start();
      const stats = await sim.finished;
      assert.equal(sent.length, 50);
      assert.deepEqual({ ...stats, elapsedMs: 0 }, { messages: 50, readings: 50, bad: 0, acked: 50, failed: 0, inflight: 0, skipped: 0, elapsedMs: 0 });
      const times = sent.map((m) => Date.parse(JSON.parse(m.payload).timestamp));
      for (let i = 0; i < sent.length; i++) {
        assert.equal(sent[i].topic, sim.streams[i % 14].topic);
        assert.equal(sent[i].qos, 1);
        if (i > 0) assert.equal(times[i] - times[i - 1], 1);
        assert.deepEqual(validateAt(sent[i].payload, sent[i].topic, Date.now()).rejected, []);
      }
    });

    it('batches per sensor and sends the partial batches when it stops', async function () {
      const { sent, publish } = recorder(true);
      // Two sensors: 53 readings of one, 52 of the other → 5 full arrays each, then 3 and 2.
      const sim = new Simulator(baseOptions({ rate: 2000, count: 105, batch: 10, locations: ['a', 'b'], sensors: ['ldr'] }), { publish, log: () => {} });
      sim.start();
      const stats = await sim.finished;
      assert.equal(stats.readings, 105);
      assert.equal(stats.messages, 12);
      const sizes = sent.map((m) => (JSON.parse(m.payload) as unknown[]).length).sort((x, y) => x - y);
      assert.deepEqual(sizes, [2, 3, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
      for (const m of sent) {
        const res = validateAt(m.payload, m.topic, Date.now());
        assert.equal(res.rejected.length, 0);
        assert.ok(res.accepted.every((r) => `HyperVolt/sensors/${r.location}/${r.sensor_type}` === m.topic));
      }
    });

    it('sends every Nth message malformed, kinds in turn', async function () {
      const { sent, publish } = recorder(true);
      const sim = new Simulator(baseOptions({ count: 13, badEvery: 3 }), { publish, log: () => {} });
      sim.start();
      const stats = await sim.finished;
      assert.equal(stats.bad, 4);
      assert.equal(stats.readings, 9);
      const codes = sent.map((m) => validateAt(m.payload, m.topic, Date.now()).rejected.map((r) => r.error.code).join());
      assert.deepEqual(codes, ['', '', BAD_KINDS[0].code, '', '', BAD_KINDS[1].code, '', '', BAD_KINDS[2].code, '', '', BAD_KINDS[3].code, '']);
    });

    it('holds at most maxInflight unacknowledged, skips readings over a second late, and waits for acks on stop', async function () {
      const { sent, publish } = recorder(false);
      let now = 1_000_000;
      const sim = new Simulator(baseOptions({ rate: 1000, maxInflight: 5 }), { publish, log: () => {}, now: () => now });
      sim.start();
      now += 100; // 101 readings due
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(sent.length, 5);
      now += 5000; // the broker has been silent for 5 s: 5101 due
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(sent.length, 5);
      for (const m of sent.splice(0)) m.ack();
      await new Promise((r) => setTimeout(r, 40));
      const mid = sim.snapshot();
      assert.equal(mid.acked, 5);
      assert.equal(mid.inflight, 5);
      assert.equal(sent.length, 5);
      // Kept: the last second (1000 readings); sent: 5 before; the rest skipped.
      assert.equal(mid.skipped, 5101 - 1000 - 5);
      let resolved = false;
      const stopping = sim.stop(5000).then((s) => {
        resolved = true;
        return s;
      });
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(resolved, false, 'stop must wait for the acknowledgements in flight');
      sent[0].ack(new Error('broker said no'));
      for (const m of sent.slice(1)) m.ack();
      const final = await stopping;
      assert.equal(final.acked, 9);
      assert.equal(final.failed, 1);
      assert.equal(final.inflight, 0);
      assert.equal(await sim.finished, final);
    });

    it('gives up waiting after the drain timeout', async function () {
      const { publish } = recorder(false);
      const sim = new Simulator(baseOptions({ rate: 100, maxInflight: 3 }), { publish, log: () => {} });
      sim.start();
      const s = await sim.stop(50);
      assert.equal(s.inflight, 1);
      assert.equal(s.acked, 0);
    });
  });

  describe('against Mosquitto', function () {
    this.timeout(20000);
    let sub: mqtt.MqttClient;
    let received: { topic: string; payload: string }[] = [];
    const children: ChildProcess[] = [];

    before(async function () {
      await requireService(this, 'mqtt');
      sub = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: `hvtest-sim-sub-${process.pid}`, clean: true });
      sub.on('message', (topic, payload) => received.push({ topic, payload: payload.toString() }));
      await sub.subscribeAsync(`${TOPIC_PREFIX}/sensors/+/+`, { qos: 1 });
    });
    beforeEach(function () {
      received = [];
    });
    afterEach(function () {
      for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
    after(async function () {
      if (sub) await sub.endAsync();
    });

    function simulate(args: string[]): { child: ChildProcess; exit: Promise<{ code: number | null; out: string }> } {
      const child = spawn(process.execPath, [SIMULATE_JS, '--url', MQTT_BROKER_URL, '--prefix', TOPIC_PREFIX, '--report', '0', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exit = new Promise<{ code: number | null; out: string }>((resolve) => child.on('exit', (code) => resolve({ code, out })));
      return { child, exit };
    }

    function summary(out: string): { readings: number; messages: number; acked: number; reason: string } {
      const m = /done \(([^)]*)\): (\d+) readings in (\d+) messages .*?, (\d+) acknowledged, 0 failed, 0 unacknowledged/.exec(out);
      assert.ok(m, `no clean summary in:\n${out}`);
      return { reason: m[1], readings: Number(m[2]), messages: Number(m[3]), acked: Number(m[4]) };
    }

    async function receivedAtLeast(n: number, ms = 3000): Promise<void> {
      const until = Date.now() + ms;
      while (received.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }

    it('publishes for ~1 s at QoS 1 and a subscriber gets every acknowledged, valid message', async function () {
      const { exit } = simulate(['--rate', '100', '--duration', '1', '--seed', '7']);
      const { code, out } = await exit;
      assert.equal(code, 0, out);
      const s = summary(out);
      assert.equal(s.messages, s.acked);
      assert.ok(s.acked >= 90 && s.acked <= 101, `acked ${s.acked}`);
      await receivedAtLeast(s.acked);
      assert.equal(received.length, s.acked);
      const ids = new Set<string>();
      for (const m of received) {
        const res = validateAt(m.payload, m.topic, Date.now());
        assert.deepEqual(res.rejected, [], m.payload);
        ids.add(`${res.accepted[0].sensor_type}:${res.accepted[0].sensor_id}`);
      }
      assert.equal(ids.size, 14);
    });

    it('publishes arrays with --batch', async function () {
      // 2 rooms × 2 sensors, 10 readings each: 2 arrays of 5 per sensor.
      const { exit } = simulate(['--rate', '200', '--count', '40', '--batch', '5', '--sensors', 'ldr,voltage']);
      const { code, out } = await exit;
      assert.equal(code, 0, out);
      const s = summary(out);
      assert.deepEqual([s.readings, s.messages], [40, 8]);
      await receivedAtLeast(8);
      assert.equal(received.length, 8);
      for (const m of received) {
        const res = validateAt(m.payload, m.topic, Date.now());
        assert.equal(res.accepted.length, 5);
        assert.equal(res.rejected.length, 0);
      }
    });

    it('stops cleanly on SIGINT: exit 0, every message acknowledged and delivered', async function () {
      const { child, exit } = simulate(['--rate', '200']);
      await receivedAtLeast(30, 5000);
      assert.ok(received.length >= 30, `only ${received.length} messages`);
      child.kill('SIGINT');
      const { code, out } = await exit;
      assert.equal(code, 0, out);
      const s = summary(out);
      assert.equal(s.reason, 'SIGINT');
      await receivedAtLeast(s.acked);
      assert.equal(received.length, s.acked);
    });
  });
});
