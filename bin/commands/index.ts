import type { Command } from 'commander';
import { registerList } from './list.ts';
import { registerRun } from './run.ts';
import { registerTrace } from './trace.ts';
import { registerReport } from './report.ts';
import { registerStructs } from './structs.ts';
import { registerValidate } from './validate.ts';

/** Each command lives in its own module and registers itself here. */
export function registerCommands(program: Command): void {
  registerStructs(program);
  registerList(program);
  registerRun(program);
  registerTrace(program);
  registerValidate(program);
  registerReport(program);
}
