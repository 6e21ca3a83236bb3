/** openweather-account: the OpenWeatherMap API key (a credential) and base URL. */
import type { NodeAPI } from 'node-red';
import { registerAccountNode } from '../shared/fetch/account-node';
import { OPENWEATHER_DEFAULT_BASE_URL } from '../shared/fetch/openweathermap';

export = function (RED: NodeAPI) {
  registerAccountNode(RED, 'openweather-account', 'OpenWeatherMap', OPENWEATHER_DEFAULT_BASE_URL);
};
