/**
 * The stack-neutral backend interface (DESIGN.md "The stack-neutral backend interface"): what the
 * VMM's front end and the scenario runner ask of a design. Both design backends (`tunnel`,
 * `iommufd`) implement `VmmBackend`; they reach the kernel only through syscalls on the VMM task's
 * fd table. Types and small helpers only: the per-device lifecycle machine is in lifecycle.ts.
 *
 * Results are data: an intent returns `IntentResult`, never throws for a refused or failed intent.
 * - `errno`: a syscall failed (the backend names the call, e.g. "IOMMU_HWPT_ALLOC");
 * - `illegal`: the lifecycle refused the intent in the device's current state.
 * An exception out of a backend is an oops (a model bug), as everywhere else.
 */
import type { Sim } from '../../sim/sim.ts';
import { errname } from '../kernel/errno.ts';
import type { UserPtr } from '../kernel/mm.ts';
import type { Task } from '../kernel/process.ts';
import type { Syscalls } from '../kernel/syscalls.ts';

export type Design = 'tunnel' | 'iommufd';
export type DeviceKind = 'vfio-pci' | 'vdpa';

/**
 * How a backend forwards a guest flush batch (DESIGN "invalidation option"): `qemu` sends one
 * entry per ioctl ("Only implement one request for simplicity", QEMU's intel_iommu_accel.c);
 * `batched` sends every entry the guest batched in one ioctl where the uAPI allows an array.
 */
export type InvalidationOption = 'qemu' | 'batched';

export interface BackendOptions {
  readonly invalidation: InvalidationOption;
  /**
   * Assign with a nesting stage 2 for vSVA (default true). False is plain assignment for a VM
   * without a vIOMMU (requirements-and-peers.md §(b) flow 1): A sets VFIO_TYPE1v2_IOMMU and skips
   * the nesting capability, /dev/ioasid and the fault regions; B attaches the RID to the IOAS (the
   * kernel's automatic HWPT) with no NEST_PARENT HWPT, no GET_HW_INFO and no fault queue. Only
   * assign, unassign and close are meaningful then: nothing binds a PASID.
   */
  readonly nesting?: boolean;
}

/** the `nesting` option with its default */
export function nestingOf(o: BackendOptions): boolean {
  return o.nesting ?? true;
}

export const DEFAULT_BACKEND_OPTIONS: BackendOptions = Object.freeze({ invalidation: 'qemu' });

/** An assigned host device as the VMM knows it (command line, or fds passed by management). */
export interface DeviceSpec {
  /** the device's name in the scenario and in every intent ("dsa0") */
  readonly name: string;
  readonly kind: DeviceKind;
  /** host requester id, bus << 8 | devfn */
  readonly hostRid: number;
  /** the name VFIO_GROUP_GET_DEVICE_FD takes ("0000:00:03.0") */
  readonly sysfsName?: string;
  /** device nodes the backend may open; each design opens the ones it needs */
  readonly paths: {
    /** /dev/vfio/<group> (design A's container path) */
    readonly group?: string;
    /** /dev/vfio/devices/vfioN (design B's cdev) */
    readonly cdev?: string;
    /** /dev/vhost-vdpa-N */
    readonly vhostVdpa?: string;
  };
  /** fds already open in the VMM task (management software passed them: scenario 17), by path key */
  readonly fds?: { readonly group?: number; readonly cdev?: number; readonly vhostVdpa?: number };
}

/** Guest RAM as the VMM mapped it: GPA [gpa, gpa + size) is user memory [hva, hva + size). */
export interface GuestRamMapping {
  readonly gpa: number;
  readonly size: number;
  readonly hva: UserPtr;
}

/** What a backend gets at construction. */
export interface BackendInit {
  readonly sim: Sim;
  /** the syscall boundary; the backend's only way into the kernel */
  readonly sys: Syscalls;
  /** the VMM task whose fd table and memory the backend uses (intents issue syscalls as it) */
  readonly task: Task;
  /** stage 2: every backend maps exactly this at assign (GPA → HVA) */
  readonly guestRam: GuestRamMapping;
  readonly devices: readonly DeviceSpec[];
  readonly options: BackendOptions;
}

export type BackendFactory = (init: BackendInit) => VmmBackend;

/** Flags of a guest first-stage binding, from the guest PASID entry (vtd-model §A.4). */
export interface BindFlags {
  /** 48 (4-level, FLPM 0) or 57 (5-level, FLPM 1) */
  readonly addrWidth: 48 | 57;
  readonly sre: boolean;
  readonly wpe: boolean;
  readonly eafe: boolean;
}

/**
 * One guest invalidation entry for a (device, PASID), first-stage input addresses. `pages` is a
 * power of two and `addr` is aligned to it (a PSI with AM = log2 pages); `pages = INV_ALL_PAGES`
 * is every address of the PASID (P_IOTLB granularity 2).
 */
