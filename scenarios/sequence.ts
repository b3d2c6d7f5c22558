/**
 * Stack-neutral sequence checks: a step that no guest or VMM could issue at that point is refused
 * with its line (bind before assign, unbind of a PASID not bound, …). The checks run once per stack
 * so that a step expected to fail with an errno on a stack (a negative test) neither is checked
 * nor changes the state there. Each branch of a `parallel` block is checked against the state
 * before the block; after it, the branches' effects apply in branch order.
 */
import { expectsErrno } from './outcomes.ts';
import { PageRanges } from './page-ranges.ts';
import { STACKS, type FlatStep, type LeafStep, type ScenarioIssue, type StackName } from './types.ts';
import { hex, PAGE_SIZE } from './units.ts';

/** where a state change came from, as messages cite it: "step 3.1.1, line 12" */
type Origin = string;

interface Binding {
  /** absent for a misbehaving guest's bind to a raw root */
  readonly process?: string;
  readonly origin: Origin;
  readonly vqGroup?: string;
}

class SequenceState {
  /** absent: never assigned */
  devices = new Map<string, { assigned: boolean; origin: Origin }>();
  bound = new Map<string, Binding>();
  mapped = new Map<string, PageRanges>();
  everMapped = new Set<string>();
  closedAt: Origin | undefined;

  clone(): SequenceState {
    const c = new SequenceState();
    c.devices = new Map(this.devices);
    c.bound = new Map(this.bound);
    c.mapped = new Map([...this.mapped].map(([p, r]) => [p, r.clone()]));
    c.everMapped = new Set(this.everMapped);
    c.closedAt = this.closedAt;
    return c;
  }
}

const key = (device: string, pasid: number): string => `${device}\u0000${pasid}`;
const pagesOf = (va: number, pages: number): [number, number] => [va / PAGE_SIZE, va / PAGE_SIZE + pages];
const span = (va: number, pages: number): string => `${hex(va)}–${hex(va + pages * PAGE_SIZE)}`;

interface Finding {
  readonly severity: 'error' | 'warning';
  readonly message: string;
}

function check(st: SequenceState, s: LeafStep): Finding[] {
  const error = (message: string): Finding[] => [{ severity: 'error', message }];
  if (st.closedAt !== undefined) return error(`nothing runs after the close (${st.closedAt})`);

  if ('device' in s) {
    const d = st.devices.get(s.device);
    if (s.op === 'assign') {
      if (d?.assigned) return error(`${s.device} is already assigned (${d.origin})`);
    } else if (!d) {
      return error(`${s.op} on ${s.device} before it is assigned`);
    }
    if (d && !d.assigned) return error(`${s.op} on ${s.device} after its unassign (${d.origin})`);
  }

  const nothingMapped = (p: string): Finding[] =>
    st.everMapped.has(p) ? [] : [{ severity: 'warning', message: `process ${p} has mapped nothing before this ${s.op} (a typo?)` }];

  switch (s.op) {
    case 'bind': {
      const b = st.bound.get(key(s.device, s.pasid));
      if (b) return error(`PASID ${s.pasid} on ${s.device} is already bound (${b.origin}); rebind or unbind it first`);
      if (s.vqGroup !== undefined) {
        for (const [k, other] of st.bound) {
          if (k.startsWith(`${s.device}\u0000`) && other.vqGroup === s.vqGroup) {
            return error(`vq-group ${s.vqGroup} of ${s.device} is already backed by PASID ${k.split('\u0000')[1]} (${other.origin})`);
          }
        }
      }
      return s.process === undefined ? [] : nothingMapped(s.process);
    }
    case 'rebind':
      if (!st.bound.has(key(s.device, s.pasid))) return error(`rebind of PASID ${s.pasid} on ${s.device}, which is not bound`);
      return nothingMapped(s.process);
    case 'unbind':
      if (!st.bound.has(key(s.device, s.pasid))) return error(`unbind of PASID ${s.pasid} on ${s.device}, which is not bound`);
      return [];
    case 'guest-map':
      if (st.mapped.get(s.process)?.overlaps(...pagesOf(s.va, s.pages))) {
        return error(`${s.process} already maps part of ${span(s.va, s.pages)} (guest-unmap it first)`);
      }
      return [];
    case 'guest-unmap':
      if (!st.mapped.get(s.process)?.covers(...pagesOf(s.va, s.pages))) {
        return error(`guest-unmap of pages ${s.process} has not mapped (${span(s.va, s.pages)})`);
      }
      return [];
    case 'close': {
      if (!s.order) return [];
      const open = ['iommu', ...[...st.devices].filter(([, d]) => d.assigned).map(([n]) => n)];
      const missing = open.filter((fd) => !s.order!.includes(fd));
      const extra = s.order.filter((fd) => !open.includes(fd));
      const problems: string[] = [];
      if (missing.length) problems.push(`the close order leaves ${missing.join(', ')} open`);
      if (extra.length) problems.push(`${extra.join(', ')} ${extra.length === 1 ? 'is' : 'are'} not assigned at this point`);
      return problems.length ? error(`${problems.join('; ')} (list iommu and every assigned device once)`) : [];
    }
    default:
      return [];
  }
}

