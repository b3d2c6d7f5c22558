/**
 * Design B's VMM backend: what QEMU's iommufd backend (backends/iommufd.c, hw/vfio/iommufd.c) and
 * intel_iommu's nesting code (hw/i386/intel_iommu_accel.c, Zhenzhong Duan's series, and Yi Liu's
 * vSVA RFC for PASIDs other than 0) do, as syscalls on the VMM task's fds:
 *
 * - once: open /dev/iommu, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP of guest RAM at IOVA = GPA;
 * - assign: open the device's cdev, VFIO_DEVICE_BIND_IOMMUFD, IOMMU_GET_HW_INFO, a NEST_PARENT |
 *   ALLOC_PASID stage-2 HWPT on the IOAS (one shared by every device that accepts it, as
 *   iommufd_cdev_autodomains_get tries the existing ones first), VFIO_DEVICE_ATTACH_IOMMUFD_PT of
 *   the RID to it, and IOMMU_FAULT_QUEUE_ALLOC for a device with PRI;
 * - with `nesting: false` (a VM without a vIOMMU, flow 1): the RID is attached to the IOAS itself
 *   (pt_id = the IOAS: the kernel's automatic HWPT), with no GET_HW_INFO, no NEST_PARENT HWPT and
 *   no fault queue;
 * - bindPasid: a nested VT-d stage-1 HWPT (iommu_hwpt_vtd_s1: the guest's root GPA) with
 *   ALLOC_PASID (+ FAULT_ID_VALID), attached to the PASID; replacePasid: a new one attached to the
 *   same PASID (the kernel replaces hitlessly), the old destroyed; unbindPasid: detach, destroy;
 * - invalidate: IOMMU_HWPT_INVALIDATE with 24-byte iommu_hwpt_vtd_s1_invalidate entries, grouped
 *   by the invalidation option; readFaults / pageResponse: read() / write() of the fault fd;
 * - vdpa devices: the same IOAS and HWPTs through vhost-vdpa's RFC ioctls (a projection).
 *
 * Provenance: the RID-only nesting path is merged QEMU (2026-01); PASIDs other than 0, host-fault
 * injection and the vDPA path follow posted or projected work (see frontend.ts).
 */
import type { Sim } from '../../sim/sim.ts';
import { EINVAL, EOPNOTSUPP } from '../kernel/errno.ts';
import type { Task } from '../kernel/process.ts';
import {
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMU_PGFAULT_PERM_EXEC,
  IOMMU_PGFAULT_PERM_PRIV,
  IOMMU_PGFAULT_PERM_READ,
  IOMMU_PGFAULT_PERM_WRITE,
  IOMMU_VTD_INV_FLAGS_LEAF,
  IOMMU_VTD_S1_EAFE,
  IOMMU_VTD_S1_SRE,
  IOMMU_VTD_S1_WPE,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_DETACH_PASID,
  decode,
  encode,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hw_info,
  iommu_hw_info_vtd,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_map,
  sizeOf,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vdpa_device_attach_iommufd_as,
  vhost_vdpa_set_iommufd,
  vhost_vring_state,
} from '../kernel/uapi/index.ts';
import {
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  VDPA_DEVICE_ATTACH_IOMMUFD_AS,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VHOST_SET_OWNER,
  VHOST_VDPA_GET_GROUP_NUM,
  VHOST_VDPA_SET_GROUP_ASID,
  VHOST_VDPA_SET_IOMMU_FD,
} from '../kernel/uapi/ioctls/index.ts';
import {
  DEFAULT_BACKEND_OPTIONS,
  failErrno,
  groupInvalidations,
  illegal,
  isWholePasid,
  nestingOf,
  ok,
  type BackendFactory,
  type BackendInit,
  type BackendOptions,
  type BindFlags,
  type DeviceSpec,
  type HostFault,
  type IntentFailure,
  type IntentResult,
  type InvRange,
  type PageResponseCode,
  type VmmBackend,
} from './backend.ts';
import { UserCalls, type SysResult } from './backend-iommufd-uapi.ts';
import { DeviceLifecycle, DeviceLifecycles } from './lifecycle.ts';

