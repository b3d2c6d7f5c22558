import { CommanderError, type Command } from 'commander';
import { formatIssue } from '../../scenarios/issues.ts';
import { loadScenario } from '../../scenarios/suite.ts';

/**
 * `ioasid-sim validate FILE|NAME…`: loads each scenario and prints its issues on stderr, one per
 * line (`file:line path – message`); warnings too, marked. Exit 2 when any file has an error.
 */
export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check scenario files (or built-in names): schema, references and step order; exit 2 on an error')
    .argument('<files...>', 'scenario files, or names from the built-in suite')
    .action((files: string[]) => {
      let bad = false;
      for (const f of files) {
        const r = loadScenario(f);
        for (const w of r.warnings) process.stderr.write(`${formatIssue({ ...w, message: `warning: ${w.message}` })}\n`);
        if (r.ok) {
          process.stdout.write(`ok ${r.scenario.file}: ${r.scenario.name}, ${r.scenario.flat.length} steps\n`);
        } else {
          bad = true;
          for (const e of r.errors) process.stderr.write(`${formatIssue(e)}\n`);
        }
      }
      // the issues are printed already: exit 2 with nothing more on stderr
      if (bad) throw new CommanderError(2, 'ioasid-sim.invalidScenario', '');
    });
}
