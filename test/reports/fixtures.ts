/**
 * SYNTHETIC fixtures for the report tests: hand-built RunResults, priced with the default profile
 * the way the runner prices its recordings. They are not measurements and no report built from
 * them is committed.
 */
import { DEFAULT_COSTS, pricesAt, type PrimitiveKind, type ProvenanceKind, type SpanJson } from '../../sim/index.ts';
import { NUMERIC_KEYS, type RunResult, type StackName, type StackResult, type StepNumbers, type StepResult } from '../../scenarios/results.ts';
import { pricePrimitives, pricePrimitivesByLayer } from '../../reports/price.ts';

export const DEFAULT_PRICES = pricesAt(DEFAULT_COSTS, 'default');

type Prims = Record<string, Partial<Record<PrimitiveKind, [count: number, bytes?: number]>>>;

export interface StepSpec {
  path: string;
  op: string;
  prims: Prims;
  contentionNs?: number;
  provenance?: ProvenanceKind;
  trace?: SpanJson[];
  numbers?: Partial<StepNumbers>;
  counters?: Record<string, number>;
  handlers?: Record<string, string[]>;
  validations?: Record<string, string[]>;
}

const DEPTH_KEYS = new Set<keyof StepNumbers>(['userPtrDepth', 'typeErasureHops', 'maxDepth']);

export function step(spec: StepSpec, prices = DEFAULT_PRICES): StepResult {
  const primitives: StepResult['primitives'] = {};
  for (const [layer, kinds] of Object.entries(spec.prims)) {
    const row: Partial<Record<PrimitiveKind, { count: number; bytes: number }>> = {};
    for (const [k, v] of Object.entries(kinds)) if (v) row[k as PrimitiveKind] = { count: v[0], bytes: v[1] ?? 0 };
    primitives[layer] = row;
  }
  const contentionNs = spec.contentionNs ?? 0;
  const n: StepNumbers = {
    syscalls: 0,
    ioctls: 0,
    copiesFromUser: 0,
    bytesFromUser: 0,
    copiesToUser: 0,
    bytesToUser: 0,
    frames: 0,
    maxDepth: 0,
    layerCrossings: 0,
    userPtrDepth: -1,
    typeErasureHops: 0,
    vmExits: 0,
    ...spec.numbers,
    latencyNs: pricePrimitives(primitives, prices) + contentionNs,
    contentionNs,
  };
  return {
    ...n,
    path: spec.path,
    op: spec.op,
    line: 1,
    thread: 'vmm',
    ok: true,
    ioctlList: [],
    layers: Object.keys(primitives),
    latencyByLayer: pricePrimitivesByLayer(primitives, prices),
    primitives,
    provenance: spec.provenance ?? 'merged',
    handlers: spec.handlers ?? {},
    validations: spec.validations ?? {},
    locks: {},
    counters: spec.counters ?? {},
    ...(spec.trace ? { trace: spec.trace } : {}),
  };
}

export function stackOf(steps: StepResult[]): StackResult {
  const totals = {} as StepNumbers;
  for (const k of NUMERIC_KEYS) {
    totals[k] = DEPTH_KEYS.has(k) ? Math.max(-1, ...steps.map((s) => s[k])) : steps.reduce((t, s) => t + s[k], 0);
  }
  return { ok: true, steps, totals, hwDigest: 'synthetic', hostLayout: 'synthetic', leaks: {} };
}

export function run(
  scenario: string,
  stacks: Partial<Record<StackName, StepResult[]>>,
  extra: Partial<Pick<RunResult, 'invalidate' | 'profile' | 'seed' | 'description'>> = {},
): RunResult {
  const out: RunResult['stacks'] = {};
  for (const [k, v] of Object.entries(stacks) as [StackName, StepResult[]][]) out[k] = stackOf(v);
  return {
    scenario,
    description: extra.description ?? `synthetic fixture ${scenario}`,
    seed: extra.seed ?? 1,
    invalidate: extra.invalidate ?? 'qemu',
    profile: extra.profile ?? 'default',
    stacks: out,
    digestsEqual: true,
  };
}

/**
 * Built so that the tunnel is lower while a syscall costs less than 2200/6 ns and higher above:
 * tunnel = 10 syscalls + 1 MMIO read, iommufd = 4 syscalls + 100 kmallocs.
 * Δ(s) = 10s + 300 − 4s − 2500 = 6s − 2200, zero at s* = 366.67 ns (syscall range 50–600).
 * kmalloc alone would cross at 9 ns, below its range (10–60): no flip there.
 */
export const SYSCALL_THRESHOLD_NS = 2200 / 6;

export function syscallCrossingRun(): RunResult {
  return run('synthetic-syscall-crossing', {
    tunnel: [step({ path: '1', op: 'bind', prims: { syscall: { syscall: [10] }, 'intel-iommu': { mmioRead: [1] } }, numbers: { syscalls: 10, ioctls: 10 } })],
    iommufd: [step({ path: '1', op: 'bind', prims: { syscall: { syscall: [4] }, iommufd: { kmalloc: [100] } }, numbers: { syscalls: 4, ioctls: 4 } })],
  });
}

const merged = { kind: 'merged', source: 'synthetic' };
const posted = { kind: 'posted', source: 'synthetic v8' };

