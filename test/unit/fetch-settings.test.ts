import assert from 'assert/strict';
import { ApiAccount, apiKeyFromEnv } from '../../nodes/shared/fetch/account';
import { FetchError } from '../../nodes/shared/fetch/errors';
import * as s from '../../nodes/shared/fetch/settings';

const configError = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof FetchError && e.kind === 'config');

describe('fetch settings', () => {
  it('treats an empty field or a ${VAR} Node-RED left unresolved as unset', () => {
    assert.equal(s.settingText(''), undefined);
    assert.equal(s.settingText('   '), undefined);
    assert.equal(s.settingText('${LOCATION_ZONE}'), undefined);
    assert.equal(s.settingText(undefined), undefined);
    assert.equal(s.settingText(' DE '), 'DE');
    assert.equal(s.settingText(12.5), '12.5');
    assert.equal(s.resolveApiKey('${ELECTRICITY_MAPS_API_KEY}'), undefined);
    assert.equal(s.resolveApiKey(' abc '), 'abc');
  });

  it('reads the zone, defaulting to IN-KA and refusing anything but a zone key', () => {
    assert.equal(s.zoneSetting('${LOCATION_ZONE}'), 'IN-KA');
    assert.equal(s.zoneSetting('US-CAL-CISO'), 'US-CAL-CISO');
    configError(() => s.zoneSetting('IN KA'));
    configError(() => s.zoneSetting('../x'));
  });

  it('reads latitude and longitude within range, with the Bengaluru defaults', () => {
    assert.equal(s.latitudeSetting('${LOCATION_LAT}'), 12.9716);
    assert.equal(s.longitudeSetting(''), 77.5946);
    assert.equal(s.latitudeSetting('-33.86'), -33.86);
    configError(() => s.latitudeSetting('91'));
    configError(() => s.longitudeSetting('-181'));
    configError(() => s.latitudeSetting('north'));
  });

  it('reads durations: minutes for the interval (15 by default, 1 s at least), seconds for timeout and retry', () => {
    assert.equal(s.intervalMsSetting('${CARBON_FETCH_MINUTES}'), 15 * 60_000);
    assert.equal(s.intervalMsSetting('5'), 5 * 60_000);
    assert.equal(s.intervalMsSetting('0.001'), 1000);
    configError(() => s.intervalMsSetting('0'));
    configError(() => s.intervalMsSetting('-3'));
    configError(() => s.intervalMsSetting('soon'));
    assert.equal(s.timeoutMsSetting(undefined), 10_000);
    assert.equal(s.timeoutMsSetting('0.3'), 300);
    assert.equal(s.retryBaseMsSetting(''), 30_000);
    assert.equal(s.retryBaseMsSetting('0.2'), 200);
  });

  it('reads choices and checkboxes', () => {
    assert.equal(s.choiceSetting(undefined, ['latest', 'forecast'] as const, 'mode'), 'latest');
    assert.equal(s.choiceSetting('forecast', ['latest', 'forecast'] as const, 'mode'), 'forecast');
    configError(() => s.choiceSetting('history', ['latest', 'forecast'] as const, 'mode'));
    assert.equal(s.booleanSetting(false, true), false);
    assert.equal(s.booleanSetting('false', true), false);
    assert.equal(s.booleanSetting(undefined, true), true);
    assert.equal(s.booleanSetting('on', false), true);
  });
});

describe('fetch account', () => {
  it('takes the key from the credential, else from the named environment variable', () => {
    const env: Record<string, string> = { MY_KEY: 'env-key-1234' };
    const lookup = (name: string) => env[name];
    assert.equal(apiKeyFromEnv('MY_KEY', lookup), 'env-key-1234');
    assert.equal(apiKeyFromEnv('', lookup), undefined);
    assert.equal(apiKeyFromEnv('not a name', lookup), undefined);
    assert.equal(new ApiAccount('X', '', 'https://x.test', 'cred-key', 'env-key-1234').apiKey, 'cred-key');
    assert.equal(new ApiAccount('X', '', 'https://x.test', '', 'env-key-1234').apiKey, 'env-key-1234');
    assert.equal(new ApiAccount('X', '', 'https://x.test', '${UNSET}', undefined).apiKey, undefined);
  });

  it('says what is wrong: no key, or a base URL that is not http(s)', () => {
    assert.equal(new ApiAccount('X', '', 'https://x.test', undefined).problem()?.kind, 'no_key');
    assert.equal(new ApiAccount('X', 'file:///etc/passwd', 'https://x.test', 'k').problem()?.kind, 'config');
    const ok = new ApiAccount('X', '${X_BASE_URL}', 'https://x.test', 'k');
    assert.equal(ok.problem(), undefined);
    assert.equal(ok.baseUrl, 'https://x.test');
    assert.equal(ok.client(), ok.client(), 'one shared client');
    ok.close();
  });
});
