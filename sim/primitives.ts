/**
 * The primitive operations model code charges. Latency is never hard-coded in a model:
 * the model charges primitives, a cost profile prices them (DESIGN principle 3).
 * Indices are stable small integers so that recordings are flat Float64Arrays.
 */
export const PRIMITIVES = [
  'syscall', // syscall entry + exit
  'ioctlDispatch', // fdget, cmd switch, ops lookup
  'copyFromUser', // fixed part; bytes priced per byte
  'copyToUser',
  'getUser',
  'putUser',
  'mutex', // lock + unlock, uncontended
  'spinlock', // spin_lock_irqsave + restore
  'rwsem', // down/up read or write, uncontended
  'kmalloc',
  'kfree',
  'xaLookup', // xarray / idr lookup of an object id
  'pinPage', // pin_user_pages, per page
  'mmioRead',
  'mmioWrite',
  'qiSubmit', // software side of qi_submit_sync: lock, tail update
  'qiDescriptor', // per 256-bit descriptor written to the queue
  'qiHwDescriptor', // hardware processing of one invalidation descriptor (not a wait)
  'qiHwCompletion', // hardware completion of a wait descriptor: drains what precedes it, writes status
  'devtlbInvalidation', // ATS invalidation round trip to the device
  'dmaMemRef', // one memory reference made by the IOMMU during a walk
  'vmExitKernel', // VM exit + entry handled in KVM
  'vmExitUser', // VM exit to the VMM in userspace and back
  'irqInject', // interrupt injected into a guest (irqfd)
  'eventfdWake', // eventfd signal to another thread's wake-up
  'contextSwitch',
] as const;

export type PrimitiveKind = (typeof PRIMITIVES)[number];
export const NPRIM = PRIMITIVES.length;

/** Small-integer id of each primitive kind, for the hot path. */
export const P = Object.freeze(
  Object.fromEntries(PRIMITIVES.map((k, i) => [k, i])) as { readonly [K in PrimitiveKind]: number },
);

export function isPrimitiveKind(s: string): s is PrimitiveKind {
  return (PRIMITIVES as readonly string[]).includes(s);
}
