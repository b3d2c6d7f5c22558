/**
 * VMM backend A (`tunnel`): the userspace side of v8 as Yi Liu's QEMU vSVA RFC v11 did it
 * (<20210302203827.437645-1-yi.l.liu@intel.com>, branch vsva_5.12_rc1_qemu_rfcv11: the
 * HostIOMMUContext over a VFIO container, nesting-cap sync, PASID allocation through /dev/ioasid,
 * PASID-cache emulation → BIND/UNBIND_PGTBL, guest flushes → CACHE_INVLD), with the era's fault
 * path (Eric Auger's v13 regions, backend-tunnel-fault.ts) and vDPA through the projected
 * vhost-vdpa tunnel. Syscalls on the VMM task's fd table only.
 *
 * - One container per IOMMU group: v8 03/10 keeps a nesting container to one group, so a second
 *   group needs its own container, its own MAP_DMA of guest RAM and its own pins.
 * - vPASID == pPASID: IOASID_REQUEST_ALLOC for exactly {pasid, pasid}; the PASID is freed when
 *   its last binding goes (the backend counts bindings across devices).
 * - replacePasid = unbind + bind: v8 has no update-in-place (QEMU's VTD_PASID_UPDATE is unbind
 *   then bind); between the two the PASID entry is not present and a DMA on it faults.
 * - invalidate: struct iommu_cache_invalidate_info describes one range and NESTING_OP carries one
 *   struct, so there is no array to batch into. `qemu` and `batched` both issue one ioctl per
 *   entry: the option changes nothing for A (merging the entries into one PASID-wide flush would
 *   change what is flushed, so the backend does not).
 * - close(order, fromTask): fds are closed in the order named; from a task of another process the
 *   fd is first passed there (SCM_RIGHTS) and the VMM's copy closed, so the last reference drops
 *   in that process, where v8's detach_group finds no /dev/ioasid user (current->mm).
 */
import { kfn, type KFn } from '../../sim/tracer.ts';
import type { Task } from '../kernel/process.ts';
import {
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_GPASID_BIND_VERSION_1,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_NESTING_FEAT_BIND_PGTBL,
  IOMMU_NESTING_FEAT_CACHE_INVLD,
  IOMMU_PASID_FORMAT_INTEL_VTD,
  IOMMU_SVA_GPASID_VAL,
  IOMMU_SVA_VTD_GPASID_EAFE,
  IOMMU_SVA_VTD_GPASID_SRE,
  IOMMU_SVA_VTD_GPASID_WPE,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
  VFIO_IOMMU_TYPE1_INFO_CAP_NESTING,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VHOST_ACCESS_RW,
  VHOST_IOTLB_UPDATE,
  decode,
  encode,
  iommu_cache_invalidate_info,
  iommu_gpasid_bind_data,
  iommu_nesting_info,
  ioasid_alloc_request,
  sizeOf,
  vfio_group_status,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_info,
  vhost_msg_v2,
  type UapiObject,
} from '../kernel/uapi/index.ts';
import {
  IOASID_REQUEST_ALLOC,
  IOASID_REQUEST_FREE,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_NESTING_OP,
  VFIO_SET_IOMMU,
  VHOST_SET_BACKEND_FEATURES,
  VHOST_SET_OWNER,
  VHOST_VDPA_GET_NESTING_INFO,
  VHOST_VDPA_NESTING_OP,
} from '../kernel/uapi/ioctls/index.ts';
import {
  groupInvalidations,
  isWholePasid,
  nestingOf,
  ok,
  type BackendInit,
  type BackendOptions,
  type BindFlags,
  type DeviceSpec,
  type HostFault,
  type IntentResult,
  type InvRange,
  type PageResponseCode,
  type VmmBackend,
} from './backend.ts';
import { pushPageResponse, readFaultRing, setupFaultRings, type FaultRings } from './backend-tunnel-fault.ts';
import { SyscallFailed, UserMem, capChain, intent } from './backend-tunnel-user.ts';
import { setU32 } from '../kernel/uapi/le.ts';
import { DeviceLifecycle, DeviceLifecycles } from './lifecycle.ts';

