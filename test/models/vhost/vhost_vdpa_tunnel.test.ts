import { describe, expect, it } from 'vitest';
import { treeMetrics } from '../../../sim/index.ts';
import { EPERM } from '../../../models/kernel/errno.ts';
import {
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
  VHOST_ACCESS_RW,
  VHOST_IOTLB_UPDATE,
  decode,
  encode,
  iommu_cache_invalidate_info,
  iommu_nesting_info,
  vhost_msg_v2,
} from '../../../models/kernel/uapi/index.ts';
import { VHOST_VDPA_GET_NESTING_INFO, VHOST_VDPA_NESTING_OP } from '../../../models/kernel/uapi/ioctls/vhost.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { vdpa_register_device } from '../../../models/vhost/vdpa.ts';
import { VHOST_SET_BACKEND_FEATURES, VHOST_SET_OWNER, vhost_vdpa_probe } from '../../../models/vhost/vhost_vdpa.ts';
import { vhost_vdpa_tunnel } from '../../../models/vhost/vhost_vdpa_tunnel.ts';
import { DATA_GPA, GUEST_VA, PASID, tunnelRig } from '../vfio/tunnel-rig.ts';

/** design A with a VFIO device (dsa0) and a vDPA device (vdpa0 over the PCI function vdpa-pf) */
function rig() {
  const r = tunnelRig({ ramSize: 4 << 20 });
  const pf = r.m.addPciDevice('vdpa-pf', 0x0700, { pasidBits: 20 });
  const vdpa = vdpa_register_device({ name: 'vdpa0', dma_dev: pf.dev, groups: [2] });
  const v = vhost_vdpa_probe(r.m.k, r.m.core, vdpa, vhost_vdpa_tunnel(r.m.k, r.m.core));
  const fds = r.assign();
  const vfd = r.sys.open(r.task, v.path);
  expect(vfd).toBeGreaterThanOrEqual(0);
  // no platform domain at open: the projection allocates a nest parent on first need
  expect(v.domain).toBeNull();
  expect(r.ioctl(vfd, VHOST_SET_OWNER, 0)).toBe(0);
  expect(r.ioctl(vfd, VHOST_SET_BACKEND_FEATURES, r.putBytes(Uint8Array.of(0b1010, 0, 0, 0, 0, 0, 0, 0)))).toBe(0);
  // ASID 0's IOTLB: guest RAM at IOVA = GPA, stage 2 of the nest parent
  const msg = r.put(vhost_msg_v2, { type: 2, asid: 0, iotlb: { iova: 0n, size: BigInt(r.ramSize), uaddr: BigInt(r.ram), perm: VHOST_ACCESS_RW, type: VHOST_IOTLB_UPDATE } });
  expect(r.sys.write(r.task, vfd, msg, 72)).toBe(72);
  expect((v.domain as DmarDomain | null)?.nested_parent).toBe(true);
  /** the NESTING_OP buffer: VFIO's 8-byte {argsz, flags} header, then the iommu.h payload */
  const concat = (o: number, payload: Uint8Array) => {
    const b = new Uint8Array(8 + payload.length);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, b.length, true);
    dv.setUint32(4, o, true);
    b.set(payload, 8);
    return b;
  };
  const op = (o: number, payload: Uint8Array) => r.putBytes(concat(o, payload));
  const vbind = (data = r.bindData()) => r.ioctl(vfd, VHOST_VDPA_NESTING_OP, op(VFIO_IOMMU_NESTING_OP_BIND_PGTBL, data));
  const vunbind = (data = r.bindData()) => r.ioctl(vfd, VHOST_VDPA_NESTING_OP, op(VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, data));
  return { ...r, ...fds, pf, v, vfd, op, vbind, vunbind };
}

