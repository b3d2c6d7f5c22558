/**
 * The design qualities argued in the 2021 thread (requirements-and-peers.md §(c)), as numbers with
 * what produces them. Each figure is read from the recorded steps; the verdict is whatever the
 * numbers say.
 */
import type { RunResult, StackName, StepResult } from '../scenarios/results.ts';
import { STACKS, stepTrace } from '../scenarios/results.ts';
import { deepestUaccess, mostErasedChain } from './spans.ts';
import { stepsOf, type ScenarioRuns } from './runs.ts';

export type QualityId = 'userPtrDepth' | 'typeErasureHops' | 'handlerDuplication' | 'validations' | 'pinsPerPage' | 'qiWaitsPerGuestFlush';

export interface QualityDef {
  id: QualityId;
  question: string;
  /** the thread's arguments this figure speaks to, with their keys in requirements-and-peers.md */
  arguments: string;
  definition: string;
}

export const QUALITY_DEFS: readonly QualityDef[] = [
  {
    id: 'userPtrDepth',
    question: 'How deep below the syscall does a __user pointer travel?',
    arguments: 'JG-a ("passing a __user pointer deep into an iommu_* API"); JP-a (the IOMMU UAPI layer types and sanitises user data)',
    definition: 'deepest frame (syscall frame = 0) that calls a uaccess routine; the largest over the steps',
  },
  {
    id: 'typeErasureHops',
    question: 'Is the type set at the ioctl?',
    arguments: 'JG-a ("The type should be set at the ioctl"); UAPI-DOC (argsz-first structs checked by the IOMMU layer)',
    definition: 'frames below the ioctl entry carrying the uAPI data as unsigned long, void * or void __user *, most on one chain; the largest over the steps',
  },
  {
    id: 'handlerDuplication',
    question: 'How many subsystems implement an ioctl entry for each IOMMU operation?',
    arguments: 'JG-b ("every subsystem ... also implement tunneled ops"); JP-b (one IOMMU layer serves VFIO and VDPA)',
    definition: 'per operation, the subsystems (layers) whose ioctl handlers implement it, over every scenario',
  },
  {
    id: 'validations',
    question: 'How many places validate each uAPI struct?',
    arguments: 'JP-a and UAPI-DOC (the IOMMU UAPI layer sanitises user data); JG-a (types at the ioctl)',
    definition: 'per struct, the distinct places that emitted a validate event, over every scenario',
  },
  {
    id: 'pinsPerPage',
    question: 'With several devices, how many times is a guest page pinned?',
    arguments: 'JG-2 (single pin and pre-registration "a smart direction"); V8-00 (one group per nesting container)',
    definition: 'pinPage primitives of the scenario / those of its first assign step; scenarios with two or more assign steps',
  },
  {
    id: 'qiWaitsPerGuestFlush',
    question: 'How many invalidation-queue waits does one guest flush cost on the host?',
    arguments: 'JG-2 (invalidation should take an IOVA range); DESIGN (qemu: one entry per ioctl, batched: as the guest batched)',
    definition: 'the qiWaits counter of the guest-unmap steps / the number of guest-unmap steps',
  },
];

export interface QualityFigure {
  quality: QualityId;
  /** a scenario key, or `suite` */
  scope: string;
  /** the operation or struct, for per-operation and per-struct qualities */
  subject?: string;
  tunnel: number | null;
  iommufd: number | null;
  /** what produced the figure on each stack: frames, layers or steps */
  evidence: Record<StackName, string[]>;
  /** true when a figure depends on a step whose provenance is a projection */
  projection: boolean;
}

const stepName = (s: StepResult): string => `step ${s.path} (${s.op})`;

/** a stack whose run failed measured different work: its qualities are not shown */
const okOn = (run: RunResult, stack: StackName): boolean => run.stacks[stack]?.ok === true;

function maxStep(steps: readonly StepResult[], key: 'userPtrDepth' | 'typeErasureHops'): StepResult | undefined {
  let best: StepResult | undefined;
  for (const s of steps) if (!best || s[key] > best[key]) best = s;
  return best;
}

function depthEvidence(s: StepResult | undefined, key: 'userPtrDepth' | 'typeErasureHops'): string[] {
  if (!s) return [];
  const trace = stepTrace(s);
  if (!trace) return [`${stepName(s)}; no call tree kept`];
  if (key === 'userPtrDepth') {
    const c = deepestUaccess(trace);
    if (!c) return [`${stepName(s)}; no uaccess span in its tree (get_user/put_user have none)`];
    const note = c.depth === s.userPtrDepth ? '' : ` (tree shows depth ${c.depth}; get_user/put_user have no span)`;
    return [`${stepName(s)}${note}: ${c.frames.join(' > ')}`];
  }
  const chain = mostErasedChain(trace);
  return [`${stepName(s)}: ${chain.map((f) => `${f.name}(${f.param}: ${f.ctype})`).join(' > ') || 'none'}`];
}