const RFC: KFn['prov'] = { kind: 'posted', source: 'qemu-devel: Yi Liu, "[RFC v11] intel_iommu: expose Shared Virtual Addressing to VMs" <20210302203827.437645-1-yi.l.liu@intel.com>' };
const q = (name: string, sig: string): KFn => kfn({ name, layer: 'vmm', sig, prov: RFC });
const FN = {
  container: q('vfio_connect_container', 'static int vfio_connect_container(VFIOGroup *group, AddressSpace *as, Error **errp)'),
  nesting: q('vfio_get_nesting_iommu_cap', 'static int vfio_get_nesting_iommu_cap(VFIOContainer *container, struct vfio_iommu_type1_info_cap_nesting **cap_nesting)'),
  bind: q('vtd_bind_guest_pasid', 'static int vtd_bind_guest_pasid(IntelIOMMUState *s, VTDBus *vtd_bus, int devfn, int pasid, VTDPASIDEntry *pe, VTDPASIDOp op)'),
  alloc: q('vfio_host_iommu_ctx_pasid_alloc', 'static int vfio_host_iommu_ctx_pasid_alloc(HostIOMMUContext *iommu_ctx, uint32_t min, uint32_t max, uint32_t *pasid)'),
  flush: q('vfio_host_iommu_ctx_flush_stage1_cache', 'static int vfio_host_iommu_ctx_flush_stage1_cache(HostIOMMUContext *iommu_ctx, struct iommu_cache_invalidate_info *cache)'),
};

/** IOMMU_HWPT-free world: the VMM's view of a nesting container (one per group) */
interface Container {
  readonly group: string;
  cont: number;
  grp: number;
  /** devices of the group currently assigned through it */
  readonly users: Set<string>;
}

interface DevState {
  readonly spec: DeviceSpec;
  container: Container | null;
  devfd: number;
  rings: FaultRings | null;
  /** vdpa: the vhost-vdpa fd */
  vfd: number;
}

const NEEDED = IOMMU_NESTING_FEAT_BIND_PGTBL | IOMMU_NESTING_FEAT_CACHE_INVLD;

export interface TunnelBackendOptions {
  /** called between the unbind and the bind of replacePasid: tests issue a DMA in the window */
  readonly onReplaceWindow?: (device: string, pasid: number) => void;
}

export class TunnelBackend implements VmmBackend {
  readonly design = 'tunnel' as const;
  readonly options: BackendOptions;
  readonly lifecycles: DeviceLifecycles;
  private readonly u: UserMem;
  private readonly devs = new Map<string, DevState>();
  private readonly containers = new Map<string, Container>();
  /** named fds the backend holds, for close orders and openFds */
  private readonly fds = new Map<string, number>();
  /** bindings per PASID across devices: the PASID is freed with the last */
  private readonly pasidRefs = new Map<number, number>();

  constructor(
    readonly init: BackendInit,
    readonly extra: TunnelBackendOptions = {},
  ) {
    this.options = init.options;
    this.lifecycles = new DeviceLifecycles(init.devices);
    this.u = new UserMem(init.sys, init.task);
    for (const spec of init.devices) this.devs.set(spec.name, { spec, container: null, devfd: -1, rings: null, vfd: -1 });
  }

  /**
   * A VMM-side span. A SyscallFailed must not cross sim.call (an exception there is an oops): it is
   * caught inside, the span closes normally, and it is rethrown outside.
   */
  private span<T>(fn: KFn, body: () => T): T {
    let failed: SyscallFailed | null = null;
    const r = this.init.sim.call(fn, () => {
      try {
        return body();
      } catch (e) {
        if (!(e instanceof SyscallFailed)) throw e;
        failed = e;
        return undefined as T;
      }
    });
    if (failed) throw failed;
    return r;
  }

  private life(device: string): DeviceLifecycle {
    return this.lifecycles.get(device)!;
  }

  private track(name: string, fd: number): number {
    this.fds.set(name, fd);
    return fd;
  }

