import { expect } from 'vitest';
import { IS_ERR } from '../../../models/kernel/errno.ts';
import { uptr, type UserPtr } from '../../../models/kernel/mm.ts';
import type { Task } from '../../../models/kernel/process.ts';
import {
  IOMMU_GPASID_BIND_VERSION_1,
  IOMMU_PASID_FORMAT_INTEL_VTD,
  IOMMU_SVA_GPASID_VAL,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
  VFIO_TYPE1_NESTING_IOMMU,
  encode,
  iommu_cache_invalidate_info,
  iommu_gpasid_bind_data,
  ioasid_alloc_request,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_nesting_op,
  type StructDecl,
  type UapiInput,
} from '../../../models/kernel/uapi/index.ts';
import { IOASID_REQUEST_ALLOC } from '../../../models/iommu/ioasid.ts';
import {
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_NESTING_OP,
  VFIO_SET_IOMMU,
  tunnel_init,
} from '../../../models/vfio/vfio.ts';
import { HostMachine, type HostOptions } from '../../../models/machine/host.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

export const GUEST_VA = 0x7f00_0000_0000;
export const PASID = 5;
/** the guest page GUEST_VA maps to */
export const DATA_GPA = 0x10_0000;

/**
 * A host with design A's modules loaded and a VMM process ("qemu") that mmaps guest RAM: VFIO
 * pins those pages and maps IOVA = GPA onto their frames. The guest's first-stage table is built
 * inside that RAM, through the VMM's mapping (GPA → VMM frame), as a guest kernel would write it.
 */
export function tunnelRig(opts: HostOptions & { devices?: number; groups?: number; ats?: boolean; pri?: boolean; ramSize?: number } = {}) {
  const m = new HostMachine({ frames: 1 << 16, ...opts });
  const task = m.k.createProcess('qemu');
  const n = opts.devices ?? 1;
  const groups = opts.groups ?? 1;
  const devs = Array.from({ length: n }, (_, i) => m.addPciDevice(`dsa${i}`, 0x0300 + i * 8, { pasidBits: 20, ats: opts.ats ?? opts.pri ?? false, pri: opts.pri ?? false }, groups === 1 ? 3 : 3 + i));
  tunnel_init(m);
  const ramSize = opts.ramSize ?? 4 << 20;
  const ram = task.mm.mmap(ramSize, 'qemu:guest-ram');
  if (IS_ERR(ram)) throw new Error('mmap guest RAM');
  const scratch = task.mm.mmap(256 * 1024, 'qemu:heap');
  if (IS_ERR(scratch)) throw new Error('mmap');
  let next = 0;
  const putBytes = (bytes: Uint8Array, t: Task = task): UserPtr => {
    const at = uptr(scratch + next);
    next += Math.ceil(Math.max(bytes.length, 8) / 8) * 8;
    if (t.mm !== task.mm) throw new Error('scratch belongs to qemu');
    if (task.mm.access(at, bytes, 0, bytes.length, true)) throw new Error('scratch full');
    return at;
  };
  const put = (decl: StructDecl, v: UapiInput) => putBytes(encode(decl, v));
  const readBytes = (at: number, len: number): Uint8Array => {
    const b = new Uint8Array(len);
    if (task.mm.access(at, b, 0, len, false)) throw new Error('read');
    return b;
  };
  const int = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    return putBytes(b);
  };
  const sys = m.sys;
  const ioctl = (fd: number, cmd: number, arg: number, t: Task = task) => sys.ioctl(t, fd, cmd, arg);

  // the guest's first-stage tables, in guest RAM
  const { firstStage } = vmmGuestTables(m, task, ram, ramSize);
  const pt = firstStage();
  pt.map(GUEST_VA, DATA_GPA, 0x8000);
  const readGuest = (gpa: number, len: number) => readBytes(ram + gpa, len);

  /** open + SET_CONTAINER + SET_IOMMU(NESTING) + MAP_DMA(all RAM) + /dev/ioasid alloc {PASID} */
  const assign = () => {
    const cont = sys.open(task, '/dev/vfio/vfio');
    const grp = sys.open(task, `/dev/vfio/${m.core.iommu_group_get(devs[0]!.dev)!.id}`);
    expect(ioctl(grp, VFIO_GROUP_SET_CONTAINER, int(cont))).toBe(0);
    expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU)).toBe(0);
    expect(ioctl(cont, VFIO_IOMMU_MAP_DMA, put(vfio_iommu_type1_dma_map, { argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr: BigInt(ram), iova: 0n, size: BigInt(ramSize) }))).toBe(0);
    const ioasid = sys.open(task, '/dev/ioasid');
    expect(ioctl(ioasid, IOASID_REQUEST_ALLOC, put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: PASID, max: PASID } }))).toBe(PASID);
    return { cont, grp, ioasid };
  };

  const bindData = (over: Record<string, unknown> = {}, vtd: Record<string, unknown> = {}) =>
    encode(iommu_gpasid_bind_data, {
      argsz: 72,
      version: IOMMU_GPASID_BIND_VERSION_1,
      format: IOMMU_PASID_FORMAT_INTEL_VTD,
      addr_width: 48,
      flags: BigInt(IOMMU_SVA_GPASID_VAL),
      gpgd: BigInt(pt.root),
      hpasid: BigInt(PASID),
      gpasid: BigInt(PASID),
      vendor: { vtd: { flags: 0n, pat: 0, emt: 0, ...vtd } },
      ...over,
    } as UapiInput);

  /** a VFIO_IOMMU_NESTING_OP buffer: 8-byte header, then the payload */
  const nestingOp = (op: number, payload: Uint8Array) =>
    put(vfio_iommu_type1_nesting_op, { argsz: 8 + payload.length, flags: op, data: payload });
  const bind = (cont: number, data = bindData(), t: Task = task) => ioctl(cont, VFIO_IOMMU_NESTING_OP, nestingOp(VFIO_IOMMU_NESTING_OP_BIND_PGTBL, data), t);
  const unbind = (cont: number, data = bindData()) => ioctl(cont, VFIO_IOMMU_NESTING_OP, nestingOp(VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, data));
  const invalidate = (cont: number, info: UapiInput) =>
    ioctl(cont, VFIO_IOMMU_NESTING_OP, nestingOp(VFIO_IOMMU_NESTING_OP_CACHE_INVLD, encode(iommu_cache_invalidate_info, info)));

  return { m, task, devs, ram, ramSize, put, putBytes, readBytes, int, ioctl, sys, pt, firstStage, readGuest, assign, bindData, nestingOp, bind, unbind, invalidate };
}

