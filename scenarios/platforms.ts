import type { StackPlatform } from './platform.ts';
import type { StackName } from './results.ts';

/**
 * The built-in designs, by stack. Each entry wires a design's module inits and its VMM backend
 * onto the shared platform.
 */
export function builtinPlatforms(): Partial<Record<StackName, StackPlatform>> {
  return {};
}
