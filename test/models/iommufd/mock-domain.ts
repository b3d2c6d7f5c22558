import { expect } from 'vitest';
import { NO_PASID } from '../../../models/hw/vtd/vtd.ts';
import { IS_ERR, errname } from '../../../models/kernel/errno.ts';
import type { UserPtr } from '../../../models/kernel/mm.ts';
import {
  IOMMU_HWPT_DATA_NONE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  iommu_destroy,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '../../../models/kernel/uapi/index.ts';
import type { HostOptions } from '../../../models/machine/host.ts';
import { IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP } from '../../../models/iommufd/iommufd_h.ts';
import { iommufd_init } from '../../../models/iommufd/main.ts';
import { iommufd_test_mock_domain, iommufd_test_mock_domain_replace } from '../../../models/iommufd/selftest.ts';
import { bootHost } from '../../helpers/host.ts';
import { BUFFER_SIZE, PAGE_SIZE, expectErrno, expectOk, selftestUserCalls } from './helpers.ts';

/**
 * The selftest harness (iommufd_utils.h) on the shared platform: a HostMachine with the emulated
 * VT-d, /dev/iommu open, `buffer` mapped, and PCI functions that play the mock devices
 * (selftest.ts). Ioctls return −1 with errno like libc.
 */
export { BUFFER_SIZE, PAGE_SIZE };
/** the selftests' base_iova with a domain: MOCK_APERTURE_START (any IOVA works on VT-d) */
export const BASE_IOVA = 1 << 24;
export const RW = IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

export type HostHarness = ReturnType<typeof setupIommufdHost>;

/** the optional members of IOMMU_HWPT_ALLOC a test sets */
export interface HwptAllocExtra {
  data_type?: number;
  data?: Uint8Array | null;
  data_len?: number;
  fault_id?: number;
  __reserved?: number;
}

export function setupIommufdHost(opts: HostOptions & { devices?: number } = {}) {
  const host = bootHost({ frames: 1 << 14, ...opts });
  const { m, task } = host;
  const mod = iommufd_init(m.k, m.core);
  const fd = m.sys.open(task, '/dev/iommu');
  expect(fd).toBeGreaterThanOrEqual(0);
  const buffer = task.mm.mmap(BUFFER_SIZE, 'selftest:buffer');
  const cmdArea = task.mm.mmap(4 * PAGE_SIZE, 'selftest:cmd');
  if (IS_ERR(buffer) || IS_ERR(cmdArea)) throw new Error('mmap');
  // the mock devices: one PCI function each, each in its own IOMMU group (rid 03:0n.0)
  const devs = Array.from({ length: opts.devices ?? 2 }, (_, i) => m.addPciDevice(`mock${i}`, 0x0300 + (i << 3), { pasidBits: 20 }));
  let nextDev = 0;
  const h = {
    ...host,
    mod,
    fd,
    devs,
    buffer: buffer as UserPtr,
    cmdArea: cmdArea as UserPtr,
    /** where payloads (hwpt data, hw_info buffers) go */
    dataArea: (cmdArea as UserPtr) + 2 * PAGE_SIZE,
    ...selftestUserCalls(m.sys, task, fd, cmdArea as UserPtr),

    ioas_map_fixed_raw(ioas_id: number, va: number, length: number, iova: number) {
      return h.ioctl(IOMMU_IOAS_MAP, iommu_ioas_map, { flags: IOMMU_IOAS_MAP_FIXED_IOVA | RW, ioas_id, user_va: BigInt(va), length: BigInt(length), iova: BigInt(iova) });
    },
    ioas_map_fixed(ioas_id: number, va: number, length: number, iova: number): void {
      expectOk(h.ioas_map_fixed_raw(ioas_id, va, length, iova));
    },
    ioas_unmap(ioas_id: number, iova: number | bigint, length: number | bigint) {
      return h.ioctl(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id, iova: BigInt(iova), length: BigInt(length) });
    },
    destroy(id: number) {
      return h.ioctl(IOMMU_DESTROY, iommu_destroy, { id });
    },

    /** _test_cmd_hwpt_alloc: returns rc/errno and out_hwpt_id; `data` is encoded into dataArea */
    hwpt_alloc(dev_id: number, pt_id: number, flags: number, extra: HwptAllocExtra = {}): { rc: number; errno: number; id: number } {
      let data_uptr = 0n;
      if (extra.data) {
        h.poke(h.dataArea, extra.data);
        data_uptr = BigInt(h.dataArea);
      }
      const r = h.ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
        flags,
        dev_id,
        pt_id,
        data_type: extra.data_type ?? IOMMU_HWPT_DATA_NONE,
        data_len: extra.data_len ?? extra.data?.length ?? 0,
        data_uptr,
        fault_id: extra.fault_id ?? 0,
        __reserved: extra.__reserved ?? 0,
      });
      return { rc: r.rc, errno: r.errno, id: r.out.out_hwpt_id as number };
    },
    hwpt_alloc_ok(dev_id: number, pt_id: number, flags: number, extra: HwptAllocExtra = {}): number {
      const r = h.hwpt_alloc(dev_id, pt_id, flags, extra);
      expectOk(r);
      return r.id;
    },
    /** _test_cmd_get_hw_info: data_len bytes at dataArea (or NULL when data_len is 0) */
    get_hw_info(dev_id: number, data_len: number, fill = 0xaa) {
      h.poke(h.dataArea, new Uint8Array(64).fill(fill));
      return h.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id, data_len, data_uptr: data_len ? BigInt(h.dataArea) : 0n });
    },

    /** test_cmd_mock_domain: the next PCI function becomes a mock device on pt_id */
    mock_domain(pt_id: number) {
      const d = devs[nextDev++];
      if (!d) throw new Error('no more mock devices');
      return { ...host.asTask(() => iommufd_test_mock_domain(h.ictx(), d.dev, pt_id)), d };
    },
    mock_domain_replace(stdev_id: number, pt_id: number) {
      return host.asTask(() => iommufd_test_mock_domain_replace(h.ictx(), stdev_id, pt_id));
    },

    /**
     * MD_CHECK_MAP, by DMA: the device writes a pattern at each page of [iova, +length) through
     * the VT-d, and the bytes must land in the user pages at va.
     */
    check_map_dma(d: (typeof devs)[number], iova: number, va: number, length: number): void {
      for (let off = 0; off < length; off += PAGE_SIZE) {
        const pat = Uint8Array.of(0x5a, off >>> 12, 0xa5, 0x3c);
        const w = d.pci.dmaWrite(NO_PASID, iova + off + 8, pat);
        expect(w.status, `DMA at iova 0x${(iova + off).toString(16)}`).toBe('ok');
        expect([...h.peek(va + off + 8, 4)]).toEqual([...pat]);
      }
    },
    /** a DMA that must fault (nothing mapped, or blocked) */
    dma_faults(d: (typeof devs)[number], iova: number): boolean {
      return d.pci.dmaWrite(NO_PASID, iova, Uint8Array.of(1)).status === 'fault';
    },

    pins(): number {
      expect(task.mm.pinnedPages).toBe(m.sim.leaks.count('pin'));
      return m.sim.leaks.count('pin');
    },

    /** teardown_iommufd: close destroys every object; nothing pinned, allocated or left in the IOMMU */
    teardown(): void {
      expect(m.sys.close(task, fd)).toBe(0);
      expect(task.mm.pinnedPages).toBe(0);
      m.sim.leaks.assertClean('teardown_iommufd');
    },
  };
  return h;
}

export { expectErrno, expectOk };

/** a mock-domain result must be rc 0; returns it */
export function ok<T extends { rc: number }>(r: T): T {
  expect(r.rc, errname(-r.rc)).toBe(0);
  return r;
}

/** a kernel-API rc (−errno) */
export function expectRc(r: { rc: number }, errno: number): void {
  expect(errname(-r.rc)).toBe(errname(errno));
}
