/**
 * A resource schema as an OpenAPI 3.1 (JSON Schema 2020-12) component: the same description
 * that validates bodies, so the document cannot drift from what the API accepts.
 */
import type { FieldSpec, ResourceSchema } from './schema';

export type JsonSchema = Record<string, unknown>;

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/** One field as a JSON Schema property. */
export function fieldJsonSchema(field: FieldSpec): JsonSchema {
  let s: JsonSchema;
  switch (field.type) {
    case 'string':
      s = { type: 'string' };
      if (field.enum) s.enum = [...field.enum];
      if (field.minLength !== undefined) s.minLength = field.minLength;
      if (field.maxLength !== undefined) s.maxLength = field.maxLength;
      if (field.pattern) s.pattern = field.pattern.source;
      break;
    case 'number':
    case 'integer':
      s = { type: field.type };
      if (field.minimum !== undefined) s.minimum = field.minimum;
      if (field.maximum !== undefined) s.maximum = field.maximum;
      break;
    case 'boolean':
      s = { type: 'boolean' };
      break;
    case 'datetime':
      s = { type: 'string', format: 'date-time' };
      break;
    case 'object':
      s = { type: 'object', additionalProperties: true };
      break;
    case 'array':
      s = { type: 'array', items: field.items ? ref(field.items.name) : {} };
      if (field.maxItems !== undefined) s.maxItems = field.maxItems;
      break;
    default:
      s = {}; // any JSON value
  }
  if (field.nullable && typeof s.type === 'string') s.type = [s.type, 'null'];
  if (field.nullable && s.enum) (s.enum as unknown[]).push(null);
  const out: JsonSchema = { ...s, description: field.description };
  if (field.readOnly) out.readOnly = true;
  if (field.writeOnly) out.writeOnly = true;
  if (field.default !== undefined && typeof field.default !== 'function') out.default = field.default;
  if (field.example !== undefined) out.examples = [field.example];
  return out;
}

/**
 * The component of a resource: every field, read-only ones marked `readOnly` (responses only)
 * and write-only ones `writeOnly` (requests only). `partial`: the PATCH variant, nothing required.
 */
export function resourceJsonSchema(schema: ResourceSchema, partial = false): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [name, field] of Object.entries(schema.fields)) {
    properties[name] = fieldJsonSchema(field);
    if (!partial && field.required) required.push(name);
  }
  const out: JsonSchema = { type: 'object', description: schema.description, properties };
  if (required.length) out.required = required;
  return out;
}
