/**
 * Where a latency verdict would flip. Latency is linear in every price, so with
 * Δ(p) = L_tunnel(p) − L_iommufd(p) = Σ_j ΔU_j·p_j + Δcontention:
 *  - one parameter j moved alone crosses zero at p_j* = p_j − Δ(default)/ΔU_j, a flip when it lies
 *    strictly inside [low, high];
 *  - over the whole box of ranges, Δ's extremes are Σ_j min/max(ΔU_j·low_j, ΔU_j·high_j), exactly;
 *  - a seeded sample of whole profiles inside the box says how much of the box each stack wins.
 * Contention is not a price: it is held at its recorded figure when re-pricing, and contended
 * scenarios take their low/high figures from the runner's re-simulated runs when present.
 */
import { Rng, type CostTable } from '../sim/index.ts';
import type { StackName } from '../scenarios/results.ts';
import type { LatencyComparison } from './comparisons.ts';
import { sweepParameters, unitOf, type SweepParameter } from './parameters.ts';
import { USAGE_LENGTH, priceUsage, type FlatPrices } from './price.ts';

export type Lower = StackName | 'equal';

export interface Flip {
  parameter: string;
  unit: string;
  /** the price at which both stacks take equally long, the other parameters at default */
  threshold: number;
  low: number;
  default: number;
  high: number;
  lowerBelow: StackName;
  lowerAbove: StackName;
}

export interface WholeProfilePoint {
  tunnelNs: number;
  iommufdNs: number;
  lower: Lower;
  /** true when the figures come from re-simulated runs rather than re-pricing */
  resimulated: boolean;
}

export interface SensitivityResult {
  scenario: string;
  scope: string;
  contended: boolean;
  /** re-priced at the default point, recorded contention added */
  tunnelNs: number;
  iommufdNs: number;
  lowerAtDefault: Lower;
  /** the least and greatest tunnel − iommufd over the whole box of ranges */
  deltaMinNs: number;
  deltaMaxNs: number;
  /** the default verdict holds over the whole box (and at the re-simulated ends, if any) */
  holds: boolean;
  /** single-parameter flips, the others at default */
  flips: Flip[];
  /**
   * when no single parameter flips the verdict but the box does: the ends of the parameters that
   * push towards a flip, strongest first
   */
  jointFlip: { parameters: { parameter: string; at: 'low' | 'high' }[] } | null;
  /** tunnel − iommufd with each parameter at its low and high end (parameters that matter) */
  ends: { parameter: string; deltaAtLowNs: number; deltaAtHighNs: number }[];
  allLow: WholeProfilePoint;
  allHigh: WholeProfilePoint;
  grid: { profiles: number; tunnelLower: number; iommufdLower: number; equal: number };
  /** |re-priced at the default point − recorded|, the larger of the two stacks (~0 when the run used this profile) */
  repricingErrorNs: number;
}

export interface SensitivityOptions {
  /** whole profiles sampled inside the box (default 10,000) */
  samples?: number;
  seed?: number;
}

