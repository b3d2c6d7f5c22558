/**
 * The one step whose call graphs a report shows side by side: among the steps both stacks ran
 * with a call tree kept, the one whose recorded latencies differ most (ties: the first).
 */
import type { SpanJson } from '../sim/index.ts';
import type { RunResult } from '../scenarios/results.ts';
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
  let best: RepresentativeStep | null = null;
  let bestGap = -1;
  for (const t of stepsOf(run, 'tunnel')) {
    const i = byPath.get(t.path);
    if (!i || !t.trace?.length || !i.trace?.length) continue;
    const gap = Math.abs(t.latencyNs - i.latencyNs);
    if (gap > bestGap) {
      bestGap = gap;
      best = {
        path: t.path,
        op: t.op,
        reason: 'the step whose recorded latencies differ most between the stacks',
        tunnel: t.trace,
        iommufd: i.trace,
        tunnelNs: t.latencyNs,
        iommufdNs: i.latencyNs,
      };
    }
  }
  return best;
}