describe('vhost-vdpa in design A (projection): the v8 transport duplicated', () => {
  it('answers its own nesting-info query with the argsz dance', () => {
    const r = rig();
    const q = r.putBytes(new Uint8Array(64));
    expect(r.ioctl(r.vfd, VHOST_VDPA_GET_NESTING_INFO, q)).toBe(0);
    expect(decode(iommu_nesting_info, r.readBytes(q, 64)).argsz).toBe(64);
    expect(r.ioctl(r.vfd, VHOST_VDPA_GET_NESTING_INFO, q)).toBe(0);
    expect(decode(iommu_nesting_info, r.readBytes(q, 64))).toMatchObject({ argsz: 64, format: 1, features: 3, pasid_bits: 20 });
  });

  it('binds a PASID through its own NESTING_OP; a DMA through the PASID lands; both subsystems implement bind', () => {
    const r = rig();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind both', () => {
      expect(r.bind(r.cont)).toBe(0);
      expect(r.vbind()).toBe(0);
    });
    // handlerDuplication: VFIO and vhost-vdpa each implement the bind ioctl
    expect(treeMetrics(rec.trace).handlers).toMatchObject({ bind: ['vfio', 'vhost-vdpa'] });
    expect(rec.ioctls.map((i) => [i.name, i.copiesFromUser, i.bytesFromUser])).toEqual([
      ['VFIO_IOMMU_NESTING_OP', 3, 80],
      // the shared vhost-vdpa fops ask the open device's extension for the projection's own name
      ['VHOST_VDPA_NESTING_OP', 3, 80],
    ]);
    expect(VHOST_VDPA_NESTING_OP).toBe(0x4008af91);
    // the system-wide PASID now has two devices: one through each subsystem
    expect(intel_svm_bound(r.m.k, PASID)!.devs.map((d) => d.dev.name)).toEqual(['dsa0', 'vdpa-pf']);
    const e = pasidEntryOf(r.m.iommu, r.pf.info, PASID)!;
    expect(e).toMatchObject({ present: true, flptr: r.pt.root, slptptr: (r.v.domain as DmarDomain).pgd });
    const w = r.pf.pci.dmaWrite(PASID, GUEST_VA + 0x2000, Uint8Array.of(7, 7, 7));
    expect(w.status).toBe('ok');
    expect([...r.readGuest(DATA_GPA + 0x2000, 3)]).toEqual([7, 7, 7]);

    // the same erasure chain: nesting_op, handle_pgtbl_op (unsigned long), bind_fn (void *),
    // iommu_uapi_sva_bind_gpasid, iommu_sva_prepare_bind_data (void __user *)
    const one = r.m.sim.step(r.task.thread, '2', 'vdpa rebind', () => {
      expect(r.vunbind()).toBe(0);
      expect(r.vbind()).toBe(0);
    });
    const tm = treeMetrics(one.trace);
    expect(tm.typeErasureHops).toBe(5);
    expect(tm.provenance).toBe('projection');
    expect(tm.handlers).toMatchObject({ bind: ['vhost-vdpa'], unbind: ['vhost-vdpa'] });

    const inv = encode(iommu_cache_invalidate_info, {
      argsz: 32,
      version: IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
      cache: IOMMU_CACHE_INV_TYPE_IOTLB,
      granularity: IOMMU_INV_GRANU_PASID,
      granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } },
    });
    const ir = r.m.sim.step(r.task.thread, '3', 'invalidate', () => expect(r.ioctl(r.vfd, VHOST_VDPA_NESTING_OP, r.op(VFIO_IOMMU_NESTING_OP_CACHE_INVLD, inv.subarray(0, 32)))).toBe(0));
    expect(treeMetrics(ir.trace).handlers).toMatchObject({ invalidate: ['vhost-vdpa'] });
  });

  it('refuses a caller that is not the owner, and unbinds owned PASIDs at release', () => {
    const r = rig();
    expect(r.vbind()).toBe(0);
    const other = r.m.k.createProcess('intruder');
    const buf = other.mm.mmap(4096, 'x');
    if (typeof buf !== 'number') throw new Error('mmap');
    other.mm.access(buf, new Uint8Array([80, 0, 0, 0, 0, 0, 0, 0]), 0, 8, true);
    const ofd = r.sys.passFd(r.task, r.vfd, other);
    expect(r.sys.ioctl(other, ofd, VHOST_VDPA_NESTING_OP, buf)).toBe(-1);
    expect(other.errno).toBe(EPERM);
    r.sys.close(other, ofd);
    // release from the owner: the ownership glue finds PASID 5 in qemu's /dev/ioasid user
    expect(r.sys.close(r.task, r.vfd)).toBe(0);
    expect(pasidEntryOf(r.m.iommu, r.pf.info, PASID)?.present ?? false).toBe(false);
    expect(intel_svm_bound(r.m.k, PASID)).toBeNull();
    for (const fd of [r.grp, r.cont, r.ioasid]) expect(r.sys.close(r.task, fd)).toBe(0);
    r.m.sim.leaks.assertClean();
  });
});
