import { createHash } from 'node:crypto';
import { DEFAULT_COSTS, Rng, pricesAt, type PriceVector, type StepRecording } from '../sim/index.ts';
import { computeDigest } from '../models/hw/vtd/digest.ts';
import { errname } from '../models/kernel/errno.ts';
import type { Task } from '../models/kernel/process.ts';
import { HostMachine } from '../models/machine/host.ts';
import type { IntentResult } from '../models/vmm/backend.ts';
import { createVm, type Vm } from '../models/vmm/vm.ts';
import type { GuestProcess } from '../models/guest/mm.ts';
import { NO_PASID } from '../models/hw/pcie/device.ts';
import { bindRawRoot, unbindRawRoot } from './guest-misbehaviour.ts';
import { mergeRecording, stepResult, totalsOf } from './collect.ts';
import { segments } from './expand.ts';
import type { BootedDevice, StackPlatform } from './platform.ts';
import { STACKS, type InvalidateOption, type RunResult, type StackName, type StackResult, type StepResult } from './results.ts';
import type { FlatStep, LeafStep, LoadedScenario, Outcome } from './types.ts';

/**
 * Runs a loaded scenario on each stack: boots the shared platform, lets the design's modules
 * register their char devices, builds the VM (guest RAM in the VMM, the guest, the vIOMMU front end
 * and the design's backend), executes the steps, checks every expectation, and records the
 * metrics, the leaks and the hardware digest.
 */
export interface RunOptions {
  stacks?: readonly StackName[];
  seed?: number;
  invalidate?: InvalidateOption;
  /** keep each step's call tree in the results (trace) */
  keepTrace?: boolean;
  /** prices for latency (default: the default profile) */
  prices?: PriceVector;
  /** prices that advance the clocks: contention is re-simulated, not re-priced (default: `prices`) */
  clockPrices?: PriceVector;
  /** the designs, by stack (the built-in ones unless a test supplies others) */
  platforms: Partial<Record<StackName, StackPlatform>>;
}

/** the implicit last step of every run: the VMM process exits, closing what is still open */
const EXIT_STEP: FlatStep = {
  path: 'exit',
  line: 0,
  vcpu: 0,
  step: { op: 'close', from: 'vmm' },
  expect: { tunnel: { kind: 'ok' }, iommufd: { kind: 'ok' } },
};

/** the guest's frame placement is fixed, independent of the run's seed */
const GUEST_LAYOUT_SEED = 0x9e57;

/** how many times a DMA waiting on page requests lets the guest answer before it gives up */
const MAX_IOPF_ROUNDS = 16;

export function runScenario(sc: LoadedScenario, opts: RunOptions): RunResult {
  const stacks = opts.stacks ?? STACKS;
  const prices = opts.prices ?? pricesAt(DEFAULT_COSTS, 'default');
  const results: Partial<Record<StackName, StackResult>> = {};
  for (const stack of stacks) results[stack] = runStack(sc, stack, opts);
  return assembleRun(sc, { seed: opts.seed ?? 1, invalidate: opts.invalidate ?? 'qemu', profile: prices.name }, results);
}

/** One stack's run of a scenario (what `runScenario` does per stack). */
export function runStack(sc: LoadedScenario, stack: StackName, opts: RunOptions): StackResult {
  const plat = opts.platforms[stack];
  if (!plat) return failedStack(`no platform is registered for stack ${stack}`);
  const prices = opts.prices ?? pricesAt(DEFAULT_COSTS, 'default');
  return runOnStack(sc, plat, {
    seed: opts.seed ?? 1,
    invalidate: opts.invalidate ?? 'qemu',
    prices,
    clockPrices: opts.clockPrices ?? prices,
    keepTrace: opts.keepTrace ?? false,
  });
}

/** The run of a scenario from its stacks' results, in stack order, with the hardware oracle's verdict. */
export function assembleRun(
  sc: LoadedScenario,
  meta: { seed: number; invalidate: InvalidateOption; profile: string },
  results: Partial<Record<StackName, StackResult>>,
): RunResult {
  const result: RunResult = { scenario: sc.name, description: sc.description, seed: meta.seed, invalidate: meta.invalidate, profile: meta.profile, stacks: {} };
  for (const stack of STACKS) if (results[stack]) result.stacks[stack] = results[stack];
  const a = result.stacks.tunnel;
  const b = result.stacks.iommufd;
  if (a && b && a.hwDigest && b.hwDigest) {
    result.digestsEqual = a.hwDigest === b.hwDigest;
    // the hardware may end differently only where the scenario states a per-stack difference
    result.digestDifferenceStated = sc.flat.some((fs) => describe(fs.expect.tunnel) !== describe(fs.expect.iommufd));
  }
  return result;
}

