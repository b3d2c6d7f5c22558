import { CommanderError, Option, type Command } from 'commander';
import { formatIssue } from '../../scenarios/issues.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { runScenario } from '../../scenarios/runner.ts';
import type { RunResult, StackName } from '../../scenarios/results.ts';
import { loadScenario, suiteNames } from '../../scenarios/suite.ts';
import type { LoadedScenario } from '../../scenarios/types.ts';
import { UsageError } from '../usage.ts';

/** A scenario by suite name or path, or a usage error listing its issues. */
export function loadOrExit(nameOrPath: string): LoadedScenario {
  const r = loadScenario(nameOrPath);
  if (r.ok) return r.scenario;
  for (const e of r.errors) process.stderr.write(`${formatIssue(e)}\n`);
  throw new CommanderError(2, 'ioasid-sim.invalidScenario', '');
}

export function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new UsageError(`--seed must be an integer in 0..4294967295, got '${v}'`);
  return n;
}

export function stacksOf(v: string): StackName[] {
  return v === 'all' ? ['tunnel', 'iommufd'] : [v as StackName];
}

/**
 * `ioasid-sim run [name | path.yaml …] [--stack tunnel|iommufd|all] [--seed N] [--invalidate qemu|batched] [--json]`:
 * runs scenarios (the whole suite when none is named), checks every expectation and the hardware
 * oracle; exit 1 when either fails. With one scenario, --json prints its run; otherwise an array.
 */
export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run scenarios (default: the whole suite) on one stack or both; exit 1 if an expectation or the hardware oracle fails')
    .argument('[scenarios...]', 'built-in scenario names or paths to .yaml files (default: the whole suite)')
    .addOption(new Option('--stack <stack>', 'which stack').choices(['tunnel', 'iommufd', 'all']).default('all'))
    .option('--seed <n>', 'seed for choices that do not change meaning', parseSeed, 1)
    .addOption(new Option('--invalidate <how>', 'how the VMM forwards guest flushes').choices(['qemu', 'batched']).default('qemu'))
    .option('--json', 'print the results as JSON')
    .action((names: string[], o: { stack: string; seed: number; invalidate: 'qemu' | 'batched'; json?: boolean }) => {
      const scenarios = (names.length ? names : suiteNames()).map(loadOrExit);
      const platforms = builtinPlatforms();
      const runs = scenarios.map((sc) => runScenario(sc, { stacks: stacksOf(o.stack), seed: o.seed, invalidate: o.invalidate, platforms }));
      if (o.json) process.stdout.write(`${JSON.stringify(runs.length === 1 && names.length === 1 ? runs[0] : runs, null, 2)}\n`);
      else for (const r of runs) process.stdout.write(summary(r));
      if (runs.some(failed)) throw new CommanderError(1, 'ioasid-sim.scenarioFailed', '');
    });
}

function failed(r: RunResult): boolean {
  return Object.values(r.stacks).some((s) => !s.ok) || (r.digestsEqual === false && !r.digestDifferenceStated);
}

function summary(r: RunResult): string {
  let out = '';
  for (const [stack, s] of Object.entries(r.stacks)) {
    out += `${r.scenario} on ${stack}: ${s.ok ? 'ok' : `FAILED – ${s.error}`}; ${s.steps.length} steps, ${s.totals.ioctls} ioctls, ${Math.round(s.totals.latencyNs)} ns, digest ${s.hwDigest.slice(0, 12)}\n`;
  }
  if (r.digestsEqual !== undefined) {
    const why = r.digestsEqual ? 'both stacks left the same VT-d state' : r.digestDifferenceStated ? 'the VT-d states differ, as the scenario states' : 'the stacks left DIFFERENT VT-d states, which the scenario does not state';
    out += `hardware oracle: ${why}\n`;
  }
  return out;
}
