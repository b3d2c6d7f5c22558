/**
 * The scenario file format as zod schemas: the shape of each key, one strict object per step `op`.
 * Cross-references (device names, PASID widths, expectations per op) are checked afterwards by
 * semantics.ts, and the order of steps by sequence.ts.
 */
import { z } from 'zod';
import { formatSize, MAX_PASID_BITS, parseAddress, parseSize, show } from './units.ts';

function intProblem(v: unknown, min: number, max: number): string {
  if (typeof v === 'bigint') return `${show(v)} is beyond 2^53 − 1 and would not stay exact`;
  if (typeof v !== 'number' || !Number.isInteger(v)) return `expected an integer, got ${show(v)}`;
  return v < min ? `must be ≥ ${min}, got ${v}` : `must be ≤ ${max}, got ${v}`;
}

/** An integer in [min, max]. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.custom<number>((v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max, {
    error: (iss) => intProblem(iss.input, min, max),
  });
}

/** A size in bytes: `4096`, `4K`, `512M`, `1G`. */
export function size(min: number) {
  return z
    .custom<number | string>((v) => (parseSize(v) ?? -1) >= min, {
      error: (iss) => {
        const n = parseSize(iss.input);
        if (n === undefined) return `bad size ${show(iss.input)}: expected bytes, or a number with a K, M or G suffix (e.g. 512M)`;
        return `must be at least ${formatSize(min)}, got ${show(iss.input)}`;
      },
    })
    .transform((v) => parseSize(v)!);
}

/** A guest virtual address: a number (YAML reads 0x… as one) or a quoted "0x…". */
export const address = z
  .custom<number | string>((v) => parseAddress(v) !== undefined, {
    error: (iss) =>
      typeof iss.input === 'bigint'
        ? `${show(iss.input)} is beyond 2^53 − 1 and would not stay exact`
        : `expected an address (a non-negative number or "0x…"), got ${show(iss.input)}`,
  })
  .transform((v) => parseAddress(v)!);

export const pasid = z.custom<number>((v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 2 ** MAX_PASID_BITS, {
  error: (iss) =>
    iss.input === 0
      ? 'PASID 0 is the RID’s own (IOMMU_NO_PASID): bind PASID 1 or above'
      : intProblem(iss.input, 1, 2 ** MAX_PASID_BITS - 1),
});

const NAME_RULE = 'a lowercase letter, then lowercase letters, digits, - or _';
export const scenarioName = z.string().regex(/^[a-z][a-z0-9_-]*$/, { error: (iss) => `bad scenario name ${show(iss.input)}: ${NAME_RULE}` });
export const deviceName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, { error: (iss) => `bad device name ${show(iss.input)}: ${NAME_RULE}, at most 32 characters` })
  .refine((s) => s !== 'iommu', { error: "'iommu' names the IOMMU fd in close orders; pick another device name" });
/** at most 15 characters, as a task's comm (TASK_COMM_LEN − 1) */
export const processName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,14}$/, {
    error: (iss) => `bad process name ${show(iss.input)}: a letter or _, then letters, digits, _ . or -; at most 15 characters (TASK_COMM_LEN)`,
  });

/** An outcome: `ok`, `fault`, `iopf`, an errno name, or `{leak: {kind: count}}`; which apply to which op is checked later. */
const outcome = z.union([z.string(), z.strictObject({ leak: z.record(z.string(), integer(1)) })], {
  error: (iss) => `expected ok, fault, iopf, an errno name such as EINVAL, or { leak: { kind: count } }, got ${show(iss.input)}`,
});
export const perStackExpect = z.strictObject({
  tunnel: outcome,
  iommufd: outcome,
  reason: z.string().trim().min(1, { error: 'a per-stack expectation needs a reason' }),
});
const expectation = z.union([z.string(), perStackExpect], {
  error: (iss) => `expected an outcome (ok, fault, iopf, an errno name) or { tunnel, iommufd, reason }, got ${show(iss.input)}`,
});

const optionalExpect = { expect: expectation.optional() };

/** `rebind … probe`: a DMA the device keeps issuing while the VMM propagates the change */
export const probe = z.strictObject({ va: address, len: size(1), write: z.boolean().optional() });

