/** One-line summaries shared by the renderers: a scenario's latency verdict and its robustness. */
import type { ScenarioReport } from './model.ts';
import { fmtNum, fmtPercent } from './format.ts';
import type { QualityFigure } from './qualities.ts';
import type { SensitivityResult } from './sensitivity.ts';

export function latencyCell(s: ScenarioReport): string {
  const v = s.verdicts.find((x) => x.metric === 'latencyNs');
  if (!v || v.lower === null) return 'not compared';
  if (v.lower === 'equal') return 'equal';
  return `${v.lower} -${v.relative === null ? '' : fmtPercent(v.relative)}`;
}

/** the short form: "holds", "flips: syscall.ns" */
export function robustnessWord(r: SensitivityResult | null): string {
  if (!r) return 'not compared';
  if (r.lowerAtDefault === 'equal') return 'equal at defaults';
  if (r.holds) return 'holds';
  if (r.flips[0]) return `flips: ${r.flips[0].parameter}`;
  return r.jointFlip ? 'flips: parameters jointly' : 'flips: re-simulated end';
}

export function robustnessCell(r: SensitivityResult | null): string {
  if (!r) return 'not compared';
  if (r.lowerAtDefault === 'equal') return 'equal at defaults';
  if (r.holds) return 'holds over all ranges';
  const f = r.flips[0];
  if (f) return `flips: ${f.parameter} ${f.threshold > f.default ? '>' : '<'} ${fmtNum(f.threshold, f.unit === 'ns/B' ? 4 : 2)}`;
  if (r.jointFlip) return 'flips only jointly';
  return 'flips at re-simulated end';
}

/** How often each parameter flips a verdict (all steps and per operation), most first. */
export function flipCounts(results: readonly SensitivityResult[]): { parameter: string; flips: number }[] {
  const m = new Map<string, number>();
  for (const r of results) for (const f of r.flips) m.set(f.parameter, (m.get(f.parameter) ?? 0) + 1);
  return [...m].map(([parameter, flips]) => ({ parameter, flips })).sort((a, b) => b.flips - a.flips || a.parameter.localeCompare(b.parameter));
}

export function qualityCell(f: QualityFigure, n: number | null): string {
  if (n === null) return '-';
  return f.quality === 'userPtrDepth' && n < 0 ? 'none' : fmtNum(n, 2);
}

export function qualityLower(f: QualityFigure): string {
  if (f.tunnel === null || f.iommufd === null) return 'n/a';
  return f.tunnel === f.iommufd ? 'equal' : f.tunnel < f.iommufd ? 'tunnel' : 'iommufd';
}
