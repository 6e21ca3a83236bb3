/** electricitymaps-account: the Electricity Maps API key (a credential) and base URL. */
import type { NodeAPI } from 'node-red';
import { registerAccountNode } from '../shared/fetch/account-node';
import { ELECTRICITY_MAPS_DEFAULT_BASE_URL } from '../shared/fetch/electricitymaps';

export = function (RED: NodeAPI) {
  registerAccountNode(RED, 'electricitymaps-account', 'Electricity Maps', ELECTRICITY_MAPS_DEFAULT_BASE_URL);
};
