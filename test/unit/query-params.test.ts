import assert from 'assert/strict';
import {
  pageUrl,
  paginatedResponse,
  parseBoolean,
  parseFilters,
  parseHours,
  parseLimit,
  parseListParams,
  parseOrdering,
  parsePage,
  parsePageSize,
  parseRecentParams,
  QueryParamError,
  queryValue,
} from '../../nodes/shared/query-params';

/** The response a parser rejected with. */
function rejection(fn: () => unknown): { status: number; body: unknown } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof QueryParamError, String(err));
    return err.response;
  }
  assert.fail('expected a QueryParamError');
}

const badQuery = (error: string) => ({ status: 400, body: { error } });

describe('query-params', () => {
  describe('queryValue', () => {
    it('takes the last of a repeated parameter, as Django does', () => {
      assert.equal(queryValue({ page: ['1', '3'] }, 'page'), '3');
      assert.equal(queryValue({ page: '2' }, 'page'), '2');
      assert.equal(queryValue({}, 'page'), undefined);
      assert.equal(queryValue({ page: [] }, 'page'), undefined);
      assert.equal(queryValue(undefined, 'page'), undefined);
    });

    it('rejects a bracketed (object) parameter and ignores inherited keys', () => {
      assert.deepEqual(rejection(() => queryValue({ sensor_type: { $gt: '' } }, 'sensor_type')), badQuery('sensor_type must be a single value'));
      assert.equal(queryValue({}, 'toString'), undefined);
      assert.equal(queryValue(JSON.parse('{"__proto__": "x"}'), '__proto__'), 'x');
    });
  });

  describe('page and page_size', () => {
    it('page: positive integers, default 1', () => {
      assert.equal(parsePage({}), 1);
      assert.equal(parsePage({ page: '' }), 1);
      assert.equal(parsePage({ page: '7' }), 7);
      assert.equal(parsePage({ page: ['2', '5'] }), 5);
      for (const page of ['0', '-1', '1.5', 'abc', '1e3', '0x10', 'last', '١']) {
        assert.deepEqual(rejection(() => parsePage({ page })), badQuery('page must be a positive integer'), page);
      }
    });

    it('a page number too large for an offset is 404 Invalid page.', () => {
      assert.deepEqual(rejection(() => parsePage({ page: '99999999999999999999' })), { status: 404, body: { detail: 'Invalid page.' } });
    });

    it('page_size: default 100, 1 to 1000, larger cut to 1000 as DRF max_page_size', () => {
      assert.equal(parsePageSize({}), 100);
      assert.equal(parsePageSize({ page_size: '1' }), 1);
      assert.equal(parsePageSize({ page_size: '1000' }), 1000);
      assert.equal(parsePageSize({ page_size: '5000' }), 1000);
      for (const page_size of ['0', '-5', 'ten', '2.5']) {
        assert.deepEqual(rejection(() => parsePageSize({ page_size })), badQuery('page_size must be an integer from 1 to 1000'), page_size);
      }
    });
  });

  describe('hours and limit', () => {
    it('hours: a positive number at most 8760, fractions allowed', () => {
      assert.equal(parseHours({ hours: '24' }), 24);
      assert.equal(parseHours({ hours: '0.5' }), 0.5);
      assert.equal(parseHours({ hours: '8760' }), 8760);
      assert.equal(parseHours({}, 1), 1);
      assert.deepEqual(rejection(() => parseHours({})), badQuery('hours is required'));
      for (const hours of ['0', '-1', '8760.5', '8761', 'abc', 'NaN', 'Infinity', '1e9', '0x10', '24h']) {
        assert.deepEqual(rejection(() => parseHours({ hours })), badQuery('hours must be a positive number of at most 8760'), hours);
      }
    });

    it('limit: default 1000, 1 to 10000, larger cut to 10000', () => {
      assert.equal(parseLimit({}), 1000);
      assert.equal(parseLimit({ limit: '5' }), 5);
      assert.equal(parseLimit({ limit: '20000' }), 10000);
      for (const limit of ['0', '-1', '1.5', 'many']) {
        assert.deepEqual(rejection(() => parseLimit({ limit })), badQuery('limit must be an integer from 1 to 10000'), limit);
      }
    });
  });

  describe('filters and ordering', () => {
    it('keeps only whitelisted filters, ignores empty ones, parses booleans and integers', () => {
      const spec = { decision_type: 'text', applied: 'boolean', priority: 'integer' } as const;
      assert.deepEqual(parseFilters({ decision_type: 'light_dim', other: 'x', applied: 'TRUE', priority: '3' }, spec), {
        decision_type: 'light_dim',
        applied: true,
        priority: 3,
      });
      assert.deepEqual(parseFilters({ decision_type: '', applied: '0' }, spec), { applied: false });
      assert.deepEqual(parseFilters({ applied: '1' }, spec), { applied: true });
      assert.deepEqual(parseFilters({ applied: 'false' }, spec), { applied: false });
      assert.deepEqual(rejection(() => parseFilters({ applied: 'yes' }, spec)), badQuery('applied must be true or false'));
      assert.deepEqual(rejection(() => parseFilters({ priority: 'high' }, spec)), badQuery('priority must be an integer'));
      assert.equal(parseBoolean({}, 'applied'), undefined);
    });

    it('keeps a filter value exactly as sent, injection strings included (they are bound as parameters)', () => {
      const evil = "x' OR '1'='1";
      assert.deepEqual(parseFilters({ sensor_id: evil }, { sensor_id: 'text' }), { sensor_id: evil });
    });

    it('ordering: field or -field from the whitelist, default when absent', () => {
      const allowed = ['timestamp', 'created_at'];
      assert.equal(parseOrdering({}, allowed, '-timestamp'), '-timestamp');
      assert.equal(parseOrdering({ ordering: 'created_at' }, allowed, '-timestamp'), 'created_at');
      assert.equal(parseOrdering({ ordering: '-timestamp' }, allowed, 'x'), '-timestamp');
      for (const ordering of ['value', '--timestamp', 'timestamp,created_at', 'id', 'timestamp desc', '-']) {
        assert.deepEqual(
          rejection(() => parseOrdering({ ordering }, allowed, '-timestamp')),
          badQuery('ordering must be one of: timestamp, -timestamp, created_at, -created_at'),
          ordering,
        );
      }
    });

    it('parseListParams and parseRecentParams gather everything', () => {
      const spec = { filters: { sensor_type: 'text' }, ordering: ['timestamp'], defaultOrdering: '-timestamp' } as const;
      assert.deepEqual(parseListParams({ page: '2', page_size: '10', sensor_type: 'ldr' }, spec), {
        page: 2,
        pageSize: 10,
        ordering: '-timestamp',
        filters: { sensor_type: 'ldr' },
      });
      assert.deepEqual(parseRecentParams({ sensor_type: 'ldr' }, { sensor_type: 'text' }, 1), { hours: 1, limit: 1000, filters: { sensor_type: 'ldr' } });
    });
  });

  describe('pagination envelope', () => {
    const url = 'http://pi.local:1880/api/sensor-readings/?sensor_type=ldr&page=2&page_size=3';

    it('sets or replaces page and keeps other parameters; page 1 drops it', () => {
      assert.equal(pageUrl(url, 3), 'http://pi.local:1880/api/sensor-readings/?sensor_type=ldr&page=3&page_size=3');
      assert.equal(pageUrl(url, 1), 'http://pi.local:1880/api/sensor-readings/?sensor_type=ldr&page_size=3');
      assert.equal(pageUrl('http://h/api/x/', 2), 'http://h/api/x/?page=2');
      assert.equal(pageUrl('/api/x/?a=1', 2), 'http://localhost/api/x/?a=1&page=2');
    });

    it('builds {count, next, previous, results}', () => {
      const res = paginatedResponse({ url }, 2, { count: 9, rows: [1, 2, 3], hasNext: true });
      assert.deepEqual(res, {
        status: 200,
        body: {
          count: 9,
          next: 'http://pi.local:1880/api/sensor-readings/?sensor_type=ldr&page=3&page_size=3',
          previous: 'http://pi.local:1880/api/sensor-readings/?sensor_type=ldr&page_size=3',
          results: [1, 2, 3],
        },
      });
      const first = paginatedResponse({ url: 'http://h/api/x/' }, 1, { count: 2, rows: [1, 2], hasNext: false });
      assert.deepEqual(first.body, { count: 2, next: null, previous: null, results: [1, 2] });
    });

    it('a page past the end is 404 Invalid page.; page 1 of an empty list is an empty page', () => {
      assert.deepEqual(paginatedResponse({ url }, 4, { count: 9, rows: [], hasNext: false }), { status: 404, body: { detail: 'Invalid page.' } });
      assert.deepEqual(paginatedResponse({ url: 'http://h/api/x/' }, 1, { count: 0, rows: [], hasNext: false }), {
        status: 200,
        body: { count: 0, next: null, previous: null, results: [] },
      });
    });
  });
});
