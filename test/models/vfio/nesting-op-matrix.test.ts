import { describe, expect, it } from 'vitest';
import type { Span } from '../../../sim/tracer.ts';
import { EBUSY, EFAULT, EINVAL, EOPNOTSUPP, EPERM, IS_ERR } from '../../../models/kernel/errno.ts';
import { uptr, type UserPtr } from '../../../models/kernel/mm.ts';
import { setU32 } from '../../../models/kernel/uapi/le.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_FORMAT_LAST,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
  VFIO_TYPE1v2_IOMMU,
  encode,
  iommu_cache_invalidate_info,
  ioasid_alloc_request,
  vfio_iommu_type1_dma_map,
  type UapiInput,
} from '../../../models/kernel/uapi/index.ts';
import { IOASID_REQUEST_ALLOC } from '../../../models/iommu/ioasid.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_NESTING_OP, VFIO_SET_IOMMU } from '../../../models/vfio/vfio.ts';
import { recordSubmissions } from '../../helpers/nested.ts';
import { GUEST_VA, PASID, tunnelRig, type TunnelRig } from './tunnel-rig.ts';

/**
 * The validation matrix of VFIO_IOMMU_NESTING_OP (v8 04/10, 05/10) through the syscall layer:
 * every case goes through sys.ioctl on the container fd, and the errno is the one the task sees.
 * BIND_PGTBL propagates the IOMMU layer's errno; UNBIND_PGTBL and CACHE_INVLD return 0 once
 * VFIO's own header checks passed ("always successful").
 */

const present = (r: TunnelRig) => pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)?.present ?? false;

function setup(opts: { bound?: boolean } = {}) {
  const r = tunnelRig({ ramSize: 64 << 10 });
  const fds = r.assign();
  if (opts.bound) expect(r.bind(fds.cont)).toBe(0);
  const fails = (ret: number, errno: number) => {
    expect(ret).toBe(-1);
    expect(r.task.errno).toBe(errno);
  };
  /** a raw NESTING_OP header {argsz, flags} followed by a payload */
  const raw = (argsz: number, flags: number, payload: Uint8Array) => {
    const b = new Uint8Array(8 + payload.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, argsz, true);
    v.setUint32(4, flags, true);
    b.set(payload, 8);
    return r.ioctl(fds.cont, VFIO_IOMMU_NESTING_OP, r.putBytes(b));
  };
  const inv = (info: UapiInput) => encode(iommu_cache_invalidate_info, info);
  const goodInv = (over: Record<string, unknown> = {}) =>
    inv({
      argsz: 56,
      version: 1,
      cache: IOMMU_CACHE_INV_TYPE_IOTLB,
      granularity: IOMMU_INV_GRANU_ADDR,
      granu: { addr_info: { flags: IOMMU_INV_ADDR_FLAGS_PASID, archid: 0, pasid: BigInt(PASID), addr: BigInt(GUEST_VA), granule_size: 4096n, nb_granules: 1n } },
      ...over,
    } as UapiInput);
  /** CACHE_INVLD that must return 0 and submit nothing to the invalidation queue */
  const invSwallowed = (payload: Uint8Array) => {
    const rec = recordSubmissions(r.m);
    const step = r.m.sim.step(r.task.thread, 'inv', 'inv', () => expect(raw(8 + payload.length, VFIO_IOMMU_NESTING_OP_CACHE_INVLD, payload)).toBe(0));
    rec.stop();
    expect(rec.batches).toEqual([]);
    return step;
  };
  return { r, ...fds, fails, raw, inv, goodInv, invSwallowed };
}

/**
 * A NESTING_OP header {argsz, flags: op} as the last 8 bytes of a one-page mapping: the header
 * reads, the payload after it is the guard page. Returns the header's user address.
 */
function headerBeforeGuard(r: TunnelRig, argsz: number, op: number): UserPtr {
  const page = r.task.mm.mmap(4096, 'qemu:edge');
  if (IS_ERR(page)) throw new Error('mmap');
  const hdr = new Uint8Array(8);
  setU32(hdr, 0, argsz);
  setU32(hdr, 4, op);
  r.task.mm.access(page + 4088, hdr, 0, 8, true);
  return uptr(page + 4088);
}

const names = (spans: readonly Span[]): string[] => spans.flatMap((s) => [s.fn.name, ...names(s.children)]);

