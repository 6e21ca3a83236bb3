import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import {
  credentialSecret,
  credentialsFile,
  decryptCredentials,
  encryptCredentials,
  planCredentials,
  seedCredentials,
} from '../../app/credentials';

describe('app credentials', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-cred-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('credentialSecret', () => {
    it('uses NODE_RED_CREDENTIAL_SECRET when set, writing nothing', () => {
      assert.equal(credentialSecret({ NODE_RED_CREDENTIAL_SECRET: 's3cret' }, dir), 's3cret');
      assert.deepEqual(fs.readdirSync(dir), []);
    });

    it('otherwise generates one, keeps it private and reuses it', () => {
      const a = credentialSecret({}, path.join(dir, 'data'));
      assert.match(a, /^[0-9a-f]{64}$/);
      const file = path.join(dir, 'data', 'credential-secret');
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.equal(credentialSecret({}, path.join(dir, 'data')), a);
      const other = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-cred2-'));
      try {
        assert.notEqual(credentialSecret({}, other), a, 'each data dir gets its own secret');
      } finally {
        fs.rmSync(other, { recursive: true, force: true });
      }
    });
  });

  it('encrypts in the format Node-RED reads', () => {
    const creds = { n1: { user: '${MQTT_USERNAME}' } };
    const stored = encryptCredentials('k', creds);
    assert.match(stored.$, /^[0-9a-f]{32}/);
    assert.deepEqual(decryptCredentials('k', stored), creds);
    assert.throws(() => decryptCredentials('other key', stored));
  });

  describe('planCredentials', () => {
    const flow = [
      { id: 'b1', type: 'mqtt-broker' },
      { id: 'e1', type: 'electricitymaps-account' },
      { id: 'x', type: 'function' },
    ];

    it('adds placeholders for the variables that are set, and only those', () => {
      const { creds, changed } = planCredentials(flow, {}, { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p', ELECTRICITY_MAPS_API_KEY: 'k' });
      assert.equal(changed, true);
      assert.deepEqual(creds, {
        b1: { user: '${MQTT_USERNAME}', password: '${MQTT_PASSWORD}' },
        e1: { apiKey: '${ELECTRICITY_MAPS_API_KEY}' },
      });
      assert.ok(!JSON.stringify(creds).includes('"u"'), 'never the secret itself');
      const onlyUser = planCredentials(flow, {}, { MQTT_USERNAME: 'u' }).creds;
      assert.deepEqual(onlyUser, { b1: { user: '${MQTT_USERNAME}' } });
    });

    it('removes its placeholders when the variables are gone', () => {
      const { creds, changed } = planCredentials(flow, { b1: { user: '${MQTT_USERNAME}', password: '${MQTT_PASSWORD}' } }, {});
      assert.equal(changed, true);
      assert.deepEqual(creds, {});
    });

    it('leaves what a user typed in the editor alone', () => {
      const current = { b1: { user: 'alice', password: 'pw' } };
      const { creds, changed } = planCredentials(flow, current, { MQTT_USERNAME: 'u' });
      assert.equal(changed, false);
      assert.deepEqual(creds, current);
    });

    it('reports no change when already in place', () => {
      const current = { b1: { user: '${MQTT_USERNAME}' } };
      assert.equal(planCredentials(flow, current, { MQTT_USERNAME: 'u' }).changed, false);
    });
  });

  describe('seedCredentials', () => {
    const flowFile = () => {
      const f = path.join(dir, 'flows.json');
      fs.writeFileSync(f, JSON.stringify([{ id: 'b1', type: 'mqtt-broker' }]));
      return f;
    };

    it('writes an encrypted, private credentials file beside the user dir', () => {
      const f = flowFile();
      const userDir = path.join(dir, 'nr');
      const note = seedCredentials({ flowFile: f, userDir, secret: 'k', env: { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p' } });
      assert.ok(note);
      const file = credentialsFile(userDir, f);
      assert.equal(file, path.join(userDir, 'flows_cred.json'));
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert.deepEqual(decryptCredentials('k', stored), { b1: { user: '${MQTT_USERNAME}', password: '${MQTT_PASSWORD}' } });
      assert.equal(seedCredentials({ flowFile: f, userDir, secret: 'k', env: { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p' } }), null);
    });

    it('does not touch a file it cannot decrypt', () => {
      const f = flowFile();
      const userDir = path.join(dir, 'nr');
      fs.mkdirSync(userDir);
      const file = credentialsFile(userDir, f);
      const original = JSON.stringify(encryptCredentials('old key', { b1: { user: 'alice' } }));
      fs.writeFileSync(file, original);
      const note = seedCredentials({ flowFile: f, userDir, secret: 'new key', env: { MQTT_USERNAME: 'u' } });
      assert.match(note ?? '', /could not be read/);
      assert.equal(fs.readFileSync(file, 'utf8'), original);
    });

    it('with nothing wanted: writes an empty encrypted file once (Node-RED warns about a missing one)', () => {
      const f = flowFile();
      const userDir = path.join(dir, 'nr');
      assert.ok(seedCredentials({ flowFile: f, userDir, secret: 'k', env: {} }));
      const file = credentialsFile(userDir, f);
      assert.deepEqual(decryptCredentials('k', JSON.parse(fs.readFileSync(file, 'utf8'))), {});
      assert.equal(seedCredentials({ flowFile: f, userDir, secret: 'k', env: {} }), null);
    });
  });
});