  private closeNamed(name: string): void {
    const fd = this.fds.get(name);
    if (fd === undefined) return;
    this.fds.delete(name);
    this.init.sys.close(this.init.task, fd);
  }

  // ---- assign --------------------------------------------------------------------------------

  /** /dev/ioasid, once per VMM (a second open by the same process is EBUSY) */
  private ioasidFd(): number {
    return this.fds.get('ioasid') ?? this.track('ioasid', this.u.open('/dev/ioasid'));
  }

  /** GET_INFO twice (argsz dance), then the nesting capability's iommu_nesting_info */
  private nestingInfo(cont: number): UapiObject {
    return this.span(FN.nesting, () => {
      const u = this.u;
      const at = u.put(vfio_iommu_type1_info, { argsz: sizeOf(vfio_iommu_type1_info) });
      u.ioctl(cont, VFIO_IOMMU_GET_INFO, at, 'VFIO_IOMMU_GET_INFO');
      const argsz = u.get(vfio_iommu_type1_info, at, 24).argsz as number;
      const big = u.put(vfio_iommu_type1_info, { argsz }, argsz);
      u.ioctl(cont, VFIO_IOMMU_GET_INFO, big, 'VFIO_IOMMU_GET_INFO');
      const bytes = u.read(big, argsz);
      const first = decode(vfio_iommu_type1_info, bytes.subarray(0, 24)).cap_offset as number;
      const cap = capChain(bytes, first).find(([id]) => id === VFIO_IOMMU_TYPE1_INFO_CAP_NESTING);
      if (!cap) throw new SyscallFailed({ ok: false, kind: 'errno', errno: 95, call: 'VFIO_IOMMU_GET_INFO', message: 'VFIO_IOMMU_GET_INFO: no nesting capability' });
      return decode(iommu_nesting_info, bytes.subarray(cap[1] + 8, cap[1] + 8 + sizeOf(iommu_nesting_info)));
    });
  }

  private connectContainer(spec: DeviceSpec): Container {
    const group = spec.paths.group ?? '';
    const have = this.containers.get(group);
    if (have) return have;
    const u = this.u;
    // without nesting (no vIOMMU): plain type1v2, as QEMU's vfio_get_iommu_type picks it
    const nesting = nestingOf(this.options);
    const type = nesting ? VFIO_TYPE1_NESTING_IOMMU : VFIO_TYPE1v2_IOMMU;
    const typeName = nesting ? 'VFIO_TYPE1_NESTING_IOMMU' : 'VFIO_TYPE1v2_IOMMU';
    return this.span(FN.container, () => {
      const c: Container = { group, cont: -1, grp: -1, users: new Set() };
      const gname = `group:${group}`;
      try {
        c.cont = this.track(`container:${group}`, u.open('/dev/vfio/vfio'));
        u.ioctl(c.cont, VFIO_GET_API_VERSION, 0, 'VFIO_GET_API_VERSION');
        if (u.ioctl(c.cont, VFIO_CHECK_EXTENSION, type, 'VFIO_CHECK_EXTENSION') !== 1) {
          throw new SyscallFailed({ ok: false, kind: 'errno', errno: 95, call: 'VFIO_CHECK_EXTENSION', message: `no ${typeName}` });
        }
        c.grp = this.track(gname, spec.fds?.group ?? u.open(group));
        const st = u.put(vfio_group_status, { argsz: 8 });
        u.ioctl(c.grp, VFIO_GROUP_GET_STATUS, st, 'VFIO_GROUP_GET_STATUS');
        if (!((u.get(vfio_group_status, st, 8).flags as number) & VFIO_GROUP_FLAGS_VIABLE)) {
          throw new SyscallFailed({ ok: false, kind: 'errno', errno: 22, call: 'VFIO_GROUP_GET_STATUS', message: `${group} is not viable` });
        }
        u.ioctl(c.grp, VFIO_GROUP_SET_CONTAINER, u.s32(c.cont), 'VFIO_GROUP_SET_CONTAINER');
        u.ioctl(c.cont, VFIO_SET_IOMMU, type, 'VFIO_SET_IOMMU');
        if (nesting) {
          const ni = this.nestingInfo(c.cont);
          if (((ni.features as number) & NEEDED) !== NEEDED) {
            throw new SyscallFailed({ ok: false, kind: 'errno', errno: 95, call: 'VFIO_IOMMU_GET_INFO', message: 'nesting without BIND_PGTBL | CACHE_INVLD' });
          }
        }
        const ram = this.init.guestRam;
        const map = u.put(vfio_iommu_type1_dma_map, {
          argsz: sizeOf(vfio_iommu_type1_dma_map),
          flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
          vaddr: BigInt(ram.hva),
          iova: BigInt(ram.gpa),
          size: BigInt(ram.size),
        });
        u.ioctl(c.cont, VFIO_IOMMU_MAP_DMA, map, 'VFIO_IOMMU_MAP_DMA');
      } catch (e) {
        this.closeNamed(gname);
        this.closeNamed(`container:${group}`);
        throw e;
      }
      this.containers.set(group, c);
      return c;
    });
  }

