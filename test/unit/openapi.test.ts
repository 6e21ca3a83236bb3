/**
 * The OpenAPI document: valid OpenAPI 3.1 (checked by a real validator), every $ref resolves,
 * every endpoint of CONTRACT section 4 is there with its node operation, and the component
 * schemas agree with what the API validates.
 */
import assert from 'assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { buildOpenApi, getOpenApi } from '../../nodes/shared/api/openapi';
import { allowedMethods, endpointTable, findRoute, ROUTES } from '../../nodes/shared/api/routes';
import { methodNotAllowed } from '../../nodes/shared/api/common';

type Doc = Record<string, any>;

/** Every `$ref` anywhere in the document. */
function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => refs(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

/** The contract's endpoints (section 4), as method + path. */
const CONTRACT = [
  'GET /api/sensor-readings/', 'POST /api/sensor-readings/', 'GET /api/sensor-readings/{id}/', 'GET /api/sensor-readings/latest/',
  'GET /api/sensor-readings/recent/', 'GET /api/sensor-readings/buffer/',
  'GET /api/grid-data/', 'GET /api/grid-data/latest/', 'GET /api/grid-data/carbon_intensity/', 'GET /api/grid-data/weather/', 'POST /api/grid-data/refresh/',
  'GET /api/preferences/', 'GET /api/preferences/get_preference/', 'POST /api/preferences/',
  'GET /api/preferences/{key}/', 'PUT /api/preferences/{key}/', 'PATCH /api/preferences/{key}/', 'DELETE /api/preferences/{key}/',
  'GET /api/ai-decisions/', 'GET /api/ai-decisions/recent/', 'GET /api/ai-decisions/latest/', 'POST /api/ai-decisions/', 'PATCH /api/ai-decisions/{id}/',
  'GET /api/energy-sources/', 'GET /api/energy-sources/available/', 'POST /api/energy-sources/',
  'GET /api/energy-sources/{id}/', 'PUT /api/energy-sources/{id}/', 'PATCH /api/energy-sources/{id}/',
  'GET /api/context/', 'POST /api/commands/', 'POST /api/maintenance/cleanup/', 'GET /api/openapi.json', 'GET /api/health/', 'GET /metrics',
];

describe('OpenAPI document', () => {
  const doc = buildOpenApi() as Doc;

  it('is valid OpenAPI 3.1 according to @seriousme/openapi-schema-validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(validator.version, '3.1');
    assert.deepEqual(result, { valid: true });
  });

  it('the validator does reject a broken document (the check above can fail)', async () => {
    const broken = structuredClone(doc);
    broken.paths['/api/preferences/'].get.responses = 'none';
    const result = await new Validator().validate(broken);
    assert.equal(result.valid, false);
  });

  it('every $ref points at an existing component', () => {
    const all = refs(doc);
    assert.ok(all.length > 50);
    for (const ref of all) {
      const m = /^#\/components\/schemas\/(\w+)$/.exec(ref);
      assert.ok(m, ref);
      assert.ok(doc.components.schemas[m[1]], `missing component ${m[1]}`);
    }
  });

  it('has every endpoint of CONTRACT section 4, and no other', () => {
    const have = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const extras = have.filter((e) => !CONTRACT.includes(e));
    assert.deepEqual(extras, ['GET /api/ai-decisions/{id}/'], 'the only addition is GET of one decision');
    assert.deepEqual(CONTRACT.filter((e) => !have.includes(e)), []);
  });

  it('every operation names the node operation that serves it, a 405 and its error shapes', () => {
    for (const item of Object.values(doc.paths as Record<string, Record<string, Doc>>)) {
      for (const op of Object.values(item)) {
        assert.ok(op['x-node-red'].node, op.operationId);
        assert.ok(op.responses['405'], op.operationId);
        if (op.requestBody) assert.ok(op.responses['400'], `${op.operationId} has a body and no 400`);
      }
    }
    const ids = Object.values(doc.paths as Record<string, Record<string, Doc>>).flatMap((i) => Object.values(i).map((o) => o.operationId));
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  });

  it('components come from the resource schemas: read-only, write-only, nullable, enums, limits', () => {
    const s = doc.components.schemas;
    assert.deepEqual(s.UserPreference.required, ['id', 'preference_key', 'preference_value', 'created_at', 'updated_at']);
    assert.equal(s.UserPreference.properties.id.readOnly, true);
    assert.equal(s.UserPreference.properties.preference_key.maxLength, 100);
    assert.equal(s.PatchedUserPreference.required, undefined);
    assert.equal(s.AiDecision.properties.commands.writeOnly, true);
    assert.equal(s.AiDecision.properties.commands.maxItems, 100);
    assert.deepEqual(s.AiDecision.properties.decision_type.enum, ['power_source', 'light_dim', 'load_shift', 'general']);
    assert.equal(s.AiDecision.properties.confidence.maximum, 1);
    assert.deepEqual(s.EnergySource.properties.capacity.type, ['number', 'null']);
    assert.equal(s.Command.properties.device_id.pattern, '^[A-Za-z0-9_.:-]{1,64}$');
    assert.deepEqual(s.PaginatedAiDecisionList.properties.next.type, ['string', 'null']);
  });

  it('getOpenApi hands out a copy (a flow changing msg.payload cannot change the next answer)', () => {
    const a = getOpenApi().body as Doc;
    a.info.title = 'changed';
    assert.equal((getOpenApi().body as Doc).info.title, 'HyperVolt pipeline API');
  });
});

describe('route table', () => {
  it('finds fixed paths before parameter paths, trailing slash optional', () => {
    assert.equal(findRoute('/api/preferences/get_preference/')!.path, '/api/preferences/get_preference/');
    assert.equal(findRoute('/api/preferences/get_preference')!.path, '/api/preferences/get_preference/');
    assert.equal(findRoute('/api/preferences/theme/')!.path, '/api/preferences/{key}/');
    assert.equal(findRoute('/api/energy-sources/available')!.path, '/api/energy-sources/available/');
    assert.equal(findRoute('/api/energy-sources/12/')!.path, '/api/energy-sources/{id}/');
    assert.equal(findRoute('/api/energy-sources/abc/'), undefined);
    assert.equal(findRoute('http://h:1880/api/ai-decisions/5?x=1')!.path, '/api/ai-decisions/{id}/');
  });

  it('allowed methods per path, and the 405 answer with Allow', () => {
    assert.deepEqual(allowedMethods('/api/preferences/k/'), ['DELETE', 'GET', 'HEAD', 'PATCH', 'PUT']);
    assert.deepEqual(allowedMethods('/api/energy-sources/3/'), ['GET', 'HEAD', 'PATCH', 'PUT']);
    assert.deepEqual(allowedMethods('/api/commands/'), ['POST']);
    assert.deepEqual(allowedMethods('/nowhere'), []);
    const res = methodNotAllowed('delete', allowedMethods('/api/energy-sources/3/'));
    assert.deepEqual(res, { status: 405, body: { detail: 'Method "DELETE" not allowed.' }, headers: { allow: 'GET, HEAD, PATCH, PUT, OPTIONS' } });
    assert.deepEqual(methodNotAllowed('x"y\n').body, { detail: 'Method "XY" not allowed.' });
  });

  it('the endpoint table lists every (method, path) once with an http in URL', () => {
    const rows = endpointTable();
    assert.equal(rows.length, ROUTES.reduce((n, r) => n + Object.keys(r.methods).length, 0));
    assert.equal(new Set(rows.map((r) => `${r.method} ${r.path}`)).size, rows.length);
    for (const r of rows) assert.match(r.express, /^\/(api\/|metrics)/);
  });
});
