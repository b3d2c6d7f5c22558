import { describe, expect, it } from 'vitest';
import {
  array,
  au64,
  defineStruct,
  flex,
  inlineStruct,
  layoutOf,
  member,
  offsetOf,
  offsetOfEnd,
  requireStruct,
  sizeOf,
  u16,
  u32,
  u64,
  u8,
  union,
  type HeaderOrigin,
} from '../../../../models/kernel/uapi/index.ts';

const TEST: HeaderOrigin = {
  header: 'test.h',
  design: 'B',
  source: { kind: 'merged', era: 'test', ref: 'test' },
};

describe('sizes named in the design', () => {
  const expected: Record<string, number> = {
    iommu_gpasid_bind_data: 72,
    iommu_cache_invalidate_info: 56,
    iommu_nesting_info: 64,
    vfio_iommu_type1_info_cap_nesting: 72,
    iommu_hwpt_alloc: 48,
    iommu_hwpt_invalidate: 32,
    iommu_hwpt_vtd_s1: 24,
    iommu_hwpt_vtd_s1_invalidate: 24,
    iommu_hw_info_vtd: 24,
    iommu_hwpt_pgfault: 40,
    iommu_hwpt_page_response: 8,
    vfio_device_bind_iommufd: 16,
    vfio_device_attach_iommufd_pt: 16,
    vfio_device_detach_iommufd_pt: 12,
    // and from the reference notes
    iommu_fault: 64,
    iommu_page_response: 24,
    vfio_iommu_type1_info: 24,
    vfio_info_cap_header: 8,
    vfio_iommu_type1_nesting_op: 8,
    ioasid_info: 12,
    ioasid_alloc_request: 16,
    iommu_viommu_alloc: 24,
  };
  for (const [name, size] of Object.entries(expected)) {
    it(`${name} is ${size} bytes`, () => expect(sizeOf(requireStruct(name))).toBe(size));
  }

  it('v8 bind data puts the VT-d vendor union at 56 (= the minsz iommu_uapi_sva_bind_gpasid copies)', () => {
    const d = requireStruct('iommu_gpasid_bind_data');
    expect(offsetOf(d, 'vendor')).toBe(56);
    expect(offsetOf(d, 'vendor.vtd.pat')).toBe(64);
    expect(offsetOfEnd(d, 'vendor.vtd')).toBe(72);
  });

  it('cache invalidate: granu at 16, argsz needed for PASID 32 and ADDR 56', () => {
    const d = requireStruct('iommu_cache_invalidate_info');
    expect(offsetOf(d, 'granu')).toBe(16);
    expect(offsetOfEnd(d, 'granu.pasid_info')).toBe(32);
    expect(offsetOfEnd(d, 'granu.addr_info')).toBe(56);
  });

  it('kernel minimum sizes come out of offsetofend', () => {
    expect(offsetOfEnd(requireStruct('iommu_hwpt_alloc'), '__reserved')).toBe(24);
    expect(offsetOfEnd(requireStruct('vfio_device_attach_iommufd_pt'), 'pt_id')).toBe(12);
    expect(offsetOfEnd(requireStruct('vfio_device_detach_iommufd_pt'), 'flags')).toBe(8);
    expect(offsetOf(requireStruct('vfio_iommu_type1_info_cap_nesting'), 'info.vendor.vtd.cap_reg')).toBe(8 + 48);
  });

  it('unknown member paths are errors', () => {
    expect(() => offsetOf(requireStruct('iommu_hwpt_alloc'), 'nope')).toThrow(/iommu_hwpt_alloc has no member nope/);
  });
});