describe('NESTING_OP header checks (vfio_iommu_type1_nesting_op)', () => {
  it('argsz below minsz (8): EINVAL for bind, and for CACHE_INVLD too (checked before the op switch)', () => {
    const s = setup();
    s.fails(s.raw(4, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, s.r.bindData()), EINVAL);
    s.fails(s.raw(7, VFIO_IOMMU_NESTING_OP_CACHE_INVLD, s.goodInv()), EINVAL);
    s.fails(s.raw(0, VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, s.r.bindData()), EINVAL);
    expect(present(s.r)).toBe(false);
  });

  it('unknown flags above VFIO_NESTING_OP_MASK: EINVAL', () => {
    const s = setup();
    s.fails(s.raw(80, VFIO_IOMMU_NESTING_OP_BIND_PGTBL | (1 << 16), s.r.bindData()), EINVAL);
    s.fails(s.raw(64, VFIO_IOMMU_NESTING_OP_CACHE_INVLD | (1 << 31), s.goodInv()), EINVAL);
  });

  it('an unknown op in the low 16 bits (3): EINVAL', () => {
    const s = setup();
    s.fails(s.raw(80, 3, s.r.bindData()), EINVAL);
    s.fails(s.raw(80, 0xffff, s.r.bindData()), EINVAL);
  });

  it('an unmapped header pointer: EFAULT from the 8-byte header copy', () => {
    const s = setup();
    s.fails(s.r.ioctl(s.cont, VFIO_IOMMU_NESTING_OP, 0x1000), EFAULT);
  });

  it('v8 never checks hdr.argsz against the payload: argsz = 8 still binds the full 72 bytes', () => {
    const s = setup();
    expect(s.raw(8, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, s.r.bindData())).toBe(0);
    expect(present(s.r)).toBe(true);
  });
});

