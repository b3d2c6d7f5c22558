import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../models/hw/pcie/device.ts';
import { EBUSY, EINVAL, ENOTTY } from '../../../models/kernel/errno.ts';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_NESTING,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  decode,
  iommu_nesting_info,
  vfio_group_status,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_nesting,
} from '../../../models/kernel/uapi/index.ts';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_NESTING_OP,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  vfio_container_of,
} from '../../../models/vfio/vfio.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { vfio_iommu_of } from '../../../models/vfio/vfio_iommu_type1.ts';
import { tunnelRig } from './tunnel-rig.ts';

const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

describe('VFIO container and group (vfio.c @ v5.12)', () => {
  it('sets a nesting container up through the syscall layer', () => {
    const r = tunnelRig();
    const { ioctl, sys, task } = r;
    expect(r.m.k.devfs.paths()).toEqual(['/dev/ioasid', '/dev/vfio/3', '/dev/vfio/vfio']);
    const cont = sys.open(task, '/dev/vfio/vfio');
    expect(ioctl(cont, VFIO_GET_API_VERSION, 0)).toBe(0);
    expect(ioctl(cont, VFIO_CHECK_EXTENSION, VFIO_TYPE1_NESTING_IOMMU)).toBe(1);
    expect(ioctl(cont, VFIO_CHECK_EXTENSION, 99)).toBe(0);
    // no group yet: no IOMMU driver may be set, and nothing is passed through
    expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU)).toBe(-1);
    expect(task.errno).toBe(EINVAL);
    expect(ioctl(cont, VFIO_IOMMU_NESTING_OP, r.nestingOp(0, r.bindData()))).toBe(-1);
    expect(task.errno).toBe(EINVAL);

    const grp = sys.open(task, '/dev/vfio/3');
    expect(sys.open(task, '/dev/vfio/3')).toBe(-1);
    expect(task.errno).toBe(EBUSY);
    const st = r.put(vfio_group_status, { argsz: 8, flags: 0 });
    expect(ioctl(grp, VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(decode(vfio_group_status, r.readBytes(st, 8)).flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    expect(ioctl(grp, VFIO_GROUP_SET_CONTAINER, r.int(cont))).toBe(0);
    expect(ioctl(grp, VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(decode(vfio_group_status, r.readBytes(st, 8)).flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
    // no device fd before an IOMMU driver is set
    const name = r.putBytes(new TextEncoder().encode(`${r.devs[0]!.dev.bdf}\0`));
    expect(ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, name)).toBe(-1);
    expect(task.errno).toBe(EINVAL);
    expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU)).toBe(0);
    expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(-1);
    const devfd = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, name);
    expect(devfd).toBeGreaterThan(grp);
    expect(ioctl(devfd, 0x3b00 + 100 + 7, 0)).toBe(-1);
    expect(task.errno).toBe(ENOTTY);
    // the group's domain is the shared driver's nest parent (second stage)
    const s2 = r.m.core.iommu_group_get(r.devs[0]!.dev)!.domain as DmarDomain;
    expect(s2.nested_parent).toBe(true);
    for (const fd of [devfd, grp, cont]) expect(sys.close(task, fd)).toBe(0);
    r.m.sim.leaks.assertClean('after close');
    expect(r.m.core.iommu_group_get(r.devs[0]!.dev)!.domain?.type).toBe('identity');
  });

  it('keeps a nesting container to one group (the singleton rule of v8 03/10)', () => {
    const r = tunnelRig({ devices: 2, groups: 2 });
    const { ioctl, sys, task } = r;
    const cont = sys.open(task, '/dev/vfio/vfio');
    const g3 = sys.open(task, '/dev/vfio/3');
    const g4 = sys.open(task, '/dev/vfio/4');
    expect(ioctl(g3, VFIO_GROUP_SET_CONTAINER, r.int(cont))).toBe(0);
    expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU)).toBe(0);
    expect(ioctl(g4, VFIO_GROUP_SET_CONTAINER, r.int(cont))).toBe(-1);
    expect(task.errno).toBe(EINVAL);
  });

  it('MAP_DMA pins the VMM pages and maps IOVA = GPA onto their frames; UNMAP_DMA undoes it', () => {
    const r = tunnelRig({ ramSize: 1 << 20 });
    const { cont, grp, ioasid } = r.assign();
    const pages = (1 << 20) / 4096;
    expect(r.m.sim.leaks.count('pin')).toBe(pages);
    expect(r.task.mm.pinnedPages).toBe(pages);
    // a DMA without PASID goes through the container's second stage and lands in the VMM's page
    const w = r.devs[0]!.pci.dmaWrite(NO_PASID, 0x3000, Uint8Array.of(1, 2, 3));
    expect(w.status).toBe('ok');
    expect([...r.readGuest(0x3000, 3)]).toEqual([1, 2, 3]);
    // v2: an unmap that bisects the mapping is refused; the whole mapping goes
    const um = (iova: number, size: number) => r.put(vfio_iommu_type1_dma_unmap, { argsz: 24, flags: 0, iova: BigInt(iova), size: BigInt(size) });
    expect(r.ioctl(cont, VFIO_IOMMU_UNMAP_DMA, um(0x1000, 0x1000))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    const arg = um(0, 1 << 20);
    expect(r.ioctl(cont, VFIO_IOMMU_UNMAP_DMA, arg)).toBe(0);
    expect(decode(vfio_iommu_type1_dma_unmap, r.readBytes(arg, 24), { flexCount: 0 }).size).toBe(BigInt(1 << 20));
    expect(r.m.sim.leaks.count('pin')).toBe(0);
    expect(r.task.mm.pinnedPages).toBe(0);
    expect(r.devs[0]!.pci.dmaWrite(NO_PASID, 0x3000, Uint8Array.of(1)).status).toBe('fault');
    for (const fd of [grp, cont, ioasid]) r.sys.close(r.task, fd);
    r.m.sim.leaks.assertClean();
  });

  it('pins per container: two containers mapping the same memory pin every page twice', () => {
    const r = tunnelRig({ devices: 2, groups: 2, ramSize: 256 << 10 });
    const { ioctl, sys, task } = r;
    const map = () => r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags: RW, vaddr: BigInt(r.ram), iova: 0n, size: BigInt(r.ramSize) });
    for (const g of [3, 4]) {
      const cont = sys.open(task, '/dev/vfio/vfio');
      const grp = sys.open(task, `/dev/vfio/${g}`);
      expect(ioctl(grp, VFIO_GROUP_SET_CONTAINER, r.int(cont))).toBe(0);
      expect(ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(ioctl(cont, VFIO_IOMMU_MAP_DMA, map())).toBe(0);
    }
    const pages = r.ramSize / 4096;
    expect(r.m.sim.leaks.count('pin')).toBe(2 * pages);
    expect(r.task.mm.pinnedPages).toBe(2 * pages);
  });

  it('GET_INFO: argsz too small for the chain comes back raised; the second call gets the 72-byte nesting cap', () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    const small = r.put(vfio_iommu_type1_info, { argsz: 24, flags: 0, iova_pgsizes: 0n, cap_offset: 0 });
    const rec1 = r.m.sim.step(r.task.thread, '1', 'get-info', () => expect(r.ioctl(cont, VFIO_IOMMU_GET_INFO, small)).toBe(0));
    const info1 = decode(vfio_iommu_type1_info, r.readBytes(small, 24));
    // migration 32 + dma_avail 12 + iova ranges 8+8+2×16 + nesting 72
    const need = 24 + 32 + 12 + 48 + 72;
    expect(info1.argsz).toBe(need);
    expect(info1.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
    expect(info1.cap_offset).toBe(0);
    expect(rec1.ioctls[0]).toMatchObject({ name: 'VFIO_IOMMU_GET_INFO', file: 'vfio-container', copiesFromUser: 1, bytesFromUser: 16, copiesToUser: 1, bytesToUser: 20 });
    // minsz grows to offsetofend(cap_offset) = 20, not sizeof = 24: the tail padding is not copied

    const big = r.putBytes(new Uint8Array(need).fill(0xee));
    r.task.mm.access(big, new Uint8Array([need & 0xff, need >> 8, 0, 0]), 0, 4, true);
    const rec2 = r.m.sim.step(r.task.thread, '2', 'get-info', () => expect(r.ioctl(cont, VFIO_IOMMU_GET_INFO, big)).toBe(0));
    expect(rec2.ioctls[0]).toMatchObject({ copiesToUser: 2, bytesToUser: need - 24 + 20 });
    const bytes = r.readBytes(big, need);
    const info2 = decode(vfio_iommu_type1_info, bytes);
    expect(info2.cap_offset).toBe(24);
    // walk the chain to the nesting capability
    const v = new DataView(bytes.buffer);
    const ids: number[] = [];
    let off = 24;
    let nestingAt = -1;
    for (;;) {
      ids.push(v.getUint16(off, true));
      if (v.getUint16(off, true) === VFIO_IOMMU_TYPE1_INFO_CAP_NESTING) nestingAt = off;
      const next = v.getUint32(off + 4, true);
      if (!next) break;
      off = next;
    }
    expect(ids).toEqual([2, 3, 1, 4]);
    expect(need - nestingAt).toBe(72);
    const cap = decode(vfio_iommu_type1_info_cap_nesting, bytes.subarray(nestingAt, nestingAt + 72));
    const ni = cap.info as Record<string, unknown>;
    const s2 = r.m.core.iommu_group_get(r.devs[0]!.dev)!.domain as DmarDomain;
    expect(ni).toMatchObject({ argsz: 64, flags: 0, format: 1, features: 3, addr_width: 30 + 9 * s2.agaw, pasid_bits: 20 });
    expect(decode(iommu_nesting_info, bytes.subarray(nestingAt + 8, nestingAt + 72)).argsz).toBe(64);
    expect(vfio_iommu_of(vfio_container_of(r.task.process.files.get(cont))!.iommu_data).nesting).toBe(true);
  });

  it('MAP_DMA rejects an unaligned or overlapping request with the type1 errnos', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    const map = (iova: number, size: number, flags = RW) => r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags, vaddr: BigInt(r.ram), iova: BigInt(iova), size: BigInt(size) });
    expect(r.ioctl(cont, VFIO_IOMMU_MAP_DMA, map(0x100, 0x1000))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    expect(r.ioctl(cont, VFIO_IOMMU_MAP_DMA, map(0, 0x1000))).toBe(-1);
    expect(r.task.errno).toBe(17); // EEXIST
    expect(r.ioctl(cont, VFIO_IOMMU_MAP_DMA, map(1 << 30, 0x1000, 0))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
  });
});