function depthQuality(g: ScenarioRuns, key: 'userPtrDepth' | 'typeErasureHops'): QualityFigure {
  const evidence = {} as Record<StackName, string[]>;
  const value = {} as Record<StackName, number | null>;
  let projection = false;
  for (const stack of STACKS) {
    const s = maxStep(stepsOf(g.run, stack), key);
    value[stack] = okOn(g.run, stack) ? (s?.[key] ?? -1) : null;
    evidence[stack] = depthEvidence(s, key);
    if (s?.provenance === 'projection') projection = true;
  }
  return { quality: key, scope: g.key, tunnel: value.tunnel, iommufd: value.iommufd, evidence, projection };
}

function pinCount(s: StepResult): { total: number; byLayer: string[] } {
  let total = 0;
  const byLayer: string[] = [];
  for (const [layer, kinds] of Object.entries(s.primitives)) {
    const n = kinds.pinPage?.count ?? 0;
    if (n > 0) byLayer.push(`${n} in ${layer}`);
    total += n;
  }
  return { total, byLayer };
}

function pinsPerPage(g: ScenarioRuns): QualityFigure | null {
  const assigns = stepsOf(g.run, 'tunnel').filter((s) => s.op === 'assign');
  if (assigns.length < 2) return null;
  const evidence = {} as Record<StackName, string[]>;
  const value = {} as Record<StackName, number | null>;
  let projection = false;
  for (const stack of STACKS) {
    const steps = stepsOf(g.run, stack);
    const first = steps.find((s) => s.op === 'assign');
    const perPage = first ? pinCount(first).total : 0;
    const total = steps.reduce((t, s) => t + pinCount(s).total, 0);
    value[stack] = okOn(g.run, stack) && perPage > 0 ? total / perPage : null;
    evidence[stack] = steps.filter((s) => pinCount(s).total > 0).map((s) => `${stepName(s)}: ${pinCount(s).byLayer.join(', ')}`);
    if (steps.some((s) => s.provenance === 'projection' && pinCount(s).total > 0)) projection = true;
  }
  return { quality: 'pinsPerPage', scope: g.key, tunnel: value.tunnel, iommufd: value.iommufd, evidence, projection };
}

function qiWaitsPerFlush(g: ScenarioRuns): QualityFigure | null {
  if (!stepsOf(g.run, 'tunnel').some((s) => s.op === 'guest-unmap')) return null;
  const evidence = {} as Record<StackName, string[]>;
  const value = {} as Record<StackName, number | null>;
  let projection = false;
  for (const stack of STACKS) {
    const flushes = stepsOf(g.run, stack).filter((s) => s.op === 'guest-unmap');
    const waits = flushes.map((s) => s.counters['qiWaits'] ?? 0);
    value[stack] = okOn(g.run, stack) && flushes.length ? waits.reduce((a, b) => a + b, 0) / flushes.length : null;
    evidence[stack] = flushes.map((s, i) => `${stepName(s)}: qiWaits ${waits[i]}`);
    if (flushes.some((s) => s.provenance === 'projection')) projection = true;
  }
  return { quality: 'qiWaitsPerGuestFlush', scope: g.key, tunnel: value.tunnel, iommufd: value.iommufd, evidence, projection };
}

/** per subject, per stack: the union of the named places over every step of every run */
function unionOver(
  runs: readonly RunResult[],
  pick: (s: StepResult) => Record<string, string[]>,
): Map<string, Record<StackName, Set<string>> & { projection: boolean }> {
  const out = new Map<string, Record<StackName, Set<string>> & { projection: boolean }>();
  for (const run of runs) {
    for (const stack of STACKS) {
      if (!okOn(run, stack)) continue;
      for (const s of stepsOf(run, stack)) {
        for (const [subject, places] of Object.entries(pick(s))) {
          let e = out.get(subject);
          if (!e) out.set(subject, (e = { tunnel: new Set(), iommufd: new Set(), projection: false }));
          for (const p of places) e[stack].add(p);
          if (places.length && s.provenance === 'projection') e.projection = true;
        }
      }
    }
  }
  return out;
}

function suiteQuality(runs: readonly RunResult[], quality: 'handlerDuplication' | 'validations'): QualityFigure[] {
  const u = unionOver(runs, (s) => (quality === 'handlerDuplication' ? s.handlers : s.validations));
  const ran = (stack: StackName): boolean => runs.some((r) => okOn(r, stack));
  return [...u.keys()].sort().map((subject) => {
    const e = u.get(subject)!;
    return {
      quality,
      scope: 'suite',
      subject,
      tunnel: ran('tunnel') ? e.tunnel.size : null,
      iommufd: ran('iommufd') ? e.iommufd.size : null,
      evidence: { tunnel: [...e.tunnel].sort(), iommufd: [...e.iommufd].sort() },
      projection: e.projection,
    };
  });
}

export function designQualities(groups: readonly ScenarioRuns[]): QualityFigure[] {
  const out: QualityFigure[] = [];
  for (const g of groups) {
    out.push(depthQuality(g, 'userPtrDepth'), depthQuality(g, 'typeErasureHops'));
    const pins = pinsPerPage(g);
    if (pins) out.push(pins);
    const qi = qiWaitsPerFlush(g);
    if (qi) out.push(qi);
  }
  const runs = groups.map((g) => g.run);
  out.push(...suiteQuality(runs, 'handlerDuplication'), ...suiteQuality(runs, 'validations'));
  return out;
}
