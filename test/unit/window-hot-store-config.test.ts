import assert from 'assert/strict';
import { createWindowStore, parseHotStoreConfig } from '../../nodes/hypervolt-hot-store/hot-store-config';

describe('parseHotStoreConfig', () => {
  it('defaults: in process, hypervolt:, 60 readings, one hour', () => {
    assert.deepEqual(parseHotStoreConfig({}), { url: '', prefix: 'hypervolt:', size: 60, ttlSeconds: 3600, warnings: [] });
  });

  it('reads numbers given as text (as env vars arrive)', () => {
    const c = parseHotStoreConfig({ url: ' redis://127.0.0.1:6379/2 ', prefix: 'hv:', size: ' 120 ', ttl: 90 });
    assert.deepEqual(c, { url: 'redis://127.0.0.1:6379/2', prefix: 'hv:', size: 120, ttlSeconds: 90, warnings: [] });
    assert.equal(parseHotStoreConfig({ url: 'rediss://u:p@host:6380/0' }).url, 'rediss://u:p@host:6380/0');
  });

  it('treats an unsubstituted ${VAR} (an unset variable) as empty', () => {
    const c = parseHotStoreConfig({ url: '${REDIS_URL}', prefix: '${NOPE}', size: '${SENSOR_BUFFER_SIZE}', ttl: '${X}' });
    assert.deepEqual(c, { url: '', prefix: 'hypervolt:', size: 60, ttlSeconds: 3600, warnings: [] });
  });

  it('falls back to the default, with a warning, for an invalid number', () => {
    for (const size of ['abc', '0', '-5', '2.5', '1e9']) {
      const c = parseHotStoreConfig({ size });
      assert.equal(c.size, 60, size);
      assert.equal(c.warnings.length, 1, size);
    }
    assert.equal(parseHotStoreConfig({ ttl: 'soon' }).ttlSeconds, 3600);
  });

  it('refuses a url that is not redis, without echoing its password', () => {
    const c = parseHotStoreConfig({ url: 'http://user:secret@host:6379' });
    assert.equal(c.url, '');
    assert.equal(c.warnings.length, 1);
    assert.doesNotMatch(c.warnings[0], /secret/);
  });
});

describe('createWindowStore', () => {
  const logger = { log: () => undefined, warn: () => undefined };

  it('creates the in-process store for an empty url', async () => {
    const store = createWindowStore(parseHotStoreConfig({ size: '5', ttl: '7' }), logger);
    assert.equal(store.kind, 'memory');
    assert.equal(store.size, 5);
    assert.equal(store.ttlSeconds, 7);
    await store.close();
  });

  it('creates a Redis store (not connected until asked) for a redis url', async () => {
    const store = createWindowStore(parseHotStoreConfig({ url: 'redis://127.0.0.1:1/0' }), logger);
    assert.equal(store.kind, 'redis');
    assert.equal(store.state, 'disconnected');
    await store.close();
  });
});