  private releaseContainer(c: Container): void {
    if (c.users.size) return;
    this.containers.delete(c.group);
    this.closeNamed(`group:${c.group}`);
    this.closeNamed(`container:${c.group}`);
  }

  private assignVfio(d: DevState): void {
    const u = this.u;
    const c = this.connectContainer(d.spec);
    const nesting = nestingOf(this.options);
    try {
      if (nesting) this.ioasidFd();
      const name = u.bytes(new TextEncoder().encode(`${d.spec.sysfsName ?? d.spec.name}\0`));
      d.devfd = this.track(`device:${d.spec.name}`, u.ioctl(c.grp, VFIO_GROUP_GET_DEVICE_FD, name, 'VFIO_GROUP_GET_DEVICE_FD'));
      // the DMA fault regions carry nested stage-1 faults: nothing to report without nesting
      if (nesting) d.rings = setupFaultRings(u, d.devfd, (fd) => this.track(`eventfd:${d.spec.name}`, fd));
    } catch (e) {
      this.closeNamed(`eventfd:${d.spec.name}`);
      this.closeNamed(`device:${d.spec.name}`);
      d.devfd = -1;
      this.releaseContainer(c);
      throw e;
    }
    c.users.add(d.spec.name);
    d.container = c;
  }

  private assignVdpa(d: DevState): void {
    const u = this.u;
    const path = d.spec.paths.vhostVdpa ?? '';
    const vname = `vhost-vdpa:${d.spec.name}`;
    const nesting = nestingOf(this.options);
    try {
      if (nesting) this.ioasidFd();
      d.vfd = this.track(vname, d.spec.fds?.vhostVdpa ?? u.open(path));
      u.ioctl(d.vfd, VHOST_SET_OWNER, 0, 'VHOST_SET_OWNER');
      // IOTLB_MSG_V2 | IOTLB_ASID
      u.ioctl(d.vfd, VHOST_SET_BACKEND_FEATURES, u.bytes(Uint8Array.of(0b1010, 0, 0, 0, 0, 0, 0, 0)), 'VHOST_SET_BACKEND_FEATURES');
      if (nesting) {
        const q = u.bytes(new Uint8Array(4), sizeOf(iommu_nesting_info));
        u.ioctl(d.vfd, VHOST_VDPA_GET_NESTING_INFO, q, 'VHOST_VDPA_GET_NESTING_INFO');
        u.ioctl(d.vfd, VHOST_VDPA_GET_NESTING_INFO, q, 'VHOST_VDPA_GET_NESTING_INFO');
        if (((u.get(iommu_nesting_info, q, sizeOf(iommu_nesting_info)).features as number) & NEEDED) !== NEEDED) {
          throw new SyscallFailed({ ok: false, kind: 'errno', errno: 95, call: 'VHOST_VDPA_GET_NESTING_INFO', message: 'nesting without BIND_PGTBL | CACHE_INVLD' });
        }
      }
      const ram = this.init.guestRam;
      const msg = u.put(vhost_msg_v2, { type: 2, asid: 0, iotlb: { iova: BigInt(ram.gpa), size: BigInt(ram.size), uaddr: BigInt(ram.hva), perm: VHOST_ACCESS_RW, type: VHOST_IOTLB_UPDATE } });
      u.write(d.vfd, msg, sizeOf(vhost_msg_v2), 'VHOST_IOTLB_UPDATE');
    } catch (e) {
      this.closeNamed(vname);
      d.vfd = -1;
      throw e;
    }
  }

