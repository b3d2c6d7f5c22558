/**
 * Test rig: a host VT-d over host memory with hand-built tables. Guest RAM is one labelled host
 * region; GPA g lives at HPA GUEST_RAM_HPA + g. Guest first-stage tables are allocated in guest RAM
 * and pointed at by GPA; host structures come from a bump allocator in "host.iommu".
 */
import { PhysicalMemory } from '../../../models/hw/memory.ts';
import {
  PageTableWriter,
  Vtd,
  contextEntryAddressFor,
  emptyPasidEntry,
  pasidDirEntries,
  pasidEntryAddressFor,
  writeContextEntryAt,
  writePasidEntryAt,
  type CacheSizes,
  type PasidEntry,
  type VtdCaps,
} from '../../../models/hw/vtd/index.ts';

export const GUEST_RAM_HPA = 0x1_0000_0000;
export const GUEST_RAM_SIZE = 0x4000_0000; // 1 GiB
export const HOST_TABLES = 0x2000_0000;

export interface RigOptions {
  caps?: Partial<VtdCaps>;
  cacheSizes?: Partial<CacheSizes>;
  haw?: number;
  /** Host table allocation: first page and step between pages (vary to prove digest stability). */
  hostTableBase?: number;
  hostTableStep?: number;
  /** Guest table allocation (GPA). */
  guestTableBase?: number;
  guestTableStep?: number;
}

export class Rig {
  readonly mem = new PhysicalMemory();
  readonly vtd: Vtd;
  readonly root: number;
  private hostNext: number;
  private readonly hostStep: number;
  private guestNext: number;
  private readonly guestStep: number;

  constructor(o: RigOptions = {}) {
    this.vtd = new Vtd(this.mem, {
      name: 'host',
      ...(o.caps ? { caps: o.caps } : {}),
      ...(o.cacheSizes ? { cacheSizes: o.cacheSizes } : {}),
      ...(o.haw !== undefined ? { haw: o.haw } : {}),
    });
    this.hostNext = o.hostTableBase ?? HOST_TABLES;
    this.hostStep = o.hostTableStep ?? 0x1000;
    this.guestNext = o.guestTableBase ?? 0x10_0000;
    this.guestStep = o.guestTableStep ?? 0x1000;
    this.mem.labelRange(GUEST_RAM_HPA, GUEST_RAM_SIZE, 'guest0.ram');
    this.mem.labelRange(HOST_TABLES, 0x1000_0000, 'host.iommu');
    this.root = this.hostAlloc();
    this.vtd.setRootTable(this.root);
    this.vtd.enableTranslation();
  }

  /** A zeroed host page for IOMMU structures. */
  hostAlloc = (): number => {
    const pa = this.hostNext;
    this.hostNext += this.hostStep;
    this.mem.zeroPage(pa / 4096);
    return pa;
  };

  /** Contiguous zeroed host pages (a PASID directory of 2^(PDTS+7) entries spans up to 32 pages). */
  hostAllocContiguous(pages: number): number {
    const pa = this.hostNext;
    for (let i = 0; i < pages; i++) this.mem.zeroPage(pa / 4096 + i);
    this.hostNext += Math.ceil((pages * 0x1000) / this.hostStep) * this.hostStep;
    return pa;
  }

  /** A zeroed guest page; returns its GPA. */
  guestAlloc = (): number => {
    const gpa = this.guestNext;
    this.guestNext += this.guestStep;
    this.mem.zeroPage(gpaToHpa(gpa) / 4096);
    return gpa;
  };

  /** Write a scalable-mode context entry for `sid` with a fresh PASID directory. */
  attach(sid: number, o: { pdts?: number; paside?: boolean; ridPasid?: number; fpd?: boolean } = {}): number {
    const ce = contextEntryAddressFor(this.mem, this.root, sid, this.hostAlloc);
    const dir = this.hostAllocContiguous(Math.max(1, (pasidDirEntries(o.pdts ?? 7) * 8) / 4096));
    writeContextEntryAt(this.mem, ce, {
      present: true,
      fpd: o.fpd ?? false,
      dte: false,
      paside: o.paside ?? true,
      pre: false,
      pdts: o.pdts ?? 7,
      pasidDirPtr: dir,
      ridPasid: o.ridPasid ?? 0,
    });
    return dir;
  }

  /** Write a PASID entry (allocating the PASID table lazily). */
  setPasid(dir: number, pasid: number, e: Partial<PasidEntry>): number {
    const pa = pasidEntryAddressFor(this.mem, dir, pasid, this.hostAlloc);
    writePasidEntryAt(this.mem, pa, { ...emptyPasidEntry(), present: true, ...e });
    return pa;
  }

  /** A second-stage table mapping guest RAM [0, size) with `pageSize` pages. */
  secondStage(levels: number, size: number, pageSize: number, flags = { read: true, write: true }): PageTableWriter {
    const w = new PageTableWriter(this.mem, 'second', levels, this.hostAlloc(), this.hostAlloc);
    w.map(0, GUEST_RAM_HPA, size, pageSize, flags);
    return w;
  }

  /** A guest first-stage table (in guest RAM, pointers are GPAs). */
  guestFirstStage(levels: number): PageTableWriter {
    return new PageTableWriter(this.mem, 'first', levels, this.guestAlloc(), this.guestAlloc, gpaToHpa);
  }

  /** A host first-stage table (host SVA-style: pointers are HPAs). */
  hostFirstStage(levels: number): PageTableWriter {
    return new PageTableWriter(this.mem, 'first', levels, this.hostAlloc(), this.hostAlloc);
  }
}

export function gpaToHpa(gpa: number): number {
  return GUEST_RAM_HPA + gpa;
}

/** AW encoding for a level count (PASID entry AW = levels − 2). */
export const awFor = (levels: number): number => levels - 2;
