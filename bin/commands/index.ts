import type { Command } from 'commander';
import { registerStructs } from './structs.ts';

/** Each command lives in its own module and registers itself here. */
export function registerCommands(program: Command): void {
  registerStructs(program);
}
