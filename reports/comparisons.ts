/**
 * The latency comparisons a sensitivity analysis re-prices: per scenario, all its steps; and per
 * operation (all `bind` steps, all `guest-unmap` steps, …). Each side is a usage vector summed
 * from the recorded primitives, plus the contention the scheduler recorded.
 */
import type { RunResult, StackName, StepResult } from '../scenarios/results.ts';
import { addPrimitives, emptyUsage, type UsageVector } from './price.ts';
import { stepsOf, type ResimulatedPoint, type ScenarioRuns } from './runs.ts';

export interface StackSide {
  usage: UsageVector;
  contentionNs: number;
  /** the steps' recorded latency (run profile, contention included) */
  recordedNs: number;
}

export interface LatencyComparison {
  /** the scenario group's key */
  scenario: string;
  /** `all steps`, or `op bind` */
  scope: string;
  tunnel: StackSide;
  iommufd: StackSide;
  contended: boolean;
  /** recorded latency of the same scope in the re-simulated low/high runs */
  resimulated: Partial<Record<ResimulatedPoint, Record<StackName, number>>>;
}

export const ALL_STEPS = 'all steps';

function side(steps: readonly StepResult[]): StackSide {
  const usage = emptyUsage();
  let contentionNs = 0;
  let recordedNs = 0;
  for (const s of steps) {
    addPrimitives(usage, s.primitives);
    contentionNs += s.contentionNs;
    recordedNs += s.latencyNs;
  }
  return { usage, contentionNs, recordedNs };
}

function recordedOf(run: RunResult, stack: StackName, pick: (s: StepResult) => boolean): number {
  return stepsOf(run, stack).filter(pick).reduce((t, s) => t + s.latencyNs, 0);
}

function comparison(g: ScenarioRuns, scope: string, pick: (s: StepResult) => boolean): LatencyComparison {
  const t = stepsOf(g.run, 'tunnel').filter(pick);
  const i = stepsOf(g.run, 'iommufd').filter(pick);
  const resimulated: LatencyComparison['resimulated'] = {};
  for (const [point, run] of Object.entries(g.resimulated) as [ResimulatedPoint, RunResult][]) {
    resimulated[point] = { tunnel: recordedOf(run, 'tunnel', pick), iommufd: recordedOf(run, 'iommufd', pick) };
  }
  const contended = [...t, ...i].some((s) => s.contentionNs > 0);
  return { scenario: g.key, scope, tunnel: side(t), iommufd: side(i), contended, resimulated };
}

/** Comparisons of a scenario group; none when a stack is missing or failed. */
export function latencyComparisons(g: ScenarioRuns): LatencyComparison[] {
  if (!g.run.stacks.tunnel?.ok || !g.run.stacks.iommufd?.ok) return [];
  const ops = [...new Set(stepsOf(g.run, 'tunnel').map((s) => s.op))];
  const out = [comparison(g, ALL_STEPS, () => true)];
  if (ops.length > 1) for (const op of ops) out.push(comparison(g, `op ${op}`, (s) => s.op === op));
  return out;
}
