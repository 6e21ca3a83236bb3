/**
 * One schema per REST resource: validation, stored shape, OpenAPI (see schema.ts).
 */
import type { ColumnKind } from '../db/table';
import type { FieldSpec, ResourceSchema } from './schema';

export * from './schema';
export * from './resources';

/** The table column kind of a field; `id` for the row id. */
export function columnKind(name: string, field: FieldSpec): ColumnKind {
  if (name === 'id') return 'id';
  switch (field.type) {
    case 'string':
      return 'text';
    case 'number':
      return 'number';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'datetime':
      return 'timestamp';
    default:
      return 'json';
  }
}

/** The stored fields of a schema as a TableSpec `columns` map (the column whitelist). */
export function tableColumns(schema: ResourceSchema): Record<string, ColumnKind> {
  const out: Record<string, ColumnKind> = {};
  for (const [name, field] of Object.entries(schema.fields)) {
    if (!field.writeOnly) out[name] = columnKind(name, field);
  }
  return out;
}
export * from './openapi-schema';