describe('BIND_PGTBL: the IOMMU UAPI, ownership and VT-d checks, errno as the task sees it', () => {
  it('bind-data argsz below minsz (56): EINVAL', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({ argsz: 48 })), EINVAL);
    s.fails(s.r.bind(s.cont, s.r.bindData({ argsz: 0 })), EINVAL);
    expect(present(s.r)).toBe(false);
  });

  it('bind-data argsz between minsz and the VT-d struct end (64): EINVAL from intel_svm_bind_gpasid', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({ argsz: 64 })), EINVAL);
  });

  it('version != 1: EINVAL', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({ version: 0 })), EINVAL);
    s.fails(s.r.bind(s.cont, s.r.bindData({ version: 2 })), EINVAL);
  });

  it('a non-zero padding byte: EINVAL (iommu_check_bind_data)', () => {
    const s = setup();
    for (const at of [48, 51, 55]) {
      const d = s.r.bindData();
      d[at] = 1;
      s.fails(s.r.bind(s.cont, d), EINVAL);
    }
    expect(present(s.r)).toBe(false);
  });

  it('unknown bind flags (beyond IOMMU_SVA_GPASID_VAL): EINVAL', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({ flags: 1n << 1n })), EINVAL);
    s.fails(s.r.bind(s.cont, s.r.bindData({ flags: 1n << 63n })), EINVAL);
  });

  it('unknown VT-d vendor flags (>= IOMMU_SVA_VTD_GPASID_LAST): EINVAL', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({}, { flags: 1n << 7n })), EINVAL);
  });

  it('format >= IOMMU_PASID_FORMAT_LAST: EINVAL; format 0 (not VT-d): EINVAL', () => {
    const s = setup();
    s.fails(s.r.bind(s.cont, s.r.bindData({ format: IOMMU_PASID_FORMAT_LAST })), EINVAL);
    s.fails(s.r.bind(s.cont, s.r.bindData({ format: 0xffff })), EINVAL);
    s.fails(s.r.bind(s.cont, s.r.bindData({ format: 0 })), EINVAL);
  });

  it('an unmapped payload after a readable header: EFAULT from iommu_sva_prepare_bind_data', () => {
    const s = setup();
    const at = headerBeforeGuard(s.r, 80, VFIO_IOMMU_NESTING_OP_BIND_PGTBL);
    const rec = s.r.m.sim.step(s.r.task.thread, '1', 'bind', () => s.fails(s.r.ioctl(s.cont, VFIO_IOMMU_NESTING_OP, at), EFAULT));
    // the 8-byte header, the failing 56-byte copy of the bind, and the rollback unbind's
    // failing 56-byte copy of the same pointer (attempts are counted)
    expect(rec.ioctls[0]).toMatchObject({ copiesFromUser: 3, bytesFromUser: 8 + 56 + 56 });
    expect(names(rec.trace).filter((n) => n === 'iommu_uapi_sva_unbind_gpasid')).toHaveLength(1);
    expect(present(s.r)).toBe(false);
  });

  it('an unmapped tail (argsz 72, the last 16 bytes past the mapping): EFAULT from the second copy', () => {
    const s = setup();
    const page = s.r.task.mm.mmap(4096, 'qemu:edge2');
    if (IS_ERR(page)) throw new Error('mmap');
    const b = new Uint8Array(8 + 56);
    const v = new DataView(b.buffer);
    v.setUint32(0, 80, true);
    v.setUint32(4, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, true);
    b.set(s.r.bindData().subarray(0, 56), 8);
    s.r.task.mm.access(page + 4096 - 64, b, 0, 64, true);
    s.fails(s.r.ioctl(s.cont, VFIO_IOMMU_NESTING_OP, uptr(page + 4096 - 64)), EFAULT);
    expect(present(s.r)).toBe(false);
  });

  it("a PASID allocated in another process's ioasid set: EPERM (ioasid_get_if_owned)", () => {
    const s = setup();
    const other = s.r.m.k.createProcess('other-vmm');
    const ofd = s.r.sys.open(other, '/dev/ioasid');
    const obuf = other.mm.mmap(4096, 'other:heap');
    if (IS_ERR(obuf)) throw new Error('mmap');
    other.mm.access(obuf, encode(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: 9, max: 9 } }), 0, 16, true);
    expect(s.r.sys.ioctl(other, ofd, IOASID_REQUEST_ALLOC, obuf)).toBe(9);
    s.fails(s.r.bind(s.cont, s.r.bindData({ hpasid: 9n, gpasid: 9n })), EPERM);
    expect(pasidEntryOf(s.r.m.iommu, s.r.devs[0]!.info, 9)?.present ?? false).toBe(false);
    expect(intel_svm_bound(s.r.m.k, 9)).toBeNull();
  });

  it('a double bind of the same device and PASID: EBUSY, and v8 rolls the group back with the same pointer, unbinding the first', () => {
    const s = setup({ bound: true });
    expect(present(s.r)).toBe(true);
    s.fails(s.r.bind(s.cont), EBUSY);
    // vfio_iommu_handle_pgtbl_op: on a failed bind it runs vfio_dev_unbind_gpasid_fn over the
    // whole group with the same user data, which names the PASID already bound
    expect(present(s.r)).toBe(false);
    expect(intel_svm_bound(s.r.m.k, PASID)).toBeNull();
    expect(s.r.bind(s.cont)).toBe(0);
  });

  it('an unsupported addr_width (39, 52, 64): EINVAL (48 or 57 only)', () => {
    const s = setup();
    for (const w of [0, 39, 52, 64]) s.fails(s.r.bind(s.cont, s.r.bindData({ addr_width: w })), EINVAL);
    expect(present(s.r)).toBe(false);
  });

  it('BIND_PGTBL on a type1v2 (non-nesting) container: EOPNOTSUPP', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const cont = r.sys.open(r.task, '/dev/vfio/vfio');
    const grp = r.sys.open(r.task, '/dev/vfio/3');
    expect(r.ioctl(grp, VFIO_GROUP_SET_CONTAINER, r.int(cont))).toBe(0);
    expect(VFIO_TYPE1v2_IOMMU).toBe(3);
    expect(r.ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(r.ioctl(cont, VFIO_IOMMU_MAP_DMA, r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: BigInt(r.ram), iova: 0n, size: BigInt(r.ramSize) }))).toBe(0);
    const io = r.sys.open(r.task, '/dev/ioasid');
    expect(r.ioctl(io, IOASID_REQUEST_ALLOC, r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: PASID, max: PASID } }))).toBe(PASID);
    expect(r.bind(cont)).toBe(-1);
    expect(r.task.errno).toBe(EOPNOTSUPP);
    expect(r.unbind(cont)).toBe(-1);
    expect(r.task.errno).toBe(EOPNOTSUPP);
    expect(r.invalidate(cont, { argsz: 56, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID })).toBe(-1);
    expect(r.task.errno).toBe(EOPNOTSUPP);
    expect(present(r)).toBe(false);
    for (const fd of [grp, cont, io]) expect(r.sys.close(r.task, fd)).toBe(0);
    r.m.sim.leaks.assertClean();
  });
});

describe('UNBIND_PGTBL: always 0 past the header checks (v8 04/10)', () => {
  const cases: [string, (s: ReturnType<typeof setup>) => Uint8Array][] = [
    ['argsz below minsz', (s) => s.r.bindData({ argsz: 40 })],
    ['version != 1', (s) => s.r.bindData({ version: 2 })],
    [
      'a non-zero padding byte',
      (s) => {
        const d = s.r.bindData();
        d[52] = 0xff;
        return d;
      },
    ],
    ['unknown flags', (s) => s.r.bindData({ flags: 1n << 5n })],
    ['format >= LAST', (s) => s.r.bindData({ format: IOMMU_PASID_FORMAT_LAST })],
  ];
  for (const [name, data] of cases) {
    it(`${name}: returns 0 and leaves the binding in place`, () => {
      const s = setup({ bound: true });
      expect(s.r.unbind(s.cont, data(s))).toBe(0);
      expect(present(s.r)).toBe(true);
    });
  }

  it("a PASID owned by another process: returns 0 and does not touch that process's PASID", () => {
    const s = setup({ bound: true });
    expect(s.r.unbind(s.cont, s.r.bindData({ hpasid: 77n }))).toBe(0);
    expect(present(s.r)).toBe(true);
  });

  it('an unsupported addr_width is not checked on unbind: the binding goes', () => {
    const s = setup({ bound: true });
    expect(s.r.unbind(s.cont, s.r.bindData({ addr_width: 39 }))).toBe(0);
    expect(present(s.r)).toBe(false);
  });
});

