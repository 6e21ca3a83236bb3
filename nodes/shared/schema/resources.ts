/**
 * The resources of CONTRACT section 4, one schema each. The field order is the contract's and
 * the order of a row's keys in every answer.
 */
import type { FieldSpec, ResourceSchema } from './schema';

const id: FieldSpec = { type: 'integer', readOnly: true, required: true, description: 'Row id, assigned by the database.', example: 1 };
const createdAt: FieldSpec = {
  type: 'datetime',
  readOnly: true,
  required: true,
  description: 'When the row was stored (ISO 8601 UTC).',
  example: '2026-01-26T08:00:00.123Z',
};
const updatedAt: FieldSpec = {
  type: 'datetime',
  readOnly: true,
  required: true,
  description: 'When the row was last changed (ISO 8601 UTC).',
  example: '2026-01-26T08:00:00.123Z',
};

/** `A-Z a-z 0-9 _ . : -`, 1 to 64: never `+`, `#` or `/`, so it is one MQTT topic level. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export const SENSOR_TYPES_KNOWN = ['ldr', 'current', 'voltage', 'temperature', 'humidity', 'power', 'energy'] as const;

/** Sensor readings: validated by sensor-validate (CONTRACT section 1); described here for OpenAPI. */
export const SENSOR_READING: ResourceSchema = {
  name: 'SensorReading',
  verboseName: 'sensor reading',
  description:
    'One sensor reading. POST bodies are validated by the rules of CONTRACT section 1 (sensor-validate): ' +
    'an object or an array of at most 1000 objects.',
  fields: {
    id,
    sensor_type: {
      type: 'string',
      required: true,
      maxLength: 32,
      pattern: /^[a-z][a-z0-9_]{0,31}$/,
      patternText: '^[a-z][a-z0-9_]{0,31}$',
      description: `Known types: ${SENSOR_TYPES_KNOWN.join(', ')}; more may be allowed in the node settings.`,
      example: 'ldr',
    },
    sensor_id: {
      type: 'string',
      required: true,
      minLength: 1,
      maxLength: 64,
      pattern: DEVICE_ID_PATTERN,
      patternText: '^[A-Za-z0-9_.:-]{1,64}$',
      description: 'The sensor, 1 to 64 of A-Z a-z 0-9 _ . : -',
      example: 'ldr_1',
    },
    value: { type: 'number', required: true, description: 'A finite number (a numeric string is converted); per-type ranges apply.', example: 750 },
    unit: { type: 'string', maxLength: 20, description: 'Default per type: ldr lux, current A, voltage V, temperature celsius, humidity %, power W, energy Wh.', example: 'lux' },
    location: {
      type: 'string',
      maxLength: 100,
      pattern: /^[a-z0-9_-]{1,100}$/,
      patternText: '^[a-z0-9_-]{1,100}$',
      description: 'Where the sensor is.',
      example: 'living_room',
    },
    timestamp: {
      type: 'datetime',
      description: 'ISO 8601 (Z or an offset; none means UTC); default the time of receipt. At most 5 minutes in the future, not older than the retention period.',
      example: '2026-01-26T08:00:00.000Z',
    },
    created_at: createdAt,
  },
};

export const GRID_DATA_TYPES = ['carbon_intensity', 'weather', 'electricity_price', 'carbon_forecast', 'weather_forecast'] as const;

/** Grid data: written by the fetch nodes only (read-only over REST). */
export const GRID_DATA: ResourceSchema = {
  name: 'GridData',
  verboseName: 'grid data',
  description:
    'Carbon intensity (gCO2eq/kWh, Electricity Maps) and weather (temperature in celsius, OpenWeatherMap) of a zone. ' +
    'One row per (data_type, zone, timestamp); timestamp is the API\'s own time.',
  fields: {
    id,
    data_type: { type: 'string', required: true, enum: GRID_DATA_TYPES, description: 'What the value is.', example: 'carbon_intensity' },
    value: { type: 'number', required: true, description: 'Carbon intensity in gCO2eq/kWh, or the temperature in celsius.', example: 650 },
    unit: { type: 'string', maxLength: 20, default: '', description: 'gCO2eq/kWh or celsius.', example: 'gCO2eq/kWh' },
    zone: { type: 'string', maxLength: 64, default: '', description: 'The grid zone (LOCATION_ZONE).', example: 'IN-KA' },
    metadata: {
      type: 'object',
      default: {},
      description:
        'Carbon: is_estimated, estimation_method, emission_factor_type, fossil_free_percentage, renewable_percentage, fetched_at, source. ' +
        'Weather: humidity, cloud_cover, weather_condition, description, wind_speed, pressure, fetched_at, source.',
      example: { is_estimated: true, fossil_free_percentage: 41.5, renewable_percentage: 38.2, source: 'electricitymaps' },
    },
    timestamp: { type: 'datetime', required: true, description: 'The time the API reports the value for.', example: '2026-01-26T08:00:00.000Z' },
    created_at: createdAt,
  },
};

