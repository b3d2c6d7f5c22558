/**
 * The suite as one job: every scenario on both stacks, once per invalidation option, plus the
 * scenarios that recorded contention re-simulated at the low and high profiles (DESIGN principle
 * 4). Each stack's run builds its own machine from the seed and shares nothing with another, so
 * the runs can go to a pool of worker threads (`jobs`); the results are the same, in the same
 * order, however many workers ran them (a test checks this). A run that the other invalidation
 * option cannot change is made once (record once; see `exec` below).
 */
import { pricesAt, type CostTable, type Point } from '../sim/index.ts';
import { MULTI_ENTRY_FLUSHES } from '../models/vmm/backend.ts';
import { formatIssue } from './issues.ts';
import type { StackPlatform } from './platform.ts';
import { builtinPlatforms } from './platforms.ts';
import { WorkerPool, defaultJobs, suiteWorkerEntry } from './pool.ts';
import { STACKS, type InvalidateOption, type RunResult, type StackName, type StackResult } from './results.ts';
import { assembleRun, runStack, type RunOptions } from './runner.ts';
import { loadScenario, suiteNames } from './suite.ts';
import type { LoadedScenario } from './types.ts';

export interface RunSuiteOptions {
  /** scenario names from the suite (or paths); every built-in scenario when absent */
  scenarios?: string[];
  /** each scenario runs once per invalidation option */
  invalidate: InvalidateOption[];
  /** the profile latencies are priced at */
  costs: { name: string; table: CostTable };
  seed: number;
  /** keep call trees (StepResult.trace) */
  trace: boolean;
  /** re-simulate scenarios that recorded contention at the low and high profiles (runs named 'low'/'high') */
  resimulateContended: boolean;
  onProgress?: (done: number, total: number, label: string) => void;
  /** worker threads (default: one per core); 1 runs everything in this thread */
  jobs?: number;
  /** other designs than the built-in ones (tests); they run in this thread */
  platforms?: Partial<Record<StackName, StackPlatform>>;
}

/** One stack of one scenario at one price point: a worker's unit of work. */
export interface StackJob {
  scenario: string;
  stack: StackName;
  invalidate: InvalidateOption;
  point: Point;
  /** the run's profile name (the main run's, or 'low'/'high') */
  profile: string;
  costs: CostTable;
  seed: number;
  keepTrace: boolean;
}

/** The runner's options for a job: re-simulated points advance the clocks at their own prices. */
export function stackJobOptions(job: StackJob, platforms: Partial<Record<StackName, StackPlatform>>): RunOptions {
  const prices = pricesAt(job.costs, job.point, job.profile);
  return { seed: job.seed, invalidate: job.invalidate, prices, clockPrices: prices, keepTrace: job.keepTrace, platforms };
}

/** true when some flush of the run gave one (device, PASID) several entries: the options differ there */
function batchesDiffer(r: StackResult): boolean {
  return r.steps.some((s) => (s.counters[MULTI_ENTRY_FLUSHES] ?? 0) > 0);
}

/** Runs the suite on both stacks, once per invalidation option, plus contended re-simulations. */
export async function runSuite(opts: RunSuiteOptions): Promise<RunResult[]> {
  const names = opts.scenarios ?? suiteNames();
  const scenarios = names.map((n) => {
    const r = loadScenario(n);
    if (!r.ok) throw new Error(`scenario ${n}: ${r.errors.map(formatIssue).join('; ')}`);
    return { name: n, sc: r.scenario };
  });
  // the main run's name must not be taken for a re-simulated bound
  const mainName = opts.costs.name === 'low' || opts.costs.name === 'high' ? `${opts.costs.name} (profile)` : opts.costs.name;
  const jobs = opts.platforms ? 1 : Math.max(1, Math.min(opts.jobs ?? defaultJobs(), scenarios.length * opts.invalidate.length * STACKS.length));
  const pool = jobs > 1 ? new WorkerPool<StackJob, StackResult>(suiteWorkerEntry(), jobs) : null;
  const platforms = opts.platforms ?? builtinPlatforms();
  const run = (job: StackJob): Promise<StackResult> => (pool ? pool.run(job) : Promise.resolve(runStack(scenarioOf(job), job.stack, stackJobOptions(job, platforms))));
  // record once across invalidation options: a stack's run under the later option is its run under
  // the first when that run gave no (device, PASID) a flush of several entries (groupInvalidations,
  // the one place the option acts, then groups alike)
  const firstOption = opts.invalidate[0];
  const ran = new Map<string, Promise<StackResult>>();
  const exec = (job: StackJob): Promise<StackResult> => {
    const key = (inv: InvalidateOption): string => `${job.scenario}\u0000${job.stack}\u0000${job.point}\u0000${inv}`;
    const first = job.invalidate === firstOption ? undefined : ran.get(key(firstOption!));
    const p = first ? first.then((r) => (batchesDiffer(r) ? run(job) : r)) : run(job);
    ran.set(key(job.invalidate), p);
    return p;
  };
  const byName = new Map(scenarios.map((s) => [s.name, s.sc]));
  const scenarioOf = (job: StackJob): LoadedScenario => byName.get(job.scenario)!;

  const total = scenarios.length * opts.invalidate.length;
  let done = 0;
  const runOne = async (name: string, sc: LoadedScenario, invalidate: InvalidateOption): Promise<RunResult[]> => {
    const job = (stack: StackName, point: Point, profile: string): StackJob => ({ scenario: name, stack, invalidate, point, profile, costs: opts.costs.table, seed: opts.seed, keepTrace: point === 'default' && opts.trace });
    const both = async (point: Point, profile: string): Promise<RunResult> => {
      const results = await Promise.all(STACKS.map((s) => exec(job(s, point, profile))));
      return assembleRun(sc, { seed: opts.seed, invalidate, profile }, Object.fromEntries(STACKS.map((s, i) => [s, results[i]!])));
    };
    const main = await both('default', mainName);
    const contended = Object.values(main.stacks).some((s) => s.totals.contentionNs > 0);
    const out = [main];
    if (opts.resimulateContended && contended) out.push(...(await Promise.all((['low', 'high'] as const).map((p) => both(p, p)))));
    opts.onProgress?.(++done, total, `${sc.name} (${invalidate})`);
    return out;
  };
  try {
    // on a pool, the biggest scenarios first, so that the last job to finish is a small one; in this
    // thread, the smallest first: the big one then runs on code the JIT has already optimised and a
    // heap that has grown (the scale scenario takes ~1.5× as long when it runs first)
    const order = scenarios.flatMap((s, i) => opts.invalidate.map((inv, j) => ({ i, j, ...s, inv, weight: s.sc.flat.length * Math.max(1, s.sc.devices.length) })));
    const sign = pool ? -1 : 1;
    const started = new Map(
      [...order].sort((a, b) => sign * (a.weight - b.weight)).map((o) => [`${o.i}/${o.j}`, runOne(o.name, o.sc, o.inv)] as const),
    );
    // all awaited at once, so that a failure leaves no rejection unobserved
    return (await Promise.all(order.map((o) => started.get(`${o.i}/${o.j}`)!))).flat();
  } finally {
    await pool?.close();
  }
}
