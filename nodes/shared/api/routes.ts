/**
 * Every endpoint of CONTRACT section 4 in one table: path, methods, parameters, bodies,
 * answers, and which node operation serves it in the flow. The OpenAPI document, the 405
 * answer's `Allow` header and the endpoint list for the flow are all generated from it.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ParamSpec {
  name: string;
  in: 'query' | 'path';
  description: string;
  required?: boolean;
  schema: Record<string, unknown>;
}

/** A response: a component name, an inline JSON schema, or none (204). */
export interface ResponseSpec {
  description: string;
  schema?: string | Record<string, unknown>;
  /** `text/plain` instead of JSON (metrics). */
  text?: boolean;
}

export interface OperationSpec {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** The node type and operation that answer it in the shipped flow. */
  node: string;
  operation: string;
  /** Other properties the node needs (e.g. `{dataType: 'weather'}`). */
  nodeProps?: Record<string, string>;
  parameters?: ParamSpec[];
  /** Component name of the JSON body. */
  requestBody?: string | Record<string, unknown>;
  responses: Record<string, ResponseSpec>;
}

export interface RouteSpec {
  /** OpenAPI form, e.g. `/api/preferences/{key}/`. */
  path: string;
  /** The `http in` node's URL, e.g. `/api/preferences/:key/`. */
  express: string;
  methods: Partial<Record<HttpMethod, OperationSpec>>;
}

// ---- parameters ----

const q = (name: string, description: string, schema: Record<string, unknown>): ParamSpec => ({ name, in: 'query', description, schema });
const PAGE = q('page', 'Page number, from 1.', { type: 'integer', minimum: 1, default: 1 });
const PAGE_SIZE = q('page_size', 'Rows per page, at most 1000 (larger values are cut to 1000).', { type: 'integer', minimum: 1, maximum: 1000, default: 100 });
const LIMIT = q('limit', 'At most this many rows (at most 10000).', { type: 'integer', minimum: 1, maximum: 10000, default: 1000 });
const hours = (dflt: number) =>
  q('hours', 'Rows with timestamp at or after now minus this many hours (a positive number, at most 8760).', {
    type: 'number',
    exclusiveMinimum: 0,
    maximum: 8760,
    default: dflt,
  });
const ordering = (fields: string[], dflt: string) =>
  q('ordering', `Sort by a field, descending with "-". Default ${dflt}.`, { type: 'string', enum: fields.flatMap((f) => [f, `-${f}`]) });
const text = (name: string, description: string) => q(name, description, { type: 'string' });
const ID: ParamSpec = { name: 'id', in: 'path', required: true, description: 'Row id.', schema: { type: 'integer', minimum: 1 } };
const KEY: ParamSpec = { name: 'key', in: 'path', required: true, description: 'The preference_key.', schema: { type: 'string', minLength: 1, maxLength: 100 } };

// ---- responses ----

const r = (description: string, schema?: string | Record<string, unknown>): ResponseSpec => ({ description, schema });
const arrayOf = (name: string) => ({ type: 'array', items: { $ref: `#/components/schemas/${name}` } });
const BAD_QUERY = r('An invalid query parameter: `{"error": "message"}`.', 'QueryError');
const BAD_BODY = r('An invalid body: `{"field": ["message"]}`.', 'FieldErrors');
const NOT_FOUND = r('`{"detail": "Not found."}`.', 'Detail');
const INVALID_PAGE = r('A page past the end: `{"detail": "Invalid page."}`.', 'Detail');
const UNAVAILABLE = r('The database cannot answer: `{"detail": "database unavailable"}`.', 'Detail');
const TOO_LARGE = r('A body over 1 MiB.', 'Detail');

const list = (name: string) => ({ '200': r(`A page of ${name} rows.`, `Paginated${name}List`), '400': BAD_QUERY, '404': INVALID_PAGE, '503': UNAVAILABLE });

const GRID = ['Grid data'];
const READINGS = ['Sensor readings'];
const PREFS = ['Preferences'];
const DECISIONS = ['AI decisions'];
const SOURCES = ['Energy sources'];
const OPS = ['Operations'];

