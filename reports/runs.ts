/**
 * The runs a report reads, grouped per scenario and invalidation mode. The runner re-simulates
 * contended scenarios at the low and high profiles and hands those back as extra RunResults with
 * profile names 'low' and 'high' (DESIGN principle 4); every other run is a scenario's main run.
 */
import type { InvalidateOption, RunResult, StackName, StepResult } from '../scenarios/results.ts';
import { STACKS } from '../scenarios/results.ts';

export const RESIMULATED = ['low', 'high'] as const;
export type ResimulatedPoint = (typeof RESIMULATED)[number];

export interface ScenarioRuns {
  /** unique within a report: the scenario name, plus the invalidation mode when both were run */
  key: string;
  scenario: string;
  description: string;
  invalidate: InvalidateOption;
  run: RunResult;
  resimulated: Partial<Record<ResimulatedPoint, RunResult>>;
  /** true when any step on either stack recorded contention */
  contended: boolean;
}

function isResimulated(profile: string): profile is ResimulatedPoint {
  return (RESIMULATED as readonly string[]).includes(profile);
}

export function stepsOf(run: RunResult, stack: StackName): readonly StepResult[] {
  return run.stacks[stack]?.steps ?? [];
}

function contended(run: RunResult): boolean {
  return STACKS.some((s) => stepsOf(run, s).some((st) => st.contentionNs > 0));
}

/** Groups in the order the main runs came; low/high runs without a main run are ignored. */
export function groupRuns(runs: readonly RunResult[]): ScenarioRuns[] {
  const modes = new Set(runs.map((r) => r.invalidate));
  const groups = new Map<string, ScenarioRuns>();
  const id = (r: RunResult): string => `${r.scenario}\u0000${r.invalidate}`;
  for (const r of runs) {
    if (isResimulated(r.profile) || groups.has(id(r))) continue;
    groups.set(id(r), {
      key: modes.size > 1 ? `${r.scenario} [${r.invalidate}]` : r.scenario,
      scenario: r.scenario,
      description: r.description,
      invalidate: r.invalidate,
      run: r,
      resimulated: {},
      contended: contended(r),
    });
  }
  for (const r of runs) {
    if (!isResimulated(r.profile)) continue;
    const g = groups.get(id(r));
    if (g && !g.resimulated[r.profile]) g.resimulated[r.profile] = r;
  }
  return [...groups.values()];
}

/**
 * The scenarios whose recorded runs differ between invalidation modes on either stack (totals,
 * step count or hardware digest); null when the runs used one mode only.
 */
export function scenariosWhereModesDiffer(groups: readonly ScenarioRuns[]): string[] | null {
  const byScenario = new Map<string, ScenarioRuns[]>();
  for (const g of groups) byScenario.set(g.scenario, [...(byScenario.get(g.scenario) ?? []), g]);
  if (![...byScenario.values()].some((gs) => gs.length > 1)) return null;
  const same = (a: RunResult, b: RunResult): boolean =>
    STACKS.every((s) => {
      const x = a.stacks[s];
      const y = b.stacks[s];
      return JSON.stringify([x?.totals, x?.steps.length, x?.hwDigest]) === JSON.stringify([y?.totals, y?.steps.length, y?.hwDigest]);
    });
  return [...byScenario].filter(([, gs]) => gs.some((g) => !same(g.run, gs[0]!.run))).map(([name]) => name);
}
