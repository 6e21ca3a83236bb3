import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import {
  ENV_DEFAULTS,
  checkEnv,
  envDefaults,
  exposureProblem,
  heapFlags,
  heapGrowthFlag,
  instanceClientId,
  isLoopbackHost,
  loadEnvFile,
  sensorSubscription,
  splitUrlCredentials,
  type Env,
} from '../../app/env';

describe('app env', () => {
  describe('loadEnvFile', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-env-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('sets variables from the file without overriding the environment', () => {
      const file = path.join(dir, '.env');
      fs.writeFileSync(file, '# comment\nPORT=1999\nMQTT_TOPIC_PREFIX="Home Volt"\nexport RETENTION_DAYS=3\n');
      const env: Env = { PORT: '1880' };
      const set = loadEnvFile(file, env);
      assert.deepEqual(set?.sort(), ['MQTT_TOPIC_PREFIX', 'RETENTION_DAYS']);
      assert.equal(env.PORT, '1880');
      assert.equal(env.MQTT_TOPIC_PREFIX, 'Home Volt');
      assert.equal(env.RETENTION_DAYS, '3');
    });

    it('returns null when there is no file', () => {
      const env: Env = {};
      assert.equal(loadEnvFile(path.join(dir, 'missing.env'), env), null);
      assert.deepEqual(env, {});
    });

    it('keeps a variable set to the empty string (set means set)', () => {
      const file = path.join(dir, '.env');
      fs.writeFileSync(file, 'REDIS_URL=redis://x:6379\n');
      const env: Env = { REDIS_URL: '' };
      loadEnvFile(file, env);
      assert.equal(env.REDIS_URL, '');
    });
  });

  describe('envDefaults', () => {
    it('gives every contract variable a value and derives paths and the subscription', () => {
      const d = envDefaults({}, '/repo');
      for (const k of Object.keys(ENV_DEFAULTS)) assert.ok(k in d, `${k} has a default`);
      assert.equal(d.MQTT_TOPIC_PREFIX, 'HyperVolt');
      assert.equal(d.SENSOR_BUFFER_SIZE, '60');
      assert.equal(d.RETENTION_DAYS, '7');
      assert.equal(d.LOCATION_ZONE, 'IN-KA');
      assert.equal(d.REDIS_URL, '');
      assert.equal(d.DATA_DIR, '/repo/data');
      assert.equal(d.DATABASE_URL, 'sqlite:/repo/data/hypervolt.db');
      assert.equal(d.MQTT_SENSOR_TOPIC, 'HyperVolt/sensors/+/+');
      assert.equal(d.MQTT_DECISIONS_TOPIC, 'HyperVolt/ai/decisions');
    });

    it('keeps what is set and derives from it', () => {
      const d = envDefaults(
        { MQTT_TOPIC_PREFIX: 'Lab', DATA_DIR: 'var/hv', DATABASE_URL: 'postgres://h/db', HYPERVOLT_GROUP: 'g1', PORT: '2000' },
        '/repo',
      );
      assert.equal(d.PORT, undefined);
      assert.equal(d.MQTT_TOPIC_PREFIX, undefined);
      assert.equal(d.DATABASE_URL, undefined);
      assert.equal(d.DATA_DIR, '/repo/var/hv');
      assert.equal(d.MQTT_SENSOR_TOPIC, '$share/g1/Lab/sensors/+/+');
      assert.equal(d.MQTT_DECISIONS_TOPIC, '$share/g1/Lab/ai/decisions');
    });

    it('puts the SQLite file in an absolute DATA_DIR', () => {
      const d = envDefaults({ DATA_DIR: '/tmp/hv-x' }, '/repo');
      assert.equal(d.DATABASE_URL, 'sqlite:/tmp/hv-x/hypervolt.db');
    });
  });

  describe('MQTT client id of an instance', () => {
    it('is the fixed default without a group', () => {
      assert.equal(envDefaults({}, '/repo', 'pi-1').MQTT_CLIENT_ID, 'hypervolt-pipeline');
    });

    it('names group, host and port when a group is set, so each instance keeps its own session', () => {
      const a = envDefaults({ HYPERVOLT_GROUP: 'g1', PORT: '2000' }, '/repo', 'node-a');
      const b = envDefaults({ HYPERVOLT_GROUP: 'g1', PORT: '2001' }, '/repo', 'node-a');
      const c = envDefaults({ HYPERVOLT_GROUP: 'g1' }, '/repo', 'node-b');
      assert.equal(a.MQTT_CLIENT_ID, 'hypervolt-g1-node-a-2000');
      assert.equal(b.MQTT_CLIENT_ID, 'hypervolt-g1-node-a-2001');
      assert.equal(c.MQTT_CLIENT_ID, 'hypervolt-g1-node-b-1880');
      // Same machine and port after a restart: the same id, so the same persistent session.
      assert.equal(envDefaults({ HYPERVOLT_GROUP: 'g1', PORT: '2000' }, '/repo', 'node-a').MQTT_CLIENT_ID, a.MQTT_CLIENT_ID);
    });

    it('keeps an MQTT_CLIENT_ID that is set, even with a group', () => {
      assert.equal(envDefaults({ HYPERVOLT_GROUP: 'g1', MQTT_CLIENT_ID: 'mine' }, '/repo', 'h').MQTT_CLIENT_ID, undefined);
    });

    it('replaces characters a client id should not carry', () => {
      assert.equal(instanceClientId('g', 'my host/1', '80'), 'hypervolt-g-my_host_1-80');
      assert.equal(instanceClientId('g', '', '80'), 'hypervolt-g-host-80');
    });
  });

  it('sensorSubscription', () => {
    assert.equal(sensorSubscription('HyperVolt', ''), 'HyperVolt/sensors/+/+');
    assert.equal(sensorSubscription('a/b', 'grp'), '$share/grp/a/b/sensors/+/+');
  });

  describe('checkEnv', () => {
    const good = { ...ENV_DEFAULTS } as Env;
    it('accepts the defaults', () => assert.deepEqual(checkEnv(good), []));
    it('names each bad value', () => {
      const problems = checkEnv({
        ...good,
        PORT: 'http',
        MQTT_TOPIC_PREFIX: 'a/#',
        SENSOR_BUFFER_SIZE: '0',
        RETENTION_DAYS: '',
        MQTT_PROTOCOL_VERSION: '3',
        HYPERVOLT_GROUP: 'a b',
        HYPERVOLT_LEADER_TTL_SECONDS: '-1',
      });
      for (const k of ['PORT', 'MQTT_TOPIC_PREFIX', 'SENSOR_BUFFER_SIZE', 'RETENTION_DAYS', 'MQTT_PROTOCOL_VERSION', 'HYPERVOLT_GROUP', 'HYPERVOLT_LEADER_TTL_SECONDS']) {
        assert.ok(problems.some((p) => p.startsWith(k)), `${k} reported in ${JSON.stringify(problems)}`);
      }
    });
    it('wants HEAP_GROWING_PERCENT a whole number from 0 to 400', () => {
      for (const v of ['0', '25', '400']) assert.deepEqual(checkEnv({ ...good, HEAP_GROWING_PERCENT: v }), [], v);
      for (const v of ['', '-1', '12.5', '401', 'lots']) {
        assert.match(checkEnv({ ...good, HEAP_GROWING_PERCENT: v }).join(), /^HEAP_GROWING_PERCENT must be/, v);
      }
    });
    it('wants admin user and hash together, and a bcrypt hash', () => {
      assert.equal(checkEnv({ ...good, ADMIN_USER: 'admin' }).length, 1);
      assert.equal(checkEnv({ ...good, ADMIN_USER: 'admin', ADMIN_PASSWORD_HASH: 'secret' }).length, 1);
      const hash = '$2b$08$' + 'a'.repeat(53);
      assert.deepEqual(checkEnv({ ...good, ADMIN_USER: 'admin', ADMIN_PASSWORD_HASH: hash }), []);
    });
  });

  it('heapGrowthFlag: the V8 flag by default, none for 0 or when node was given one', () => {
    assert.equal(heapGrowthFlag({ ...ENV_DEFAULTS }, []), '--heap-growing-percent=25');
    assert.equal(heapGrowthFlag({ HEAP_GROWING_PERCENT: ' 40 ' }, ['--inspect']), '--heap-growing-percent=40');
    assert.equal(heapGrowthFlag({ HEAP_GROWING_PERCENT: '0' }, []), null);
    assert.equal(heapGrowthFlag({}, []), null);
    assert.equal(heapGrowthFlag({ HEAP_GROWING_PERCENT: '25' }, ['--heap-growing-percent=50']), null);
    assert.equal(heapGrowthFlag({ HEAP_GROWING_PERCENT: '25' }, ['--heap_growing_percent=5']), null);
  });

  it('heapFlags: the heap options of node and the growth flag, for the log', () => {
    assert.deepEqual(heapFlags(['--inspect', '--max-semi-space-size=32', '--max_old_space_size=128'], '--heap-growing-percent=25'), [
      '--max-semi-space-size=32',
      '--max_old_space_size=128',
      '--heap-growing-percent=25',
    ]);
    assert.deepEqual(heapFlags([], null), []);
  });

  it('isLoopbackHost', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ['0.0.0.0', '::', '', undefined, '192.168.1.10', '128.0.0.1', 'example.com', '127.0.0.1.nip.io']) {
      assert.equal(isLoopbackHost(h), false, String(h));
    }
  });

  it('exposureProblem: refuses a public HOST without an editor login', () => {
    assert.equal(exposureProblem({ HOST: '127.0.0.1' }), null);
    assert.match(exposureProblem({ HOST: '0.0.0.0' }) ?? '', /refusing to listen on HOST=0\.0\.0\.0.*ADMIN_USER and ADMIN_PASSWORD_HASH/);
    assert.match(exposureProblem({ HOST: '0.0.0.0', ADMIN_USER: 'a' }) ?? '', /refusing/);
    assert.equal(exposureProblem({ HOST: '0.0.0.0', ADMIN_USER: 'a', ADMIN_PASSWORD_HASH: 'h' }), null);
  });

  it('splitUrlCredentials takes the user info out of a broker URL', () => {
    assert.deepEqual(splitUrlCredentials('mqtt://hv:p%40ss@broker:1883'), { url: 'mqtt://broker:1883', username: 'hv', password: 'p@ss' });
    assert.deepEqual(splitUrlCredentials('mqtts://broker:8883'), { url: 'mqtts://broker:8883' });
    assert.deepEqual(splitUrlCredentials('not a url'), { url: 'not a url' });
  });
});