  assign(device: string): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'assign' });
    if (bad) return bad;
    const d = this.devs.get(device)!;
    const r = intent(() => (d.spec.kind === 'vdpa' ? this.assignVdpa(d) : this.assignVfio(d)));
    if (r) return r;
    this.life(device).commit({ op: 'assign' });
    return ok();
  }

  // ---- PASIDs ------------------------------------------------------------------------------------

  private bindData(pasid: number, root: number, flags: BindFlags): Uint8Array {
    const vtd = (flags.sre ? IOMMU_SVA_VTD_GPASID_SRE : 0) | (flags.eafe ? IOMMU_SVA_VTD_GPASID_EAFE : 0) | (flags.wpe ? IOMMU_SVA_VTD_GPASID_WPE : 0);
    return encode(iommu_gpasid_bind_data, {
      argsz: sizeOf(iommu_gpasid_bind_data),
      version: IOMMU_GPASID_BIND_VERSION_1,
      format: IOMMU_PASID_FORMAT_INTEL_VTD,
      addr_width: flags.addrWidth,
      flags: BigInt(IOMMU_SVA_GPASID_VAL),
      gpgd: BigInt(root),
      hpasid: BigInt(pasid),
      gpasid: BigInt(pasid),
      vendor: { vtd: { flags: BigInt(vtd), pat: 0, emt: 0 } },
    });
  }

  /** VFIO_IOMMU_NESTING_OP on the container, or the projection's VHOST_VDPA_NESTING_OP */
  private nestingOp(d: DevState, op: number, payload: Uint8Array): number {
    const b = new Uint8Array(8 + payload.length);
    setU32(b, 0, b.length);
    setU32(b, 4, op);
    b.set(payload, 8);
    const at = this.u.bytes(b);
    if (d.spec.kind === 'vdpa') return this.u.ioctl(d.vfd, VHOST_VDPA_NESTING_OP, at, 'VHOST_VDPA_NESTING_OP');
    return this.u.ioctl(d.container!.cont, VFIO_IOMMU_NESTING_OP, at, 'VFIO_IOMMU_NESTING_OP');
  }

  /** exactly {pasid, pasid} from /dev/ioasid, once per PASID */
  private allocPasid(pasid: number): boolean {
    if (this.pasidRefs.has(pasid)) return false;
    this.span(FN.alloc, () => {
      const req = this.u.put(ioasid_alloc_request, { argsz: sizeOf(ioasid_alloc_request), flags: 0, range: { min: pasid, max: pasid } });
      this.u.ioctl(this.ioasidFd(), IOASID_REQUEST_ALLOC, req, 'IOASID_REQUEST_ALLOC');
    });
    this.pasidRefs.set(pasid, 0);
    return true;
  }

  private putPasid(pasid: number): void {
    const n = (this.pasidRefs.get(pasid) ?? 1) - 1;
    if (n > 0) {
      this.pasidRefs.set(pasid, n);
      return;
    }
    this.pasidRefs.delete(pasid);
    const fd = this.fds.get('ioasid');
    if (fd !== undefined) this.u.ioctl(fd, IOASID_REQUEST_FREE, this.u.s32(pasid), 'IOASID_REQUEST_FREE');
  }

  private bind(d: DevState, pasid: number, root: number, flags: BindFlags): void {
    this.span(FN.bind, () => {
      const fresh = this.allocPasid(pasid);
      try {
        this.nestingOp(d, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, this.bindData(pasid, root, flags));
      } catch (e) {
        if (fresh) this.putPasid(pasid);
        throw e;
      }
      this.pasidRefs.set(pasid, this.pasidRefs.get(pasid)! + 1);
    });
  }

  /** UNBIND_PGTBL identifies the binding by the same struct; VFIO returns 0 whatever happened */
  private unbind(d: DevState, pasid: number, root: number): void {
    this.span(FN.bind, () => {
      this.nestingOp(d, VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, this.bindData(pasid, root, { addrWidth: 48, sre: false, wpe: false, eafe: false }));
      this.putPasid(pasid);
    });
  }

  bindPasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'bind', pasid, root });
    if (bad) return bad;
    const r = intent(() => this.bind(this.devs.get(device)!, pasid, root, flags));
    if (r) return r;
    this.life(device).commit({ op: 'bind', pasid, root });
    return ok();
  }

  /** unbind + bind: the entry is not present in between, so a DMA on the PASID then faults */
  replacePasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'replace', pasid, root });
    if (bad) return bad;
    const d = this.devs.get(device)!;
    const life = this.life(device);
    const old = life.bound.get(pasid)!;
    let unbound = false;
    const r = intent(() => {
      // hold the PASID across the window, so the unbind does not free it
      this.pasidRefs.set(pasid, (this.pasidRefs.get(pasid) ?? 0) + 1);
      try {
        this.unbind(d, pasid, old);
        unbound = true;
        this.extra.onReplaceWindow?.(device, pasid);
        this.bind(d, pasid, root, flags);
      } finally {
        this.putPasid(pasid);
      }
    });
    if (r) {
      // a failed bind leaves the PASID unbound: the lifecycle follows what the host has
      if (unbound) life.commit({ op: 'unbind', pasid });
      return r;
    }
    life.commit({ op: 'replace', pasid, root });
    return ok();
  }

  unbindPasid(device: string, pasid: number): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'unbind', pasid });
    if (bad) return bad;
    const life = this.life(device);
    const r = intent(() => this.unbind(this.devs.get(device)!, pasid, life.bound.get(pasid)!));
    if (r) return r;
    life.commit({ op: 'unbind', pasid });
    return ok();
  }

  // ---- invalidation --------------------------------------------------------------------------

  private invInfo(pasid: number, range: InvRange): Uint8Array {
    const argsz = sizeOf(iommu_cache_invalidate_info);
    const version = IOMMU_CACHE_INVALIDATE_INFO_VERSION_1;
    const cache = IOMMU_CACHE_INV_TYPE_IOTLB;
    // IOTLB only: with ATS the driver flushes the device-TLB too (intel_iommu_sva_invalidate)
    if (isWholePasid(range)) {
      return encode(iommu_cache_invalidate_info, { argsz, version, cache, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid } } });
    }
    return encode(iommu_cache_invalidate_info, {
      argsz,
      version,
      cache,
      granularity: IOMMU_INV_GRANU_ADDR,
      granu: {
        addr_info: {
          flags: IOMMU_INV_ADDR_FLAGS_PASID | (range.leaf ? IOMMU_INV_ADDR_FLAGS_LEAF : 0),
          archid: 0,
          pasid,
          addr: range.addr,
          granule_size: 4096,
          nb_granules: range.pages,
        },
      },
    });
  }

  invalidate(device: string, pasid: number, ranges: readonly InvRange[]): IntentResult {
    const l = this.lifecycles.lookup(device);
    const bad = l instanceof DeviceLifecycle ? l.checkInvalidate(pasid) : l;
    if (bad) return bad;
    const d = this.devs.get(device)!;
    const r = intent(() => {
      // one NESTING_OP per entry whatever the option: the uAPI has no array (see the file comment)
      for (const group of groupInvalidations(ranges, this.options.invalidation, this.init.sim)) {
        for (const range of group) this.span(FN.flush, () => this.nestingOp(d, VFIO_IOMMU_NESTING_OP_CACHE_INVLD, this.invInfo(pasid, range)));
      }
    });
    return r ?? ok();
  }

  // ---- faults ------------------------------------------------------------------------------------

  readFaults(): IntentResult<readonly HostFault[]> {
    const out: HostFault[] = [];
    const r = intent(() => {
      for (const d of this.devs.values()) if (d.rings && d.devfd >= 0) out.push(...readFaultRing(this.u, d.devfd, d.rings, d.spec.name));
    });
    return r ?? ok(out);
  }

  pageResponse(device: string, pasid: number, group: number, code: PageResponseCode): IntentResult {
    const l = this.lifecycles.lookup(device);
    const bad = l instanceof DeviceLifecycle ? l.checkPageResponse(pasid) : l;
    if (bad) return bad;
    const d = this.devs.get(device)!;
    if (!d.rings) return { ok: false, kind: 'errno', errno: 95, call: 'pageResponse', message: `${device}: no DMA fault response region` };
    return intent(() => pushPageResponse(this.u, d.devfd, d.rings!, pasid, group, code)) ?? ok();
  }

  // ---- tear-down ---------------------------------------------------------------------------------

  unassign(device: string): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'unassign' });
    if (bad) return bad;
    const d = this.devs.get(device)!;
    const life = this.life(device);
    const r = intent(() => {
      for (const [pasid, root] of life.bound) this.unbind(d, pasid, root);
      if (d.spec.kind === 'vdpa') {
        this.closeNamed(`vhost-vdpa:${device}`);
        d.vfd = -1;
        return;
      }
      this.closeNamed(`device:${device}`);
      this.closeNamed(`eventfd:${device}`);
      d.devfd = -1;
      d.rings = null;
      const c = d.container!;
      c.users.delete(device);
      d.container = null;
      this.releaseContainer(c);
    });
    if (r) return r;
    life.commit({ op: 'unassign' });
    return ok();
  }

  /**
   * Closes the named fds in order as `fromTask`: a thread of the VMM closes its own fds; a task of
   * another process gets each fd passed first, and the VMM's copy is closed before, so that the
   * last reference drops there. Every device's lifecycle then ends.
   */
  close(fdOrder: readonly string[], fromTask: Task): IntentResult {
    const { sys, task } = this.init;
    for (const name of fdOrder) {
      const fd = this.fds.get(name);
      if (fd === undefined) return { ok: false, kind: 'errno', errno: 9, call: 'close', message: `close: the backend holds no fd "${name}"` };
      this.fds.delete(name);
      if (fromTask.process === task.process) {
        if (sys.close(fromTask, fd) < 0) return { ok: false, kind: 'errno', errno: fromTask.errno, call: 'close', message: `close(${name}) failed` };
        continue;
      }
      const there = sys.passFd(task, fd, fromTask);
      if (there < 0) return { ok: false, kind: 'errno', errno: fromTask.errno, call: 'sendmsg', message: `passing ${name} failed` };
      sys.close(task, fd);
      sys.close(fromTask, there);
    }
    for (const n of this.lifecycles.names()) if (!this.life(n).check({ op: 'close' })) this.life(n).commit({ op: 'close' });
    for (const d of this.devs.values()) {
      d.container = null;
      d.devfd = d.vfd = -1;
      d.rings = null;
    }
    this.containers.clear();
    this.pasidRefs.clear();
    return ok();
  }

  openFds(): readonly string[] {
    return [...this.fds.keys()];
  }

  fdDevices(name: string): readonly string[] {
    const [kind, rest] = [name.slice(0, name.indexOf(':')), name.slice(name.indexOf(':') + 1)];
    if (kind === 'group') return [...this.devs.values()].filter((d) => d.spec.paths.group === rest).map((d) => d.spec.name);
    if (kind === 'device' || kind === 'eventfd' || kind === 'vhost-vdpa') return [rest];
    return []; // ioasid, container:<group>
  }
}

/** BackendFactory for design A. */
export function tunnelBackend(init: BackendInit, extra: TunnelBackendOptions = {}): TunnelBackend {
  return new TunnelBackend(init, extra);
}
