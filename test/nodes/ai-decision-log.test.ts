/**
 * ai-decision-log node: record from a msg (object, MQTT Buffer), from HTTP (real http in /
 * http response), invalid input, database down, and its commands received by a real MQTT
 * subscriber on the local Mosquitto through a real `mqtt out` node.
 */
import assert from 'assert/strict';
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import type { AddressInfo } from 'net';
import mqtt from 'mqtt';
import helper from 'node-red-node-test-helper';
import decisionLogNode = require('../../nodes/ai-decision-log/ai-decision-log');
import databaseNode = require('../../nodes/hypervolt-database/hypervolt-database');
import { openDatabase } from '../../nodes/shared/db';
import type { Database } from '../../nodes/shared/db';
import { MQTT_BROKER_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpInNode = require('@node-red/nodes/core/network/21-httpin.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mqttNode = require('@node-red/nodes/core/network/10-mqtt.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const completeNode = require('@node-red/nodes/core/common/24-complete.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, '../../nodes/ai-decision-log/locales/en-US/ai-decision-log.json'), 'utf8'));
function translate(key: string, subs?: Record<string, unknown>): string {
  const text = key.split('.').reduce<any>((o, k) => o?.[k], catalog);
  return typeof text === 'string' ? text.replace(/__(\w+)__/g, (_m, n: string) => String(subs?.[n])) : key;
}
let httpApp: http.RequestListener | undefined;
const decisionLog = (RED: any) => {
  RED._ = translate;
  httpApp = RED.httpNode;
  return decisionLogNode(RED);
};

type Msg = Record<string, any>;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(10);
  }
}

const DECISION = {
  decision_type: 'light_dim',
  decision: { target: 'living_room', brightness: 40 },
  confidence: 0.9,
  reasoning: 'bright outside',
  commands: [
    { device_id: 'light_living_room', command: 'set_brightness', value: 40 },
    { device_id: 'blind.1:a-b', command: 'close' },
  ],
};

function flow(dbUrl: string, extra: Record<string, unknown>[] = [], commandWires = ['published']): Record<string, unknown>[] {
  return [
    { id: 'f1', type: 'tab', label: 'ai-decision-log' },
    { id: 'db', type: 'hypervolt-database', url: dbUrl },
    { id: 'log', z: 'f1', type: 'ai-decision-log', database: 'db', operation: 'record', topicPrefix: TOPIC_PREFIX, wires: [['rows'], commandWires, ['ws']] },
    { id: 'rows', z: 'f1', type: 'helper' },
    { id: 'published', z: 'f1', type: 'helper' },
    { id: 'ws', z: 'f1', type: 'helper' },
    { id: 'on-complete', z: 'f1', type: 'complete', scope: ['log', 'httplog'], uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
    { id: 'on-catch', z: 'f1', type: 'catch', scope: ['log', 'httplog'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
    ...extra,
  ].map((n: Record<string, unknown>) => (n.z ? { x: 100, y: 100, ...n } : n));
}

function collect(...ids: string[]): Record<string, Msg[]> {
  const got: Record<string, Msg[]> = {};
  for (const id of ids) {
    got[id] = [];
    helper.getNode(id).on('input', (m: Msg) => got[id].push(m));
  }
  return got;
}

function post(port: number, pathname: string, body: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: pathname, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

describe('ai-decision-log node', function () {
  let dir: string;
  let url: string;
  let db: Database;
  before(async () => {
    await helper.startServer();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `hvtest-${RUN_ID}-adl-`));
    url = `sqlite:${path.join(dir, 'hv.db')}`;
    db = await openDatabase(url);
  });
  after(async () => {
    await helper.unload();
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
    await helper.stopServer();
  });
  afterEach(async () => {
    await helper.unload();
    await db.sql.execute('DELETE FROM ai_decisions');
  });

  it('records a decision from a msg: row on output 1, one command msg each on output 2, ai_decision on output 3', async () => {
    await helper.load([decisionLog, databaseNode, completeNode, catchNode], flow(url));
    const got = collect('rows', 'published', 'ws', 'completed', 'caught');
    helper.getNode('log').receive({ payload: DECISION, topic: 'from-ai' });
    await until(() => got.completed.length === 1, 'completion');
    assert.equal(got.caught.length, 0);
    const row = got.rows[0].payload;
    assert.equal(typeof row.id, 'number');
    assert.deepEqual(row.decision, {
      target: 'living_room',
      brightness: 40,
      commands: [
        { device_id: 'light_living_room', command: 'set_brightness', value: 40 },
        { device_id: 'blind.1:a-b', command: 'close', value: null },
      ],
    });
    assert.deepEqual(await db.decisions.get(row.id), row);
    assert.deepEqual(
      got.published.map((m) => [m.topic, m.payload.command, m.payload.value, m.qos, m.retain]),
      [
        [`${TOPIC_PREFIX}/commands/light_living_room`, 'set_brightness', 40, 1, false],
        [`${TOPIC_PREFIX}/commands/blind.1:a-b`, 'close', null, 1, false],
      ],
    );
    assert.match(got.published[0].payload.timestamp, /Z$/);
    assert.deepEqual(got.ws.map((m) => m.payload), [{ type: 'ai_decision', data: row }]);
  });

  it('takes MQTT payloads (Buffer or string JSON); invalid ones fail with the field errors and store nothing', async () => {
    await helper.load([decisionLog, databaseNode, completeNode, catchNode], flow(url));
    const got = collect('rows', 'published', 'ws', 'completed', 'caught');
    const log = helper.getNode('log');
    log.receive({ topic: `${TOPIC_PREFIX}/ai/decisions`, payload: Buffer.from(JSON.stringify({ ...DECISION, commands: undefined })) });
    log.receive({ topic: `${TOPIC_PREFIX}/ai/decisions`, payload: JSON.stringify({ decision_type: 'general', decision: {}, confidence: '0.3' }) });
    log.receive({ payload: { decision_type: 'dance', decision: {}, confidence: 3 } });
    log.receive({ payload: Buffer.from('{not json') });
    log.receive({ payload: Buffer.from([0x7b, 0xff, 0x7d]) });
    await until(() => got.completed.length + got.caught.length === 5, '5 outcomes');
    assert.equal(got.completed.length, 2);
    assert.deepEqual(got.rows.map((m) => m.payload.confidence), [0.9, 0.3]);
    assert.equal(got.published.length, 0);
    assert.equal(got.ws.length, 2);
    const errors = got.caught.map((m) => String(m.error.message));
    assert.equal(errors.length, 3);
    const invalid = errors.find((e) => e.includes('AI decision'))!;
    assert.match(invalid, /"decision_type":\["\\"dance\\" is not a valid choice."\]/);
    assert.match(invalid, /"confidence":\["Ensure this value is less than or equal to 1."\]/);
    assert.ok(errors.some((e) => /JSON parse error/.test(e)));
    assert.ok(errors.some((e) => /not valid UTF-8/.test(e)));
    assert.equal((await db.decisions.list({})).count, 2);
  });

  it('answers POST /api/ai-decisions/ through http in / http response: 201, 400, and 503 when the database is down', async () => {
    const extra = [
      { id: 'in1', z: 'f1', type: 'http in', url: '/api/ai-decisions/', method: 'post', upload: false, wires: [['httplog']] },
      { id: 'httplog', z: 'f1', type: 'ai-decision-log', database: 'db', operation: 'record', topicPrefix: '', wires: [['res'], ['published'], ['ws']] },
      { id: 'res', z: 'f1', type: 'http response', statusCode: '', headers: {}, wires: [] },
      { id: 'in2', z: 'f1', type: 'http in', url: '/down/', method: 'post', upload: false, wires: [['downlog']] },
      { id: 'downlog', z: 'f1', type: 'ai-decision-log', database: 'baddb', operation: 'record', topicPrefix: '', wires: [['res'], [], []] },
      { id: 'baddb', type: 'hypervolt-database', url: 'postgres://nobody@127.0.0.1:1/none' },
    ];
    await helper.load([decisionLog, databaseNode, completeNode, catchNode, httpInNode], flow(url, extra));
    const got = collect('published', 'ws', 'completed', 'caught');
    const server = http.createServer(httpApp!);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const ok = await post(port, '/api/ai-decisions/', JSON.stringify({ ...DECISION, id: 1, created_at: '1999-01-01T00:00:00Z' }));
      assert.equal(ok.status, 201);
      assert.notEqual(ok.json.created_at, '1999-01-01T00:00:00Z');
      assert.deepEqual(await db.decisions.get(ok.json.id), ok.json);
      await until(() => got.published.length === 2, 'two commands');
      assert.equal(got.published[0].topic, 'HyperVolt/commands/light_living_room', 'an empty prefix means HyperVolt');
      assert.equal(got.ws[0].payload.data.id, ok.json.id);
      const bad = await post(port, '/api/ai-decisions/', JSON.stringify({ decision_type: 'general', confidence: 0.5 }));
      assert.deepEqual(bad, { status: 400, json: { decision: ['This field is required.'] } });
      await until(() => got.completed.length === 2, 'two completions');
      assert.equal(got.caught.length, 0, 'a 400 answered over HTTP is not a node error');
      const down = await post(port, '/down/', JSON.stringify(DECISION));
      assert.deepEqual(down, { status: 503, json: { detail: 'database unavailable' } });
      assert.equal(got.published.length, 2, 'nothing published for a decision that was not stored');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('publishes commands through a real mqtt out node to a subscriber on the local broker', async function () {
    await requireService(this, 'mqtt');
    const sub = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: `hvtest-sub-${RUN_ID}` });
    const received: { topic: string; payload: any; qos: number; retain: boolean }[] = [];
    sub.on('message', (topic, payload, packet) => received.push({ topic, payload: JSON.parse(payload.toString()), qos: packet.qos, retain: packet.retain }));
    await sub.subscribeAsync(`${TOPIC_PREFIX}/commands/#`, { qos: 1 });
    try {
      const broker = new URL(MQTT_BROKER_URL);
      const extra = [
        { id: 'broker', type: 'mqtt-broker', broker: broker.hostname, port: broker.port || '1883', clientid: `hvtest-out-${RUN_ID}`, autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true },
        { id: 'mqttout', z: 'f1', type: 'mqtt out', topic: '', qos: '', retain: '', broker: 'broker', wires: [] },
      ];
      await helper.load([decisionLog, databaseNode, completeNode, catchNode, mqttNode], flow(url, extra, ['mqttout']));
      await until(() => (helper.getNode('broker') as any).connected === true, 'the mqtt-broker node to connect');
      helper.getNode('log').receive({ payload: DECISION });
      await until(() => received.length === 2, 'two commands on the broker');
      assert.deepEqual(
        received.map((r) => [r.topic, r.payload.command, r.payload.value, r.qos, r.retain]),
        [
          [`${TOPIC_PREFIX}/commands/light_living_room`, 'set_brightness', 40, 1, false],
          [`${TOPIC_PREFIX}/commands/blind.1:a-b`, 'close', null, 1, false],
        ],
      );
      assert.deepEqual(Object.keys(received[0].payload), ['command', 'value', 'timestamp']);
    } finally {
      await sub.endAsync();
    }
  });

  it('a topic prefix with MQTT wildcards is refused at start: every msg fails', async () => {
    const f = flow(url).map((n) => (n.id === 'log' ? { ...n, topicPrefix: 'bad/#' } : n));
    await helper.load([decisionLog, databaseNode, completeNode, catchNode], f);
    const got = collect('caught', 'rows');
    helper.getNode('log').receive({ payload: DECISION });
    await until(() => got.caught.length === 1, 'the error');
    assert.match(got.caught[0].error.message, /may not contain/);
    assert.equal(got.rows.length, 0);
  });

  describe('topic prefix as a TypedInput (topicPrefixType)', () => {
    const COMMAND = { device_id: 'fan_1', command: 'off' };
    async function commandTopics(props: Record<string, unknown>, msgs: Msg[]): Promise<{ topics: string[]; caught: Msg[] }> {
      const f = flow(url).map((n) => (n.id === 'log' ? { ...n, operation: 'command', ...props } : n));
      await helper.load([decisionLog, databaseNode, completeNode, catchNode], f);
      const got = collect('published', 'completed', 'caught');
      for (const m of msgs) helper.getNode('log').receive(m);
      await until(() => got.completed.length + got.caught.length === msgs.length, 'every msg');
      return { topics: got.published.map((m) => m.topic as string), caught: got.caught };
    }

    it('msg: each msg names its own prefix; without one the default HyperVolt; a wildcard fails that msg only', async () => {
      const { topics, caught } = await commandTopics({ topicPrefix: 'site.prefix', topicPrefixType: 'msg' }, [
        { payload: COMMAND, site: { prefix: 'home-a' } },
        { payload: COMMAND },
        { payload: COMMAND, site: { prefix: 'bad/#' } },
        { payload: COMMAND, site: { prefix: 'home-b/' } },
      ]);
      assert.deepEqual(topics, ['home-a/commands/fan_1', 'HyperVolt/commands/fan_1', 'home-b/commands/fan_1']);
      assert.equal(caught.length, 1);
      assert.match(caught[0].error.message, /may not contain/);
    });

    it('str: the configured prefix, whatever the msg says; env: the variable named in the field', async () => {
      const str = await commandTopics({ topicPrefix: 'fixed', topicPrefixType: 'str' }, [{ payload: COMMAND, topicPrefix: 'other' }]);
      assert.deepEqual(str.topics, ['fixed/commands/fan_1']);
      await helper.unload();
      process.env.HV_TEST_ADL_PREFIX = 'from-env';
      try {
        const env = await commandTopics({ topicPrefix: 'HV_TEST_ADL_PREFIX', topicPrefixType: 'env' }, [{ payload: COMMAND }]);
        assert.deepEqual(env.topics, ['from-env/commands/fan_1']);
      } finally {
        delete process.env.HV_TEST_ADL_PREFIX;
      }
    });

    it('no topicPrefixType (flows saved before it existed): a whole-value ${VAR} is substituted as before', async () => {
      process.env.HV_TEST_ADL_PREFIX = 'legacy';
      try {
        const { topics } = await commandTopics({ topicPrefix: '${HV_TEST_ADL_PREFIX}' }, [{ payload: COMMAND }]);
        assert.deepEqual(topics, ['legacy/commands/fan_1']);
      } finally {
        delete process.env.HV_TEST_ADL_PREFIX;
      }
    });
  });
});