export const leafStepSchemas = [
  z.strictObject({ op: z.literal('assign'), device: deviceName, ...optionalExpect }),
  z.strictObject({
    op: z.literal('guest-map'),
    process: processName,
    va: address,
    pages: integer(1),
    write: z.boolean().optional(),
    'on-demand': z.boolean().optional(),
    ...optionalExpect,
  }),
  z.strictObject({ op: z.literal('guest-unmap'), process: processName, va: address, pages: integer(1), ...optionalExpect }),
  z.strictObject({
    op: z.literal('bind'),
    device: deviceName,
    pasid,
    // exactly one of process and root (build.ts checks): root is a misbehaving guest's first-stage root
    process: processName.optional(),
    root: address.optional(),
    'vq-group': z.string().optional(),
    ...optionalExpect,
  }),
  z.strictObject({ op: z.literal('rebind'), device: deviceName, pasid, process: processName, probe: probe.optional(), ...optionalExpect }),
  z.strictObject({ op: z.literal('unbind'), device: deviceName, pasid, ...optionalExpect }),
  z.strictObject({
    op: z.literal('dma'),
    device: deviceName,
    // either pasid and va (a process address), or gpa (a request without PASID): build.ts checks
    pasid: pasid.optional(),
    va: address.optional(),
    gpa: address.optional(),
    len: size(1),
    write: z.boolean().optional(),
    expect: expectation,
  }),
  z.strictObject({ op: z.literal('unassign'), device: deviceName, ...optionalExpect }),
  z.strictObject({
    op: z.literal('close'),
    order: z.array(z.string()).min(1, { error: 'a close order lists at least one fd' }).optional(),
    from: z.enum(['vmm', 'exit', 'other', 'kworker']).optional(),
    ...optionalExpect,
  }),
] as const;

export type RawLeafStep = z.output<(typeof leafStepSchemas)[number]>;
export type RawRepeat = { op: 'repeat'; times: number; steps: RawStep[] };
export type RawParallel = { op: 'parallel'; branches: RawStep[][] };
export type RawStep = RawLeafStep | RawRepeat | RawParallel;

/** most expanded steps a scenario may have, so a typo in `times` cannot exhaust memory */
export const MAX_FLAT_STEPS = 100_000;

const stepList: z.ZodType<RawStep[], unknown> = z.lazy(() => z.array(step).min(1, { error: 'a step list needs at least one step' }));

const repeatSchema = z.strictObject({ op: z.literal('repeat'), times: integer(1, MAX_FLAT_STEPS), steps: stepList });
const parallelSchema = z.strictObject({
  op: z.literal('parallel'),
  branches: z.array(stepList).min(2, { error: 'a parallel block needs at least 2 branches' }),
});

const stepSchemas = [...leafStepSchemas, repeatSchema, parallelSchema] as const;
export const OPS: readonly string[] = stepSchemas.map((s) => s.shape.op.value);

const step = z.discriminatedUnion('op', stepSchemas, {
  error: (iss) => {
    const op = (iss.input as { op?: unknown } | undefined)?.op;
    return `unknown op ${show(op)} (expected one of: ${OPS.join(', ')})`;
  },
});

const vqGroup = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, { error: (iss) => `bad vq-group name ${show(iss.input)}: ${NAME_RULE}` }),
  vqs: z.array(integer(0, 65535)).min(1, { error: 'a vq group holds at least one virtqueue' }),
});

/** `pasid: true | false | width in bits` */
const pasidCap = z.custom<boolean | number>(
  (v) => typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_PASID_BITS),
  { error: (iss) => `expected true, false or a PASID width in bits (1–${MAX_PASID_BITS}), got ${show(iss.input)}` },
);

export const deviceSchema = z.strictObject({
  name: deviceName,
  type: z.enum(['vfio-pci', 'vdpa']),
  pasid: pasidCap,
  ats: z.boolean(),
  pri: z.boolean(),
  group: integer(0).optional(),
  'vq-groups': z.array(vqGroup).min(1, { error: 'vq-groups lists at least one group' }).optional(),
});

/** the smallest guest RAM a VM may have (the scale scenario runs hundreds of devices on a few MiB) */
export const MIN_VM_MEMORY = 4 * 2 ** 20;

export const vmSchema = z.strictObject({
  memory: size(MIN_VM_MEMORY),
  vcpus: integer(1, 256),
  /** false: no vIOMMU at all (flow 1) */
  viommu: z.boolean().optional(),
  /** the PASID width the vIOMMU advertises (ECAP.PSS + 1; QEMU/libvirt pasid_bits); default 20 */
  'pasid-bits': integer(1, MAX_PASID_BITS).optional(),
});

export const scenarioFileSchema = z.strictObject({
  name: scenarioName,
  description: z.string().trim().min(1, { error: 'the description says what the scenario shows' }),
  vm: vmSchema,
  devices: z.array(deviceSchema).min(1, { error: 'a scenario declares at least one device' }),
  steps: stepList,
});

export type RawScenario = z.output<typeof scenarioFileSchema>;
export type RawDevice = z.output<typeof deviceSchema>;

/** Keys each kind of mapping takes, for "unknown key" messages. */
export const KEYS = {
  top: Object.keys(scenarioFileSchema.shape),
  vm: Object.keys(vmSchema.shape),
  device: Object.keys(deviceSchema.shape),
  'vq-group': Object.keys(vqGroup.shape),
  probe: Object.keys(probe.shape),
  expect: Object.keys(perStackExpect.shape),
  outcome: ['leak'],
  ...Object.fromEntries(stepSchemas.map((s) => [s.shape.op.value, Object.keys(s.shape)])),
} as Readonly<Record<string, readonly string[]>>;

