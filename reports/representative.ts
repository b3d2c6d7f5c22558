/**
 * The one step whose call graphs a report shows side by side: among the steps both stacks ran
 * with a call tree kept, the one whose recorded latencies differ most (ties: the first).
 */
import type { SpanJson } from '../sim/index.ts';
import { hasTrace, stepTrace, type RunResult, type StepResult } from '../scenarios/results.ts';
import { stepsOf } from './runs.ts';

export interface RepresentativeStep {
  path: string;
  op: string;
  reason: string;
  tunnel: SpanJson[];
  iommufd: SpanJson[];
  tunnelNs: number;
  iommufdNs: number;
}

export function representativeStep(run: RunResult): RepresentativeStep | null {
  const byPath = new Map(stepsOf(run, 'iommufd').map((s) => [s.path, s]));
  let best: [StepResult, StepResult] | null = null;
  let bestGap = -1;
  for (const t of stepsOf(run, 'tunnel')) {
    const i = byPath.get(t.path);
    if (!i) continue;
    const gap = Math.abs(t.latencyNs - i.latencyNs);
    if (gap > bestGap && hasTrace(t) && hasTrace(i)) {
      bestGap = gap;
      best = [t, i];
    }
  }
  if (!best) return null;
  const [t, i] = best;
  return {
    path: t.path,
    op: t.op,
    reason: 'the step whose recorded latencies differ most between the stacks',
    tunnel: compactTree(stepTrace(t)!),
    iommufd: compactTree(stepTrace(i)!),
    tunnelNs: t.latencyNs,
    iommufdNs: i.latencyNs,
  };
}

/** siblings kept per call before the rest are summarised (a map of 32,768 pages pins page by page) */
const MAX_SIBLINGS = 12;

/**
 * The call tree with long runs of sibling calls summarised: the first MAX_SIBLINGS stay, the rest
 * become one line naming how many calls (and which functions) it stands for, with their total time.
 */
export function compactTree(spans: readonly SpanJson[]): SpanJson[] {
  const kept = spans.slice(0, MAX_SIBLINGS).map((s) => ({ ...s, children: compactTree(s.children) }));
  const rest = spans.slice(MAX_SIBLINGS);
  if (!rest.length) return kept;
  const names = [...new Set(rest.map((s) => s.name))];
  const first = rest[0]!;
  kept.push({
    name: `… ${rest.length} more calls (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})`,
    layer: first.layer,
    sig: '(summary of elided sibling calls)',
    prov: first.prov,
    ns: rest.reduce((t, s) => t + s.ns, 0),
    children: [],
  });
  return kept;
}
