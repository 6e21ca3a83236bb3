import assert from 'assert/strict';
import { apiErrorMessage, FetchError, kindOfStatus, sanitize } from '../../nodes/shared/fetch/errors';

describe('fetch errors', () => {
  it('classifies HTTP statuses', () => {
    assert.equal(kindOfStatus(401), 'auth');
    assert.equal(kindOfStatus(403), 'auth');
    assert.equal(kindOfStatus(429), 'rate_limited');
    assert.equal(kindOfStatus(500), 'server');
    assert.equal(kindOfStatus(503), 'server');
    assert.equal(kindOfStatus(400), 'client');
    assert.equal(kindOfStatus(404), 'client');
    assert.equal(kindOfStatus(302), 'client');
  });

  it('removes keys from texts: known values and any appid / auth-token value', () => {
    const key = 'abcdef0123456789';
    const cases = [
      `GET /data/2.5/weather?lat=1&lon=2&appid=${key}&units=metric failed`,
      `headers: {"auth-token":"${key}"}`,
      `auth-token: ${key}`,
      `token=${key}`,
      `the key ${key} was refused`,
    ];
    for (const text of cases) {
      const out = sanitize(text, [key]);
      assert.ok(!out.includes(key), out);
      assert.ok(!out.includes('0123456789'), out);
    }
    assert.equal(sanitize('x?appid=zzzz&units=metric'), 'x?appid=***&units=metric');
    assert.equal(sanitize('plain message', ['key']), 'plain message', 'short secrets are not matched');
  });

  it('carries no request config, only kind, status and message', () => {
    const e = new FetchError('rate_limited', 'Electricity Maps: rate limited (HTTP 429)', 429, 1000);
    assert.equal(e.code, 'rate_limited');
    assert.equal(e.reason, '429');
    assert.equal(new FetchError('timeout', 'x').reason, 'timeout');
    assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(e))).sort(), ['code', 'kind', 'message', 'name', 'status']);
    assert.ok(e instanceof Error);
  });

  it('reads the message of both APIs error bodies', () => {
    assert.equal(apiErrorMessage({ error: 'Invalid token' }), 'Invalid token');
    assert.equal(apiErrorMessage({ cod: 401, message: 'Invalid API key.' }), 'Invalid API key.');
    assert.equal(apiErrorMessage('text'), undefined);
    assert.equal(apiErrorMessage({ error: 42 }), undefined);
  });
});
