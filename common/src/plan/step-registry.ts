import type { StepSchema } from './step-schema.js';

/**
 * Every step type's argument schema, by type name. Each schema module in
 * ./steps/ is imported here — the one list of what step types exist.
 */
const schemas: Array<StepSchema<unknown>> = [
  // step schemas: keep this list sorted by type name, one import per line above
];

export const STEP_SCHEMAS: ReadonlyMap<string, StepSchema<unknown>> = new Map(schemas.map((s) => [s.type, s]));
