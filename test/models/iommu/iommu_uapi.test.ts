import { describe, expect, it } from 'vitest';
import { treeMetrics } from '../../../sim/index.ts';
import { FR } from '../../../models/hw/vtd/faults.ts';
import { PGTT } from '../../../models/hw/vtd/tables.ts';
import { EBUSY, EINVAL, ENOENT, EPERM, IS_ERR } from '../../../models/kernel/errno.ts';
import { uptr } from '../../../models/kernel/mm.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_SVA_VTD_GPASID_PCD,
  iommu_hwpt_vtd_s1,
  ioasid_alloc_request,
  vfio_iommu_type1_dma_map,
} from '../../../models/kernel/uapi/index.ts';
import { VFIO_IOMMU_MAP_DMA } from '../../../models/vfio/vfio.ts';
import { IOASID_REQUEST_ALLOC } from '../../../models/iommu/ioasid.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { recordSubmissions } from '../../helpers/nested.ts';
import { DATA_GPA, GUEST_VA, PASID, tunnelRig, type TunnelRig } from '../vfio/tunnel-rig.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);
const s2Of = (r: TunnelRig) => r.m.core.iommu_group_get(r.devs[0]!.dev)!.domain as DmarDomain;

describe('BIND_PGTBL: VFIO → IOMMU UAPI → VT-d (v8 04/10)', () => {
  it('binds a guest first-stage table living in the VMM memory, and a DMA through the nested translation lands in the guest page', () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const e = pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)!;
    expect(e).toMatchObject({ present: true, pgtt: PGTT.NESTED, flptr: r.pt.root, flpm: 0, slptptr: s2Of(r).pgd, aw: s2Of(r).agaw, fpd: false });
    const w = r.devs[0]!.pci.dmaWrite(PASID, GUEST_VA + 0x1000, bytes(0xde, 0xad, 0xbe, 0xef));
    expect(w.status).toBe('ok');
    expect([...r.readGuest(DATA_GPA + 0x1000, 4)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(intel_svm_bound(r.m.k, PASID)!.gpasid).toBe(PASID);
  });

  it('writes the PASID entry the shared layer writes for the same configuration (design B path as oracle)', () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const a = pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)!;
    expect(r.unbind(cont)).toBe(0);
    // B: a nested domain over the same parent from iommu_hwpt_vtd_s1, attached at the PASID by the core
    const ud = r.put(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: BigInt(r.pt.root), addr_width: 48, __reserved: 0 });
    const prev = r.m.k.current;
    r.m.k.current = r.task;
    const s1 = r.m.iommu.ops.domain_alloc_nested!(r.devs[0]!.dev, s2Of(r), 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: uptr(ud), len: 24 });
    r.m.k.current = prev;
    if (IS_ERR(s1)) throw new Error(`nested alloc ${s1.err}`);
    expect(r.m.core.iommu_attach_device_pasid(s1, r.devs[0]!.dev, PASID, { domain: null, owner: 'oracle' })).toBe(0);
    const b = pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)!;
    // the hardware is the oracle: same meaning, only the domain ID differs (each stack's own DID)
    expect({ ...a, did: 0 }).toEqual({ ...b, did: 0 });
    r.m.core.iommu_detach_device_pasid(s1, r.devs[0]!.dev, PASID);
    r.m.core.iommu_domain_free(s1);
  });

  it('copies the user struct once per device of the group: two devices, two 56 + 16 byte copies', () => {
    for (const n of [1, 2]) {
      const r = tunnelRig({ devices: n });
      const { cont } = r.assign();
      const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
      expect(rec.ioctls).toHaveLength(1);
      expect(rec.ioctls[0]).toEqual({
        name: 'VFIO_IOMMU_NESTING_OP',
        file: 'vfio-container',
        ret: 0,
        copiesFromUser: 1 + 2 * n,
        bytesFromUser: 8 + 72 * n,
        copiesToUser: 0,
        bytesToUser: 0,
      });
      for (const d of r.devs) expect(pasidEntryOf(r.m.iommu, d.info, PASID)!.present).toBe(true);
      expect(intel_svm_bound(r.m.k, PASID)!.devs).toHaveLength(n);
    }
  });

  it('carries the user pointer through unsigned long, void * and void __user *: the trace counts the hops and the depth', () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
    const tm = treeMetrics(rec.trace);
    // type1_ioctl, nesting_op, handle_pgtbl_op (unsigned long), iommu_group_for_each_dev,
    // vfio_dev_bind_gpasid_fn (void *), iommu_uapi_sva_bind_gpasid, iommu_sva_prepare_bind_data (void __user *)
    expect(tm.typeErasureHops).toBe(7);
    // the copy happens in iommu_sva_prepare_bind_data, 9 frames below the syscall
    expect(rec.userPtrDepth).toBe(9);
    expect(tm.layers).toEqual(expect.arrayContaining(['syscall', 'vfs', 'vfio', 'iommu-core', 'iommu-uapi', 'ioasid', 'intel-iommu']));
    expect(tm.handlers).toMatchObject({ bind: ['vfio'] });
    expect(tm.provenance).toBe('posted');
    // three places validate the bind data
    expect([...rec.validations.get('iommu_gpasid_bind_data')!].sort()).toEqual(['intel_pasid_setup_nested', 'intel_svm_bind_gpasid', 'iommu_check_bind_data']);
    expect([...rec.validations.get('vfio_iommu_type1_nesting_op')!]).toEqual(['vfio_iommu_type1_nesting_op']);
    // for comparison, MAP_DMA copies at depth 4 with its type set at the handler
    const zero = r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: BigInt(r.ram), iova: 0n, size: 0n });
    const map = r.m.sim.step(r.task.thread, '2', 'map', () => expect(r.ioctl(cont, VFIO_IOMMU_MAP_DMA, zero)).toBe(-1));
    expect(map.userPtrDepth).toBe(4);
  });

  it("keeps v8's checks and errnos", () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    const fails = (data: Uint8Array, errno: number) => {
      expect(r.bind(cont, data)).toBe(-1);
      expect(r.task.errno).toBe(errno);
    };
    fails(r.bindData({ version: 2 }), EINVAL); // iommu_check_bind_data
    fails(r.bindData({ argsz: 40 }), EINVAL); // argsz below the union
    fails(r.bindData({ argsz: 64 }), EINVAL); // VT-d wants offsetofend(vendor.vtd)
    fails(r.bindData({ addr_width: 39 }), EINVAL); // 48 or 57 only
    fails(r.bindData({}, { flags: BigInt(IOMMU_SVA_VTD_GPASID_PCD) }), EINVAL); // MTS bits
    fails(r.bindData({}, { flags: 1n << 7n }), EINVAL); // undefined vendor flags
    fails(r.bindData({ gpgd: BigInt(r.ramSize + 0x10_0000) }), EINVAL); // root above max_addr
    fails(r.bindData({ hpasid: 6n }), ENOENT); // not allocated: ioasid_get_if_owned
    expect(r.bind(cont)).toBe(0);
    fails(r.bindData(), EBUSY); // double bind of the same device-PASID
    // a PASID another process allocated: EPERM
    const other = r.m.k.createProcess('other-vmm');
    const ofd = r.sys.open(other, '/dev/ioasid');
    const areq = r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: 7, max: 7 } });
    // the request struct lives in qemu's memory: copy it into the other process first
    const obuf = other.mm.mmap(4096, 'other:heap');
    if (IS_ERR(obuf)) throw new Error('mmap');
    other.mm.access(obuf, r.readBytes(areq, 16), 0, 16, true);
    expect(r.sys.ioctl(other, ofd, IOASID_REQUEST_ALLOC, obuf)).toBe(7);
    fails(r.bindData({ hpasid: 7n }), EPERM);
  });
});