function span(name: string, layer: string, ns: number, children: SpanJson[] = [], more: Partial<SpanJson> = {}): SpanJson {
  return { name, layer, sig: `long ${name}(void)`, prov: layer === 'vfio' || layer === 'iommu-uapi' ? posted : merged, ns, children, ...more };
}

/** a small ftrace-like tree per stack, for the call-graph renderers */
export function tunnelTrace(): SpanJson[] {
  return [
    span('__x64_sys_ioctl', 'syscall', 900, [
      span('vfio_fops_unl_ioctl', 'vfio', 800, [
        span('vfio_iommu_type1_ioctl', 'vfio', 700, [
          span('iommu_uapi_sva_bind_gpasid', 'iommu-uapi', 500, [
            span('_copy_from_user', 'uaccess', 40),
            span('intel_svm_bind_gpasid_with_a_long_name_to_truncate', 'intel-iommu', 300),
          ], { uapi: { param: 'udata', ctype: 'void __user *' } }),
        ], { uapi: { param: 'arg', ctype: 'unsigned long' } }),
      ], { entry: 'ioctl', uapi: { param: 'arg', ctype: 'unsigned long' } }),
    ], { entry: 'syscall' }),
  ];
}

export function iommufdTrace(): SpanJson[] {
  return [
    span('__x64_sys_ioctl', 'syscall', 700, [
      span('iommufd_fops_ioctl', 'iommufd', 600, [
        span('_copy_from_user', 'uaccess', 40),
        span('iommufd_hwpt_alloc', 'iommufd', 400, [span('intel_iommu_domain_alloc_nested', 'intel-iommu', 200)], {
          uapi: { param: 'ucmd', ctype: 'struct iommufd_ucmd *' },
        }),
      ], { entry: 'ioctl', uapi: { param: 'arg', ctype: 'unsigned long' } }),
    ], { entry: 'syscall' }),
  ];
}

/** a small "suite": two scenarios with traces, a contended one with re-simulated runs */
export function syntheticSuite(): RunResult[] {
  const bindT = step({
    path: '1',
    op: 'bind',
    prims: { syscall: { syscall: [3] }, vfio: { ioctlDispatch: [3], copyFromUser: [2, 88] }, 'iommu-uapi': { kmalloc: [2] } },
    numbers: { syscalls: 3, ioctls: 3, copiesFromUser: 2, bytesFromUser: 88, userPtrDepth: 3, typeErasureHops: 2, frames: 6, maxDepth: 5 },
    provenance: 'posted',
    trace: tunnelTrace(),
    handlers: { bind: ['vfio'] },
    validations: { iommu_gpasid_bind_data: ['iommu_check_bind_data', 'intel_svm_bind_gpasid'] },
  });
  const bindI = step({
    path: '1',
    op: 'bind',
    prims: { syscall: { syscall: [2] }, iommufd: { ioctlDispatch: [2], copyFromUser: [2, 64], kmalloc: [3] } },
    numbers: { syscalls: 2, ioctls: 2, copiesFromUser: 2, bytesFromUser: 64, userPtrDepth: 1, typeErasureHops: 0, frames: 5, maxDepth: 4 },
    trace: iommufdTrace(),
    handlers: { bind: ['iommufd'] },
    validations: { iommu_hwpt_vtd_s1: ['intel_iommu_domain_alloc_nested'] },
  });
  const flush = (stack: StackName, waits: number): StepResult =>
    step({
      path: '2',
      op: 'guest-unmap',
      prims: { vmm: { vmExitUser: [1] }, syscall: { syscall: [waits] }, 'intel-iommu': { qiSubmit: [waits], qiHwCompletion: [waits] } },
      numbers: { syscalls: waits, ioctls: waits, vmExits: 1 },
      counters: { qiWaits: waits },
      provenance: stack === 'tunnel' ? 'posted' : 'merged',
    });
  const assign = (path: string, pins: number, layer: string): StepResult =>
    step({ path, op: 'assign', prims: { [layer]: { pinPage: [pins] }, syscall: { syscall: [4] } }, numbers: { syscalls: 4, ioctls: 4 } });
  const vdpa = (contention: number, scale: number, at: 'low' | 'default' | 'high' = 'default'): StepResult =>
    step({
      path: '1',
      op: 'dma',
      prims: { vhost: { eventfdWake: [2 * scale] }, syscall: { syscall: [scale] } },
      contentionNs: contention,
      provenance: 'projection',
      numbers: { syscalls: scale },
    }, pricesAt(DEFAULT_COSTS, at));
  return [
    run('synthetic-bind-flush', { tunnel: [bindT, flush('tunnel', 2)], iommufd: [bindI, flush('iommufd', 1)] }),
    run('synthetic-two-devices', {
      tunnel: [assign('1', 256, 'vfio-type1'), assign('2', 256, 'vfio-type1')],
      iommufd: [assign('1', 256, 'iommufd'), assign('2', 0, 'iommufd')],
    }),
    run('synthetic-vdpa-contended', { tunnel: [vdpa(500, 2)], iommufd: [vdpa(900, 2)] }),
    run('synthetic-vdpa-contended', { tunnel: [vdpa(300, 2, 'low')], iommufd: [vdpa(400, 2, 'low')] }, { profile: 'low' }),
    run('synthetic-vdpa-contended', { tunnel: [vdpa(900, 2, 'high')], iommufd: [vdpa(2000, 2, 'high')] }, { profile: 'high' }),
  ];
}
