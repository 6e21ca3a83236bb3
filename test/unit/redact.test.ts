import assert from 'assert/strict';
import { maskUrlsIn, redactUrl } from '../../nodes/shared/redact';

describe('redact', () => {
  it('redactUrl hides the password and keeps the URL as written', () => {
    assert.equal(redactUrl('postgres://hv:s3cret@db:5432/hypervolt'), 'postgres://hv:***@db:5432/hypervolt');
    assert.equal(redactUrl('mqtts://pi:pw@broker:8883'), 'mqtts://pi:***@broker:8883');
    assert.equal(redactUrl('https://u:p@example.org'), 'https://u:***@example.org');
    assert.equal(redactUrl('https://example.org/'), 'https://example.org/');
    assert.equal(redactUrl('redis://127.0.0.1:6379/0'), 'redis://127.0.0.1:6379/0');
  });

  it('masks by pattern what is no URL, and every URL quoted in a message', () => {
    assert.equal(redactUrl('not a url with x://u:pw@h'), 'not a url with x://u:***@h');
    assert.equal(
      maskUrlsIn('connect postgres://a:b1@h/db failed; retry redis://:p2@r:6379'),
      'connect postgres://a:***@h/db failed; retry redis://:***@r:6379',
    );
    assert.equal(maskUrlsIn('sqlite:data/hypervolt.db'), 'sqlite:data/hypervolt.db');
  });
});
