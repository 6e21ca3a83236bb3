import assert from 'assert/strict';
import fs from 'fs';
import http from 'http';
import type { AddressInfo } from 'net';
import os from 'os';
import path from 'path';
import {
  adminProblem,
  clientErrorHandler,
  httpHardening,
  mqttTlsWarning,
  securityEnvDefaults,
  securityEnvProblems,
} from '../../app/hardening';
import {
  CROSS_ORIGIN_EDITOR,
  EDITOR_LOCAL_ONLY,
  ORIGIN_NOT_ALLOWED,
  adminRequestProblem,
  checkUpgrade,
  corsHeaders,
  corsOptions,
  hostnameOf,
  isGuardedPath,
  originAllowed,
  sameOrigin,
  securityHeaders,
  splitWsProtocols,
  upgradeToken,
  writeOriginProblem,
} from '../../app/security';

describe('security: HTTP', () => {
  describe('securityHeaders', () => {
    it('every path: nosniff, no framing, no referrer, same-site resources', () => {
      for (const p of ['/admin/', '/', '/dashboard/x']) {
        assert.deepEqual(securityHeaders(p), {
          'x-content-type-options': 'nosniff',
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
          'cross-origin-resource-policy': 'same-site',
        });
      }
    });
    it('API and WebSocket answers: also never cached, never active content', () => {
      for (const p of ['/api/health/', '/api', '/ws/sensors/']) {
        const h = securityHeaders(p);
        assert.equal(h['cache-control'], 'no-store');
        assert.equal(h['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
        assert.equal(h['x-frame-options'], 'DENY');
      }
      assert.equal(securityHeaders('/apix')['cache-control'], undefined);
      assert.equal(securityHeaders('/metrics')['cache-control'], 'no-store');
    });
    it('the tokens guard /api/ and /metrics', () => {
      for (const p of ['/api/health/', '/api', '/metrics', '/metrics/']) assert.equal(isGuardedPath(p), true, p);
      for (const p of ['/admin/', '/metricsx', '/dashboard', '/']) assert.equal(isGuardedPath(p), false, p);
    });
  });

  describe('CORS', () => {
    it('corsOptions never allows credentials, with * or a list', () => {
      for (const list of [['*'], ['https://a.example'], ['*', 'https://a.example']]) {
        const o = corsOptions(list)!;
        assert.equal(o.credentials, false);
        assert.equal(o.exposedHeaders, 'Retry-After');
      }
      assert.equal(corsOptions(['*', 'https://a'])!.origin, '*');
      assert.deepEqual(corsOptions(['https://a'])!.origin, ['https://a']);
    });
    it('corsHeaders: the listed origin echoed with Vary; * as *; others nothing; never credentials', () => {
      assert.deepEqual(corsHeaders('https://a.example', ['https://a.example', 'https://b']), {
        'access-control-allow-origin': 'https://a.example',
        'access-control-expose-headers': 'Retry-After',
        vary: 'Origin',
      });
      assert.deepEqual(corsHeaders('https://evil.example', ['https://a.example']), { vary: 'Origin' });
      assert.deepEqual(corsHeaders(undefined, ['https://a.example']), { vary: 'Origin' });
      assert.deepEqual(corsHeaders('https://x', ['*']), { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'Retry-After' });
      assert.deepEqual(corsHeaders('https://x', []), {});
      for (const h of [corsHeaders('https://a', ['https://a']), corsHeaders('https://a', ['*'])]) {
        assert.equal(h['access-control-allow-credentials'], undefined);
      }
    });
  });

  describe('origins and hosts', () => {
    it('sameOrigin compares host and port', () => {
      assert.equal(sameOrigin('http://127.0.0.1:1880', '127.0.0.1:1880'), true);
      assert.equal(sameOrigin('http://LOCALHOST:1880', 'localhost:1880'), true);
      assert.equal(sameOrigin('http://127.0.0.1:3000', '127.0.0.1:1880'), false);
      assert.equal(sameOrigin('null', '127.0.0.1:1880'), false);
      assert.equal(sameOrigin('http://a', undefined), false);
    });
    it('originAllowed: a page of this host is allowed even with a CORS_ORIGIN list', () => {
      assert.equal(originAllowed('http://h:1880', ['https://twin.example'], 'h:1880'), true);
      assert.equal(originAllowed('https://twin.example/', ['https://twin.example'], 'h:1880'), true);
      assert.equal(originAllowed('https://evil.example', ['https://twin.example'], 'h:1880'), false);
    });
    it('hostnameOf', () => {
      assert.equal(hostnameOf('127.0.0.1:1880'), '127.0.0.1');
      assert.equal(hostnameOf('[::1]:1880'), '::1');
      assert.equal(hostnameOf('Example.COM'), 'example.com');
      assert.equal(hostnameOf(undefined), '');
    });
  });

  describe('adminRequestProblem', () => {
    it('without a login: refuses a page of another origin', () => {
      assert.equal(adminRequestProblem({ origin: 'https://evil.example', host: '127.0.0.1:1880' }, false), CROSS_ORIGIN_EDITOR);
      assert.equal(adminRequestProblem({ origin: 'http://127.0.0.1:1880', host: '127.0.0.1:1880' }, false), null);
    });
    it('without a login: only loopback Host names, never through a proxy', () => {
      for (const host of ['127.0.0.1:1880', 'localhost:1880', '[::1]:1880', '127.0.0.2', 'app.localhost:1880']) {
        assert.equal(adminRequestProblem({ host }, false), null, host);
      }
      for (const host of ['evil.example:1880', '192.168.1.5:1880', '', undefined]) {
        assert.equal(adminRequestProblem({ host }, false), EDITOR_LOCAL_ONLY, String(host));
      }
      assert.equal(adminRequestProblem({ host: '127.0.0.1:1880', forwarded: true }, false), EDITOR_LOCAL_ONLY);
    });
    it('with a login: no restriction (the admin API needs its token; a proxy may rewrite Host)', () => {
      assert.equal(adminRequestProblem({ host: '192.168.1.5:1880', forwarded: true }, true), null);
      assert.equal(adminRequestProblem({ origin: 'https://hv.example.com', host: '127.0.0.1:1880', forwarded: true }, true), null);
    });
    it('adminProblem reads the forwarding headers', () => {
      const req = (headers: Record<string, string>) => ({ headers: { host: '127.0.0.1:1880', ...headers } }) as unknown as http.IncomingMessage;
      assert.equal(adminProblem(req({}), false), null);
      assert.equal(adminProblem(req({ 'x-forwarded-for': '1.2.3.4' }), false), EDITOR_LOCAL_ONLY);
      assert.equal(adminProblem(req({ forwarded: 'for=1.2.3.4' }), false), EDITOR_LOCAL_ONLY);
      assert.equal(adminProblem(req({ 'x-real-ip': '1.2.3.4' }), false), EDITOR_LOCAL_ONLY);
    });
  });

  it('writeOriginProblem: a cross-site write is refused, reads and allowed origins pass', () => {
    assert.equal(writeOriginProblem('POST', 'https://evil.example', [], 'h:1880'), ORIGIN_NOT_ALLOWED);
    assert.equal(writeOriginProblem('DELETE', 'https://evil.example', ['https://twin'], 'h:1880'), ORIGIN_NOT_ALLOWED);
    assert.equal(writeOriginProblem('POST', 'https://twin', ['https://twin'], 'h:1880'), null);
    assert.equal(writeOriginProblem('POST', 'https://any', ['*'], 'h:1880'), null);
    assert.equal(writeOriginProblem('POST', 'http://h:1880', [], 'h:1880'), null);
    assert.equal(writeOriginProblem('POST', undefined, [], 'h:1880'), null);
    assert.equal(writeOriginProblem('GET', 'https://evil.example', [], 'h:1880'), null);
  });

  describe('WebSocket tokens', () => {
    it('splitWsProtocols takes the first bearer. entry out', () => {
      assert.deepEqual(splitWsProtocols('hypervolt, bearer.abc'), { token: 'abc', others: ['hypervolt'] });
      assert.deepEqual(splitWsProtocols('Bearer.abc,bearer.def'), { token: 'abc', others: [] });
      assert.deepEqual(splitWsProtocols('a, b'), { token: undefined, others: ['a', 'b'] });
      assert.deepEqual(splitWsProtocols(undefined), { token: undefined, others: [] });
      assert.deepEqual(splitWsProtocols('bearer.'), { token: undefined, others: [] });
    });
    it('upgradeToken: query first, then subprotocol, then Authorization', () => {
      assert.equal(upgradeToken({ url: '/ws/?token=q', protocol: 'bearer.p', authorization: 'Bearer a' }), 'q');
      assert.equal(upgradeToken({ url: '/ws/', protocol: 'x, bearer.p', authorization: 'Bearer a' }), 'p');
      assert.equal(upgradeToken({ url: '/ws/', authorization: 'Bearer a' }), 'a');
      assert.equal(upgradeToken({ url: '/ws/' }), undefined);
    });
    it('checkUpgrade accepts the read or write token as a subprotocol', () => {
      const tokens = { readToken: 'r', apiToken: 'w' };
      assert.equal(checkUpgrade({ url: '/ws/sensors/', protocol: 'hypervolt, bearer.r' }, tokens, []), null);
      assert.equal(checkUpgrade({ url: '/ws/sensors/', protocol: 'bearer.w' }, tokens, []), null);
      assert.equal(checkUpgrade({ url: '/ws/sensors/', protocol: 'hypervolt, bearer.x' }, tokens, [])?.status, 401);
      assert.equal(checkUpgrade({ url: '/ws/sensors/', protocol: 'hypervolt' }, tokens, [])?.status, 401);
    });
  });

  describe('environment', () => {
    it('defaults the TLS file variables to empty (the flow resolves ${MQTT_CA_FILE})', () => {
      assert.deepEqual(securityEnvDefaults({}), { MQTT_CA_FILE: '', MQTT_CERT_FILE: '', MQTT_KEY_FILE: '' });
      assert.deepEqual(securityEnvDefaults({ MQTT_CA_FILE: '/x' }), { MQTT_CERT_FILE: '', MQTT_KEY_FILE: '' });
    });
    it('securityEnvProblems names each bad value', () => {
      assert.deepEqual(securityEnvProblems({}), []);
      const problems = securityEnvProblems({
        RATE_LIMIT_WRITES_PER_MIN: 'lots',
        RATE_LIMIT_COMMANDS_PER_MIN: '-1',
        WS_MAX_CLIENTS: '0',
        MQTT_CA_FILE: '/nonexistent/ca.crt',
        MQTT_CERT_FILE: __filename,
        MQTT_ACL_FILE: '/nonexistent/acl.json',
      });
      const text = problems.join('\n');
      for (const name of ['RATE_LIMIT_WRITES_PER_MIN', 'RATE_LIMIT_COMMANDS_PER_MIN', 'WS_MAX_CLIENTS', 'MQTT_CA_FILE', 'MQTT_KEY_FILE', 'MQTT_ACL_FILE']) {
        assert.match(text, new RegExp(name), name);
      }
      assert.match(text, /MQTT_ACL_FILE needs MQTT_USERNAME and MQTT_PASSWORD/);
    });
    it('an invalid ACL file is a start-up problem with the reason', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-acl-'));
      try {
        const file = path.join(dir, 'acl.json');
        fs.writeFileSync(file, JSON.stringify({ users: { pi: { publish: ['a/#/b'] } } }));
        const problems = securityEnvProblems({ MQTT_ACL_FILE: file, MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p' });
        assert.equal(problems.length, 1);
        assert.match(problems[0], /"a\/#\/b" is not a valid topic filter/);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('mqttTlsWarning', () => {
    const broker = { id: 'b', type: 'mqtt-broker', name: 'HyperVolt broker', broker: '${MQTT_URL}', usetls: false };
    it('mqtts:// with a broker node that does not verify the certificate: warns', () => {
      assert.match(mqttTlsWarning([broker], { MQTT_URL: 'mqtts://b:8883' })!, /NOT authenticated/);
      const unverified = [{ ...broker, usetls: true, tls: 't' }, { id: 't', type: 'tls-config', verifyservercert: false }];
      assert.match(mqttTlsWarning(unverified, { MQTT_URL: 'mqtts://b:8883' })!, /HyperVolt broker/);
    });
    it('mqtts:// with a verifying tls-config node: fine', () => {
      const flow = [{ ...broker, usetls: true, tls: 't' }, { id: 't', type: 'tls-config', verifyservercert: true }];
      assert.equal(mqttTlsWarning(flow, { MQTT_URL: 'mqtts://b:8883' }), null);
    });
    it('a CA file with a plain mqtt:// URL: warns that nothing is encrypted', () => {
      assert.match(mqttTlsWarning([broker], { MQTT_URL: 'mqtt://b:1883', MQTT_CA_FILE: '/ca' })!, /not encrypted/);
      assert.equal(mqttTlsWarning([broker], { MQTT_URL: 'mqtt://b:1883' }), null);
    });
  });

  it('clientErrorHandler answers an unparsable request like Node, with the security headers', () => {
    const written: string[] = [];
    const socket = { writable: true, end: (t: string) => written.push(t), destroy: () => written.push('destroyed') };
    clientErrorHandler(Object.assign(new Error('bad'), { code: 'HPE_INVALID_METHOD' }), socket as never);
    assert.match(written[0], /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(written[0], /\r\nx-content-type-options: nosniff\r\n/);
    clientErrorHandler(Object.assign(new Error('big'), { code: 'HPE_HEADER_OVERFLOW' }), socket as never);
    assert.match(written[1], /^HTTP\/1\.1 431 /);
    const gone = { writable: false, end: () => assert.fail('nothing to write to'), destroy: () => written.push('destroyed') };
    clientErrorHandler(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), gone as never);
    assert.equal(written.at(-1), 'destroyed');
  });

  describe('httpHardening on a server', () => {
    let server: http.Server;
    let base: string;
    before(async () => {
      const chain = httpHardening({ CORS_ORIGIN: 'https://twin.example', RATE_LIMIT_WRITES_PER_MIN: '2', RATE_LIMIT_COMMANDS_PER_MIN: '1' });
      server = http.createServer((req, res) => {
        let i = 0;
        const next = (): void => {
          const mw = chain[i++];
          if (mw) mw(req, res, next);
          else {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end('{"ok":true}');
          }
        };
        next();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('adds the headers, CORS for the allowed origin, and limits writes with 429 + Retry-After', async () => {
      const r = await fetch(`${base}/api/health/`, { headers: { origin: 'https://twin.example' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.equal(r.headers.get('access-control-allow-origin'), 'https://twin.example');
      assert.equal(r.headers.get('access-control-allow-credentials'), null);
      await r.arrayBuffer();

      const evil = await fetch(`${base}/api/readings/`, { method: 'POST', body: '{}', headers: { origin: 'https://evil.example' } });
      assert.equal(evil.status, 403);
      assert.deepEqual(await evil.json(), { detail: ORIGIN_NOT_ALLOWED });

      const post = () => fetch(`${base}/api/commands/`, { method: 'POST', body: '{}' });
      assert.equal((await post()).status, 200);
      const limited = await post();
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '60');
      assert.deepEqual(await limited.json(), { detail: 'Request was throttled. Expected available in 60 seconds.' });
      assert.equal(limited.headers.get('x-content-type-options'), 'nosniff', 'headers on the 429 too');
    });

    it('editor requests: another origin refused, a non-loopback Host refused without a login', async () => {
      const cross = await fetch(`${base}/admin/flows`, { headers: { origin: 'https://evil.example' } });
      assert.equal(cross.status, 403);
      assert.deepEqual(await cross.json(), { detail: CROSS_ORIGIN_EDITOR });
      const local = await fetch(`${base}/admin/flows`);
      assert.equal(local.status, 200);
      await local.arrayBuffer();
      const rebound = await new Promise<number>((resolve, reject) => {
        http
          .get(`${base}/admin/flows`, { headers: { host: 'evil.example:1880' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
      assert.equal(rebound, 403);
    });
  });
});