export type TunnelRig = ReturnType<typeof tunnelRig>;

export type TunnelFd = 'container' | 'group' | 'ioasid';

/**
 * `assign` and a bind as a fail-nth run takes them: every step goes on only while none has failed
 * (the open of /dev/vfio/3 assumes the first device's group). Returns the fds that opened, `step`
 * to go on the same way, and `failedAt()`: the first step that failed, '' for none.
 */
export function setUpThroughBind(r: TunnelRig) {
  const fds: Partial<Record<TunnelFd, number>> = {};
  let failedAt = '';
  const step = (name: string, f: () => number): number => {
    if (failedAt) return -1;
    const ret = f();
    if (ret < 0) failedAt = name;
    return ret;
  };
  const { sys, task, ioctl } = r;
  const cont = step('open container', () => sys.open(task, '/dev/vfio/vfio'));
  if (cont >= 0) fds.container = cont;
  const grp = step('open group', () => sys.open(task, '/dev/vfio/3'));
  if (grp >= 0) fds.group = grp;
  step('set container', () => ioctl(grp, VFIO_GROUP_SET_CONTAINER, r.int(cont)));
  step('set iommu', () => ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU));
  step('map', () => ioctl(cont, VFIO_IOMMU_MAP_DMA, r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: BigInt(r.ram), iova: 0n, size: BigInt(r.ramSize) })));
  const io = step('open ioasid', () => sys.open(task, '/dev/ioasid'));
  if (io >= 0) fds.ioasid = io;
  step('alloc', () => ioctl(io, IOASID_REQUEST_ALLOC, r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: PASID, max: PASID } })));
  step('bind', () => r.bind(cont));
  return { fds, cont, step, failedAt: () => failedAt };
}

/** What the leak tracker holds beyond `base`, by kind, and its labels for it. */
export function leaksSince(r: TunnelRig, base: Record<string, number>): { leaked: Record<string, number>; labels: string[] } {
  const snap = r.m.sim.leaks.snapshot();
  const leaked = Object.fromEntries(Object.entries(snap).filter(([k, v]) => v !== (base[k] ?? 0)).map(([k, v]) => [k, v - (base[k] ?? 0)]));
  let labels: string[] = [];
  try {
    r.m.sim.leaks.assertClean();
  } catch (e) {
    labels = (e as Error).message.split('\n').slice(1).map((s) => s.trim());
  }
  return { leaked, labels };
}

/**
 * The one leak a fail-nth run of design A may show: intel_svm_bind_gpasid's error path frees the
 * new intel_svm but not the ioasid_get() reference V4 14/18 took for it, so after a failed first
 * bind the PASID stays FREE_PENDING and its ioasid_data leaks.
 */
export function expectV4BindLeak(result: { failedAt: string; leaked: Record<string, number>; labels: string[]; live: number[] }, where: string): void {
  expect(result.failedAt, where).toBe('bind');
  expect(result.leaked, where).toEqual({ object: 1 });
  expect(result.labels, where).toEqual(['object: ioasid_data']);
  expect(result.live, where).toEqual([PASID]);
}
