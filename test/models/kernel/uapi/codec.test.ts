import { describe, expect, it } from 'vitest';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_GPASID_BIND_VERSION_1,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_PASID_FORMAT_INTEL_VTD,
  IOMMU_SVA_GPASID_VAL,
  IOMMU_SVA_VTD_GPASID_SRE,
  IOMMU_FAULT_PAGE_REQ,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  allStructs,
  decode,
  encode,
  iommu_cache_invalidate_info,
  iommu_fault,
  iommu_gpasid_bind_data,
  iommu_hwpt_alloc,
  iommu_hwpt_vtd_s1_invalidate,
  iommu_ioas_map_file,
  iommu_option,
  ioasid_alloc_request,
  layoutOf,
  vfio_device_bind_iommufd,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_nesting_op,
  type LaidNode,
  type StructDecl,
  type UapiObject,
} from '../../../../models/kernel/uapi/index.ts';

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const le32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const le64 = (b: Uint8Array, at: number): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(at, true);

const bind = {
  argsz: 72,
  version: IOMMU_GPASID_BIND_VERSION_1,
  format: IOMMU_PASID_FORMAT_INTEL_VTD,
  addr_width: 48,
  flags: IOMMU_SVA_GPASID_VAL,
  gpgd: 0x1234_5000n,
  hpasid: 5,
  gpasid: 5n,
  vendor: { vtd: { flags: IOMMU_SVA_VTD_GPASID_SRE, pat: 0x0007_0406, emt: 0 } },
};

describe('encode / decode', () => {
  it('writes little-endian values at the gcc offsets', () => {
    const b = encode(iommu_gpasid_bind_data, bind);
    expect(b.length).toBe(72);
    expect(le32(b, 0)).toBe(72);
    expect(le32(b, 8)).toBe(1);
    expect(le32(b, 12)).toBe(48);
    expect(le64(b, 16)).toBe(1n);
    expect(le64(b, 24)).toBe(0x1234_5000n);
    expect(le64(b, 56)).toBe(1n); // vendor.vtd.flags
    expect(le32(b, 64)).toBe(0x0007_0406);
  });

  it('round-trips, with 64-bit members as bigint and the rest as numbers', () => {
    const d = decode(iommu_gpasid_bind_data, encode(iommu_gpasid_bind_data, bind));
    expect(d).toMatchObject({ argsz: 72, version: 1, addr_width: 48, flags: 1n, gpgd: 0x1234_5000n, hpasid: 5n });
    expect(d['padding']).toEqual(new Uint8Array(8));
    expect(d['vendor']).toEqual({ vtd: { flags: 1n, pat: 0x0007_0406, emt: 0 } });
    expect(encode(iommu_gpasid_bind_data, d)).toEqual(encode(iommu_gpasid_bind_data, bind));
  });

  it('keeps U64_MAX exact ("invalidate everything")', () => {
    const b = encode(iommu_hwpt_vtd_s1_invalidate, { addr: 0, npages: U64_MAX, flags: 0 });
    expect(Array.from(b.subarray(8, 16))).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
    expect(decode(iommu_hwpt_vtd_s1_invalidate, b)['npages']).toBe(U64_MAX);
  });

  it('encodes missing members as zero', () => {
    const b = encode(iommu_hwpt_alloc, { size: 48, pt_id: 3 });
    expect(b).toEqual(Uint8Array.from({ length: 48 }, (_, i) => (i === 0 ? 48 : i === 12 ? 3 : 0)));
    expect(encode(iommu_hwpt_alloc)).toEqual(new Uint8Array(48));
  });

  it('handles signed members (__s32 iommufd, fd)', () => {
    const b = encode(iommu_ioas_map_file, { fd: -1 });
    expect(Array.from(b.subarray(12, 16))).toEqual([255, 255, 255, 255]);
    expect(decode(iommu_ioas_map_file, b)['fd']).toBe(-1);
    expect(decode(vfio_device_bind_iommufd, encode(vfio_device_bind_iommufd, { iommufd: -2147483648 }))['iommufd']).toBe(
      -2147483648,
    );
  });

  it('handles u16 members and structs defined in place', () => {
    const b = encode(iommu_option, { op: 0xffff, val64: 2 });
    expect(decode(iommu_option, b)).toMatchObject({ op: 0xffff, __reserved: 0, val64: 2n });
    const r = decode(ioasid_alloc_request, encode(ioasid_alloc_request, { argsz: 16, range: { min: 7, max: 7 } }));
    expect(r['range']).toEqual({ min: 7, max: 7 });
  });
  it('a number and the same value as a bigint encode to the same bytes, at every width and boundary', () => {
    // iommu_hwpt_vtd_s1_invalidate: __aligned_u64 addr/npages, __u32 flags; iommu_option: __u16 op;
    // vfio_device_bind_iommufd: __s32 iommufd
    const cases: [StructDecl, string, number][] = [
      ...[0, 1, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 32, 2 ** 32 + 5, 2 ** 40 - 1, 2 ** 52 + 3, Number.MAX_SAFE_INTEGER].map(
        (v): [StructDecl, string, number] => [iommu_hwpt_vtd_s1_invalidate, 'addr', v],
      ),
      ...[0, 1, 0x7fffffff, 0x80000000, 0xffffffff].map((v): [StructDecl, string, number] => [iommu_hwpt_vtd_s1_invalidate, 'flags', v]),
      ...[0, 0x8000, 0xffff].map((v): [StructDecl, string, number] => [iommu_option, 'op', v]),
      ...[-(2 ** 31), -1, 0, 2 ** 31 - 1].map((v): [StructDecl, string, number] => [vfio_device_bind_iommufd, 'iommufd', v]),
    ];
    for (const [decl, member, v] of cases) {
      expect(Array.from(encode(decl, { [member]: v })), `${decl.name}.${member} = ${v}`).toEqual(Array.from(encode(decl, { [member]: BigInt(v) })));
    }
    expect(le64(encode(iommu_hwpt_vtd_s1_invalidate, { addr: 2 ** 52 + 3 }), 0)).toBe(2n ** 52n + 3n);
  });
});

