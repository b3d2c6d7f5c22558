import { describe, expect, it } from 'vitest';
import { P, primitiveCount, type Span } from '../../../sim/index.ts';
import { EFAULT, ENOMEM, IS_ERR } from '../../../models/kernel/errno.ts';
import { IOMMU_IOAS_MAP_FIXED_IOVA, iommu_ioas_copy } from '../../../models/kernel/uapi/index.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../../models/iommu/types.ts';
import { IOMMU_IOAS_COPY } from '../../../models/iommufd/iommufd_h.ts';
import { FakeDomain, MOCK_APERTURE_START, PAGE_SIZE, expectErrno, expectOk, setupIommufd, type Harness } from './helpers.ts';

/**
 * Pins (pages.c): a page is pinned once per iopt_pages while a domain stores it, however many
 * domains map it; IOAS_COPY shares the iopt_pages and so the pins; a second IOAS_MAP of the same
 * memory is a second iopt_pages and pins again. Without a domain nothing is pinned.
 */
const BASE = BigInt(MOCK_APERTURE_START);
const PAGE = BigInt(PAGE_SIZE);

/** the user pages' physical addresses, which the domain must map */
function paddrs(h: Harness, va: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => h.task.mm.translate(va + i * PAGE_SIZE));
}

function domainPaddrs(d: FakeDomain, iova: bigint, n: number): (number | undefined)[] {
  return Array.from({ length: n }, (_, i) => d.ptes.get(Number(iova) + i * PAGE_SIZE));
}

function copy(h: Harness, src_ioas_id: number, dst_ioas_id: number, src_iova: bigint, dst_iova: bigint, length: bigint) {
  return h.ioctl(IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: IOMMU_IOAS_MAP_FIXED_IOVA | 0b110, src_ioas_id, dst_ioas_id, src_iova, dst_iova, length });
}

describe('iopt_pages pins', () => {
  it('pins each page once, however many domains map it; copy shares pins, a second map pins again', () => {
    const h = setupIommufd();
    const ioas = h.ioas_alloc();
    const user = paddrs(h, h.buffer, 16);

    // no domain: a lazy reference, nothing pinned
    h.ioas_map_fixed(ioas, h.buffer, 16n * PAGE, BASE);
    expect(h.pins()).toBe(0);

    // the first domain pins and maps every page, with the area's prot
    const d1 = new FakeDomain('d1');
    expect(h.attach_fake_domain(ioas, d1)).toBe(0);
    expect(h.pins()).toBe(16);
    expect(h.task.mm.pinnedPages).toBe(16);
    expect(domainPaddrs(d1, BASE, 16)).toEqual(user);
    expect(new Set(d1.maps.map((m) => m.prot))).toEqual(new Set([IOMMU_CACHE | IOMMU_READ | IOMMU_WRITE]));

    // a second domain reads the PFNs back: no new pin
    const d2 = new FakeDomain('d2');
    expect(h.attach_fake_domain(ioas, d2)).toBe(0);
    expect(h.pins()).toBe(16);
    expect(domainPaddrs(d2, BASE, 16)).toEqual(user);

    // a new map goes into both domains and pins once more per page
    h.ioas_map_fixed(ioas, h.buffer, 4n * PAGE, BASE + 16n * PAGE);
    expect(h.pins()).toBe(20);
    expect(domainPaddrs(d1, BASE + 16n * PAGE, 4)).toEqual(user.slice(0, 4));
    expect(domainPaddrs(d2, BASE + 16n * PAGE, 4)).toEqual(user.slice(0, 4));

    // IOAS_COPY into another IOAS with its own domain shares the iopt_pages: no new pin
    const ioas2 = h.ioas_alloc();
    const d3 = new FakeDomain('d3');
    expect(h.attach_fake_domain(ioas2, d3)).toBe(0);
    expectOk(copy(h, ioas, ioas2, BASE, BASE + 64n * PAGE, 16n * PAGE));
    expect(h.pins()).toBe(20);
    expect(domainPaddrs(d3, BASE + 64n * PAGE, 16)).toEqual(user);

    // unmapping the source area leaves the pages pinned: ioas2's area still stores them
    expect(h.ioas_unmap(ioas, BASE, 16n * PAGE)).toBe(16n * PAGE);
    expect(d1.ptes.size).toBe(4);
    expect(d2.ptes.size).toBe(4);
    expect(h.pins()).toBe(20);

    // removing the last domain that stores them unpins (after unmapping)
    h.detach_fake_domain(d3);
    expect(d3.ptes.size).toBe(0);
    expect(h.pins()).toBe(4);

    // d2 takes over as storage when d1 goes; the last one unpins
    h.detach_fake_domain(d1);
    expect(h.pins()).toBe(4);
    expect(d2.ptes.size).toBe(4);
    h.detach_fake_domain(d2);
    expect(h.pins()).toBe(0);
    expect(d2.ptes.size).toBe(0);
    h.teardown();
  });

  it('copy inside one IOAS with a domain maps twice and pins once', () => {
    const h = setupIommufd();
    const ioas = h.ioas_alloc();
    const d = new FakeDomain('d');
    expect(h.attach_fake_domain(ioas, d)).toBe(0);
    h.ioas_map_fixed(ioas, h.buffer, 8n * PAGE, BASE);
    expect(h.pins()).toBe(8);
    expectOk(copy(h, ioas, ioas, BASE, BASE + 32n * PAGE, 8n * PAGE));
    expect(h.pins()).toBe(8);
    expect(d.ptes.size).toBe(16);
    // close: the IOAS cannot go while the "HWPT" holds it; detach first, as device close would
    h.detach_fake_domain(d);
    expect(h.pins()).toBe(0);
    h.teardown();
  });

  it('mapping memory that is not there fails with EFAULT once a domain exists, and pins nothing', () => {
    const h = setupIommufd();
    const ioas = h.ioas_alloc();
    // without a domain the kernel does not look at the memory
    h.ioas_map_fixed(ioas, 2 ** 31, PAGE, BASE);
    h.ioas_unmap(ioas, BASE, PAGE);
    const d = new FakeDomain('d');
    expect(h.attach_fake_domain(ioas, d)).toBe(0);
    // the buffer's last page is followed by a guard page
    const r = h.ioas_map_raw(ioas, h.buffer + 15 * PAGE_SIZE, 2n * PAGE, BASE, 0b111);
    expectErrno(r, EFAULT);
    expect(h.pins()).toBe(0);
    expect(d.ptes.size).toBe(0);
    h.detach_fake_domain(d);
    h.teardown();
  });

  it('a domain that fails part-way through iopt_table_add_domain is left empty and pins are unchanged', () => {
    const h = setupIommufd();
    const ioas = h.ioas_alloc();
    h.ioas_map_fixed(ioas, h.buffer, 4n * PAGE, BASE);
    h.ioas_map_fixed(ioas, h.buffer + 4 * PAGE_SIZE, 4n * PAGE, BASE + 8n * PAGE);
    // first domain: fails on the second area, so the first area's pins are dropped again
    const bad = new FakeDomain('bad');
    bad.failMapAfter = 5;
    expect(h.attach_fake_domain(ioas, bad)).toBe(-ENOMEM);
    expect(bad.ptes.size).toBe(0);
    expect(h.pins()).toBe(0);
    // with a good domain in place, a failing second one unmaps and leaves the pins alone
    const good = new FakeDomain('good');
    expect(h.attach_fake_domain(ioas, good)).toBe(0);
    expect(h.pins()).toBe(8);
    const bad2 = new FakeDomain('bad2');
    bad2.failMapAfter = 5;
    expect(h.attach_fake_domain(ioas, bad2)).toBe(-ENOMEM);
    expect(bad2.ptes.size).toBe(0);
    expect(good.ptes.size).toBe(8);
    expect(h.pins()).toBe(8);
    // a failing map into the second domain of a new area unwinds both domains
    const bad3 = new FakeDomain('bad3');
    expect(h.attach_fake_domain(ioas, bad3)).toBe(0);
    bad3.failMapAfter = bad3.maps.length;
    expectErrno(h.ioas_map_raw(ioas, h.buffer + 8 * PAGE_SIZE, 4n * PAGE, BASE + 32n * PAGE, 0b111), ENOMEM);
    expect(good.ptes.size).toBe(8);
    expect(bad3.ptes.size).toBe(8);
    expect(h.pins()).toBe(8);
    h.detach_fake_domain(bad3);
    h.detach_fake_domain(good);
    h.teardown();
  });
});