const U64_MAX = (1n << 64n) - 1n;
const FAULT_SIZE = sizeOf(iommu_hwpt_pgfault);
/** records one read() asks for (QEMU reads the queue in a loop of fixed-size buffers) */
const FAULT_BATCH = 16;

/** What the VMM knows of a device beyond its spec: its PCI capabilities (config space). */
export interface IommufdBackendExtra {
  /** the device has PRI enabled in its config space: it gets a fault queue */
  readonly pri?: (device: string) => boolean;
  /** vdpa: the virtqueue group a PASID backs (the intents do not carry it); default 0 */
  readonly vdpaGroupOfPasid?: (device: string, pasid: number) => number;
}

/** Per assigned device: its fds and the ids the kernel gave back. */
interface DevState {
  readonly spec: DeviceSpec;
  /** the cdev (vfio-pci) or vhost-vdpa fd */
  fd: number;
  /** the fd came from management (spec.fds): unassign leaves it open */
  readonly passed: boolean;
  devId: number;
  parentId: number;
  faultId: number;
  faultFd: number;
  /** vdpa: number of virtqueue groups */
  groups: number;
  /** pasid → nested HWPT id (and for vdpa, the group it backs) */
  readonly pasids: Map<number, { hwpt: number; group: number }>;
}

const ctxOf = (s: DevState) => `device:${s.spec.name}`;

export class IommufdBackend implements VmmBackend {
  readonly design = 'iommufd' as const;
  readonly options: BackendOptions;
  readonly lifecycles: DeviceLifecycles;
  readonly sim: Sim;
  private readonly u: UserCalls;
  private readonly specs = new Map<string, DeviceSpec>();
  private readonly devs = new Map<string, DevState>();
  private iommufd = -1;
  private ioasId = 0;
  /** nest-parent HWPT ids in use, with the devices on each (shared where the kernel accepts it) */
  private readonly parents = new Map<number, Set<string>>();
  /** fault cookie by device/pasid/grpid, from read() until the response */
  private readonly cookies = new Map<string, number>();

  constructor(
    readonly init: BackendInit,
    readonly extra: IommufdBackendExtra = {},
  ) {
    this.options = init.options ?? DEFAULT_BACKEND_OPTIONS;
    this.sim = init.sim;
    this.u = new UserCalls(init.sys, init.task);
    for (const d of init.devices) this.specs.set(d.name, d);
    this.lifecycles = new DeviceLifecycles(init.devices);
  }

  private get task(): Task {
    return this.init.task;
  }

  private life(device: string): DeviceLifecycle | IntentFailure {
    return this.lifecycles.lookup(device);
  }

  // ---- the iommufd and the IOAS -------------------------------------------------------------------