function failedStack(error: string): StackResult {
  return { ok: false, error, steps: [], totals: totalsOf([]), hwDigest: '', hostLayout: '', leaks: {} };
}

interface StackRun {
  readonly m: HostMachine;
  readonly vm: Vm;
  readonly plat: StackPlatform;
  readonly stack: StackName;
  readonly vmm: Task;
  readonly vcpus: Task[];
  readonly devices: Map<string, BootedDevice>;
  readonly procs: Map<string, GuestProcess>;
  /**
   * false (`vm: { viommu: false }`, flow 1): the backends assign with a plain stage 2 (options
   * `nesting: false`: A VFIO_TYPE1v2_IOMMU, B the IOAS's automatic HWPT), and assign, unassign and
   * close go to the backend directly: there is no vIOMMU whose PASID entries the VMM would replay
   */
  readonly viommu: boolean;
  readonly opts: { seed: number; invalidate: InvalidateOption; prices: PriceVector; clockPrices: PriceVector; keepTrace: boolean };
  other: Task | null;
}

function runOnStack(sc: LoadedScenario, plat: StackPlatform, opts: StackRun['opts']): StackResult {
  const m = new HostMachine({ seed: opts.seed, trace: true, clockPrices: opts.clockPrices, frames: hostFramesFor(sc.vm.memoryBytes) });
  // devices on bus 0 from slot 3, each in its own IOMMU group unless the scenario groups them
  const booted: BootedDevice[] = sc.devices.map((d, i) => {
    const rid = (3 + i) << 3;
    const groupId = d.group !== undefined ? 1000 + d.group : rid;
    const host = m.addPciDevice(d.name, rid, { pasidBits: d.pasidBits, ats: d.ats, pri: d.pri }, groupId);
    return { scenario: d, host, groupId };
  });
  plat.init(m, booted, sc);
  const vmm = m.k.createProcess('qemu');
  const vcpus = Array.from({ length: Math.max(1, sc.vm.vcpus) }, (_, i) => m.k.addTask(vmm.process, `vcpu${i}`));
  const viommu = sc.vm.viommu !== false;
  const vm = createVm({
    sim: m.sim,
    hostMem: m.mem,
    sys: m.sys,
    task: vmm,
    ramBytes: sc.vm.memoryBytes,
    devices: booted.map((b, i) => ({
      spec: plat.spec(m, b),
      guestSid: (3 + i) << 3,
      pasidBits: b.scenario.pasidBits,
      ats: b.scenario.ats,
      pri: b.scenario.pri,
    })),
    backend: plat.backend,
    options: { invalidation: opts.invalidate, ...(viommu ? {} : { nesting: false }) },
    // the guest's own layout (which GPAs hold its tables and data) is part of what a scenario means:
    // both stacks and every seed see the same guest; the seed moves the host's placement only
    guest: { rng: new Rng(GUEST_LAYOUT_SEED).fork('guest-frames') },
    // vm pasid-bits: the width the guest-visible vIOMMU advertises (ECAP.PSS = bits − 1)
    ...(sc.vm.pasidBits === undefined ? {} : { viommuCaps: { pss: sc.vm.pasidBits - 1 } }),
  });
  const run: StackRun = { m, vm, plat, stack: plat.name, vmm, vcpus, devices: new Map(booted.map((b) => [b.scenario.name, b])), procs: new Map(), viommu, opts, other: null };
  // a process that will close fds it was handed exists from the start (its thread is then counted)
  if (sc.flat.some((f) => f.step.op === 'close' && f.step.from === 'other')) closeTask(run, 'other');
  const baseline = m.sim.leaks.snapshot();
  const steps: StepResult[] = [];
  let error: string | undefined;
  try {
    for (const seg of segments(sc.flat)) {
      if (seg.kind === 'serial') for (const fs of seg.steps) steps.push(runSerialStep(run, fs));
      else steps.push(...runParallel(run, seg.branches));
    }
    // the VMM exits at the end: whatever fds a scenario left open are closed, as exit_files does
    if (vm.backend.openFds().length) steps.push(runSerialStep(run, EXIT_STEP));
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  const leaks = leakDiff(baseline, m.sim.leaks.snapshot());
  const stated = steps.some((s) => s.expected?.startsWith('leak'));
  if (!error && Object.keys(leaks).length && !stated) error = `leaked at the end: ${Object.entries(leaks).map(([k, n]) => `${n} ${k}`).join(', ')}`;
  const failed = steps.filter((s) => !s.ok);
  if (!error && failed.length) error = `step ${failed[0]!.path} (${failed[0]!.op}): expected ${failed[0]!.expected}, got ${failed[0]!.outcome}${failed[0]!.error ? ` – ${failed[0]!.error}` : ''}`;
  const r: StackResult = { ok: !error, steps, totals: totalsOf(steps), hwDigest: computeDigest(m.vtd).sha256, hostLayout: hostLayoutOf(run), leaks };
  if (error) r.error = error;
  return r;
}

/**
 * Where the host put things (the root table, the invalidation queue, the first guest RAM frame):
 * seed-dependent and meaning-free, so runs with other seeds differ here and not in the digest.
 */
function hostLayoutOf(run: StackRun): string {
  const ram = run.vmm.mm.findVma(run.vm.ramMapping.hva);
  const where = [run.m.iommu.root, run.m.iommu.qi.base, ram ? ram.pfns[0]! * 4096 : -1];
  return createHash('sha256').update(JSON.stringify(where)).digest('hex');
}

/** enough host memory for guest RAM, the kernel's tables and the IOMMU's, with headroom */
function hostFramesFor(ramBytes: number): number {
  return Math.max(1 << 16, Math.ceil((ramBytes * 2) / 4096) + (1 << 14));
}

function leakDiff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(after)) if (n - (before[k] ?? 0) > 0) out[k] = n - (before[k] ?? 0);
  return out;
}