describe('IOMMU_IOAS_MAP through the syscall layer', () => {
  it('copies the 4-byte size and the 40-byte struct in, 40 bytes out, along the kernel chain', () => {
    const h = setupIommufd();
    const ioas = h.ioas_alloc();
    const rec = h.sim.step(h.task.thread, '1', 'map', () => {
      h.ioas_map(ioas, h.buffer, 4n * PAGE);
    });
    expect(rec.ioctls).toEqual([
      { name: 'IOMMU_IOAS_MAP', file: 'iommufd', ret: 0, copiesFromUser: 2, bytesFromUser: 44, copiesToUser: 1, bytesToUser: 40 },
    ]);
    const chain: string[] = [];
    let s: Span | undefined = rec.trace[0];
    while (s) {
      chain.push(s.fn.name);
      s = s.children.find((c: Span) => c.fn.layer === 'iommufd' || c.fn.layer === 'vfs');
    }
    expect(chain.slice(0, 4)).toEqual(['__x64_sys_ioctl', 'vfs_ioctl', 'iommufd_fops_ioctl', 'iommufd_ioas_map']);
    const map = rec.trace[0]!.children[0]!.children[0]!.children.find((c: Span) => c.fn.name === 'iommufd_ioas_map')!;
    expect(map.fn).toMatchObject({ handler: true, op: 'map', uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_ioas_map *' } });
    expect(map.children.map((c: Span) => c.fn.name)).toEqual(['iommufd_get_object', 'iopt_map_user_pages', 'iommufd_ucmd_respond']);
    // no domain: no pin charged
    expect(primitiveCount(rec, P.pinPage)).toBe(0);
    h.teardown();
  });

  it('names its ioctls from the header', () => {
    const h = setupIommufd();
    expect(h.sys.k.devfs.lookup('/dev/iommu')?.fops.ioctlName?.(0x3b85)).toBe('IOMMU_IOAS_MAP');
    expect(h.sys.k.devfs.lookup('/dev/iommu')?.fops.ioctlName?.(0x3b89)).toBe('IOMMU_HWPT_ALLOC');
    expect(h.sys.k.devfs.lookup('/dev/iommu')?.fops.ioctlName?.(0x3b7f)).toBeUndefined();
    expect(IS_ERR(h.buffer)).toBe(false);
    h.teardown();
  });
});
