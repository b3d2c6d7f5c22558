/**
 * IOMMU_HWPT_INVALIDATE (hw_pagetable.c @ v6.15) into intel_nested_cache_invalidate_user
 * (nested.c): the core reads only the header; the driver copies each 24-byte entry on its own and
 * flushes it through cache_tag_flush_range, which ends with a qi_submit_sync wait; entry_num comes
 * back as the number handled, even on error.
 */
import { describe, expect, it } from 'vitest';
import { errname } from '../../../models/kernel/errno.ts';
import {
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VTD_INV_FLAGS_LEAF,
  encode,
  iommu_hwpt_invalidate,
  iommu_hwpt_vtd_s1_invalidate,
  type UapiInput,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMU_HWPT_INVALIDATE } from '../../../models/kernel/uapi/ioctls/index.ts';
import type { Span } from '../../../sim/tracer.ts';
import { ALLOC_PASID, GUEST_VA, nestRig } from './nest-rig.ts';

const U64_MAX = (1n << 64n) - 1n;
const PASID = 5;

function count(spans: readonly Span[], name: string): number {
  let n = 0;
  for (const s of spans) n += (s.fn.name === name ? 1 : 0) + count(s.children, name);
  return n;
}

function invRig() {
  const r = nestRig({ ats: true });
  const a = r.assign();
  const nested = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: r.pt.root })).id;
  r.ok(r.attach(a.dfd, nested, PASID));
  const entries = (es: UapiInput[]) => {
    const b = new Uint8Array(24 * es.length);
    es.forEach((e, i) => b.set(encode(iommu_hwpt_vtd_s1_invalidate, { flags: 0, ...e }), i * 24));
    return r.u.putBytes(b);
  };
  const invalidate = (hwpt_id: number, es: UapiInput[], over: UapiInput = {}) =>
    r.u.ioctl(
      r.ifd.fd,
      IOMMU_HWPT_INVALIDATE,
      iommu_hwpt_invalidate,
      { hwpt_id, data_uptr: BigInt(es.length ? entries(es) : 0), data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: 24, entry_num: es.length, ...over },
      'size',
    );
  return { ...r, a, nested, invalidate };
}

describe('IOMMU_HWPT_INVALIDATE', () => {
  it('k entries: get_user 4 + header 32 + k × 24 in (2 + k reads), the 32-byte header out, and at least one qi_submit_sync wait per entry', () => {
    const r = invRig();
    const d = r.devs[0]!;
    expect(d.pci.dmaWrite(PASID, GUEST_VA, Uint8Array.of(1)).status).toBe('ok'); // warm the IOTLB
    const es = [
      { addr: BigInt(GUEST_VA), npages: 1n, flags: IOMMU_VTD_INV_FLAGS_LEAF },
      { addr: BigInt(GUEST_VA + 0x2000), npages: 2n },
      { addr: 0n, npages: U64_MAX },
    ];
    let out = { rc: -1, errno: 0, out: {} as Record<string, unknown> };
    const rec = r.m.sim.step(r.task.thread, '1', 'invalidate', () => (out = r.invalidate(r.nested, es)));
    expect(out.rc, errname(out.errno)).toBe(0);
    expect(out.out.entry_num).toBe(3);
    expect(rec.ioctls).toHaveLength(1);
    expect(rec.ioctls[0]).toMatchObject({ name: 'IOMMU_HWPT_INVALIDATE', file: 'iommufd', copiesFromUser: 2 + 3, bytesFromUser: 4 + 32 + 3 * 24, copiesToUser: 1, bytesToUser: 32 });
    expect(count(rec.trace, 'intel_nested_cache_invalidate_user')).toBe(1);
    expect(count(rec.trace, 'cache_tag_flush_range')).toBe(3);
    expect(count(rec.trace, 'qi_submit_sync')).toBeGreaterThanOrEqual(3);
    // the driver validated the entries itself; the core took no iommufd lock for it
    expect(rec.validations.get('iommu_hwpt_vtd_s1_invalidate')?.has('intel_nested_cache_invalidate_user')).toBe(true);
  });

  it('the errors of the reference notes, each with entry_num written back', () => {
    const r = invRig();
    const one = [{ addr: BigInt(GUEST_VA), npages: 1n }];
    const expectErr = (res: { rc: number; errno: number; out: Record<string, unknown> }, errno: string, done: number) => {
      expect(res.rc).toBe(-1);
      expect(errname(res.errno)).toBe(errno);
      expect(res.out.entry_num).toBe(done);
    };
    // the second entry is bad: the first was handled, the header says 1
    expectErr(r.invalidate(r.nested, [one[0]!, { addr: 0n, npages: 1n, flags: 0xffff_ffff }]), 'EOPNOTSUPP', 1);
    expectErr(r.invalidate(r.nested, [{ addr: BigInt(GUEST_VA + 8), npages: 1n }]), 'EINVAL', 0); // unaligned
    expectErr(r.invalidate(r.nested, [{ addr: 0x1000n, npages: U64_MAX }]), 'EINVAL', 0); // "all" with an address
    expectErr(r.invalidate(r.nested, one, { entry_len: 9 }), 'EINVAL', 0);
    expectErr(r.invalidate(r.nested, one, { data_type: 1 }), 'EINVAL', 0);
    expectErr(r.invalidate(r.nested, one, { __reserved: 1 }), 'EOPNOTSUPP', 0);
    expectErr(r.invalidate(r.nested, [], { entry_num: 1 }), 'EINVAL', 0); // NULL data_uptr
    expectErr(r.invalidate(r.nested, one, { entry_len: 0 }), 'EINVAL', 0);
    // a paging HWPT (the parent) is EINVAL in 6.15 (6.8: ENOENT); an unknown id ENOENT
    expectErr(r.invalidate(r.a.parent, one), 'EINVAL', 0);
    expectErr(r.invalidate(9999, one), 'ENOENT', 0);
    // entry_num 0 probes the type: success
    const probe = r.invalidate(r.nested, []);
    expect(probe.rc).toBe(0);
    expect(probe.out.entry_num).toBe(0);
  });
});