describe('gcc x86_64 layout rules', () => {
  it('__aligned_u64 makes an otherwise 4-aligned struct 8-aligned, with a hole before it', () => {
    const d = defineStruct('t_aligned', TEST, [u32('a'), au64('b'), u32('c')]);
    const lay = layoutOf(d);
    expect(lay.align).toBe(8);
    expect(offsetOf(d, 'b')).toBe(8);
    expect(offsetOf(d, 'c')).toBe(16);
    expect(lay.size).toBe(24); // trailing padding to the 8-byte alignment
  });

  it('trailing padding rounds the size up to the alignment', () => {
    expect(sizeOf(defineStruct('t_tail', TEST, [u64('a'), u8('b')]))).toBe(16);
    expect(sizeOf(defineStruct('t_small', TEST, [u16('a'), u8('b')]))).toBe(4);
    expect(sizeOf(defineStruct('t_bytes', TEST, [array('a', '__u8', 3)]))).toBe(3);
  });

  it('a union is as large as its largest member, rounded to its alignment; all members at 0', () => {
    const d = defineStruct('t_union', TEST, [
      u32('tag'),
      union('u', [u8('small'), array('big', '__u8', 9), u32('word')]),
    ]);
    expect(offsetOf(d, 'u')).toBe(4);
    expect(offsetOf(d, 'u.small')).toBe(4);
    expect(offsetOf(d, 'u.big')).toBe(4);
    expect(offsetOf(d, 'u.word')).toBe(4);
    expect(layoutOf(d).members.find((m) => m.path === 'u')?.size).toBe(12);
    expect(sizeOf(d)).toBe(16);
  });

  it('anonymous unions promote their members to the enclosing struct', () => {
    const fault = requireStruct('iommu_fault');
    expect(offsetOf(fault, 'event')).toBe(8);
    expect(offsetOf(fault, 'prm.addr')).toBe(24);
    expect(layoutOf(fault).members.map((m) => m.path)).toContain('padding2');
  });

  it('a flex array adds its alignment but no size', () => {
    const d = defineStruct('t_flex', TEST, [u32('a'), flex('data', '__u64')]);
    expect(layoutOf(d).flex).toMatchObject({ name: 'data', offset: 8 });
    expect(sizeOf(d)).toBe(8);
    const bytes = defineStruct('t_flex8', TEST, [u32('a'), u32('b'), flex('data', '__u8')]);
    expect(sizeOf(bytes)).toBe(8);
    const odd = defineStruct('t_flex_odd', TEST, [u64('a'), u32('b'), flex('data', '__u8')]);
    expect(offsetOf(odd, 'data')).toBe(12);
    expect(sizeOf(odd)).toBe(16);
  });

  it('a struct defined in place (ioasid_alloc_request.range) is laid out like a named one', () => {
    const d = requireStruct('ioasid_alloc_request');
    expect(offsetOf(d, 'range.min')).toBe(8);
    expect(offsetOf(d, 'range.max')).toBe(12);
    const inl = defineStruct('t_inline', TEST, [u8('a'), inlineStruct('s', [u8('x'), u64('y')])]);
    expect(offsetOf(inl, 's')).toBe(8);
    expect(offsetOf(inl, 's.y')).toBe(16);
    expect(sizeOf(inl)).toBe(24);
  });

  it('rejects declarations gcc would reject or we cannot encode', () => {
    const withFlex = defineStruct('t_has_flex', TEST, [u32('a'), flex('d', '__u8')]);
    expect(() => layoutOf(defineStruct('t_bad1', TEST, [flex('d', '__u8'), u32('a')]))).toThrow(/last member/);
    expect(() => layoutOf(defineStruct('t_bad2', TEST, [member('x', withFlex), u32('a')]))).toThrow(/flex array/);
    expect(() => layoutOf(defineStruct('t_bad3', TEST, [u32('a'), u32('a')]))).toThrow(/duplicate member/);
    expect(() => layoutOf(defineStruct('t_bad4', TEST, [u32('a'), union(undefined, [u32('a')])]))).toThrow(
      /t_bad4\.a: duplicate member/,
    );
    expect(() => array('x', '__u8', 0)).toThrow(/bad length/);
  });
});
