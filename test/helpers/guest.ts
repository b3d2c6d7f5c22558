import { PageTableWriter, type MapFlags } from '../../models/hw/vtd/paging.ts';
import type { IommuCore } from '../../models/iommu/iommu.ts';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '../../models/iommu/types.ts';
import type { HostMachine } from '../../models/machine/host.ts';

/**
 * Guest RAM as a VMM gives it to a guest: host frames (scattered, as the seeded allocator hands
 * them out) at guest-physical addresses 0 … size. Tests map it into a nest-parent domain (GPA →
 * HPA) and build guest first-stage tables inside it, so a DMA can walk both stages for real.
 */
export class GuestRam {
  readonly pfns: number[] = [];
  /** guest table pages come from the top of guest RAM, downwards */
  private nextTable: number;

  constructor(
    readonly m: HostMachine,
    readonly size: number,
    readonly region = 'guest0.ram',
  ) {
    for (let i = 0; i < size / 4096; i++) {
      const pfn = m.k.pages.allocPage(region, i);
      if (pfn < 0) throw new Error('out of host memory for guest RAM');
      this.pfns.push(pfn);
    }
    this.nextTable = size - 4096;
  }

  hpa(gpa: number): number {
    const pfn = this.pfns[Math.floor(gpa / 4096)];
    if (pfn === undefined) throw new RangeError(`GPA 0x${gpa.toString(16)} outside guest RAM`);
    return pfn * 4096 + (gpa % 4096);
  }

  /** Maps all of guest RAM GPA → HPA into a (nest-parent) paging domain, page by page. */
  mapInto(core: IommuCore, domain: IommuDomain): void {
    this.pfns.forEach((pfn, i) => {
      const ret = core.iommu_map(domain, i * 4096, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE);
      if (ret) throw new Error(`iommu_map of GPA 0x${(i * 4096).toString(16)} failed: ${ret}`);
    });
  }

  /** A guest page-table page (GPA), zeroed. */
  allocTablePage(): number {
    const gpa = this.nextTable;
    this.nextTable -= 4096;
    this.m.mem.clearPage(this.pfns[gpa / 4096]!);
    return gpa;
  }

  /** A guest process's first-stage page table (4 or 5 levels), rooted in guest RAM. */
  firstStage(levels = 4): GuestPageTable {
    return new GuestPageTable(this, levels);
  }

  read(gpa: number, len: number): Uint8Array {
    return this.m.mem.readBytes(this.hpa(gpa), len);
  }
}

export class GuestPageTable {
  readonly root: number;
  readonly writer: PageTableWriter;

  constructor(
    readonly ram: GuestRam,
    readonly levels: number,
  ) {
    this.root = ram.allocTablePage();
    this.writer = new PageTableWriter(ram.m.mem, 'first', levels, this.root, () => ram.allocTablePage(), (gpa) => ram.hpa(gpa));
  }

  /** Maps guest-virtual [va, va+size) to guest-physical gpa, 4 KiB pages, user-accessible. */
  map(va: number, gpa: number, size: number, flags: MapFlags = { write: true, user: true }): void {
    this.writer.map(va, gpa, size, 0x1000, flags);
  }

  unmap(va: number): void {
    this.writer.unmap(va, 0x1000);
  }
}