export interface InvRange {
  readonly addr: number;
  readonly pages: number;
  /** IH: only leaf entries changed; paging-structure caches may be kept */
  readonly leaf: boolean;
  /** the guest also invalidated the device-TLB for this range */
  readonly devtlb: boolean;
}

export const INV_ALL_PAGES = Number.POSITIVE_INFINITY;

export function isWholePasid(r: InvRange): boolean {
  return r.pages === INV_ALL_PAGES;
}

/** A recoverable fault (page request) the host reported for the guest. */
export interface HostFault {
  readonly device: string;
  readonly pasid: number;
  /** page-aligned first-stage input address */
  readonly addr: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
  readonly privileged: boolean;
  /** page request group index, echoed by pageResponse */
  readonly prgi: number;
  /** last request in its group: only such a request gets a response */
  readonly lpig: boolean;
}

/** Page group response codes (VT-d; linux QI_RESP_SUCCESS / INVALID / FAILURE). */
export type PageResponseCode = 0 | 1 | 15;

export type IntentFailure =
  | { readonly ok: false; readonly kind: 'errno'; readonly errno: number; readonly call: string; readonly message: string }
  | { readonly ok: false; readonly kind: 'illegal'; readonly device: string; readonly state: string; readonly message: string };

export type IntentResult<T = undefined> = { readonly ok: true; readonly value: T } | IntentFailure;

export function ok(): IntentResult;
export function ok<T>(value: T): IntentResult<T>;
export function ok<T>(value?: T): IntentResult<T | undefined> {
  return { ok: true, value };
}

/** A syscall failed: `errno` is positive (task.errno). */
export function failErrno(errno: number, call: string, detail?: string): IntentFailure {
  const msg = `${call} failed: ${errname(errno)}${detail ? ` (${detail})` : ''}`;
  return { ok: false, kind: 'errno', errno, call, message: msg };
}

/** The lifecycle refused the intent; the message names the device, the intent and the state. */
export function illegal(device: string, state: string, message: string): IntentFailure {
  return { ok: false, kind: 'illegal', device, state, message };
}

/** the step counter of guest flushes that gave one (device, PASID) several entries */
export const MULTI_ENTRY_FLUSHES = 'multiEntryFlushes';

/**
 * The ioctls a backend issues for one guest flush of a (device, PASID): with `qemu`, one per
 * entry; with `batched`, all entries in one (both designs' array-capable calls take them). This is
 * the only place the option acts, so a flush of one entry is the same under both; a flush of
 * several is counted (MULTI_ENTRY_FLUSHES): a run that counted none would be the same run under
 * the other option.
 */
export function groupInvalidations(ranges: readonly InvRange[], option: InvalidationOption, sim: Sim): InvRange[][] {
  if (ranges.length === 0) return [];
  if (ranges.length > 1) sim.recorder.count(MULTI_ENTRY_FLUSHES);
  return option === 'qemu' ? ranges.map((r) => [r]) : [[...ranges]];
}

/** The interface both designs implement (DESIGN table). */
export interface VmmBackend {
  readonly design: Design;
  readonly options: BackendOptions;
  /** open, bind and attach the device; map guest RAM at stage 2 */
  assign(device: string): IntentResult;
  /** the guest made a PASID entry present (vPASID == pPASID) */
  bindPasid(device: string, pasid: number, firstStageRootGpa: number, flags: BindFlags): IntentResult;
  /** the guest changed a present entry (B: hitless replace; A: unbind + bind) */
  replacePasid(device: string, pasid: number, firstStageRootGpa: number, flags: BindFlags): IntentResult;
  /** the guest cleared an entry */
  unbindPasid(device: string, pasid: number): IntentResult;
  /** a guest flush: `ranges` is what the guest batched for this (device, PASID) */
  invalidate(device: string, pasid: number, ranges: readonly InvRange[]): IntentResult;
  /** fault records for the guest (empty when none are pending) */
  readFaults(): IntentResult<readonly HostFault[]>;
  /** the guest answered a page request */
  pageResponse(device: string, pasid: number, group: number, code: PageResponseCode): IntentResult;
  /** detach, unbind and close, possibly with live bindings */
  unassign(device: string): IntentResult;
  /** tear down by closing the named fds in this order, as `fromTask` */
  close(fdOrder: readonly string[], fromTask: Task): IntentResult;
  /** the fds this backend holds, by name ("container", "iommufd", "device:dsa0", …), for close orders */
  openFds(): readonly string[];
  /**
   * The devices an open fd serves, for close orders: [] for an IOMMU fd (A's container and
   * /dev/ioasid, B's iommufd); a device's own fds name it; A's group fd names every device of its
   * group.
   */
  fdDevices(name: string): readonly string[];
}