describe('unions', () => {
  const addrInv = {
    argsz: 56,
    version: 1,
    cache: IOMMU_CACHE_INV_TYPE_IOTLB,
    granularity: IOMMU_INV_GRANU_ADDR,
    granu: { addr_info: { flags: 1, pasid: 5, addr: 0x40_0000, granule_size: 4096, nb_granules: 2 } },
  };

  it('decode returns every member view of the same bytes', () => {
    const d = decode(iommu_cache_invalidate_info, encode(iommu_cache_invalidate_info, addrInv));
    const granu = d['granu'] as UapiObject;
    expect(granu['addr_info']).toEqual({
      flags: 1,
      archid: 0,
      pasid: 5n,
      addr: 0x40_0000n,
      granule_size: 4096n,
      nb_granules: 2n,
    });
    expect(granu['pasid_info']).toEqual({ flags: 1, archid: 0, pasid: 5n });
    // re-encoding both views is fine: they agree byte for byte
    expect(encode(iommu_cache_invalidate_info, d)).toEqual(encode(iommu_cache_invalidate_info, addrInv));
  });

  it('rejects two members whose bytes conflict', () => {
    expect(() =>
      encode(iommu_cache_invalidate_info, {
        granu: { pasid_info: { pasid: 1 }, addr_info: { pasid: 2 } },
      }),
    ).toThrow(/iommu_cache_invalidate_info\.granu: union members pasid_info and addr_info .*conflicting bytes at offset 8/);
  });

  it('anonymous unions are reached through the enclosing struct (iommu_fault.prm)', () => {
    const b = encode(iommu_fault, {
      type: IOMMU_FAULT_PAGE_REQ,
      prm: { flags: 3, pasid: 5, grpid: 9, perm: 1, addr: 0x1000, private_data: [0, U64_MAX] },
    });
    expect(b.length).toBe(64);
    const d = decode(iommu_fault, b);
    expect(Object.keys(d)).toEqual(['type', 'padding', 'event', 'prm', 'padding2']);
    expect((d['prm'] as UapiObject)['private_data']).toEqual([0n, U64_MAX]);
    expect((d['event'] as UapiObject)['reason']).toBe(3); // prm.flags seen through the other view
    expect((d['padding2'] as Uint8Array).length).toBe(56);
    expect(() => encode(iommu_fault, { prm: { flags: 1 }, padding2: new Uint8Array(56) })).toThrow(
      /iommu_fault: union members prm and padding2 .*conflicting bytes at offset 0/,
    );
  });
});

