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

function stackWithoutTraces(s: StackResult): StackResult {
  return { ...s, steps: s.steps.map(withoutTrace) };
}

export function runsWithoutTraces(runs: readonly RunResult[]): RunResult[] {
  return runs.map((r) => {
    const stacks: RunResult['stacks'] = {};
    for (const [name, s] of Object.entries(r.stacks) as [keyof RunResult['stacks'], StackResult][]) stacks[name] = stackWithoutTraces(s);
    return { ...r, stacks };
  });
}

/** a string no figure contains (JSON writes the NUL as \u0000): where serialised parts go */
const HOLE = '\u0000ioasid-sim\u0000';
const HOLE_JSON = JSON.stringify(HOLE);

/**
 * JSON.stringify of the document, byte for byte, with each stack result serialised once: a run
 * reused under the other invalidation option (record once) is the same object in two runs.
 */
export function renderJson(m: ReportModel, runs: readonly RunResult[]): string {
  const { format, profile, invalidateModes, scenarios, qualityDefs, qualities, sensitivity } = m;
  const stackJson = new Map<StackResult, string>();
  const runJson = runs.map((r) => {
    const stacks = (Object.entries(r.stacks) as [string, StackResult | undefined][])
      .filter((e): e is [string, StackResult] => e[1] !== undefined)
      .map(([name, s]) => {
        let j = stackJson.get(s);
        if (j === undefined) stackJson.set(s, (j = JSON.stringify(stackWithoutTraces(s))));
        return `${JSON.stringify(name)}:${j}`;
      });
    return JSON.stringify({ ...r, stacks: HOLE }).replace(HOLE_JSON, () => `{${stacks.join(',')}}`);
  });
  const doc = JSON.stringify({ format, profile, invalidateModes, runs: HOLE, scenarios, qualityDefs, qualities, sensitivity });
  return `${doc.replace(HOLE_JSON, () => `[${runJson.join(',')}]`)}\n`;
}
