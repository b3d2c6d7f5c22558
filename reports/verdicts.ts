/**
 * A verdict compares one metric of one scenario between the two stacks: which is lower, by how
 * much. It is computed from the recorded numbers and worded neutrally ("lower", never "better").
 */
import type { StackName } from '../scenarios/results.ts';
import type { MetricDef, MetricUnit } from './figures.ts';
import { fmtPercent, fmtValue } from './format.ts';

export interface Verdict {
  metric: string;
  label: string;
  unit: MetricUnit;
  tunnel: number | null;
  iommufd: number | null;
  /** null when a stack did not run */
  lower: StackName | 'equal' | null;
  /** |tunnel − iommufd| */
  difference: number;
  /** difference / the higher figure; null when the higher figure is 0 */
  relative: number | null;
  /** true when the figure moves with the cost profile (see the sensitivity analysis) */
  priced: boolean;
}

export function compareFigures(
  metric: string,
  label: string,
  unit: MetricUnit,
  tunnel: number | null,
  iommufd: number | null,
  priced = false,
): Verdict {
  const base = { metric, label, unit, tunnel, iommufd, priced };
  if (tunnel === null || iommufd === null) return { ...base, lower: null, difference: 0, relative: null };
  const difference = Math.abs(tunnel - iommufd);
  const higher = Math.max(tunnel, iommufd);
  const lower: Verdict['lower'] = tunnel === iommufd ? 'equal' : tunnel < iommufd ? 'tunnel' : 'iommufd';
  return { ...base, lower, difference, relative: higher > 0 ? difference / higher : null };
}

export function compareMetric(m: MetricDef, tunnel: number | null, iommufd: number | null): Verdict {
  return compareFigures(m.key, m.label, m.unit, tunnel, iommufd, m.priced);
}

/** short form for a table cell: "iommufd -25%", "equal" */
export function verdictCell(v: Verdict): string {
  if (v.lower === null) return 'n/a';
  if (v.lower === 'equal') return 'equal';
  return v.relative === null ? `${v.lower} lower` : `${v.lower} -${fmtPercent(v.relative)}`;
}

/** "ioctls: iommufd is lower, 9 vs 12 (3 fewer, 25.0%)." */
export function verdictSentence(v: Verdict): string {
  const t = fmtValue(v.tunnel, v.unit);
  const i = fmtValue(v.iommufd, v.unit);
  if (v.lower === null) return `${v.label}: not compared (tunnel ${t}, iommufd ${i}).`;
  if (v.lower === 'equal') return `${v.label}: equal on both stacks (${t}).`;
  const [lo, hi] = v.lower === 'tunnel' ? [t, i] : [i, t];
  if (v.unit === 'depth') {
    // −1 means "no uaccess": a difference to it is not a distance
    const none = Math.min(v.tunnel!, v.iommufd!) < 0;
    return `${v.label}: ${v.lower} is lower, ${lo} vs ${hi}${none ? '' : ` (by ${v.difference})`}.`;
  }
  const rel = v.relative === null ? '' : `, ${fmtPercent(v.relative)}`;
  return `${v.label}: ${v.lower} is lower, ${lo} vs ${hi} (by ${fmtValue(v.difference, v.unit)}${rel}).`;
}
