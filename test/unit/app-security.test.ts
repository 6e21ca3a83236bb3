import assert from 'assert/strict';
import {
  INVALID_TOKEN,
  NO_CREDENTIALS,
  NO_PERMISSION,
  bearerToken,
  checkApiAccess,
  checkUpgrade,
  corsOptions,
  isApiPath,
  originAllowed,
  parseOrigins,
  sameToken,
} from '../../app/security';

describe('app security', () => {
  it('bearerToken', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer  abc '), 'abc');
    assert.equal(bearerToken(['Bearer x', 'Bearer y']), 'x');
    assert.equal(bearerToken('Token abc'), undefined);
    assert.equal(bearerToken('Bearer'), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });

  it('sameToken', () => {
    assert.equal(sameToken('abc', 'abc'), true);
    assert.equal(sameToken('abc', 'abcd'), false);
    assert.equal(sameToken('', 'x'), false);
  });

  it('isApiPath', () => {
    assert.equal(isApiPath('/api/health/'), true);
    assert.equal(isApiPath('/api'), true);
    assert.equal(isApiPath('/apix'), false);
    assert.equal(isApiPath('/admin/flows'), false);
  });

  describe('checkApiAccess', () => {
    it('lets everything through without tokens', () => {
      for (const m of ['GET', 'POST', 'DELETE']) assert.equal(checkApiAccess(m, undefined, {}), null);
    });

    it('API_TOKEN guards writes: 401 without, 401 unknown, 403 read token, ok with it', () => {
      const tokens = { apiToken: 'w', readToken: 'r' };
      assert.deepEqual(checkApiAccess('POST', undefined, tokens), { status: 401, body: { detail: NO_CREDENTIALS } });
      assert.deepEqual(checkApiAccess('PUT', 'nope', tokens), { status: 401, body: { detail: INVALID_TOKEN } });
      assert.deepEqual(checkApiAccess('PATCH', 'r', tokens), { status: 403, body: { detail: NO_PERMISSION } });
      assert.equal(checkApiAccess('DELETE', 'w', tokens), null);
    });

    it('API_TOKEN alone leaves reads open', () => {
      assert.equal(checkApiAccess('GET', undefined, { apiToken: 'w' }), null);
      assert.equal(checkApiAccess('POST', undefined, { apiToken: 'w' })?.status, 401);
    });

    it('API_READ_TOKEN guards reads; the write token opens them too', () => {
      const tokens = { apiToken: 'w', readToken: 'r' };
      assert.equal(checkApiAccess('GET', undefined, tokens)?.status, 401);
      assert.equal(checkApiAccess('GET', 'x', tokens)?.body.detail, INVALID_TOKEN);
      assert.equal(checkApiAccess('GET', 'r', tokens), null);
      assert.equal(checkApiAccess('HEAD', 'w', tokens), null);
    });

    it('with only a read token, writes need it as well', () => {
      assert.equal(checkApiAccess('POST', undefined, { readToken: 'r' })?.status, 401);
      assert.equal(checkApiAccess('POST', 'r', { readToken: 'r' }), null);
    });

    it('never blocks a CORS preflight', () => {
      assert.equal(checkApiAccess('OPTIONS', undefined, { apiToken: 'w', readToken: 'r' }), null);
    });
  });

  it('parseOrigins and corsOptions', () => {
    assert.deepEqual(parseOrigins(' https://a.example/, http://b:3000 ,,'), ['https://a.example', 'http://b:3000']);
    assert.deepEqual(parseOrigins(undefined), []);
    assert.equal(corsOptions([]), undefined);
    assert.deepEqual(corsOptions(['https://a'])?.origin, ['https://a']);
    assert.equal(corsOptions(['*', 'https://a'])?.origin, '*');
  });

  describe('originAllowed', () => {
    it('passes a client without Origin (not a browser)', () => assert.equal(originAllowed(undefined, [], 'h:1880'), true));
    it('with CORS_ORIGIN: only the listed origins', () => {
      assert.equal(originAllowed('https://app.example', ['https://app.example'], 'h:1880'), true);
      assert.equal(originAllowed('https://evil.example', ['https://app.example'], 'h:1880'), false);
      assert.equal(originAllowed('https://any', ['*'], 'h:1880'), true);
    });
    it('without CORS_ORIGIN: only pages of this host', () => {
      assert.equal(originAllowed('http://127.0.0.1:1880', [], '127.0.0.1:1880'), true);
      assert.equal(originAllowed('http://127.0.0.1:3000', [], '127.0.0.1:1880'), false);
      assert.equal(originAllowed('null', [], '127.0.0.1:1880'), false);
    });
  });

  describe('checkUpgrade', () => {
    it('needs ?token= when API_READ_TOKEN is set', () => {
      const tokens = { readToken: 'r', apiToken: 'w' };
      assert.equal(checkUpgrade({ url: '/ws/sensors/' }, tokens, [])?.status, 401);
      assert.equal(checkUpgrade({ url: '/ws/sensors/?token=bad' }, tokens, [])?.status, 401);
      assert.equal(checkUpgrade({ url: '/ws/sensors/?token=r' }, tokens, []), null);
      assert.equal(checkUpgrade({ url: '/ws/sensors/?token=w' }, tokens, []), null);
      assert.equal(checkUpgrade({ url: '/ws/sensors/', authorization: 'Bearer r' }, tokens, []), null);
    });
    it('is open without a read token', () => {
      assert.equal(checkUpgrade({ url: '/ws/sensors/' }, { apiToken: 'w' }, []), null);
    });
    it('refuses a foreign Origin with 403 before looking at tokens', () => {
      assert.deepEqual(checkUpgrade({ url: '/ws/sensors/?token=r', origin: 'https://evil', host: 'h:1' }, { readToken: 'r' }, []), {
        status: 403,
        message: 'Origin not allowed',
      });
    });
  });
});