  /** open /dev/iommu, IOAS_ALLOC, IOAS_MAP(guest RAM, IOVA = GPA): once per VM. */
  private ensureIoas(): IntentFailure | null {
    if (this.iommufd >= 0) return null;
    const o = this.u.open('/dev/iommu');
    if (o.rc < 0) return failErrno(o.errno, 'open(/dev/iommu)');
    this.iommufd = o.rc;
    const a = this.u.ioctl(this.iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags: 0 }, 'size');
    if (a.rc < 0) return this.abortIoas(failErrno(a.errno, 'IOMMU_IOAS_ALLOC'));
    this.ioasId = a.out.out_ioas_id as number;
    const ram = this.init.guestRam;
    const m = this.u.ioctl(
      this.iommufd,
      IOMMU_IOAS_MAP,
      iommu_ioas_map,
      {
        flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: this.ioasId,
        user_va: BigInt(ram.hva),
        length: BigInt(ram.size),
        iova: BigInt(ram.gpa),
      },
      'size',
    );
    if (m.rc < 0) return this.abortIoas(failErrno(m.errno, 'IOMMU_IOAS_MAP'));
    return null;
  }

  private abortIoas(f: IntentFailure): IntentFailure {
    this.u.close(this.iommufd);
    this.iommufd = -1;
    this.ioasId = 0;
    return f;
  }

  private destroy(id: number): SysResult {
    return this.u.ioctl(this.iommufd, IOMMU_DESTROY, iommu_destroy, { id }, 'size');
  }

  private hwptAlloc(devId: number, ptId: number, flags: number, data?: Uint8Array, faultId = 0): { rc: number; errno: number; id: number } {
    const uptr = data ? this.u.putBytes(data) : 0;
    const r = this.u.ioctl(
      this.iommufd,
      IOMMU_HWPT_ALLOC,
      iommu_hwpt_alloc,
      {
        flags,
        dev_id: devId,
        pt_id: ptId,
        data_type: data ? IOMMU_HWPT_DATA_VTD_S1 : 0,
        data_len: data?.length ?? 0,
        data_uptr: BigInt(uptr),
        fault_id: faultId,
      },
      'size',
    );
    return { rc: r.rc, errno: r.errno, id: r.out.out_hwpt_id as number };
  }

  // ---- assign -------------------------------------------------------------------------------------------

  assign(device: string): IntentResult {
    const l = this.life(device);
    if (!(l instanceof DeviceLifecycle)) return l;
    const refused = l.check({ op: 'assign' });
    if (refused) return refused;
    this.u.reset();
    const bad = this.ensureIoas();
    if (bad) return bad;
    const spec = this.specs.get(device)!;
    const r = spec.kind === 'vdpa' ? this.assignVdpa(spec) : this.assignPci(spec);
    if (!r.ok) return r;
    l.commit({ op: 'assign' });
    return ok();
  }

  private openDevice(spec: DeviceSpec, key: 'cdev' | 'vhostVdpa'): { fd: number; passed: boolean } | IntentFailure {
    const passed = spec.fds?.[key];
    if (passed !== undefined) return { fd: passed, passed: true };
    const path = spec.paths[key];
    if (!path) return failErrno(EINVAL, 'open', `${spec.name} has no ${key} path`);
    const o = this.u.open(path);
    return o.rc < 0 ? failErrno(o.errno, `open(${path})`) : { fd: o.rc, passed: false };
  }

  /** Tries the nest parents other devices use, then allocates one (iommufd_cdev_autodomains_get). */
  private attachParent(s: DevState, attach: (pt: number) => SysResult & { name: string }): IntentFailure | null {
    for (const [id, users] of this.parents) {
      const a = attach(id);
      if (a.rc === 0) {
        users.add(s.spec.name);
        s.parentId = id;
        return null;
      }
      if (a.errno !== EINVAL) return failErrno(a.errno, a.name);
    }
    const h = this.hwptAlloc(s.devId, this.ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID);
    if (h.rc < 0) return failErrno(h.errno, 'IOMMU_HWPT_ALLOC', 'nest parent');
    const a = attach(h.id);
    if (a.rc < 0) {
      this.destroy(h.id);
      return failErrno(a.errno, a.name);
    }
    this.parents.set(h.id, new Set([s.spec.name]));
    s.parentId = h.id;
    return null;
  }

  private releaseParent(s: DevState): void {
    const users = this.parents.get(s.parentId);
    if (!users) {
      // attached to the IOAS (no nesting): the kernel frees its automatic HWPT at detach
      s.parentId = 0;
      return;
    }
    users.delete(s.spec.name);
    if (users.size === 0) {
      this.destroy(s.parentId);
      this.parents.delete(s.parentId);
    }
    s.parentId = 0;
  }

  private newState(spec: DeviceSpec, fd: number, passed: boolean): DevState {
    return { spec, fd, passed, devId: 0, parentId: 0, faultId: 0, faultFd: -1, groups: 1, pasids: new Map() };
  }

  /** GET_HW_INFO: the backend needs a VT-d (the only vendor format it builds). */
  private hwInfo(s: DevState): IntentFailure | null {
    const buf = this.u.putBytes(new Uint8Array(sizeOf(iommu_hw_info_vtd)));
    const r = this.u.ioctl(this.iommufd, IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: s.devId, data_len: sizeOf(iommu_hw_info_vtd), data_uptr: BigInt(buf) }, 'size');
    if (r.rc < 0) return failErrno(r.errno, 'IOMMU_GET_HW_INFO');
    if ((r.out.out_data_type as number) !== IOMMU_HW_INFO_TYPE_INTEL_VTD) return failErrno(EOPNOTSUPP, 'IOMMU_GET_HW_INFO', 'not an Intel VT-d');
    return null;
  }

  private faultQueue(s: DevState): IntentFailure | null {
    if (!this.extra.pri?.(s.spec.name)) return null;
    const f = this.u.ioctl(this.iommufd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags: 0 }, 'size');
    if (f.rc < 0) return failErrno(f.errno, 'IOMMU_FAULT_QUEUE_ALLOC');
    s.faultId = f.out.out_fault_id as number;
    s.faultFd = f.out.out_fault_fd as number;
    return null;
  }

  private assignPci(spec: DeviceSpec): IntentResult {
    const o = this.openDevice(spec, 'cdev');
    if ('ok' in o) return o;
    const s = this.newState(spec, o.fd, o.passed);
    const fail = (f: IntentFailure): IntentFailure => {
      this.teardownDevice(s);
      return f;
    };
    const b = this.u.ioctl(s.fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { flags: 0, iommufd: this.iommufd }, 'argsz');
    if (b.rc < 0) return fail(failErrno(b.errno, 'VFIO_DEVICE_BIND_IOMMUFD'));
    s.devId = b.out.out_devid as number;
    const attach = (pt: number) => ({
      ...this.u.ioctl(s.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, flags: 0, pt_id: pt }),
      name: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
    });
    if (!nestingOf(this.options)) {
      // plain assignment: the IOAS itself, the kernel's auto-domain path; no fault queue
      const a = attach(this.ioasId);
      if (a.rc < 0) return fail(failErrno(a.errno, a.name));
      s.parentId = this.ioasId;
      this.devs.set(spec.name, s);
      return ok();
    }
    const hw = this.hwInfo(s);
    if (hw) return fail(hw);
    const p = this.attachParent(s, attach);
    if (p) return fail(p);
    const fq = this.faultQueue(s);
    if (fq) return fail(fq);
    this.devs.set(spec.name, s);
    return ok();
  }

  /** vhost-vdpa (RFC): bind on group 0 to the IOAS, move ASID 0 onto the nest parent, add the other groups. */
  private assignVdpa(spec: DeviceSpec): IntentResult {
    const o = this.openDevice(spec, 'vhostVdpa');
    if ('ok' in o) return o;
    const s = this.newState(spec, o.fd, o.passed);
    const fail = (f: IntentFailure): IntentFailure => {
      this.teardownDevice(s);
      return f;
    };
    const own = this.u.ioctlArg(s.fd, VHOST_SET_OWNER, 0);
    if (own.rc < 0) return fail(failErrno(own.errno, 'VHOST_SET_OWNER'));
    const nAt = this.u.putBytes(new Uint8Array(4));
    const n = this.u.ioctlArg(s.fd, VHOST_VDPA_GET_GROUP_NUM, nAt);
    if (n.rc < 0) return fail(failErrno(n.errno, 'VHOST_VDPA_GET_GROUP_NUM'));
    s.groups = new DataView(this.u.read(nAt, 4).buffer).getUint32(0, true);
    const set = this.setIommuFd(s, this.iommufd, 0, this.ioasId);
    if (set.rc < 0) return fail(failErrno(set.errno, 'VHOST_VDPA_SET_IOMMU_FD'));
    s.devId = set.devId;
    if (!nestingOf(this.options)) {
      // plain assignment: every group on the IOAS (group 0 is already), no parent, no fault queue
      s.parentId = this.ioasId;
      for (let g = 1; g < s.groups; g++) {
        const r = this.setIommuFd(s, this.iommufd, g, this.ioasId);
        if (r.rc < 0) return fail(failErrno(r.errno, 'VHOST_VDPA_SET_IOMMU_FD'));
      }
      this.devs.set(spec.name, s);
      return ok();
    }
    const hw = this.hwInfo(s);
    if (hw) return fail(hw);
    const attach = (pt: number) => ({
      ...this.u.ioctl(s.fd, VDPA_DEVICE_ATTACH_IOMMUFD_AS, vdpa_device_attach_iommufd_as, { flags: 0, ioas_id: pt }, 'argsz'),
      name: 'VDPA_DEVICE_ATTACH_IOMMUFD_AS',
    });
    const p = this.attachParent(s, attach);
    if (p) return fail(p);
    for (let g = 1; g < s.groups; g++) {
      const r = this.setIommuFd(s, this.iommufd, g, s.parentId);
      if (r.rc < 0) return fail(failErrno(r.errno, 'VHOST_VDPA_SET_IOMMU_FD'));
    }
    const fq = this.faultQueue(s);
    if (fq) return fail(fq);
    this.devs.set(spec.name, s);
    return ok();
  }

  private setIommuFd(s: DevState, iommufd: number, group: number, pt: number): SysResult & { devId: number } {
    const r = this.u.ioctl(s.fd, VHOST_VDPA_SET_IOMMU_FD, vhost_vdpa_set_iommufd, { iommufd, group_id: group, ioas_id: pt });
    return { rc: r.rc, errno: r.errno, devId: r.out.out_dev_id as number };
  }

  private setGroupAsid(s: DevState, group: number, asid: number): SysResult {
    return this.u.ioctlArg(s.fd, VHOST_VDPA_SET_GROUP_ASID, this.u.put(vhost_vring_state, { index: group, num: asid }));
  }

  // ---- PASIDs -----------------------------------------------------------------------------------------

  private s1Data(root: number, flags: BindFlags): Uint8Array {
    const f = (flags.sre ? IOMMU_VTD_S1_SRE : 0) | (flags.eafe ? IOMMU_VTD_S1_EAFE : 0) | (flags.wpe ? IOMMU_VTD_S1_WPE : 0);
    return encode(iommu_hwpt_vtd_s1, { flags: BigInt(f), pgtbl_addr: BigInt(root), addr_width: flags.addrWidth, __reserved: 0 });
  }

  /** HWPT_ALLOC of a nested stage 1 over the device's parent, for a PASID (+ its fault queue). */
  private allocNested(s: DevState, root: number, flags: BindFlags): { id: number } | IntentFailure {
    const hf = IOMMU_HWPT_ALLOC_PASID | (s.faultId ? IOMMU_HWPT_FAULT_ID_VALID : 0);
    const h = this.hwptAlloc(s.devId, s.parentId, hf, this.s1Data(root, flags), s.faultId);
    return h.rc < 0 ? failErrno(h.errno, 'IOMMU_HWPT_ALLOC', 'nested VTD_S1') : { id: h.id };
  }

  /** Attach (or, on an attached PASID, replace) `pasid` to `hwpt`. */
  private attachPasid(s: DevState, pasid: number, hwpt: number): IntentFailure | null {
    if (s.spec.kind === 'vdpa') {
      const group = this.extra.vdpaGroupOfPasid?.(s.spec.name, pasid) ?? 0;
      const a = this.setGroupAsid(s, group, pasid);
      if (a.rc < 0) return failErrno(a.errno, 'VHOST_VDPA_SET_GROUP_ASID');
      const r = this.setIommuFd(s, this.iommufd, group, hwpt);
      return r.rc < 0 ? failErrno(r.errno, 'VHOST_VDPA_SET_IOMMU_FD') : null;
    }
    const r = this.u.ioctl(s.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { flags: VFIO_DEVICE_ATTACH_PASID, pt_id: hwpt, pasid }, 'argsz');
    return r.rc < 0 ? failErrno(r.errno, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT') : null;
  }

  private detachPasid(s: DevState, pasid: number): IntentFailure | null {
    if (s.spec.kind === 'vdpa') {
      // the group goes back to ASID 0, the RID's parent; the PASID is detached when it empties
      const group = s.pasids.get(pasid)?.group ?? 0;
      const a = this.setGroupAsid(s, group, 0);
      if (a.rc < 0) return failErrno(a.errno, 'VHOST_VDPA_SET_GROUP_ASID');
      const r = this.setIommuFd(s, this.iommufd, group, s.parentId);
      return r.rc < 0 ? failErrno(r.errno, 'VHOST_VDPA_SET_IOMMU_FD') : null;
    }
    const r = this.u.ioctl(s.fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { flags: VFIO_DEVICE_DETACH_PASID, pasid }, 'argsz');
    return r.rc < 0 ? failErrno(r.errno, 'VFIO_DEVICE_DETACH_IOMMUFD_PT') : null;
  }

  private assigned(device: string, op: 'bind' | 'replace' | 'unbind', pasid: number, root = 0): { l: DeviceLifecycle; s: DevState } | IntentFailure {
    const l = this.life(device);
    if (!(l instanceof DeviceLifecycle)) return l;
    const refused = op === 'unbind' ? l.check({ op, pasid }) : l.check({ op, pasid, root });
    if (refused) return refused;
    this.u.reset();
    return { l, s: this.devs.get(device)! };
  }

  bindPasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const a = this.assigned(device, 'bind', pasid, root);
    if ('ok' in a) return a;
    const h = this.allocNested(a.s, root, flags);
    if ('ok' in h) return h;
    const f = this.attachPasid(a.s, pasid, h.id);
    if (f) {
      this.destroy(h.id);
      return f;
    }
    a.s.pasids.set(pasid, { hwpt: h.id, group: this.extra.vdpaGroupOfPasid?.(device, pasid) ?? 0 });
    a.l.commit({ op: 'bind', pasid, root });
    return ok();
  }

  /** A new nested HWPT attached over the old one: the kernel replaces the PASID entry hitlessly. */
  replacePasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const a = this.assigned(device, 'replace', pasid, root);
    if ('ok' in a) return a;
    const old = a.s.pasids.get(pasid)!;
    const h = this.allocNested(a.s, root, flags);
    if ('ok' in h) return h;
    const f = this.attachPasid(a.s, pasid, h.id);
    if (f) {
      this.destroy(h.id);
      return f;
    }
    a.s.pasids.set(pasid, { hwpt: h.id, group: old.group });
    const d = this.destroy(old.hwpt);
    if (d.rc < 0) return failErrno(d.errno, 'IOMMU_DESTROY', 'old nested HWPT');
    a.l.commit({ op: 'replace', pasid, root });
    return ok();
  }

  unbindPasid(device: string, pasid: number): IntentResult {
    const a = this.assigned(device, 'unbind', pasid);
    if ('ok' in a) return a;
    const f = this.detachPasid(a.s, pasid);
    if (f) return f;
    const old = a.s.pasids.get(pasid)!;
    a.s.pasids.delete(pasid);
    const d = this.destroy(old.hwpt);
    if (d.rc < 0) return failErrno(d.errno, 'IOMMU_DESTROY', 'nested HWPT');
    a.l.commit({ op: 'unbind', pasid });
    return ok();
  }

  // ---- data plane ------------------------------------------------------------------------------------------

  private entry(r: InvRange): Uint8Array {
    const whole = isWholePasid(r);
    return encode(iommu_hwpt_vtd_s1_invalidate, {
      addr: whole ? 0n : BigInt(r.addr),
      npages: whole ? U64_MAX : BigInt(r.pages),
      flags: r.leaf ? IOMMU_VTD_INV_FLAGS_LEAF : 0,
      __reserved: 0,
    });
  }

  /** IOMMU_HWPT_INVALIDATE per group of entries; entry_num comes back as the count handled. */
  invalidate(device: string, pasid: number, ranges: readonly InvRange[]): IntentResult {
    const l = this.life(device);
    if (!(l instanceof DeviceLifecycle)) return l;
    const refused = l.checkInvalidate(pasid);
    if (refused) return refused;
    this.u.reset();
    const hwpt = this.devs.get(device)!.pasids.get(pasid)!.hwpt;
    const len = sizeOf(iommu_hwpt_vtd_s1_invalidate);
    for (const group of groupInvalidations(ranges, this.options.invalidation, this.sim)) {
      const arr = new Uint8Array(len * group.length);
      group.forEach((r, i) => arr.set(this.entry(r), i * len));
      const at = this.u.putBytes(arr);
      const r = this.u.ioctl(
        this.iommufd,
        IOMMU_HWPT_INVALIDATE,
        iommu_hwpt_invalidate,
        { hwpt_id: hwpt, data_uptr: BigInt(at), data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: len, entry_num: group.length },
        'size',
      );
      if (r.rc < 0) return failErrno(r.errno, 'IOMMU_HWPT_INVALIDATE', `${r.out.entry_num as number} of ${group.length} handled`);
    }
    return ok();
  }

  /** read() of every fault fd until empty: whole groups of 40-byte records. */
  readFaults(): IntentResult<readonly HostFault[]> {
    this.u.reset();
    const out: HostFault[] = [];
    for (const s of this.devs.values()) {
      if (s.faultFd < 0) continue;
      for (;;) {
        const r = this.u.readInto(s.faultFd, FAULT_BATCH * FAULT_SIZE);
        if (r.rc < 0) return failErrno(r.errno, 'read(fault fd)');
        if (r.rc === 0) break;
        for (let off = 0; off < r.rc; off += FAULT_SIZE) {
          const f = decode(iommu_hwpt_pgfault, r.bytes.subarray(off, off + FAULT_SIZE));
          const flags = f.flags as number;
          const perm = f.perm as number;
          const pasid = flags & IOMMU_PGFAULT_FLAGS_PASID_VALID ? (f.pasid as number) : -1;
          const lpig = (flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE) !== 0;
          this.cookies.set(`${s.spec.name}/${pasid}/${f.grpid as number}`, f.cookie as number);
          out.push({
            device: s.spec.name,
            pasid,
            addr: Number(f.addr as bigint),
            read: (perm & IOMMU_PGFAULT_PERM_READ) !== 0,
            write: (perm & IOMMU_PGFAULT_PERM_WRITE) !== 0,
            exec: (perm & IOMMU_PGFAULT_PERM_EXEC) !== 0,
            privileged: (perm & IOMMU_PGFAULT_PERM_PRIV) !== 0,
            prgi: f.grpid as number,
            lpig,
          });
        }
        if (r.rc < FAULT_BATCH * FAULT_SIZE) break;
      }
    }
    return ok(out);
  }

  /** write() of {cookie, code}; iommufd knows SUCCESS and INVALID, so FAILURE goes as INVALID. */
  pageResponse(device: string, pasid: number, group: number, code: PageResponseCode): IntentResult {
    const l = this.life(device);
    if (!(l instanceof DeviceLifecycle)) return l;
    const refused = l.checkPageResponse(pasid);
    if (refused) return refused;
    this.u.reset();
    const s = this.devs.get(device)!;
    const key = `${device}/${pasid}/${group}`;
    const cookie = this.cookies.get(key);
    if (cookie === undefined || s.faultFd < 0) return failErrno(EINVAL, 'write(fault fd)', `no page request ${key} was read`);
    this.cookies.delete(key);
    const resp = encode(iommu_hwpt_page_response, { cookie, code: code === 0 ? IOMMUFD_PAGE_RESP_SUCCESS : IOMMUFD_PAGE_RESP_INVALID });
    const w = this.u.write(s.faultFd, resp);
    return w.rc < 0 ? failErrno(w.errno, 'write(fault fd)') : ok();
  }

  // ---- teardown ---------------------------------------------------------------------------------------------

  /**
   * Detach every PASID and the RID, destroy the HWPTs, close the fault queue and the device fd
   * (closing the cdev unbinds; a passed-in fd stays open, detached). Errors are collected, not
   * fatal: unassign always gets as far as it can.
   */
  private teardownDevice(s: DevState): IntentFailure | null {
    let first: IntentFailure | null = null;
    const note = (r: SysResult, call: string) => {
      if (r.rc < 0 && !first) first = failErrno(r.errno, call);
    };
    for (const [pasid, p] of [...s.pasids]) {
      const f = this.detachPasid(s, pasid);
      if (f && !first) first = f;
      note(this.destroy(p.hwpt), 'IOMMU_DESTROY');
      s.pasids.delete(pasid);
    }
    if (s.parentId) {
      if (s.spec.kind === 'vdpa') {
        for (let g = s.groups - 1; g >= 0; g--) note(this.setIommuFd(s, -1, g, 0), 'VHOST_VDPA_SET_IOMMU_FD');
      } else {
        note(this.u.ioctl(s.fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { flags: 0 }, 'argsz'), 'VFIO_DEVICE_DETACH_IOMMUFD_PT');
      }
      this.releaseParent(s);
    }
    if (s.faultFd >= 0) {
      note(this.u.close(s.faultFd), 'close(fault fd)');
      note(this.destroy(s.faultId), 'IOMMU_DESTROY');
      s.faultFd = -1;
      s.faultId = 0;
    }
    for (const k of [...this.cookies.keys()]) if (k.startsWith(`${s.spec.name}/`)) this.cookies.delete(k);
    if (!s.passed && s.fd >= 0) note(this.u.close(s.fd), 'close(device)');
    s.fd = -1;
    return first;
  }

  unassign(device: string): IntentResult {
    const l = this.life(device);
    if (!(l instanceof DeviceLifecycle)) return l;
    const refused = l.check({ op: 'unassign' });
    if (refused) return refused;
    this.u.reset();
    const s = this.devs.get(device)!;
    const f = this.teardownDevice(s);
    this.devs.delete(device);
    l.commit({ op: 'unassign' });
    return f ?? ok();
  }

  /** "iommufd", "device:<name>", "fault:<name>" for every fd this backend holds, in open order. */
  openFds(): readonly string[] {
    const names: string[] = [];
    if (this.iommufd >= 0) names.push('iommufd');
    for (const s of this.devs.values()) {
      if (s.fd >= 0) names.push(ctxOf(s));
      if (s.faultFd >= 0) names.push(`fault:${s.spec.name}`);
    }
    return names;
  }

  fdDevices(name: string): readonly string[] {
    return name === 'iommufd' ? [] : [name.slice(name.indexOf(':') + 1)];
  }

  private fdOf(name: string): number {
    if (name === 'iommufd') return this.iommufd;
    const [kind, dev] = name.split(':') as [string, string];
    const s = this.devs.get(dev);
    if (!s) return -1;
    return kind === 'device' ? s.fd : kind === 'fault' ? s.faultFd : -1;
  }

  private forget(name: string): void {
    if (name === 'iommufd') {
      this.iommufd = -1;
      this.ioasId = 0;
      this.parents.clear();
      return;
    }
    const [kind, dev] = name.split(':') as [string, string];
    const s = this.devs.get(dev)!;
    if (kind === 'device') s.fd = -1;
    else {
      s.faultFd = -1;
      s.faultId = 0;
    }
  }

  /**
   * Closes the named fds in order, with no ioctl first (the VMM exiting, or killed). From another
   * process's task the fd is handed over (SCM_RIGHTS), the VMM's copy closed, and the last close
   * happens there, so the kernel's release runs in that task.
   */
  close(fdOrder: readonly string[], fromTask: Task): IntentResult {
    for (const name of fdOrder) {
      const fd = this.fdOf(name);
      if (fd < 0) return illegal(name, 'closed', `fd ${name}: not open`);
      let r: SysResult;
      if (fromTask.process === this.task.process) r = this.u.close(fd, fromTask);
      else {
        const there = this.init.sys.passFd(this.task, fd, fromTask);
        if (there < 0) return failErrno(fromTask.errno, 'sendmsg(SCM_RIGHTS)', name);
        this.u.close(fd);
        r = this.u.close(there, fromTask);
      }
      if (r.rc < 0) return failErrno(r.errno, `close(${name})`);
      this.forget(name);
    }
    // a device whose fd is gone is no longer assigned; once nothing is open, every device is closed
    for (const [name, s] of [...this.devs]) {
      if (s.fd >= 0) continue;
      this.devs.delete(name);
    }
    if (this.iommufd < 0 && this.devs.size === 0) {
      for (const name of this.lifecycles.names()) {
        const l = this.lifecycles.get(name)!;
        if (!l.check({ op: 'close' })) l.commit({ op: 'close' });
      }
    }
    return ok();
  }
}

/** The factory createVm takes. */
export function iommufdBackend(extra: IommufdBackendExtra = {}): BackendFactory {
  return (init) => new IommufdBackend(init, extra);
}
