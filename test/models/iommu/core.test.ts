import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../models/hw/vtd/vtd.ts';
import { FR } from '../../../models/hw/vtd/faults.ts';
import { PGTT } from '../../../models/hw/vtd/tables.ts';
import { EBUSY, EINVAL, EPERM, IS_ERR } from '../../../models/kernel/errno.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '../../../models/iommu/types.ts';
import { bootHost } from '../../helpers/host.ts';

function paging(m: ReturnType<typeof bootHost>['m'], dev: Parameters<typeof m.iommu.ops.domain_alloc_paging_flags>[0], flags = 0): IommuDomain {
  const d = m.iommu.ops.domain_alloc_paging_flags(dev, flags, null);
  if (IS_ERR(d)) throw new Error(`alloc ${d.err}`);
  return d;
}

describe('IOMMU core: groups, ownership and RID attach', () => {
  it('starts devices in the identity domain (pass-through) and blocks DMA once a user claims them', () => {
    const { m } = bootHost();
    const a = m.addPciDevice('nic0', 0x0400, { pasidBits: 0 });
    expect(pasidEntryOf(m.iommu, a.info, 0)!.pgtt).toBe(PGTT.PT);
    expect(a.pci.dmaWrite(NO_PASID, 0x1234_5000, Uint8Array.of(1)).status).toBe('ok');
    expect(m.core.iommu_device_claim_dma_owner(a.dev, 'vfio')).toBe(0);
    const blocked = a.pci.dmaWrite(NO_PASID, 0x1234_5000, Uint8Array.of(1));
    expect(blocked.status).toBe('fault');
    expect(blocked.reason).toBe(FR.PASID_ENTRY_P);
    // another owner may not claim it; the same owner's claims stack (cdev semantics)
    expect(m.core.iommu_device_claim_dma_owner(a.dev, 'someone-else')).toBe(-EPERM);
    expect(m.core.iommu_device_claim_dma_owner(a.dev, 'vfio')).toBe(0);
    m.core.iommu_device_release_dma_owner(a.dev);
    m.core.iommu_device_release_dma_owner(a.dev);
    expect(pasidEntryOf(m.iommu, a.info, 0)!.pgtt).toBe(PGTT.PT);
  });

  it('attaches a paging domain to a whole group, maps IOVA → HPA, and refuses a second domain', () => {
    const { m } = bootHost();
    const a = m.addPciDevice('fn0', 0x0500, { pasidBits: 0 }, 7);
    const b = m.addPciDevice('fn1', 0x0501, { pasidBits: 0 }, 7);
    const group = m.core.iommu_group_get(a.dev)!;
    expect(group.devices).toEqual([a.dev, b.dev]);
    expect(m.core.iommu_group_claim_dma_owner(group, 'container')).toBe(0);
    const d1 = paging(m, a.dev);
    const d2 = paging(m, a.dev);
    expect(m.core.iommu_attach_group(d1, group)).toBe(0);
    expect(m.core.iommu_attach_group(d2, group)).toBe(-EBUSY);
    const pfn = m.k.pages.allocPage('test.buffer', 0);
    expect(m.core.iommu_map(d1, 0x10_0000, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE)).toBe(0);
    expect(m.core.iommu_map(d1, 0x10_0001, pfn * 4096, 4096, IOMMU_READ)).toBe(-EINVAL);
    for (const dev of [a, b]) expect(dev.pci.dmaWrite(NO_PASID, 0x10_0010, Uint8Array.of(5, 6)).status).toBe('ok');
    expect([...m.mem.readBytes(pfn * 4096 + 0x10, 2)]).toEqual([5, 6]);
    expect(m.core.iommu_unmap(d1, 0x10_0000, 4096)).toBe(4096);
    expect(a.pci.dmaWrite(NO_PASID, 0x10_0010, Uint8Array.of(1)).status).toBe('fault');
    m.core.iommu_detach_group(d1, group);
    m.core.iommu_domain_free(d1);
    m.core.iommu_domain_free(d2);
    m.core.iommu_group_release_dma_owner(group);
    expect(m.sim.leaks.count('iommu-page')).toBe(0);
    expect(m.sim.leaks.count('object')).toBe(0);
  });

  it("keeps dmar_domain->max_addr as intel_iommu_map/unmap do: raised by a map, lowered only by an unmap of the top", () => {
    const { m } = bootHost();
    const a = m.addPciDevice('fn0', 0x0500, { pasidBits: 0 });
    const d = paging(m, a.dev) as DmarDomain;
    const pa = m.k.pages.allocPage('test.buffer', 0) * 4096;
    expect(d.max_addr).toBe(0);
    expect(m.core.iommu_map(d, 0x10_0000, pa, 0x2000, IOMMU_READ)).toBe(0);
    expect(m.core.iommu_map(d, 0x40_0000, pa, 0x1000, IOMMU_READ)).toBe(0);
    expect(d.max_addr).toBe(0x40_1000);
    // an unmap below the top leaves the mark where it was
    expect(m.core.iommu_unmap(d, 0x10_0000, 0x1000)).toBe(0x1000);
    expect(d.max_addr).toBe(0x40_1000);
    // unmapping exactly the top lowers it to that IOVA, not to the next mapping's end
    expect(m.core.iommu_unmap(d, 0x40_0000, 0x1000)).toBe(0x1000);
    expect(d.max_addr).toBe(0x40_0000);
    m.core.iommu_unmap(d, 0x10_1000, 0x1000);
    m.core.iommu_domain_free(d);
  });

  it('refuses a PASID attach on the RID\'s PASID 0 and a second attach of the same PASID', () => {
    const { m } = bootHost();
    const a = m.addPciDevice('acc0', 0x0600, { pasidBits: 20 });
    expect(m.core.iommu_device_claim_dma_owner(a.dev, 'u')).toBe(0);
    const d = paging(m, a.dev, 1 << 3);
    const h = () => ({ domain: null, owner: 'u' });
    expect(m.core.iommu_attach_device_pasid(d, a.dev, 0, h())).toBe(-EINVAL);
    expect(m.core.iommu_attach_device_pasid(d, a.dev, 3, h())).toBe(0);
    expect(m.core.iommu_attach_device_pasid(d, a.dev, 3, h())).toBe(-EBUSY);
    expect(m.core.iommu_replace_device_pasid(d, a.dev, 4, h())).toBe(-EINVAL);
    m.core.iommu_detach_device_pasid(d, a.dev, 3);
    m.core.iommu_domain_free(d);
  });
});
