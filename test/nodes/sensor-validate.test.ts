import assert from 'assert/strict';
import fs from 'fs';
import path from 'path';
import helper from 'node-red-node-test-helper';
import sensorValidateNode = require('../../nodes/sensor-validate/sensor-validate');

helper.init(require.resolve('node-red'));

// The test helper's RED._ returns the key; use the node's real message catalog instead, so the
// status texts are checked as users see them (and the catalog keys are proven to exist).
const catalog = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../nodes/sensor-validate/locales/en-US/sensor-validate.json'), 'utf8'),
) as Record<string, unknown>;
function translate(key: string, subs?: Record<string, unknown>): string {
  const text = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalog);
  if (typeof text !== 'string') return key;
  return text.replace(/__(\w+)__/g, (_m, name: string) => String(subs?.[name]));
}
const nodeModule = (RED: any) => {
  RED._ = translate;
  return sensorValidateNode(RED);
};

type Msg = Record<string, any>;

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const reading = (over: Record<string, unknown> = {}) => ({
  sensor_type: 'ldr',
  sensor_id: 'ldr_1',
  value: 750,
  unit: 'lux',
  location: 'living_room',
  timestamp: ago(60_000),
  ...over,
});
const TOPIC = 'HyperVolt/sensors/living_room/ldr';
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function flow(config: Record<string, unknown> = {}) {
  return [
    { id: 'f1', type: 'tab', label: 'sensor-validate test' },
    {
      id: 'sv',
      z: 'f1',
      type: 'sensor-validate',
      name: 'validate',
      mode: 'split',
      extraTypes: '',
      ranges: '',
      retentionDays: 7,
      wires: [['out1'], ['out2']],
      ...config,
    },
    { id: 'out1', z: 'f1', type: 'helper' },
    { id: 'out2', z: 'f1', type: 'helper' },
    { id: 'on-complete', z: 'f1', type: 'complete', scope: ['sv'], uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
    { id: 'on-catch', z: 'f1', type: 'catch', scope: ['sv'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
    { id: 'on-status', z: 'f1', type: 'status', scope: ['sv'], wires: [['statuses']] },
    { id: 'statuses', z: 'f1', type: 'helper' },
  ];
}

interface Collected {
  out1: Msg[];
  out2: Msg[];
  completed: Msg[];
  caught: Msg[];
  statuses: Msg[];
}

async function load(config: Record<string, unknown> = {}): Promise<Collected> {
  await helper.load(nodeModule, flow(config));
  const c: Collected = { out1: [], out2: [], completed: [], caught: [], statuses: [] };
  for (const id of Object.keys(c) as Array<keyof Collected>) {
    helper.getNode(id).on('input', (msg: Msg) => c[id].push(msg));
  }
  return c;
}

/** Waits until `cond` holds (or fails after `ms`), so tests do not sleep longer than needed. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await wait(5);
  }
}

describe('sensor-validate node', function () {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('loads with its name and config', async () => {
    await load({ extraTypes: 'co2', retentionDays: '14' });
    const sv = helper.getNode('sv');
    assert.equal(sv.type, 'sensor-validate');
    assert.equal(sv.name, 'validate');
  });

  it('split mode: one msg per accepted reading on output 1, each rejection on output 2', async () => {
    const c = await load();
    const payload = [reading({ sensor_id: 'a' }), reading({ sensor_id: 'b', value: -5 }), reading({ sensor_id: 'c' }), reading({ sensor_id: 'd' })];
    helper.getNode('sv').receive({ _msgid: 'm1', topic: TOPIC, payload: Buffer.from(JSON.stringify(payload)), qos: 1 });
    await until(() => c.completed.length === 1);
    await wait(50);

    assert.deepEqual(c.out1.map((m) => m.payload.sensor_id), ['a', 'c', 'd']);
    for (const m of c.out1) {
      assert.equal(m.topic, TOPIC);
      assert.equal(m._msgid, 'm1');
      assert.deepEqual(Object.keys(m.payload), ['sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp']);
      assert.match(m.payload.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    assert.equal(c.out2.length, 1);
    const rej = c.out2[0];
    assert.equal(rej.topic, 'HyperVolt/errors/living_room/ldr');
    assert.equal(rej.error.code, 'out_of_range');
    assert.equal(rej.error.field, 'value');
    assert.deepEqual(rej.payload.error, rej.error);
    assert.deepEqual(rej.payload.reading, payload[1]);
    assert.equal(rej.qos, undefined, 'a reject msg carries no MQTT options of the input');
    assert.equal(c.completed.length, 1, 'done() once per message');
    assert.equal(c.caught.length, 0, 'rejections are not node errors');
  });

  it('split mode: a single reading keeps the incoming msg, with the reading as payload', async () => {
    const c = await load();
    helper.getNode('sv').receive({ topic: TOPIC, payload: JSON.stringify({ sensor_id: 'x', value: '42', extra: 1 }), correlation: 'k' });
    await until(() => c.completed.length === 1);
    await wait(20);
    assert.equal(c.out1.length, 1);
    assert.equal(c.out1[0].correlation, 'k');
    assert.deepEqual(
      { ...c.out1[0].payload, timestamp: undefined },
      { sensor_type: 'ldr', sensor_id: 'x', value: 42, unit: 'lux', location: 'living_room', timestamp: undefined },
    );
    assert.equal(c.out2.length, 0);
  });

  it('addresses rejections: prefix from the topic, location and type from topic or payload, never a wildcard', async () => {
    const c = await load();
    const sv = helper.getNode('sv');
    sv.receive({ topic: 'site/a/sensors/garage/ldr', payload: '{"sensor_id": "x", "value": ' });
    sv.receive({ payload: { sensor_type: 'humidity', sensor_id: 'h', value: 120, location: 'bath' } });
    sv.receive({ topic: 'home/sensors/x+y/ldr', payload: { sensor_id: 'x', value: 1 } });
    sv.receive({ topic: 'HyperVolt/sensors/#/ldr', payload: Buffer.from([0xff, 0xfe]) });
    await until(() => c.completed.length === 4);
    await wait(20);
    assert.deepEqual(
      c.out2.map((m) => [m.topic, m.error.code]),
      [
        ['site/a/errors/garage/ldr', 'invalid_json'],
        ['HyperVolt/errors/bath/humidity', 'out_of_range'],
        ['home/errors/unknown/ldr', 'invalid_format'],
        ['HyperVolt/errors/unknown/ldr', 'invalid_utf8'],
      ],
    );
    assert.equal(c.out2[0].payload.reading, '{"sensor_id": "x", "value": ');
    assert.equal('reading' in c.out2[3].payload, false);
    assert.equal(c.out1.length, 0);
    assert.equal(c.caught.length, 0);
  });

  it('batch mode: one msg with all accepted readings and msg.rejected, plus each rejection on output 2', async () => {
    const c = await load({ mode: 'batch' });
    const sv = helper.getNode('sv');
    sv.receive({ _msgid: 'b1', topic: TOPIC, payload: [reading({ sensor_id: 'a' }), reading({ sensor_id: 'b', unit: 7 }), reading({ sensor_id: 'c' })], req: { id: 1 } });
    await until(() => c.completed.length === 1);
    await wait(20);
    assert.equal(c.out1.length, 1);
    const out = c.out1[0];
    assert.equal(out._msgid, 'b1');
    assert.deepEqual(out.req, { id: 1 }, 'the incoming msg carries on (an HTTP flow needs msg.res)');
    assert.deepEqual(out.payload.map((r: Msg) => r.sensor_id), ['a', 'c']);
    assert.equal(out.rejected.length, 1);
    assert.equal(out.rejected[0].index, 1);
    assert.equal(out.rejected[0].error.code, 'not_a_string');
    assert.equal(out.rejected[0].error.field, 'unit');
    assert.equal(c.out2.length, 1);
    assert.equal(c.out2[0].error.code, 'not_a_string');

    sv.receive({ payload: 'not json' });
    await until(() => c.completed.length === 2);
    await wait(20);
    assert.equal(c.out1.length, 2, 'sent even when everything is rejected');
    assert.deepEqual(c.out1[1].payload, []);
    assert.equal(c.out1[1].rejected[0].index, null);
    assert.equal(c.out1[1].rejected[0].error.code, 'invalid_json');
    assert.equal(c.caught.length, 0);
  });

  it('a batch of MQTT messages (sensor-in output "batch"): the accepted readings of all as one msg, rejections addressed by their own topic', async () => {
    const c = await load();
    const sv = helper.getNode('sv');
    const msg = (topic: string, payload: unknown) => ({ topic, payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)), receivedAt: Date.now(), spoolId: 1 });
    sv.receive({
      _msgid: 'b1',
      batch: 'mqtt',
      payload: [
        msg(TOPIC, reading({ sensor_id: 'a' })),
        msg('site/sensors/garage/ldr', '{"sensor_id": '),
        msg(TOPIC, [reading({ sensor_id: 'b' }), reading({ sensor_id: 'c', value: -4 })]),
        msg('HyperVolt/sensors/attic/humidity', { sensor_id: 'd', value: 40 }),
      ],
    });
    await until(() => c.completed.length === 1);
    await wait(20);
    assert.equal(c.out1.length, 1, 'one msg for the whole batch');
    assert.equal(c.out1[0]._msgid, 'b1');
    assert.deepEqual(c.out1[0].payload.map((r: Msg) => [r.sensor_id, r.sensor_type, r.location]), [
      ['a', 'ldr', 'living_room'],
      ['b', 'ldr', 'living_room'],
      ['d', 'humidity', 'attic'],
    ]);
    assert.deepEqual(c.out1[0].rejected.map((r: Msg) => [r.entry, r.index, r.error.code]), [
      [1, null, 'invalid_json'],
      [2, 1, 'out_of_range'],
    ]);
    assert.deepEqual(c.out2.map((m) => [m.topic, m.error.code, m._msgid]), [
      ['site/errors/garage/ldr', 'invalid_json', 'b1'],
      ['HyperVolt/errors/living_room/ldr', 'out_of_range', 'b1'],
    ]);

    // Nothing accepted: nothing on output 1. Over 5 000 accepted: several msgs with the same id.
    sv.receive({ _msgid: 'b2', batch: 'mqtt', payload: [msg(TOPIC, 'nope')] });
    const many = Array.from({ length: 15 }, (_, k) => msg(TOPIC, Array.from({ length: 400 }, (_, i) => reading({ sensor_id: `s${k}_${i}` }))));
    sv.receive({ _msgid: 'b3', batch: 'mqtt', payload: [...many, msg(TOPIC, 'nope')] });
    await until(() => c.completed.length === 3);
    await wait(20);
    assert.deepEqual(c.out1.slice(1).map((m) => [m._msgid, m.payload.length]), [
      ['b3', 5000],
      ['b3', 1000],
    ]);
    // msg.rejected rides on the first of them.
    assert.deepEqual(c.out1[1].rejected.map((r: { entry: number; index: number | null; error: { code: string } }) => [r.entry, r.index, r.error.code]), [[15, null, 'invalid_json']]);
    assert.equal(c.out1[2].rejected, undefined);
    assert.equal(c.out2.length, 4);
    assert.equal(c.caught.length, 0);
  });

  it('counts on its status, throttled, with the last error code while readings are rejected', async () => {
    const c = await load();
    const sv = helper.getNode('sv');
    for (let i = 0; i < 50; i++) sv.receive({ topic: TOPIC, payload: reading({ sensor_id: `s${i}` }) });
    sv.receive({ topic: TOPIC, payload: reading({ value: 'abc' }) });
    await until(() => c.completed.length === 51);
    await until(() => c.statuses.some((m) => m.status.text.includes('rejected 1')), 1500);
    const last = c.statuses[c.statuses.length - 1].status;
    assert.equal(last.text, 'accepted 50, rejected 1 (last: not_a_number)');
    assert.equal(last.fill, 'red');
    assert.equal(last.shape, 'ring');
    assert.ok(c.statuses.length <= 3, `throttled: ${c.statuses.length} status updates for 51 messages`);

    sv.receive({ topic: TOPIC, payload: reading() });
    await until(() => c.statuses[c.statuses.length - 1].status.text === 'accepted 51, rejected 1', 1500);
    assert.equal(c.statuses[c.statuses.length - 1].status.fill, 'green');
    assert.equal(c.statuses[c.statuses.length - 1].status.shape, 'dot');
  });

  it('calls done() once per message, whatever the outcome', async () => {
    const c = await load();
    const sv = helper.getNode('sv');
    const payloads = [reading(), [reading(), reading({ sensor_id: 'z' })], '{', [], null, 42, Buffer.alloc(70000, 0x20), reading({ timestamp: '1970-01-01T00:00:00Z' })];
    for (const p of payloads) sv.receive({ topic: TOPIC, payload: p });
    await until(() => c.completed.length === payloads.length);
    await wait(50);
    assert.equal(c.completed.length, payloads.length);
    assert.equal(c.caught.length, 0);
    assert.equal(c.out1.length, 3);
    assert.deepEqual(
      c.out2.map((m) => m.error.code),
      ['invalid_json', 'empty_batch', 'not_an_object', 'not_an_object', 'payload_too_large', 'timestamp_too_old'],
    );
  });

  it('a bad ranges setting does not crash: red status, a log error, and every message fails through done(err)', async () => {
    const c = await load({ ranges: '{"temperature": {"min": -40,' });
    const sv = helper.getNode('sv');
    const statusCalls = (sv.status as any).getCalls().filter((call: any) => call.thisValue === sv);
    assert.deepEqual(statusCalls[statusCalls.length - 1].args[0], { fill: 'red', shape: 'dot', text: 'configuration error' });
    const logged = helper
      .log()
      .args.filter((a: any[]) => a[0].level === helper.log().ERROR && a[0].id === 'sv')
      .map((a: any[]) => String(a[0].msg));
    assert.equal(logged.length, 1);
    assert.match(logged[0], /ranges is not valid JSON/);

    sv.receive({ topic: TOPIC, payload: reading() });
    await until(() => c.caught.length === 1);
    await wait(20);
    assert.match(c.caught[0].error.message, /misconfigured.*ranges is not valid JSON/);
    assert.equal(c.out1.length, 0);
    assert.equal(c.out2.length, 0);
    assert.equal(c.completed.length, 0, 'done(err), not done()');
  });

  it('refuses an unknown type in ranges and a bad retention, at start', async () => {
    for (const config of [{ ranges: '{"wind": {"min": 0}}' }, { retentionDays: 'soon' }, { extraTypes: 'CO2' }]) {
      const c = await load(config);
      helper.getNode('sv').receive({ topic: TOPIC, payload: reading() });
      await until(() => c.caught.length === 1);
      assert.equal(c.out1.length, 0, JSON.stringify(config));
      await helper.unload();
    }
  });

  it('applies extra types and ranges', async () => {
    const c = await load({ extraTypes: 'co2, pressure', ranges: '{"co2": {"min": 0, "max": 5000}}' });
    const sv = helper.getNode('sv');
    sv.receive({ topic: 'HyperVolt/sensors/office/co2', payload: { sensor_id: 'c1', value: 415, unit: 'ppm' } });
    sv.receive({ topic: 'HyperVolt/sensors/office/co2', payload: { sensor_id: 'c1', value: 9000, unit: 'ppm' } });
    await until(() => c.completed.length === 2);
    await wait(20);
    assert.equal(c.out1.length, 1);
    assert.equal(c.out1[0].payload.value, 415);
    assert.equal(c.out2[0].error.code, 'out_of_range');
    assert.equal(c.out2[0].topic, 'HyperVolt/errors/office/co2');
  });

  it('takes the retention from an environment variable, and 7 days when it is not set', async () => {
    const old = reading({ timestamp: ago(20 * 86_400_000) });
    process.env.HV_SV_TEST_RETENTION = '30';
    try {
      let c = await load({ retentionDays: '${HV_SV_TEST_RETENTION}' });
      helper.getNode('sv').receive({ topic: TOPIC, payload: old });
      await until(() => c.completed.length === 1);
      await wait(20);
      assert.equal(c.out1.length, 1);
      await helper.unload();

      c = await load({ retentionDays: '${HV_SV_TEST_RETENTION_UNSET}' });
      helper.getNode('sv').receive({ topic: TOPIC, payload: old });
      await until(() => c.completed.length === 1);
      await wait(20);
      assert.equal(c.out2[0]?.error.code, 'timestamp_too_old');
    } finally {
      delete process.env.HV_SV_TEST_RETENTION;
    }
  });

  it('stops its status timer on close', async () => {
    const c = await load();
    const sv = helper.getNode('sv');
    sv.receive({ topic: TOPIC, payload: reading() });
    sv.receive({ topic: TOPIC, payload: reading() }); // the second update is the throttled one
    await until(() => c.completed.length === 2);
    let after = 0;
    sv.status = () => {
      after++; // an own property shadows the prototype (and the helper's spy, which unload removes)
    };
    await helper.unload();
    await wait(700);
    assert.equal(after, 0, 'no status update after close');
  });

  it('the example flow imports, runs, and each inject does what its name says', async () => {
    const example = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../examples/sensor-validate.json'), 'utf8')) as Msg[];
    const core = path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core/common');
    const injectNode = require(path.join(core, '20-inject.js'));
    const debugNode = require(path.join(core, '21-debug.js'));
    const commentNode = require(path.join(core, '90-comment.js'));
    const validators = example.filter((n) => n.type === 'sensor-validate');
    assert.equal(validators.length, 2);
    const testFlow: Msg[] = [
      { id: 'ex', type: 'tab', label: 'example' },
      ...example.map((n) => ({ ...n, z: 'ex' })),
      { id: 'ok', z: 'ex', type: 'helper' },
      { id: 'bad', z: 'ex', type: 'helper' },
    ];
    for (const n of testFlow) {
      if (n.type === 'sensor-validate') n.wires = [[...n.wires[0], 'ok'], [...n.wires[1], 'bad']];
    }
    await helper.load([nodeModule, injectNode, debugNode, commentNode], testFlow);
    const ok: Msg[] = [];
    const bad: Msg[] = [];
    helper.getNode('ok').on('input', (m: Msg) => ok.push(m));
    helper.getNode('bad').on('input', (m: Msg) => bad.push(m));

    for (const inject of example.filter((n) => n.type === 'inject')) {
      ok.length = 0;
      bad.length = 0;
      helper.getNode(inject.id).receive({});
      await until(() => ok.length + bad.length > 0);
      await wait(30);
      const name: string = inject.name;
      const counts = /(\d+) good, (\d+) bad/.exec(name);
      if (counts) {
        const batch = name.startsWith('batch');
        assert.equal(batch ? ok[0].payload.length : ok.length, Number(counts[1]), name);
        assert.equal(bad.length, Number(counts[2]), name);
      } else if (name.startsWith('good')) {
        assert.deepEqual([ok.length, bad.length], [1, 0], name);
      } else {
        assert.ok(name.startsWith('bad'), name);
        assert.deepEqual([ok.length, bad.length], [0, 1], `${name}: ${JSON.stringify(ok[0]?.payload)}`);
      }
    }
  });
});