/**
 * A step outside `parallel` runs on vCPU 0; whatever other threads do before it ends (the PRQ
 * thread, a device retrying after a page response) belongs to it too.
 */
function runSerialStep(run: StackRun, fs: FlatStep): StepResult {
  const { m } = run;
  // the threads that exist when the step starts (a process created during it has no step open)
  const threads = [...m.sim.sched.threads];
  const main = run.vcpus[0]!.thread;
  // a serial step starts when everything before it has finished: every clock meets there, so no
  // thread waits on a resource another thread freed in a past it has already passed
  const start = m.sim.sched.horizon();
  for (const t of threads) t.clock = start;
  for (const t of threads) m.sim.beginStep(t, fs.path, fs.step.op);
  let outcome: { outcome: string; error?: string } = { outcome: 'ok' };
  let thrown: unknown = null;
  try {
    m.sim.sched.runOn(main, () => {
      outcome = execute(run, fs.step);
    });
    m.sim.sched.run();
  } catch (e) {
    thrown = e;
  }
  // close the step on every thread even after an oops, then let the oops go on
  // the threads that did not run during the step (most device threads) recorded nothing
  const recs = threads.map((t) => (t === main ? m.sim.endStep(t) : m.sim.endStepIfRan(t)));
  if (thrown) throw thrown;
  const merged = recs[threads.indexOf(main)]!;
  for (const r of recs) if (r && r !== merged) mergeRecording(merged, r);
  return judge(run, fs, merged, outcome);
}

function runParallel(run: StackRun, branches: readonly (readonly FlatStep[])[]): StepResult[] {
  const { m } = run;
  const out: StepResult[] = [];
  const outcomes = new Map<string, { outcome: string; error?: string }>();
  branches.forEach((steps, b) => {
    const vcpu = run.vcpus[b % run.vcpus.length]!;
    // seeded start jitter: which vCPU reaches the VMM first does not change meaning
    vcpu.thread.clock = Math.max(vcpu.thread.clock, m.sim.sched.horizon()) + m.sim.rng.int(1000);
    for (const fs of steps) {
      m.sim.sched.post(vcpu.thread, () => {
        const rec = m.sim.step(vcpu.thread, fs.path, fs.step.op, () => {
          outcomes.set(fs.path, execute(run, fs.step));
        });
        out.push(judge(run, fs, rec, outcomes.get(fs.path)!));
      });
    }
  });
  m.sim.sched.run();
  return out.sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
}

