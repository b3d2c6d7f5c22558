/**
 * The report's content, built once from the runs and shared by the four renderers. Everything in
 * it is either a recorded figure, a selection or sum of recorded figures, or a re-pricing of
 * recorded primitives (the sensitivity analysis).
 */
import { DEFAULT_COSTS, PRIMITIVES, type CostTable, type PrimitiveKind, type ProvenanceKind, type Range } from '../sim/index.ts';
import type { InvalidateOption, RunResult, StackName } from '../scenarios/results.ts';
import { STACKS } from '../scenarios/results.ts';
import { ALL_STEPS, latencyComparisons } from './comparisons.ts';
import { TABLE_METRICS, allStackFigures, metricValue, type StackFigures } from './figures.ts';
import { sweepParameters, type SweepParameter } from './parameters.ts';
import { designQualities, QUALITY_DEFS, type QualityDef, type QualityFigure } from './qualities.ts';
import { representativeStep, type RepresentativeStep } from './representative.ts';
import { groupRuns, scenariosWhereModesDiffer, type ResimulatedPoint } from './runs.ts';
import { analyseSensitivity, type SensitivityResult } from './sensitivity.ts';
import { compareMetric, type Verdict } from './verdicts.ts';

export interface CostProfile {
  name: string;
  table: CostTable;
}

export interface ModelOptions {
  /** the cost table whose ranges the sensitivity analysis sweeps (default: DEFAULT_COSTS) */
  profile?: CostProfile;
  /** whole profiles sampled by the sensitivity grid (default 10,000) */
  samples?: number;
  /** seed of the grid's sampling (default 1) */
  seed?: number;
}

export interface ScenarioReport {
  key: string;
  scenario: string;
  description: string;
  invalidate: InvalidateOption;
  seed: number;
  /** the profile the run was priced at */
  runProfile: string;
  contended: boolean;
  resimulated: ResimulatedPoint[];
  digestsEqual: boolean | null;
  stacks: Partial<Record<StackName, StackFigures>>;
  provenance: Partial<Record<StackName, ProvenanceKind>>;
  verdicts: Verdict[];
  /** the latency of all steps, then per operation */
  latency: SensitivityResult | null;
  operations: SensitivityResult[];
  representative: RepresentativeStep | null;
}

export interface CostRow {
  kind: PrimitiveKind;
  ns: Range;
  perByte?: Range;
  source: string;
  estimate: boolean;
}

export interface ReportModel {
  format: 'ioasid-sim-report/1';
  profile: { name: string; costs: CostRow[] };
  invalidateModes: InvalidateOption[];
  /** with several modes: the scenarios whose runs differ between them (empty: none); else null */
  invalidateModesDiffer: string[] | null;
  scenarios: ScenarioReport[];
  qualityDefs: readonly QualityDef[];
  qualities: QualityFigure[];
  sensitivity: { samples: number; seed: number; parameters: SweepParameter[]; results: SensitivityResult[] };
}

export function costRows(table: CostTable): CostRow[] {
  return PRIMITIVES.map((kind) => {
    const c = table[kind];
    return { kind, ns: c.ns, ...(c.perByte ? { perByte: c.perByte } : {}), source: c.source, estimate: c.estimate };
  });
}

export function buildReportModel(runs: readonly RunResult[], opts: ModelOptions = {}): ReportModel {
  const profile = opts.profile ?? { name: 'default', table: DEFAULT_COSTS };
  const samples = opts.samples ?? 10_000;
  const seed = opts.seed ?? 1;
  const groups = groupRuns(runs);
  const comparisons = groups.flatMap(latencyComparisons);
  const results = analyseSensitivity(comparisons, profile.table, { samples, seed });
  const scenarios = groups.map((g): ScenarioReport => {
    const mine = results.filter((r) => r.scenario === g.key);
    const provenance: ScenarioReport['provenance'] = {};
    const stacks = allStackFigures(g.run);
    for (const s of STACKS) if (stacks[s]) provenance[s] = stacks[s].provenance;
    return {
      key: g.key,
      scenario: g.scenario,
      description: g.description,
      invalidate: g.invalidate,
      seed: g.run.seed,
      runProfile: g.run.profile,
      contended: g.contended,
      resimulated: Object.keys(g.resimulated) as ResimulatedPoint[],
      digestsEqual: g.run.digestsEqual ?? null,
      stacks,
      provenance,
      // a stack that failed has figures, but they do not measure the same work: not compared
      verdicts: TABLE_METRICS.map((m) =>
        compareMetric(m, g.run.stacks.tunnel?.ok ? metricValue(g.run, 'tunnel', m) : null, g.run.stacks.iommufd?.ok ? metricValue(g.run, 'iommufd', m) : null),
      ),
      latency: mine.find((r) => r.scope === ALL_STEPS) ?? null,
      operations: mine.filter((r) => r.scope !== ALL_STEPS),
      representative: representativeStep(g.run),
    };
  });
  return {
    format: 'ioasid-sim-report/1',
    profile: { name: profile.name, costs: costRows(profile.table) },
    invalidateModes: [...new Set(groups.map((g) => g.invalidate))],
    invalidateModesDiffer: scenariosWhereModesDiffer(groups),
    scenarios,
    qualityDefs: QUALITY_DEFS,
    qualities: designQualities(groups),
    sensitivity: { samples, seed, parameters: sweepParameters(profile.table), results },
  };
}

/** The report's sentence on the invalidation modes the runs used, and whether they differed. */
export function invalidateModesSentence(m: Pick<ReportModel, 'invalidateModes' | 'invalidateModesDiffer'>): string {
  const modes = `Invalidation modes: ${m.invalidateModes.join(', ')}`;
  if (m.invalidateModesDiffer === null) return `${modes}.`;
  if (!m.invalidateModesDiffer.length) return `${modes}; they recorded identical figures in every scenario, on both stacks.`;
  return `${modes}; their figures differ in ${m.invalidateModesDiffer.join(', ')}.`;
}
