/**
 * The one implementation behind both API account config nodes (`electricitymaps-account`,
 * `openweather-account`): the API key and base URL, and the HTTP client that the fetch nodes
 * using it share. The key is a credential (never in the flow file); `${VAR}` in the field, or
 * the variable named by `apiKeyEnv` when the field is empty, reads it from the environment so
 * it is stored nowhere.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ApiAccount, apiKeyFromEnv } from './account';

interface AccountDef extends NodeDef {
  baseUrl: string;
  /** Name of an environment variable holding the key, used when the credential is empty. */
  apiKeyEnv?: string;
}
interface AccountCredentials {
  apiKey?: string;
}
export interface AccountNode extends Node<AccountCredentials> {
  account: ApiAccount;
}

export function registerAccountNode(RED: NodeAPI, type: string, apiName: string, defaultBaseUrl: string): void {
  function AccountConfigNode(this: AccountNode, config: AccountDef) {
    RED.nodes.createNode(this, config);
    const fromEnv = apiKeyFromEnv(config.apiKeyEnv, (name) => RED.util.getSetting(this, name));
    this.account = new ApiAccount(apiName, config.baseUrl, defaultBaseUrl, this.credentials?.apiKey, fromEnv);
    this.on('close', (_removed: boolean, done: () => void) => {
      this.account.close();
      done();
    });
  }

  RED.nodes.registerType<AccountNode, AccountDef, {}, AccountCredentials>(type, AccountConfigNode, {
    credentials: { apiKey: { type: 'password' } },
  });
}
