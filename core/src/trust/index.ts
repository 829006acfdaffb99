/** The verifier's trust policy (docs/FORMAT.md §14). */
export * from './policy.ts';
export * from './draft.ts';
export { parseStrictJson, type JsonValue, type StrictJsonLimits } from './strict-json.ts';