function apply(st: SequenceState, s: LeafStep, origin: Origin): void {
  switch (s.op) {
    case 'assign':
      st.devices.set(s.device, { assigned: true, origin });
      return;
    case 'unassign':
      st.devices.set(s.device, { assigned: false, origin });
      for (const k of [...st.bound.keys()]) if (k.startsWith(`${s.device}\u0000`)) st.bound.delete(k);
      return;
    case 'guest-map': {
      let r = st.mapped.get(s.process);
      if (!r) st.mapped.set(s.process, (r = new PageRanges()));
      r.add(...pagesOf(s.va, s.pages));
      st.everMapped.add(s.process);
      return;
    }
    case 'guest-unmap':
      st.mapped.get(s.process)?.remove(...pagesOf(s.va, s.pages));
      return;
    case 'bind':
      st.bound.set(key(s.device, s.pasid), {
        origin,
        ...(s.process === undefined ? {} : { process: s.process }),
        ...(s.vqGroup === undefined ? {} : { vqGroup: s.vqGroup }),
      });
      return;
    case 'rebind': {
      const b = st.bound.get(key(s.device, s.pasid));
      if (b) st.bound.set(key(s.device, s.pasid), { ...b, process: s.process });
      return;
    }
    case 'unbind':
      st.bound.delete(key(s.device, s.pasid));
      return;
    case 'close':
      st.closedAt = origin;
      return;
    case 'dma':
      return;
  }
}

interface StackFinding extends Finding {
  readonly step: FlatStep;
}

const originOf = (s: FlatStep): Origin => `step ${s.path}, line ${s.line}`;

function runOnStack(flat: readonly FlatStep[], stack: StackName): StackFinding[] {
  const out: StackFinding[] = [];
  let st = new SequenceState();
  let block: { path: string; before: SequenceState; branch: number; steps: FlatStep[] } | undefined;
  const endBlock = (): void => {
    if (!block) return;
    st = block.before;
    for (const s of block.steps) apply(st, s.step, originOf(s));
    block = undefined;
  };
  for (const s of flat) {
    if (block && s.parallel?.block !== block.path) endBlock();
    if (s.parallel) {
      if (!block) block = { path: s.parallel.block, before: st, branch: 0, steps: [] };
      if (s.parallel.branch !== block.branch) {
        st = block.before.clone();
        block.branch = s.parallel.branch;
      }
    }
    if (expectsErrno(s.expect, stack)) continue;
    for (const f of check(st, s.step)) out.push({ ...f, step: s });
    apply(st, s.step, originOf(s));
    block?.steps.push(s);
  }
  endBlock();
  return out;
}

/** Errors and warnings, each once per source line, with the first step path that hit it. */
export function checkSequence(flat: readonly FlatStep[], file: string): { errors: ScenarioIssue[]; warnings: ScenarioIssue[] } {
  const seen = new Map<string, { f: StackFinding; stacks: StackName[] }>();
  for (const stack of STACKS) {
    for (const f of runOnStack(flat, stack)) {
      // once per source line: later iterations of a repeat add nothing
      const k = `${f.severity}|${f.step.line}`;
      const hit = seen.get(k);
      if (!hit) seen.set(k, { f, stacks: [stack] });
      else if (hit.f.message === f.message && !hit.stacks.includes(stack)) hit.stacks.push(stack);
    }
  }
  const errors: ScenarioIssue[] = [];
  const warnings: ScenarioIssue[] = [];
  const hits = [...seen.values()].sort((a, b) => flat.indexOf(a.f.step) - flat.indexOf(b.f.step));
  for (const { f, stacks } of hits) {
    const only = stacks.length < STACKS.length ? ` (on ${stacks.join(', ')} only)` : '';
    const issue = { file, line: f.step.line, path: `step ${f.step.path}`, message: f.message + only };
    (f.severity === 'error' ? errors : warnings).push(issue);
  }
  return { errors, warnings };
}
