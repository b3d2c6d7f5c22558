/**
 * The traced call chains and the measured copies that Design B part 2's done-when names: a PASID
 * attach and a replace through the VFIO cdev (VFIO_DEVICE_ATTACH_IOMMUFD_PT with
 * VFIO_DEVICE_ATTACH_PASID) down to the VT-d nested PASID entry set-up, and IOMMU_HWPT_INVALIDATE
 * from iommufd_fops_ioctl into the driver; and the user copies of an invalidation of k entries,
 * read from the per-ioctl record.
 */
import { describe, expect, it } from 'vitest';
import { errname } from '../../../models/kernel/errno.ts';
import {
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  encode,
  iommu_hwpt_invalidate,
  iommu_hwpt_vtd_s1_invalidate,
  type UapiInput,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMU_HWPT_INVALIDATE } from '../../../models/kernel/uapi/ioctls/index.ts';
import type { Span } from '../../../sim/tracer.ts';
import { ALLOC_PASID, GUEST_VA, nestRig } from './nest-rig.ts';

const PASID = 7;

/**
 * The frames named by `chain`, each a descendant of the one before (other frames may lie between),
 * or null: the first frame is searched anywhere in the tree.
 */
function findChain(roots: readonly Span[], chain: readonly string[]): Span[] | null {
  const below = (s: Span, rest: readonly string[]): Span[] | null => {
    if (rest.length === 0) return [];
    for (const c of s.children) {
      if (c.fn.name === rest[0]) {
        const tail = below(c, rest.slice(1));
        if (tail) return [c, ...tail];
      }
      const deeper = below(c, rest);
      if (deeper) return deeper;
    }
    return null;
  };
  const walk = (spans: readonly Span[]): Span[] | null => {
    for (const s of spans) {
      if (s.fn.name === chain[0]) {
        const tail = below(s, chain.slice(1));
        if (tail) return [s, ...tail];
      }
      const deeper = walk(s.children);
      if (deeper) return deeper;
    }
    return null;
  };
  return walk(roots);
}

function expectChain(roots: readonly Span[], chain: readonly string[]): void {
  const found = findChain(roots, chain);
  expect(found?.map((s) => s.fn.name), chain.join(' → ')).toEqual(chain);
}

function rig() {
  const r = nestRig({ ats: true });
  const a = r.assign();
  const nested = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: r.pt.root }), 'nested').id;
  const pt2 = r.firstStage();
  pt2.map(GUEST_VA, 0x20_0000, 0x1000);
  const nested2 = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: pt2.root }), 'nested2').id;
  const invalidate = (hwpt_id: number, k: number) => {
    const b = new Uint8Array(24 * k);
    for (let i = 0; i < k; i++) b.set(encode(iommu_hwpt_vtd_s1_invalidate, { flags: 0, addr: BigInt(GUEST_VA + i * 0x1000), npages: 1n } as UapiInput), i * 24);
    const at = r.u.putBytes(b);
    return r.u.ioctl(
      r.ifd.fd,
      IOMMU_HWPT_INVALIDATE,
      iommu_hwpt_invalidate,
      { hwpt_id, data_uptr: BigInt(at), data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: 24, entry_num: k },
      'size',
    );
  };
  return { ...r, a, nested, nested2, invalidate };
}

describe('Design B part 2: traced chains through the cdev and iommufd', () => {
  it('PASID attach: vfio_df_ioctl_attach_pt → iommufd_device_attach → iommu_attach_device_pasid → intel_pasid_setup_nested', () => {
    const r = rig();
    let rc = { rc: -1, errno: 0 };
    const rec = r.m.sim.step(r.task.thread, '1', 'pasid attach', () => (rc = r.attach(r.a.dfd, r.nested, PASID)));
    expect(rc.rc, errname(rc.errno)).toBe(0);
    expectChain(rec.trace, ['vfio_df_ioctl_attach_pt', 'iommufd_device_attach', 'iommu_attach_device_pasid', 'intel_pasid_setup_nested']);
    // an attach is not a replace
    expect(findChain(rec.trace, ['iommu_replace_device_pasid'])).toBeNull();
  });

  it('PASID replace: vfio_df_ioctl_attach_pt → iommufd_device_replace → iommu_replace_device_pasid → intel_pasid_replace_nested', () => {
    const r = rig();
    r.ok(r.attach(r.a.dfd, r.nested, PASID), 'attach');
    let rc = { rc: -1, errno: 0 };
    const rec = r.m.sim.step(r.task.thread, '1', 'pasid replace', () => (rc = r.attach(r.a.dfd, r.nested2, PASID)));
    expect(rc.rc, errname(rc.errno)).toBe(0);
    expectChain(rec.trace, ['vfio_df_ioctl_attach_pt', 'iommufd_device_replace', 'iommu_replace_device_pasid', 'intel_pasid_replace_nested']);
    expect(findChain(rec.trace, ['iommu_attach_device_pasid'])).toBeNull();
    expect(findChain(rec.trace, ['intel_pasid_setup_nested'])).toBeNull();
  });

  it('IOMMU_HWPT_INVALIDATE: iommufd_fops_ioctl → iommufd_hwpt_invalidate → intel_nested_cache_invalidate_user', () => {
    const r = rig();
    r.ok(r.attach(r.a.dfd, r.nested, PASID), 'attach');
    let rc = { rc: -1, errno: 0 };
    const rec = r.m.sim.step(r.task.thread, '1', 'invalidate', () => (rc = r.invalidate(r.nested, 2)));
    expect(rc.rc, errname(rc.errno)).toBe(0);
    expectChain(rec.trace, ['iommufd_fops_ioctl', 'iommufd_hwpt_invalidate', 'intel_nested_cache_invalidate_user']);
  });
});

describe('Design B part 2: IOMMU_HWPT_INVALIDATE copies, from the per-ioctl record', () => {
  for (const k of [1, 8]) {
    it(`k = ${k}: ${2 + k} reads from user (get_user of size, the 32-byte header, ${k} × 24-byte entries) and the 32-byte header copied back once`, () => {
      const r = rig();
      r.ok(r.attach(r.a.dfd, r.nested, PASID), 'attach');
      let out = { rc: -1, errno: 0, out: {} as Record<string, unknown> };
      const rec = r.m.sim.step(r.task.thread, '1', `invalidate ${k}`, () => (out = r.invalidate(r.nested, k)));
      expect(out.rc, errname(out.errno)).toBe(0);
      expect(out.out.entry_num).toBe(k);
      expect(rec.ioctls).toHaveLength(1);
      expect(rec.ioctls[0]).toMatchObject({
        name: 'IOMMU_HWPT_INVALIDATE',
        copiesFromUser: 2 + k,
        bytesFromUser: 4 + 32 + 24 * k,
        copiesToUser: 1,
        bytesToUser: 32,
      });
    });
  }
});