describe('CACHE_INVLD: always 0 past the header checks (v8 05/10), nothing submitted on a bad request', () => {
  it('a valid PASID-selective IOTLB flush submits a P_IOTLB descriptor (the control case)', () => {
    const s = setup({ bound: true });
    const rec = recordSubmissions(s.r.m);
    expect(s.r.invalidate(s.cont, { argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } } })).toBe(0);
    rec.stop();
    expect(rec.batches).toEqual([[6, 5]]);
  });

  it('info argsz below minsz (16), or below the granularity union (PASID < 32, ADDR < 56): 0, nothing flushed', () => {
    const s = setup({ bound: true });
    s.invSwallowed(s.goodInv({ argsz: 8 }));
    s.invSwallowed(s.goodInv({ argsz: 48 }));
    s.invSwallowed(s.inv({ argsz: 24, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID }));
  });

  it('version != 1: 0, nothing flushed, the core stops before the driver', () => {
    const s = setup({ bound: true });
    const rec = s.invSwallowed(s.goodInv({ version: 2 }));
    const n = names(rec.trace);
    expect(n).toContain('iommu_check_cache_invl_data');
    expect(n).not.toContain('intel_iommu_sva_invalidate');
  });

  it('a non-zero padding byte: 0, nothing flushed', () => {
    const s = setup({ bound: true });
    for (const at of [10, 15]) {
      const d = s.goodInv();
      d[at] = 1;
      const rec = s.invSwallowed(d);
      expect(names(rec.trace)).not.toContain('intel_iommu_sva_invalidate');
    }
  });

  it('unknown cache bits, unknown addr / pasid flags: 0, nothing flushed', () => {
    const s = setup({ bound: true });
    s.invSwallowed(s.goodInv({ cache: 1 << 3 }));
    s.invSwallowed(s.goodInv({ granu: { addr_info: { flags: 1 << 3, archid: 0, pasid: BigInt(PASID), addr: BigInt(GUEST_VA), granule_size: 4096n, nb_granules: 1n } } }));
    s.invSwallowed(s.inv({ argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: 1 << 2, archid: 0, pasid: BigInt(PASID) } } }));
  });

  it('granularity >= IOMMU_INV_GRANU_NR: 0, nothing flushed', () => {
    const s = setup({ bound: true });
    s.invSwallowed(s.goodInv({ granularity: 3 }));
  });

  it('an unmapped payload after a readable header: 0 (the EFAULT is dropped), nothing flushed', () => {
    const s = setup({ bound: true });
    const at = headerBeforeGuard(s.r, 64, VFIO_IOMMU_NESTING_OP_CACHE_INVLD);
    const rec = recordSubmissions(s.r.m);
    expect(s.r.ioctl(s.cont, VFIO_IOMMU_NESTING_OP, at)).toBe(0);
    rec.stop();
    expect(rec.batches).toEqual([]);
  });

  it('invalid cache × granularity combinations the core rejects (DOMAIN × DEV_IOTLB, ADDR × PASID-cache): 0, the driver is never called', () => {
    const s = setup({ bound: true });
    for (const info of [
      s.inv({ argsz: 56, version: 1, cache: IOMMU_CACHE_INV_TYPE_DEV_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }),
      s.goodInv({ cache: IOMMU_CACHE_INV_TYPE_PASID }),
      s.goodInv({ cache: IOMMU_CACHE_INV_TYPE_IOTLB | IOMMU_CACHE_INV_TYPE_PASID }),
    ]) {
      const rec = s.invSwallowed(info);
      expect(names(rec.trace)).not.toContain('intel_iommu_sva_invalidate');
    }
  });

  it('a combination the core passes but the VT-d table has no entry for (IOTLB × DOMAIN, DEV_IOTLB × ADDR): 0, the driver breaks without flushing', () => {
    const s = setup({ bound: true });
    for (const info of [
      s.inv({ argsz: 56, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_DOMAIN }),
      s.goodInv({ cache: IOMMU_CACHE_INV_TYPE_DEV_IOTLB }),
    ]) {
      const rec = s.invSwallowed(info);
      expect(names(rec.trace)).toContain('intel_iommu_sva_invalidate');
    }
  });
});
