import type { Command } from 'commander';
import { registerList } from './list.ts';
import { registerStructs } from './structs.ts';
import { registerValidate } from './validate.ts';

/** Each command lives in its own module and registers itself here. */
export function registerCommands(program: Command): void {
  registerStructs(program);
  registerList(program);
  registerValidate(program);
}
