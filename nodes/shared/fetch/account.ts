/**
 * What an API account config node holds: the base URL, the key, and the one HTTP client (with
 * its keep-alive connections) that every fetch node using the account shares.
 */
import { ApiClient, checkBaseUrl } from './http-client';
import { FetchError } from './errors';
import { resolveApiKey, settingText } from './settings';

export class ApiAccount {
  readonly apiKey: string | undefined;
  readonly baseUrl: string;
  private httpClient: ApiClient | undefined;

  constructor(
    readonly apiName: string,
    baseUrlSetting: unknown,
    defaultBaseUrl: string,
    apiKeyCredential: unknown,
    /** The key read from the environment variable the account names, used when the credential is empty. */
    apiKeyFromEnv?: unknown,
  ) {
    this.baseUrl = settingText(baseUrlSetting) ?? defaultBaseUrl;
    this.apiKey = resolveApiKey(apiKeyCredential) ?? resolveApiKey(apiKeyFromEnv);
  }

  /** Why this account cannot be used, or undefined when it can. */
  problem(): FetchError | undefined {
    if (!this.apiKey) return new FetchError('no_key', `${this.apiName}: no API key configured`);
    try {
      checkBaseUrl(this.baseUrl, this.apiName);
    } catch (err) {
      return err as FetchError;
    }
    return undefined;
  }

  /** The shared client, created on first use. Throws a `config` FetchError for a bad base URL. */
  client(): ApiClient {
    this.httpClient ??= new ApiClient({ baseUrl: this.baseUrl, apiName: this.apiName, secrets: [this.apiKey] });
    return this.httpClient;
  }

  close(): void {
    this.httpClient?.close();
    this.httpClient = undefined;
  }
}

/**
 * The value of the environment variable named by the `apiKeyEnv` setting, looked up with
 * `lookup` (Node-RED's `RED.util.getSetting`, which also sees flow and group env); undefined
 * when the setting is empty or not a variable name.
 */
export function apiKeyFromEnv(envName: unknown, lookup: (name: string) => unknown): unknown {
  const name = settingText(envName);
  if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return undefined;
  return lookup(name);
}

/** The shape of an account config node as the fetch nodes see it (`RED.nodes.getNode(id)`). */
export interface AccountConfigNode {
  account?: ApiAccount;
}