function judge(run: StackRun, fs: FlatStep, rec: StepRecording, o: { outcome: string; error?: string }): StepResult {
  const r = stepResult(rec, run.opts.prices, { path: fs.path, op: fs.step.op, line: fs.line, keepTrace: run.opts.keepTrace });
  const expected = describe(fs.expect[run.stack]);
  r.expected = expected;
  r.outcome = o.outcome;
  if (o.error) r.error = o.error;
  r.ok = expected.startsWith('leak') ? true : expected === o.outcome;
  return r;
}

function describe(o: Outcome): string {
  switch (o.kind) {
    case 'errno':
      return o.errno;
    case 'leak':
      return `leak ${JSON.stringify(o.leaks)}`;
    default:
      return o.kind;
  }
}

function fromIntent(r: IntentResult<unknown>): { outcome: string; error?: string } {
  if (r.ok) return { outcome: 'ok' };
  return r.kind === 'errno' ? { outcome: errname(r.errno), error: r.message } : { outcome: 'illegal', error: r.message };
}

/** A guest kernel call: 0 or −errno, plus anything the VMM failed to do on its behalf. */
function fromGuest(run: StackRun, ret: number, errorsBefore: number): { outcome: string; error?: string } {
  const errs = run.vm.frontend.errors.slice(errorsBefore);
  if (ret < 0) return { outcome: errname(ret), error: `guest call returned ${errname(ret)}` };
  if (errs.length) {
    const f = errs[0]!.failure;
    return { outcome: f.kind === 'errno' ? errname(f.errno) : 'illegal', error: `${errs[0]!.intent}: ${f.message}` };
  }
  return { outcome: 'ok' };
}

function proc(run: StackRun, name: string): GuestProcess {
  let p = run.procs.get(name);
  if (!p) run.procs.set(name, (p = run.vm.guest.createProcess(name)));
  return p;
}

function execute(run: StackRun, st: LeafStep): { outcome: string; error?: string } {
  const { vm } = run;
  const before = vm.frontend.errors.length;
  // without a vIOMMU the VMM assigns and tears down through the backend alone
  const vmm = run.viommu ? vm.frontend : vm.backend;
  switch (st.op) {
    case 'assign':
      return fromIntent(vmm.assign(st.device));
    case 'unassign':
      return fromIntent(vmm.unassign(st.device));
    case 'guest-map': {
      const p = proc(run, st.process);
      const r = st.onDemand ? p.reserve(st.va, st.pages, { write: st.write }) : p.map(st.va, st.pages, { write: st.write });
      return fromGuest(run, typeof r === 'number' ? r : 0, before);
    }
    case 'guest-unmap':
      return fromGuest(run, proc(run, st.process).unmap(st.va, st.pages), before);
    case 'bind':
      // `root`: a misbehaving guest writes the entry itself, with no process behind it
      if (st.root !== undefined) return fromGuest(run, bindRawRoot(vm.guest, st.device, st.pasid, st.root), before);
      return fromGuest(run, vm.guest.bind(st.device, st.pasid, proc(run, st.process!)), before);
    case 'rebind': {
      if (!st.probe) return fromGuest(run, vm.guest.rebind(st.device, st.pasid, proc(run, st.process)), before);
      const { va, len, write } = st.probe;
      return withProbe(run, { op: 'dma', device: st.device, pasid: st.pasid, va, len, write }, () =>
        fromGuest(run, vm.guest.rebind(st.device, st.pasid, proc(run, st.process)), before),
      );
    }
    case 'unbind':
      return fromGuest(run, unbindRawRoot(vm.guest, st.device, st.pasid) ?? vm.guest.unbind(st.device, st.pasid), before);
    case 'dma':
      return dma(run, st);
    case 'close': {
      const names = closeOrder(run, st.order);
      return fromIntent(vmm.close(names, closeTask(run, st.from)));
    }
  }
}

/**
 * `rebind … probe`: the device keeps issuing the probe DMA while the VMM propagates the guest's
 * change; it runs after each ioctl the VMM task issues inside `body` (A: unbind, then bind; B:
 * HWPT_ALLOC, the replacing attach, the old HWPT's destroy), and once after if none was issued.
 * The outcome is the body's when it fails, else the first probe that did not end ok.
 */