function tolerance(a: number, b: number): number {
  return 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function lowerOf(tunnelNs: number, iommufdNs: number): Lower {
  const d = tunnelNs - iommufdNs;
  if (Math.abs(d) <= tolerance(tunnelNs, iommufdNs)) return 'equal';
  return d > 0 ? 'iommufd' : 'tunnel';
}

function pointPrices(params: readonly SweepParameter[], at: 'low' | 'default' | 'high'): FlatPrices {
  const f = new Float64Array(USAGE_LENGTH);
  for (const p of params) f[p.index] = p[at];
  return f;
}

/** Whole profiles drawn uniformly inside the box, as flat price vectors laid end to end. */
export function sampleProfiles(params: readonly SweepParameter[], n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const out = new Float64Array(n * USAGE_LENGTH);
  for (let s = 0; s < n; s++) {
    const base = s * USAGE_LENGTH;
    for (const p of params) out[base + p.index] = p.low + (rng.u32() / 0x1_0000_0000) * (p.high - p.low);
  }
  return out;
}

interface Prepared {
  c: LatencyComparison;
  /** ΔU: tunnel usage − iommufd usage */
  du: Float64Array;
  /** indices where ΔU ≠ 0 */
  nz: Int32Array;
  dContention: number;
}

function prepare(c: LatencyComparison): Prepared {
  const du = new Float64Array(USAGE_LENGTH);
  const nz: number[] = [];
  for (let j = 0; j < USAGE_LENGTH; j++) {
    du[j] = c.tunnel.usage[j]! - c.iommufd.usage[j]!;
    if (du[j] !== 0) nz.push(j);
  }
  return { c, du, nz: Int32Array.from(nz), dContention: c.tunnel.contentionNs - c.iommufd.contentionNs };
}

/**
 * Counts, per comparison, which stack is lower under each sampled profile. Comparisons with the
 * same difference vector, contention and tolerance count alike (a run reused under another
 * invalidation option gives exactly that), so each distinct one is counted once.
 */
function gridCounts(ps: readonly Prepared[], profiles: Float64Array, n: number): SensitivityResult['grid'][] {
  const out = ps.map(() => ({ profiles: n, tunnelLower: 0, iommufdLower: 0, equal: 0 }));
  const counted = new Map<string, SensitivityResult['grid']>();
  for (let k = 0; k < ps.length; k++) {
    const { du, nz, dContention, c } = ps[k]!;
    const tol = tolerance(c.tunnel.recordedNs, c.iommufd.recordedNs);
    const key = `${dContention} ${tol} ${Array.from(nz, (j) => `${j}:${du[j]}`).join(' ')}`;
    const same = counted.get(key);
    if (same) {
      out[k] = { ...same };
      continue;
    }
    const g = out[k]!;
    counted.set(key, g);
    for (let s = 0; s < n; s++) {
      const base = s * USAGE_LENGTH;
      let d = dContention;
      for (let q = 0; q < nz.length; q++) d += du[nz[q]!]! * profiles[base + nz[q]!]!;
      if (d > tol) g.iommufdLower++;
      else if (d < -tol) g.tunnelLower++;
      else g.equal++;
    }
  }
  return out;
}

function singleParameterFlips(p: Prepared, params: readonly SweepParameter[], delta0: number): Flip[] {
  const flips: Flip[] = [];
  for (const q of params) {
    const du = p.du[q.index]!;
    if (du === 0 || q.low === q.high) continue;
    const threshold = q.default - delta0 / du;
    if (!(threshold > q.low && threshold < q.high)) continue;
    // above the threshold Δ has the sign of ΔU: a positive Δ means iommufd is lower
    const lowerAbove: StackName = du > 0 ? 'iommufd' : 'tunnel';
    flips.push({
      parameter: q.id,
      unit: unitOf(q),
      threshold,
      low: q.low,
      default: q.default,
      high: q.high,
      lowerBelow: lowerAbove === 'iommufd' ? 'tunnel' : 'iommufd',
      lowerAbove,
    });
  }
  // the flip nearest its default first: the least movement that changes the verdict
  return flips.sort((a, b) => Math.abs(a.threshold - a.default) / (a.high - a.low) - Math.abs(b.threshold - b.default) / (b.high - b.low));
}

function wholeProfile(p: Prepared, prices: FlatPrices, point: 'low' | 'high'): WholeProfilePoint {
  const r = p.c.resimulated[point];
  if (p.c.contended && r) return { tunnelNs: r.tunnel, iommufdNs: r.iommufd, lower: lowerOf(r.tunnel, r.iommufd), resimulated: true };
  const t = priceUsage(p.c.tunnel.usage, prices) + p.c.tunnel.contentionNs;
  const i = priceUsage(p.c.iommufd.usage, prices) + p.c.iommufd.contentionNs;
  return { tunnelNs: t, iommufdNs: i, lower: lowerOf(t, i), resimulated: false };
}

function analyseOne(p: Prepared, params: readonly SweepParameter[], grid: SensitivityResult['grid']): SensitivityResult {
  const def = pointPrices(params, 'default');
  const tunnelNs = priceUsage(p.c.tunnel.usage, def) + p.c.tunnel.contentionNs;
  const iommufdNs = priceUsage(p.c.iommufd.usage, def) + p.c.iommufd.contentionNs;
  const delta0 = tunnelNs - iommufdNs;
  const lowerAtDefault = lowerOf(tunnelNs, iommufdNs);
  let deltaMinNs = p.dContention;
  let deltaMaxNs = p.dContention;
  const ends: SensitivityResult['ends'] = [];
  const pushes: { parameter: string; at: 'low' | 'high'; by: number }[] = [];
  for (const q of params) {
    const du = p.du[q.index]!;
    if (du === 0) continue;
    const a = du * q.low;
    const b = du * q.high;
    deltaMinNs += Math.min(a, b);
    deltaMaxNs += Math.max(a, b);
    const atLow = delta0 + du * (q.low - q.default);
    const atHigh = delta0 + du * (q.high - q.default);
    ends.push({ parameter: q.id, deltaAtLowNs: atLow, deltaAtHighNs: atHigh });
    // how far this parameter's end moves Δ towards zero
    const towards = delta0 > 0 ? Math.min(atLow, atHigh) - delta0 : Math.max(atLow, atHigh) - delta0;
    const at: 'low' | 'high' = (delta0 > 0 ? atLow < atHigh : atLow > atHigh) ? 'low' : 'high';
    if (towards !== 0) pushes.push({ parameter: q.id, at, by: Math.abs(towards) });
  }
  const allLow = wholeProfile(p, pointPrices(params, 'low'), 'low');
  const allHigh = wholeProfile(p, pointPrices(params, 'high'), 'high');
  const tol = tolerance(tunnelNs, iommufdNs);
  const boxHolds = lowerAtDefault === 'equal' ? deltaMaxNs - deltaMinNs <= tol : delta0 > 0 ? deltaMinNs > tol : deltaMaxNs < -tol;
  const resimHolds = [allLow, allHigh].every((w) => !w.resimulated || w.lower === lowerAtDefault);
  const flips = lowerAtDefault === 'equal' ? [] : singleParameterFlips(p, params, delta0);
  const jointFlip =
    !boxHolds && flips.length === 0 && lowerAtDefault !== 'equal'
      ? { parameters: pushes.sort((x, y) => y.by - x.by).map(({ parameter, at }) => ({ parameter, at })) }
      : null;
  return {
    scenario: p.c.scenario,
    scope: p.c.scope,
    contended: p.c.contended,
    tunnelNs,
    iommufdNs,
    lowerAtDefault,
    deltaMinNs,
    deltaMaxNs,
    holds: boxHolds && resimHolds,
    flips,
    jointFlip,
    ends,
    allLow,
    allHigh,
    grid,
    repricingErrorNs: Math.max(Math.abs(tunnelNs - p.c.tunnel.recordedNs), Math.abs(iommufdNs - p.c.iommufd.recordedNs)),
  };
}

/** Re-prices every comparison over the cost table's ranges. */
export function analyseSensitivity(
  comparisons: readonly LatencyComparison[],
  table: CostTable,
  opts: SensitivityOptions = {},
): SensitivityResult[] {
  const params = sweepParameters(table);
  const n = opts.samples ?? 10_000;
  const prepared = comparisons.map(prepare);
  const profiles = sampleProfiles(params, n, opts.seed ?? 1);
  const grids = gridCounts(prepared, profiles, n);
  return prepared.map((p, k) => analyseOne(p, params, grids[k]!));
}