describe('flex arrays', () => {
  it('v8 NESTING_OP carries the bind data as raw bytes after the 8-byte header', () => {
    const payload = encode(iommu_gpasid_bind_data, bind);
    const op = encode(vfio_iommu_type1_nesting_op, {
      argsz: 8 + payload.length,
      flags: VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
      data: payload,
    });
    expect(op.length).toBe(80);
    const d = decode(vfio_iommu_type1_nesting_op, op);
    expect(d['argsz']).toBe(80);
    expect(d['data']).toEqual(payload);
    expect(decode(iommu_gpasid_bind_data, d['data'] as Uint8Array)['gpgd']).toBe(0x1234_5000n);
    expect(decode(vfio_iommu_type1_nesting_op, op, { flexCount: 16 })['data']).toEqual(payload.subarray(0, 16));
    expect(decode(vfio_iommu_type1_nesting_op, encode(vfio_iommu_type1_nesting_op, {}))['data']).toEqual(new Uint8Array(0));
  });

  it('takes an array of elements, including structs, and decodes whole elements', () => {
    const b = encode(vfio_iommu_type1_info_cap_iova_range, {
      header: { id: 1, version: 1 },
      nr_iovas: 2,
      iova_ranges: [
        { start: 0, end: 0xfedf_ffffn },
        { start: 0xfef0_0000n, end: U64_MAX },
      ],
    });
    expect(b.length).toBe(16 + 32);
    const d = decode(vfio_iommu_type1_info_cap_iova_range, b);
    expect(d['iova_ranges']).toEqual([
      { start: 0n, end: 0xfedf_ffffn },
      { start: 0xfef0_0000n, end: U64_MAX },
    ]);
    expect(decode(vfio_iommu_type1_info_cap_iova_range, b, { flexCount: 1 })['iova_ranges']).toHaveLength(1);
    expect(encode(vfio_iommu_type1_nesting_op, { data: [1, 2, 3] }).subarray(8)).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('rejects impossible element counts and partial elements', () => {
    const b = encode(vfio_iommu_type1_info_cap_iova_range, { iova_ranges: [{ start: 1, end: 2 }] });
    expect(() => decode(vfio_iommu_type1_info_cap_iova_range, b, { flexCount: 2 })).toThrow(
      /vfio_iommu_type1_info_cap_iova_range\.iova_ranges: 2 elements do not fit in 32 bytes/,
    );
    expect(() => encode(vfio_iommu_type1_info_cap_iova_range, { iova_ranges: new Uint8Array(10) })).toThrow(
      /iova_ranges: 10 bytes is not a whole number of 16-byte elements/,
    );
    expect(() => decode(iommu_hwpt_alloc, new Uint8Array(48), { flexCount: 0 })).toThrow(/has no flex array/);
  });
});

describe('bad input fails loudly, naming struct.member', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['unknown member', () => encode(iommu_hwpt_alloc, { flag: 1 }), /iommu_hwpt_alloc: unknown member "flag"/],
    [
      'unknown nested member',
      () => encode(iommu_gpasid_bind_data, { vendor: { vtd: { flag: 1 } } }),
      /iommu_gpasid_bind_data\.vendor\.vtd: unknown member "flag"/,
    ],
    ['u32 overflow', () => encode(iommu_hwpt_alloc, { flags: 2 ** 32 }), /iommu_hwpt_alloc\.flags: value 4294967296 out of range for __u32/],
    ['negative unsigned', () => encode(iommu_hwpt_alloc, { dev_id: -1 }), /iommu_hwpt_alloc\.dev_id: value -1 out of range for __u32/],
    ['u16 overflow', () => encode(iommu_option, { op: 0x10000 }), /iommu_option\.op: value 65536 out of range for __u16/],
    ['u8 overflow', () => encode(iommu_cache_invalidate_info, { cache: 256 }), /iommu_cache_invalidate_info\.cache: value 256 out of range for __u8/],
    ['s32 underflow', () => encode(vfio_device_bind_iommufd, { iommufd: -(2 ** 31) - 1 }), /vfio_device_bind_iommufd\.iommufd: .* out of range for __s32/],
    ['u64 overflow', () => encode(iommu_hwpt_vtd_s1_invalidate, { npages: U64_MAX + 1n }), /npages: value 18446744073709551616 out of range for __aligned_u64/],
    ['unsafe number for u64', () => encode(iommu_hwpt_vtd_s1_invalidate, { addr: 2 ** 60 + 1 }), /addr: .* not an exact integer .*use a bigint/],
    ['fraction', () => encode(iommu_hwpt_alloc, { pt_id: 1.5 }), /iommu_hwpt_alloc\.pt_id: 1\.5 is not an exact integer/],
    ['string for an integer', () => encode(iommu_hwpt_alloc, { pt_id: '3' }), /iommu_hwpt_alloc\.pt_id: expected an integer for __u32, got string/],
    ['wrong array length', () => encode(iommu_gpasid_bind_data, { padding: new Uint8Array(12) }), /iommu_gpasid_bind_data\.padding: wrong array length 12, expected 8/],
    ['wrong array length (elements)', () => encode(iommu_fault, { prm: { private_data: [1] } }), /iommu_fault\.prm\.private_data: wrong array length 1, expected 2/],
    ['bad array element', () => encode(iommu_fault, { prm: { private_data: [1, -1] } }), /iommu_fault\.prm\.private_data\[1\]: value -1 out of range for __u64/],
    ['object expected', () => encode(iommu_gpasid_bind_data, { vendor: 5 }), /iommu_gpasid_bind_data\.vendor: expected an object, got number/],
    ['short buffer', () => decode(iommu_hwpt_alloc, new Uint8Array(40)), /iommu_hwpt_alloc: need 48 bytes, got 40/],
  ];
  for (const [what, run, message] of cases) {
    it(what, () => expect(run).toThrow(message));
  }
});