export const USER_PREFERENCE: ResourceSchema = {
  name: 'UserPreference',
  verboseName: 'user preference',
  description: 'A named setting of any JSON value, addressed by its unique key.',
  fields: {
    id,
    preference_key: {
      type: 'string',
      required: true,
      minLength: 1,
      maxLength: 100,
      description: 'Unique key, 1 to 100 characters; the `{key}` of the detail URL.',
      example: 'brightness_threshold',
    },
    preference_value: { type: 'json', required: true, nullable: true, description: 'Any JSON value (null allowed).', example: 300 },
    description: { type: 'string', default: '', description: 'What the preference is for.', example: 'Dim the lights above this lux level' },
    created_at: createdAt,
    updated_at: updatedAt,
  },
};

export const DECISION_TYPES = ['power_source', 'light_dim', 'load_shift', 'general'] as const;

/** A device command: `POST /api/commands/` and each item of a decision's `commands`. */
export const COMMAND: ResourceSchema = {
  name: 'Command',
  verboseName: 'command',
  description: 'A command for one device, published to `{prefix}/commands/{device_id}` (QoS 1, not retained).',
  fields: {
    device_id: {
      type: 'string',
      required: true,
      minLength: 1,
      maxLength: 64,
      pattern: DEVICE_ID_PATTERN,
      patternText: '1 to 64 of A-Z a-z 0-9 _ . : -',
      description: 'The device, 1 to 64 of A-Z a-z 0-9 _ . : - (one MQTT topic level).',
      example: 'light_living_room',
    },
    command: { type: 'string', required: true, minLength: 1, maxLength: 64, description: 'What the device should do.', example: 'set_brightness' },
    value: { type: 'json', nullable: true, default: null, description: 'The command\'s argument: any JSON value.', example: 75 },
  },
};

export const MAX_COMMANDS = 100;

export const AI_DECISION: ResourceSchema = {
  name: 'AiDecision',
  verboseName: 'AI decision',
  description: 'An audit trail entry of the AI engine. Rows are never edited but for `applied`.',
  fields: {
    id,
    decision_type: { type: 'string', required: true, enum: DECISION_TYPES, description: 'What kind of decision.', example: 'light_dim' },
    decision: {
      type: 'object',
      required: true,
      description: 'The decision itself; the `commands` of the request are stored in `decision.commands`.',
      example: { target: 'living_room', brightness: 75 },
    },
    confidence: { type: 'number', required: true, minimum: 0, maximum: 1, description: 'From 0 to 1.', example: 0.87 },
    reasoning: { type: 'string', default: '', description: 'Why the engine decided so.', example: 'Daylight above threshold' },
    applied: { type: 'boolean', default: false, description: 'Whether the decision was carried out.', example: false },
    timestamp: {
      type: 'datetime',
      default: (now: number) => new Date(now).toISOString(),
      description: 'When the decision was made (ISO 8601); default the time it is recorded.',
      example: '2026-01-26T08:00:00.000Z',
    },
    created_at: createdAt,
    commands: {
      type: 'array',
      writeOnly: true,
      items: COMMAND,
      maxItems: MAX_COMMANDS,
      description: `Commands to publish (at most ${MAX_COMMANDS}); stored in decision.commands.`,
      example: [{ device_id: 'light_living_room', command: 'set_brightness', value: 75 }],
    },
  },
};

export const ENERGY_SOURCE_TYPES = ['grid', 'solar', 'battery', 'generator'] as const;
/** PostgreSQL `integer`. */
const INT32 = { minimum: -2147483648, maximum: 2147483647 };

export const ENERGY_SOURCE: ResourceSchema = {
  name: 'EnergySource',
  verboseName: 'energy source',
  description: 'A power source of the home and its state.',
  fields: {
    id,
    source_type: { type: 'string', required: true, enum: ENERGY_SOURCE_TYPES, description: 'One row per type.', example: 'solar' },
    is_available: { type: 'boolean', default: true, description: 'Whether it can be used now.', example: true },
    capacity: { type: 'number', nullable: true, minimum: 0, default: null, description: 'Capacity in W (null: unknown).', example: 5000 },
    current_output: { type: 'number', default: 0, description: 'Current output in W.', example: 1200 },
    priority: { type: 'integer', default: 0, ...INT32, description: 'Higher first.', example: 10 },
    updated_at: updatedAt,
  },
};

export const RESOURCE_SCHEMAS: readonly ResourceSchema[] = [SENSOR_READING, GRID_DATA, USER_PREFERENCE, AI_DECISION, ENERGY_SOURCE, COMMAND];