function withProbe(run: StackRun, probe: Extract<LeafStep, { op: 'dma' }>, body: () => { outcome: string; error?: string }): { outcome: string; error?: string } {
  const sys = run.m.sys;
  const ioctl = sys.ioctl;
  let probes = 0;
  let worst: { outcome: string; error?: string } = { outcome: 'ok' };
  const once = (): void => {
    probes++;
    const r = dma(run, probe);
    if (worst.outcome === 'ok' && r.outcome !== 'ok') worst = { outcome: r.outcome, error: `probe DMA ${probes}: ${r.error ?? r.outcome}` };
  };
  sys.ioctl = (task, fd, cmd, arg) => {
    const rc = ioctl.call(sys, task, fd, cmd, arg);
    if (task === run.vmm) once();
    return rc;
  };
  let r: { outcome: string; error?: string };
  try {
    r = body();
  } finally {
    sys.ioctl = ioctl;
  }
  if (r.outcome !== 'ok') return r;
  if (probes === 0) once();
  return worst;
}

/** A device DMA; page requests are carried to the guest until the transfer ends. */
function dma(run: StackRun, st: Extract<LeafStep, { op: 'dma' }>): { outcome: string; error?: string } {
  const dev = run.devices.get(st.device)!.host.pci;
  const data = new Uint8Array(st.len);
  for (let i = 0; i < st.len; i++) data[i] = (i * 131 + st.va) & 0xff;
  // no PASID (`gpa`): a request with the RID alone, translated by the stage 2 the VMM attached it to
  const pasid = st.pasid ?? NO_PASID;
  const req = st.write ? dev.dmaWrite(pasid, st.va, data) : dev.dmaRead(pasid, st.va, st.len);
  // no vIOMMU: nothing carries a page request to the guest (a device without PASID has no PRI here)
  for (let round = 0; run.viommu && req.status === 'pending' && round < MAX_IOPF_ROUNDS; round++) {
    run.vm.frontend.injectFaults();
    run.m.sim.sched.run();
  }
  switch (req.status) {
    case 'ok':
      return { outcome: req.pageRequests > 0 ? 'iopf' : 'ok' };
    case 'fault':
      return { outcome: 'fault', error: `fault reason 0x${req.reason.toString(16)}` };
    case 'error':
      return { outcome: 'fault', error: req.error };
    default:
      return { outcome: 'pending', error: 'the page request was never answered' };
  }
}

/**
 * The scenario's neutral fd names (device names, `iommu`) as the backend names its fds. An fd that
 * serves several devices (A's group fd) closes with the last of them in the order; fds the order
 * does not reach close after it, in the backend's order.
 */
function closeOrder(run: StackRun, order: readonly string[] | undefined): string[] {
  const be = run.vm.backend;
  const open = be.openFds();
  const names = order ?? [...run.devices.keys(), 'iommu'];
  const index = new Map<string, number>();
  names.forEach((n, i) => index.has(n) || index.set(n, i));
  // per position in the order, the fds that close there (an fd goes with the last of its devices)
  const at: string[][] = names.map(() => []);
  const rest: string[] = [];
  for (const f of open) {
    const devs = be.fdDevices(f);
    const i = devs.length ? Math.max(...devs.map((d) => index.get(d) ?? -1)) : (index.get('iommu') ?? -1);
    if (i >= 0) at[i]!.push(f);
    else rest.push(f);
  }
  return [...at.flat(), ...rest];
}

/**
 * The task whose `current` the releases see. `exit`: the VMM's task past exit_mm (do_exit drops
 * the mm before exit_files), so current->mm is gone. `kworker`: the delayed fput of a kernel
 * thread, which has no mm either; the model issues its closes from the VMM's fd table too.
 */
function closeTask(run: StackRun, from: string): Task {
  if (from === 'other') {
    if (!run.other) run.other = run.plat.otherTask?.(run.m) ?? run.m.k.createProcess('libvirtd');
    return run.other;
  }
  if (from === 'exit' || from === 'kworker') return run.m.k.addTask(run.vmm.process, from, { mmGone: true });
  return run.vmm;
}