describe('UNBIND_PGTBL and CACHE_INVLD always return 0 (v8 04/10, 05/10)', () => {
  it('unbind clears the entry; the DMA then faults; unbinding again, or with bad data, still returns 0', () => {
    const r = tunnelRig({ ats: true });
    const { cont } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const rec = recordSubmissions(r.m);
    expect(r.unbind(cont)).toBe(0);
    rec.stop();
    // PASID cache, domain-selective IOTLB (nested), PASID device-TLB (the shared tear-down)
    expect(rec.batches.slice(0, 3)).toEqual([
      [7, 5],
      [2, 5],
      [8, 5],
    ]);
    expect(pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)!.present).toBe(false);
    const after = r.devs[0]!.pci.dmaWrite(PASID, GUEST_VA, bytes(1));
    expect(after.status).toBe('fault');
    expect(after.reason).toBe(FR.PASID_ENTRY_P);
    expect(intel_svm_bound(r.m.k, PASID)).toBeNull();
    expect(r.unbind(cont)).toBe(0);
    expect(r.unbind(cont, r.bindData({ version: 9 }))).toBe(0);
  });

  it('invalidation returns 0 even for a bad granularity, and then flushes nothing', () => {
    const r = tunnelRig();
    const { cont } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const rec = recordSubmissions(r.m);
    // IOTLB × DOMAIN: passes the core's checks, the VT-d table has no entry: pr_err and break
    expect(r.invalidate(cont, { argsz: 56, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN })).toBe(0);
    // granularity 7: the core rejects it, VFIO drops the error
    expect(r.invalidate(cont, { argsz: 56, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: 7 })).toBe(0);
    // PASID granularity with argsz too short for pasid_info
    expect(r.invalidate(cont, { argsz: 24, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID })).toBe(0);
    expect(rec.batches).toEqual([]);
    // a good one: one P_IOTLB descriptor (type 6) behind a wait
    const ok = r.m.sim.step(r.task.thread, '1', 'inv', () =>
      expect(
        r.invalidate(cont, {
          argsz: 56,
          version: 1,
          cache: IOMMU_CACHE_INV_TYPE_IOTLB,
          granularity: IOMMU_INV_GRANU_ADDR,
          granu: { addr_info: { flags: IOMMU_INV_ADDR_FLAGS_PASID, archid: 0, pasid: BigInt(PASID), addr: BigInt(GUEST_VA), granule_size: 4096n, nb_granules: 1n } },
        }),
      ).toBe(0),
    );
    expect(r.invalidate(cont, { argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } } })).toBe(0);
    rec.stop();
    expect(rec.batches).toEqual([
      [6, 5],
      [6, 5],
    ]);
    // 8-byte header, then 16 + 40 bytes of iommu_cache_invalidate_info
    expect(ok.ioctls[0]).toMatchObject({ copiesFromUser: 3, bytesFromUser: 8 + 56 });
    expect(treeMetrics(ok.trace).handlers).toMatchObject({ invalidate: ['vfio'] });
  });
});