export const ROUTES: readonly RouteSpec[] = [
  // ---- sensor readings ----
  {
    path: '/api/sensor-readings/',
    express: '/api/sensor-readings/',
    methods: {
      get: {
        operationId: 'listSensorReadings',
        summary: 'List sensor readings',
        tags: READINGS,
        node: 'cold-store',
        operation: 'list-readings',
        parameters: [PAGE, PAGE_SIZE, text('sensor_type', 'Exact match.'), text('sensor_id', 'Exact match.'), text('location', 'Exact match.'), ordering(['timestamp', 'created_at'], '-timestamp')],
        responses: list('SensorReading'),
      },
      post: {
        operationId: 'createSensorReadings',
        summary: 'Store readings (devices without MQTT)',
        description: 'One reading or an array of at most 1000; the same validation, storage and broadcast as MQTT.',
        tags: READINGS,
        node: 'sensor-validate',
        operation: 'batch',
        requestBody: { oneOf: [{ $ref: '#/components/schemas/SensorReading' }, { type: 'array', maxItems: 1000, items: { $ref: '#/components/schemas/SensorReading' } }] },
        responses: {
          '201': r('The stored row(s): one object for an object, an array for an array.', { oneOf: [{ $ref: '#/components/schemas/SensorReading' }, arrayOf('SensorReading')] }),
          '400': r('Rejected readings.', 'ReadingRejections'),
          '413': TOO_LARGE,
          '503': UNAVAILABLE,
        },
      },
    },
  },
  {
    path: '/api/sensor-readings/latest/',
    express: '/api/sensor-readings/latest/',
    methods: {
      get: {
        operationId: 'latestSensorReadings',
        summary: 'The newest reading of each sensor',
        tags: READINGS,
        node: 'cold-store',
        operation: 'latest-readings',
        responses: { '200': r('One row per (sensor_type, sensor_id).', arrayOf('SensorReading')), '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/sensor-readings/recent/',
    express: '/api/sensor-readings/recent/',
    methods: {
      get: {
        operationId: 'recentSensorReadings',
        summary: 'Readings of the last hours, newest first',
        tags: READINGS,
        node: 'cold-store',
        operation: 'recent-readings',
        parameters: [hours(1), LIMIT, text('sensor_type', 'Exact match.'), text('sensor_id', 'Exact match.')],
        responses: { '200': r('Newest first.', arrayOf('SensorReading')), '400': BAD_QUERY, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/sensor-readings/buffer/',
    express: '/api/sensor-readings/buffer/',
    methods: {
      get: {
        operationId: 'sensorBuffer',
        summary: "A sensor's hot window, oldest first",
        tags: READINGS,
        node: 'hot-window',
        operation: 'read',
        parameters: [
          { ...text('sensor_type', 'The sensor type.'), required: true },
          { ...text('sensor_id', 'The sensor id.'), required: true },
        ],
        responses: { '200': r('The window and its stats.', 'WindowSnapshot'), '400': BAD_QUERY, '503': r('The hot store cannot answer.', 'Detail') },
      },
    },
  },
  {
    path: '/api/sensor-readings/{id}/',
    express: '/api/sensor-readings/:id(\\d+)/',
    methods: {
      get: {
        operationId: 'getSensorReading',
        summary: 'One reading',
        tags: READINGS,
        node: 'cold-store',
        operation: 'get-reading',
        parameters: [ID],
        responses: { '200': r('The row.', 'SensorReading'), '404': NOT_FOUND, '503': UNAVAILABLE },
      },
    },
  },
  // ---- grid data ----
  {
    path: '/api/grid-data/',
    express: '/api/grid-data/',
    methods: {
      get: {
        operationId: 'listGridData',
        summary: 'List grid data',
        tags: GRID,
        node: 'cold-store',
        operation: 'list-grid-data',
        parameters: [PAGE, PAGE_SIZE, text('data_type', 'Exact match.'), text('zone', 'Exact match.'), ordering(['timestamp', 'created_at'], '-timestamp')],
        responses: list('GridData'),
      },
    },
  },
  {
    path: '/api/grid-data/latest/',
    express: '/api/grid-data/latest/',
    methods: {
      get: {
        operationId: 'latestGridData',
        summary: 'The newest row of each data_type',
        tags: GRID,
        node: 'cold-store',
        operation: 'latest-grid-data',
        parameters: [text('data_type', 'Only this data_type.')],
        responses: { '200': r('One row per data_type.', arrayOf('GridData')), '400': BAD_QUERY, '503': UNAVAILABLE },
      },
    },
  },
  ...(['carbon_intensity', 'weather'] as const).map(
    (dataType): RouteSpec => ({
      path: `/api/grid-data/${dataType}/`,
      express: `/api/grid-data/${dataType}/`,
      methods: {
        get: {
          operationId: dataType === 'weather' ? 'recentWeather' : 'recentCarbonIntensity',
          summary: `${dataType === 'weather' ? 'Weather' : 'Carbon intensity'} rows of the last hours, newest first`,
          tags: GRID,
          node: 'cold-store',
          operation: 'recent-grid-data',
          nodeProps: { dataType },
          parameters: [hours(24), LIMIT],
          responses: { '200': r('Newest first.', arrayOf('GridData')), '400': BAD_QUERY, '503': UNAVAILABLE },
        },
      },
    }),
  ),
  {
    path: '/api/grid-data/refresh/',
    express: '/api/grid-data/refresh/',
    methods: {
      post: {
        operationId: 'refreshGridData',
        summary: 'Fetch carbon intensity and weather now',
        description: 'The result arrives as rows and `grid_update` WebSocket messages.',
        tags: GRID,
        node: 'function',
        operation: 'refresh (flow: link to the fetch nodes)',
        responses: { '202': r('Accepted.', { type: 'object', additionalProperties: true }) },
      },
    },
  },
  // ---- preferences ----
  {
    path: '/api/preferences/',
    express: '/api/preferences/',
    methods: {
      get: {
        operationId: 'listPreferences',
        summary: 'List preferences',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [PAGE, PAGE_SIZE],
        responses: list('UserPreference'),
      },
      post: {
        operationId: 'createPreference',
        summary: 'Create a preference',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        requestBody: 'UserPreference',
        responses: { '201': r('The stored row.', 'UserPreference'), '400': r('Invalid body, or the key exists.', 'FieldErrors'), '413': TOO_LARGE, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/preferences/get_preference/',
    express: '/api/preferences/get_preference/',
    methods: {
      get: {
        operationId: 'getPreferenceByKey',
        summary: 'A preference by ?key=',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [{ ...text('key', 'The preference_key.'), required: true }],
        responses: {
          '200': r('The row.', 'UserPreference'),
          '400': r('`{"error": "key is required"}`.', 'QueryError'),
          '404': r('`{"error": "Preference not found"}`.', 'QueryError'),
          '503': UNAVAILABLE,
        },
      },
    },
  },
  {
    path: '/api/preferences/{key}/',
    express: '/api/preferences/:key/',
    methods: {
      get: {
        operationId: 'getPreference',
        summary: 'One preference',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [KEY],
        responses: { '200': r('The row.', 'UserPreference'), '404': NOT_FOUND, '503': UNAVAILABLE },
      },
      put: {
        operationId: 'replacePreference',
        summary: 'Replace a preference',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [KEY],
        requestBody: 'UserPreference',
        responses: { '200': r('The row.', 'UserPreference'), '400': BAD_BODY, '404': NOT_FOUND, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
      patch: {
        operationId: 'updatePreference',
        summary: 'Change some fields of a preference',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [KEY],
        requestBody: 'PatchedUserPreference',
        responses: { '200': r('The row.', 'UserPreference'), '400': BAD_BODY, '404': NOT_FOUND, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
      delete: {
        operationId: 'deletePreference',
        summary: 'Delete a preference',
        tags: PREFS,
        node: 'cold-store',
        operation: 'preferences',
        parameters: [KEY],
        responses: { '204': r('Deleted.'), '404': NOT_FOUND, '503': UNAVAILABLE },
      },
    },
  },
  // ---- AI decisions ----
  {
    path: '/api/ai-decisions/',
    express: '/api/ai-decisions/',
    methods: {
      get: {
        operationId: 'listAiDecisions',
        summary: 'List AI decisions',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'list',
        parameters: [PAGE, PAGE_SIZE, text('decision_type', 'Exact match.'), q('applied', 'true or false.', { type: 'boolean' }), ordering(['timestamp', 'created_at', 'confidence'], '-timestamp')],
        responses: list('AiDecision'),
      },
      post: {
        operationId: 'createAiDecision',
        summary: 'Record an AI decision',
        description: 'Its `commands` are published to `{prefix}/commands/{device_id}` and stored in `decision.commands`.',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'record',
        requestBody: 'AiDecision',
        responses: { '201': r('The stored row.', 'AiDecision'), '400': BAD_BODY, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/ai-decisions/recent/',
    express: '/api/ai-decisions/recent/',
    methods: {
      get: {
        operationId: 'recentAiDecisions',
        summary: 'Decisions of the last hours, newest first',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'recent',
        parameters: [hours(24), LIMIT, text('decision_type', 'Exact match.')],
        responses: { '200': r('Newest first.', arrayOf('AiDecision')), '400': BAD_QUERY, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/ai-decisions/latest/',
    express: '/api/ai-decisions/latest/',
    methods: {
      get: {
        operationId: 'latestAiDecision',
        summary: 'The newest decision',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'latest',
        parameters: [text('decision_type', 'Only of this type.')],
        responses: { '200': r('The row.', 'AiDecision'), '400': BAD_QUERY, '404': NOT_FOUND, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/ai-decisions/{id}/',
    express: '/api/ai-decisions/:id(\\d+)/',
    methods: {
      get: {
        operationId: 'getAiDecision',
        summary: 'One decision',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'get',
        parameters: [ID],
        responses: { '200': r('The row.', 'AiDecision'), '404': NOT_FOUND, '503': UNAVAILABLE },
      },
      patch: {
        operationId: 'setAiDecisionApplied',
        summary: 'Mark a decision applied (or not)',
        description: 'Only `applied` may change; any other field of a decision is a 400.',
        tags: DECISIONS,
        node: 'ai-decision-log',
        operation: 'set-applied',
        parameters: [ID],
        requestBody: 'AiDecisionApplied',
        responses: { '200': r('The row.', 'AiDecision'), '400': BAD_BODY, '404': NOT_FOUND, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
    },
  },
  // ---- energy sources ----
  {
    path: '/api/energy-sources/',
    express: '/api/energy-sources/',
    methods: {
      get: {
        operationId: 'listEnergySources',
        summary: 'List energy sources, highest priority first',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        parameters: [PAGE, PAGE_SIZE],
        responses: list('EnergySource'),
      },
      post: {
        operationId: 'createEnergySource',
        summary: 'Create an energy source',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        requestBody: 'EnergySource',
        responses: { '201': r('The stored row.', 'EnergySource'), '400': r('Invalid body, or the source_type exists.', 'FieldErrors'), '413': TOO_LARGE, '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/energy-sources/available/',
    express: '/api/energy-sources/available/',
    methods: {
      get: {
        operationId: 'availableEnergySources',
        summary: 'The available sources, highest priority first',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        responses: { '200': r('An array.', arrayOf('EnergySource')), '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/energy-sources/{id}/',
    express: '/api/energy-sources/:id(\\d+)/',
    methods: {
      get: {
        operationId: 'getEnergySource',
        summary: 'One energy source',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        parameters: [ID],
        responses: { '200': r('The row.', 'EnergySource'), '404': NOT_FOUND, '503': UNAVAILABLE },
      },
      put: {
        operationId: 'replaceEnergySource',
        summary: 'Replace an energy source',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        parameters: [ID],
        requestBody: 'EnergySource',
        responses: { '200': r('The row.', 'EnergySource'), '400': BAD_BODY, '404': NOT_FOUND, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
      patch: {
        operationId: 'updateEnergySource',
        summary: 'Change some fields of an energy source',
        tags: SOURCES,
        node: 'cold-store',
        operation: 'energy-sources',
        parameters: [ID],
        requestBody: 'PatchedEnergySource',
        responses: { '200': r('The row.', 'EnergySource'), '400': BAD_BODY, '404': NOT_FOUND, '413': TOO_LARGE, '503': UNAVAILABLE },
      },
    },
  },
  // ---- context, commands, operations ----
  {
    path: '/api/context/',
    express: '/api/context/',
    methods: {
      get: {
        operationId: 'aiContext',
        summary: 'Everything an AI decision needs',
        tags: OPS,
        node: 'hot-window',
        operation: 'context',
        responses: { '200': r('Hot-window stats of each active sensor and the latest grid rows with age_seconds.', 'Context'), '503': r('The hot store cannot answer.', 'Detail') },
      },
    },
  },
  {
    path: '/api/commands/',
    express: '/api/commands/',
    methods: {
      post: {
        operationId: 'sendCommand',
        summary: 'Publish a device command',
        tags: OPS,
        node: 'ai-decision-log',
        operation: 'command',
        requestBody: 'Command',
        responses: { '202': r('Published (QoS 1).', 'CommandAccepted'), '400': BAD_BODY, '413': TOO_LARGE },
      },
    },
  },
  {
    path: '/api/maintenance/cleanup/',
    express: '/api/maintenance/cleanup/',
    methods: {
      post: {
        operationId: 'cleanupNow',
        summary: 'Run the retention cleanup now',
        tags: OPS,
        node: 'cold-store',
        operation: 'cleanup',
        responses: { '200': r('How many rows were deleted.', 'CleanupResult'), '503': UNAVAILABLE },
      },
    },
  },
  {
    path: '/api/openapi.json',
    express: '/api/openapi.json',
    methods: {
      get: {
        operationId: 'openApi',
        summary: 'This document',
        tags: OPS,
        node: 'cold-store',
        operation: 'openapi',
        responses: { '200': r('OpenAPI 3.1.', { type: 'object' }) },
      },
    },
  },
  {
    path: '/api/health/',
    express: '/api/health/',
    methods: {
      get: {
        operationId: 'health',
        summary: 'Health of MQTT, hot store and cold store',
        tags: OPS,
        node: 'function',
        operation: 'health (flow: hot-window health, cold-store health)',
        responses: { '200': r('Every part is up.', 'Health'), '503': r('A part is down.', 'Health') },
      },
    },
  },
  {
    path: '/metrics',
    express: '/metrics',
    methods: {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        tags: OPS,
        node: 'cold-store',
        operation: 'metrics',
        responses: { '200': { description: 'Prometheus text format 0.0.4.', text: true } },
      },
    },
  },
];

/** A route's OpenAPI path as a regular expression over request paths (trailing slash optional). */
function routeRegex(route: RouteSpec): RegExp {
  const body = route.path
    .replace(/\/$/, '')
    .split(/(\{[a-z_]+\})/)
    .map((part) => {
      if (part === '{id}') return '\\d+';
      if (/^\{[a-z_]+\}$/.test(part)) return '[^/]+';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${body}/?$`);
}

const COMPILED = ROUTES.map((route) => ({ route, re: routeRegex(route) }));

/** The first route (in table order: fixed paths before parameters) whose path matches. */
export function findRoute(path: string): RouteSpec | undefined {
  let p = path;
  try {
    p = new URL(path, 'http://localhost').pathname;
  } catch {
    return undefined;
  }
  const fixed = COMPILED.find((c) => c.re.test(p) && !c.route.path.includes('{'));
  return (fixed ?? COMPILED.find((c) => c.re.test(p)))?.route;
}

/** The methods a path allows (upper case, HEAD with GET), empty when no route matches. */
export function allowedMethods(path: string): string[] {
  const route = findRoute(path);
  if (!route) return [];
  const methods = Object.keys(route.methods).map((m) => m.toUpperCase());
  if (methods.includes('GET')) methods.push('HEAD');
  return methods.sort();
}

export interface EndpointRow {
  method: string;
  path: string;
  express: string;
  node: string;
  operation: string;
  nodeProps?: Record<string, string>;
}

/** Every (method, path) with its node operation: the wiring list of the shipped flow. */
export function endpointTable(): EndpointRow[] {
  return ROUTES.flatMap((route) =>
    (Object.entries(route.methods) as [HttpMethod, OperationSpec][]).map(([method, op]) => ({
      method: method.toUpperCase(),
      path: route.path,
      express: route.express,
      node: op.node,
      operation: op.operation,
      ...(op.nodeProps ? { nodeProps: op.nodeProps } : {}),
    })),
  );
}
