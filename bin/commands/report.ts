/**
 * `ioasid-sim report`: runs the suite on both stacks through the scenario runner and writes the
 * decision report (report.txt, report.md, report.json, report.html).
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { DEFAULT_COSTS, ProfileError, loadProfileFile } from '../../sim/index.ts';
import type { InvalidateOption, RunResult } from '../../scenarios/results.ts';
import { createProgress, writeReport } from '../../reports/index.ts';
import { runSuite } from '../../scenarios/suite-run.ts';
import { UsageError } from '../usage.ts';

const DEFAULT_OUT = fileURLToPath(new URL('../../reports/out', import.meta.url));

interface ReportCliOptions {
  out: string;
  scenarios?: string[];
  costs?: string;
  invalidate: InvalidateOption | 'both';
  seed: string;
  samples: string;
  jobs?: string;
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${what} must be a non-negative integer, got '${s}'`);
  return n;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('run the suite on both stacks and write the decision report (txt, md, json, html)')
    .option('--out <dir>', 'output directory', DEFAULT_OUT)
    .option('--scenarios <names...>', 'scenarios to run (default: the whole suite)')
    .option('--costs <profile.json>', 'cost profile to price at and sweep (default: the built-in profile)')
    .addOption(new Option('--invalidate <mode>', 'how the VMM issues invalidations').choices(['qemu', 'batched', 'both']).default('both'))
    .option('--seed <n>', 'simulation seed', '1')
    .option('--samples <n>', 'whole profiles sampled by the sensitivity grid', '10000')
    .option('--jobs <n>', 'worker threads that run the scenarios (default: one per core; 1: none)')
    .action(async (opts: ReportCliOptions) => {
      const seed = positiveInt(opts.seed, '--seed');
      const samples = positiveInt(opts.samples, '--samples');
      const jobs = opts.jobs === undefined ? undefined : positiveInt(opts.jobs, '--jobs');
      if (jobs === 0) throw new UsageError('--jobs must be at least 1');
      let costs = { name: 'default', table: DEFAULT_COSTS };
      if (opts.costs !== undefined) {
        try {
          costs = loadProfileFile(opts.costs);
        } catch (e) {
          if (e instanceof ProfileError) throw new UsageError(e.message.split('\n')[0]!);
          throw e;
        }
      }
      const started = performance.now();
      const progress = createProgress(process.stderr);
      let runs: RunResult[];
      try {
        runs = await runSuite({
          ...(jobs !== undefined ? { jobs } : {}),
          ...(opts.scenarios ? { scenarios: opts.scenarios } : {}),
          invalidate: opts.invalidate === 'both' ? ['qemu', 'batched'] : [opts.invalidate],
          costs,
          seed,
          trace: true,
          resimulateContended: true,
          onProgress: (done, total, label) => progress.update(done, total, label),
        });
      } finally {
        progress.stop();
      }
      const { files, model } = writeReport(runs, { outDir: opts.out, profile: costs, invalidate: opts.invalidate, samples, seed });
      const secs = ((performance.now() - started) / 1000).toFixed(2);
      const shown = (p: string): string => relative(process.cwd(), p) || p;
      process.stdout.write(
        `${model.scenarios.length} scenario runs on both stacks, ${samples} sampled profiles, ${secs} s:\n` +
          `${Object.values(files).map((f) => `  ${shown(f)}`).join('\n')}\n`,
      );
    });
}
