/**
 * report.json: everything machine-readable. `runs` are the RunResults exactly as the runner gave
 * them (what `run --json` prints), without the call trees except the representative ones kept in
 * `scenarios[].representative`; then the profile, the verdicts, the qualities and the sensitivity.
 */
import type { RunResult, StackResult, StepResult } from '../scenarios/results.ts';
import type { ReportModel } from './model.ts';

function withoutTrace(step: StepResult): StepResult {
  const { trace: _trace, flatTrace: _flat, ...rest } = step;
  return rest;
}

export function runsWithoutTraces(runs: readonly RunResult[]): RunResult[] {
  return runs.map((r) => {
    const stacks: RunResult['stacks'] = {};
    for (const [name, s] of Object.entries(r.stacks) as [keyof RunResult['stacks'], StackResult][]) {
      stacks[name] = { ...s, steps: s.steps.map(withoutTrace) };
    }
    return { ...r, stacks };
  });
}

export function renderJson(m: ReportModel, runs: readonly RunResult[]): string {
  const { format, profile, invalidateModes, scenarios, qualityDefs, qualities, sensitivity } = m;
  const doc = { format, profile, invalidateModes, runs: runsWithoutTraces(runs), scenarios, qualityDefs, qualities, sensitivity };
  return `${JSON.stringify(doc)}\n`;
}
