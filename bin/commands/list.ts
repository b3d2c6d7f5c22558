import type { Command } from 'commander';
import { formatIssue } from '../../scenarios/issues.ts';
import { loadScenario, suiteDisplayPath, suiteFiles, suiteNames } from '../../scenarios/suite.ts';
import type { LoadedScenario } from '../../scenarios/types.ts';

const WIDTH = 80;

/** the first line of a description, cut to `max` columns */
function summary(description: string, max: number): string {
  const first = description.split('\n')[0]!.trim();
  return first.length <= max ? first : `${first.slice(0, max - 1)}…`;
}

function renderTable(scenarios: readonly LoadedScenario[]): string {
  // a long device list (the scale scenario) is summarised so the table keeps to 80 columns
  const devicesOf = (s: LoadedScenario): string => {
    const names = s.devices.map((d) => d.name).join(',');
    return names.length <= 24 ? names : `${s.devices.length} devices`;
  };
  const rows = scenarios.map((s) => [s.name, devicesOf(s), String(s.flat.length)] as const);
  const w0 = Math.max(4, ...rows.map((r) => r[0].length));
  const w1 = Math.max(7, ...rows.map((r) => r[1].length));
  const head = `${'name'.padEnd(w0)}  ${'devices'.padEnd(w1)}  steps  `;
  const lines = [`${head}description`];
  for (const [i, r] of rows.entries()) {
    lines.push(`${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2].padStart(5)}  ${summary(scenarios[i]!.description, WIDTH - head.length)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `ioasid-sim list [--json]`: the built-in scenarios (scenarios/suite/*.yaml). */
export function registerList(program: Command): void {
  program
    .command('list')
    .description('list the built-in scenarios: name, devices, steps after expansion, what each shows')
    .option('--json', 'print {"scenarios": [{name, file, description, devices, steps}]}')
    .action((opts: { json?: boolean }) => {
      const scenarios = suiteNames().map((name) => {
        const r = loadScenario(name);
        // a built-in scenario that does not load is a bug in the suite, not a usage error
        if (!r.ok) throw new Error(`built-in scenario ${name} does not load:\n${r.errors.map(formatIssue).join('\n')}`);
        return r.scenario;
      });
      if (!opts.json) {
        process.stdout.write(renderTable(scenarios));
        return;
      }
      const files = suiteFiles();
      const json = {
        scenarios: scenarios.map((s, i) => ({
          name: s.name,
          file: suiteDisplayPath(files[i]!),
          description: s.description,
          devices: s.devices.map((d) => d.name),
          steps: s.flat.length,
        })),
      };
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    });
}