/** Bytes that some scalar member covers (implicit padding is not preserved by decode+encode). */
function coverage(decl: StructDecl): boolean[] {
  const lay = layoutOf(decl);
  const mask = new Array<boolean>(lay.size).fill(false);
  const walk = (node: LaidNode, at: number): void => {
    if (node.kind === 'scalar') for (let i = 0; i < node.size; i++) mask[at + i] = true;
    else if (node.kind === 'array') for (let i = 0; i < node.count; i++) walk(node.elem, at + i * node.elem.size);
    else if (node.kind === 'record') for (const f of node.fields) walk(f.node, at + f.offset);
  };
  walk(lay.root, 0);
  return mask;
}

describe('every registered struct round-trips arbitrary bytes', () => {
  let seed = 0x2021_0302;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 24;
  };
  for (const decl of allStructs()) {
    it(decl.name, () => {
      const size = layoutOf(decl).size;
      const flexExtra = layoutOf(decl).flex ? layoutOf(decl).flex!.elem.size * 2 : 0;
      const bytes = Uint8Array.from({ length: size + flexExtra }, rand);
      const mask = coverage(decl);
      const expected = bytes.map((b, i) => (i >= size || mask[i] ? b : 0));
      const decoded = decode(decl, bytes);
      expect(encode(decl, decoded)).toEqual(expected);
      expect(decode(decl, encode(decl, decoded))).toEqual(decoded);
    });
  }
});
