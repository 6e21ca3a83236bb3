/**
 * openweather-account: the OpenWeatherMap API key and base URL, and the HTTP client that the fetch nodes using
 * it share. The key is a credential (never in the flow file); `${OPENWEATHER_API_KEY}` in the
 * field, or the variable named by `apiKeyEnv` when the field is empty, reads it from the
 * environment so it is stored nowhere.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ApiAccount, apiKeyFromEnv } from '../shared/fetch/account';
import { OPENWEATHER_DEFAULT_BASE_URL } from '../shared/fetch/openweathermap';

interface AccountDef extends NodeDef {
  baseUrl: string;
  /** Name of an environment variable holding the key, used when the credential is empty. */
  apiKeyEnv?: string;
}
interface AccountCredentials {
  apiKey?: string;
}
interface AccountNode extends Node<AccountCredentials> {
  account: ApiAccount;
}

export = function (RED: NodeAPI) {
  function OpenWeatherAccountNode(this: AccountNode, config: AccountDef) {
    RED.nodes.createNode(this, config);
    const fromEnv = apiKeyFromEnv(config.apiKeyEnv, (name) => RED.util.getSetting(this, name));
    this.account = new ApiAccount('OpenWeatherMap', config.baseUrl, OPENWEATHER_DEFAULT_BASE_URL, this.credentials?.apiKey, fromEnv);
    this.on('close', (_removed: boolean, done: () => void) => {
      this.account.close();
      done();
    });
  }

  RED.nodes.registerType<AccountNode, AccountDef, {}, AccountCredentials>('openweather-account', OpenWeatherAccountNode, {
    credentials: { apiKey: { type: 'password' } },
  });
};
