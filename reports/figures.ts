/**
 * The per-stack figures of a scenario, as the runner recorded them: sums come from the stack's
 * `totals`; depth-like metrics are the largest value any step recorded (a sum of depths means
 * nothing); latency by layer adds up the steps' recorded per-layer latencies.
 */
import type { ProvenanceKind } from '../sim/index.ts';
import type { RunResult, StackName, StepNumbers, StepResult } from '../scenarios/results.ts';
import { STACKS } from '../scenarios/results.ts';

export type MetricUnit = 'count' | 'bytes' | 'ns' | 'depth';

export interface MetricDef {
  key: keyof StepNumbers;
  label: string;
  unit: MetricUnit;
  /** how a scenario's figure is taken from its steps */
  from: 'totals' | 'max over steps';
  /** true when the figure moves with the cost profile */
  priced: boolean;
}

/** The side-by-side table's rows, in order. */
export const TABLE_METRICS: readonly MetricDef[] = [
  { key: 'syscalls', label: 'syscalls', unit: 'count', from: 'totals', priced: false },
  { key: 'ioctls', label: 'ioctls', unit: 'count', from: 'totals', priced: false },
  { key: 'copiesFromUser', label: 'copies from user', unit: 'count', from: 'totals', priced: false },
  { key: 'bytesFromUser', label: 'bytes from user', unit: 'bytes', from: 'totals', priced: false },
  { key: 'copiesToUser', label: 'copies to user', unit: 'count', from: 'totals', priced: false },
  { key: 'bytesToUser', label: 'bytes to user', unit: 'bytes', from: 'totals', priced: false },
  { key: 'latencyNs', label: 'latency', unit: 'ns', from: 'totals', priced: true },
  { key: 'contentionNs', label: 'of which contention', unit: 'ns', from: 'totals', priced: true },
  { key: 'userPtrDepth', label: 'userPtrDepth', unit: 'depth', from: 'max over steps', priced: false },
  { key: 'typeErasureHops', label: 'typeErasureHops', unit: 'depth', from: 'max over steps', priced: false },
  { key: 'vmExits', label: 'VM exits to VMM', unit: 'count', from: 'totals', priced: false },
  { key: 'frames', label: 'frames', unit: 'count', from: 'totals', priced: false },
  { key: 'maxDepth', label: 'deepest frame', unit: 'depth', from: 'max over steps', priced: false },
];

export interface StackFigures {
  stack: StackName;
  ok: boolean;
  error?: string;
  steps: number;
  failedSteps: number;
  values: Record<string, number>;
  /** recorded per-layer latency summed over steps, plus a `contention` entry */
  latencyByLayer: Record<string, number>;
  /** the strongest provenance among the steps: projection > posted > merged/hardware */
  provenance: ProvenanceKind;
  hwDigest: string;
  leaks: Record<string, number>;
}

const PROV_RANK: Record<ProvenanceKind, number> = { hardware: 0, merged: 0, posted: 1, projection: 2 };

export function strongestProvenance(steps: readonly StepResult[]): ProvenanceKind {
  let p: ProvenanceKind = 'merged';
  for (const s of steps) if (PROV_RANK[s.provenance] > PROV_RANK[p]) p = s.provenance;
  return p;
}

export function metricValue(run: RunResult, stack: StackName, m: MetricDef): number | null {
  const sr = run.stacks[stack];
  if (!sr) return null;
  if (m.from === 'totals') return sr.totals[m.key];
  return sr.steps.reduce((mx, s) => Math.max(mx, s[m.key]), sr.steps.length ? -Infinity : -1);
}

export function stackFigures(run: RunResult, stack: StackName): StackFigures | null {
  const sr = run.stacks[stack];
  if (!sr) return null;
  const values: Record<string, number> = {};
  for (const m of TABLE_METRICS) values[m.key] = metricValue(run, stack, m)!;
  const latencyByLayer: Record<string, number> = {};
  for (const s of sr.steps) {
    for (const [layer, ns] of Object.entries(s.latencyByLayer)) latencyByLayer[layer] = (latencyByLayer[layer] ?? 0) + ns;
  }
  if (sr.totals.contentionNs > 0) latencyByLayer['contention'] = sr.totals.contentionNs;
  return {
    stack,
    ok: sr.ok,
    ...(sr.error !== undefined ? { error: sr.error } : {}),
    steps: sr.steps.length,
    failedSteps: sr.steps.filter((s) => !s.ok).length,
    values,
    latencyByLayer,
    provenance: strongestProvenance(sr.steps),
    hwDigest: sr.hwDigest,
    leaks: sr.leaks,
  };
}

export function allStackFigures(run: RunResult): Partial<Record<StackName, StackFigures>> {
  const out: Partial<Record<StackName, StackFigures>> = {};
  for (const s of STACKS) {
    const f = stackFigures(run, s);
    if (f) out[s] = f;
  }
  return out;
}
