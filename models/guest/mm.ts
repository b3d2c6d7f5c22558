/**
 * A guest process's address space: VMAs and a first-stage (x86 IA-32e) page table built in guest
 * RAM, the table a bound device walks as the first stage of the host's nested translation.
 *
 * - `map` is mmap(MAP_POPULATE): frames now; `reserve` is mmap without populating (the first
 *   touch, by the CPU or by a device's page request, faults the page in: handle_mm_fault).
 * - `unmap` is munmap: zap the PTEs, free the frames, then the x86 TLB flush, which calls the
 *   secondary-TLB notifiers (mmu_notifier_arch_invalidate_secondary_tlbs) with the range, or with
 *   everything above tlb_single_page_flush_ceiling pages (arch/x86/mm/tlb.c flush_tlb_mm_range).
 */
import type { Sim } from '../../sim/sim.ts';
import { PageTableWriter } from '../hw/vtd/paging.ts';
import { GUEST_ERRNO, guestFn } from './fn.ts';
import type { GuestPageAllocator } from './page_alloc.ts';

const PAGE = 4096;
/** arch/x86/mm/tlb.c: ranges above this many pages flush everything */
export const TLB_SINGLE_PAGE_FLUSH_CEILING = 33;
/** `end` of a full flush (ULONG_MAX in mmu_notifier_arch_invalidate_secondary_tlbs) */
export const FLUSH_ALL_END = Number.POSITIVE_INFINITY;

/** A secondary-TLB notifier: [start, end) changed (end = FLUSH_ALL_END with start 0: everything). */
export type SecondaryTlbNotifier = (start: number, end: number) => void;

export interface GuestVma {
  start: number;
  end: number;
  write: boolean;
}

const FN = {
  mmap: guestFn('do_mmap', 'unsigned long do_mmap(struct file *file, unsigned long addr, unsigned long len, …)', 'mm/mmap.c'),
  munmap: guestFn('do_vmi_munmap', 'int do_vmi_munmap(struct vma_iterator *vmi, struct mm_struct *mm, unsigned long start, size_t len, …)', 'mm/vma.c'),
  flush: guestFn('flush_tlb_mm_range', 'void flush_tlb_mm_range(struct mm_struct *mm, unsigned long start, unsigned long end, unsigned int stride_shift, bool freed_tables)', 'arch/x86/mm/tlb.c'),
  fault: guestFn('handle_mm_fault', 'vm_fault_t handle_mm_fault(struct vm_area_struct *vma, unsigned long address, unsigned int flags, struct pt_regs *regs)', 'mm/memory.c'),
};

export class GuestProcess {
  /** the first-stage root (mm->pgd), a GPA */
  readonly pgd: number;
  readonly vmas: GuestVma[] = [];
  /** secondary TLBs (bound SVA domains) to flush on a PTE change */
  readonly notifiers = new Set<SecondaryTlbNotifier>();
  private readonly writer: PageTableWriter;

  constructor(
    readonly sim: Sim,
    readonly pid: number,
    readonly comm: string,
    private readonly pages: GuestPageAllocator,
    /** 4, or 5 with LA57 */
    readonly levels: 4 | 5 = 4,
  ) {
    const pgd = pages.allocPage();
    if (pgd < 0) throw new Error('guest: out of memory for a page directory');
    this.pgd = pgd;
    this.writer = new PageTableWriter(pages.mem, 'first', levels, pgd, () => {
      const t = pages.allocPage();
      if (t < 0) throw new Error('guest: out of memory for a page table');
      return t;
    });
  }

  findVma(va: number): GuestVma | undefined {
    return this.vmas.find((v) => va >= v.start && va < v.end);
  }

  /** mmap(MAP_FIXED | MAP_POPULATE) of `pages` pages at `va`; returns the GPAs, or −ENOMEM. */
  map(va: number, pages: number, opts: { write?: boolean } = {}): number[] | number {
    return this.sim.call(FN.mmap, () => {
      const r = this.addVma(va, pages, opts.write ?? true);
      if (r) return r;
      const gpas: number[] = [];
      for (let i = 0; i < pages; i++) {
        const gpa = this.populate(va + i * PAGE, opts.write ?? true);
        if (gpa < 0) return -GUEST_ERRNO.ENOMEM;
        gpas.push(gpa);
      }
      return gpas;
    });
  }

  /** mmap(MAP_FIXED) without populating: pages fault in on first touch. 0 or −EINVAL. */
  reserve(va: number, pages: number, opts: { write?: boolean } = {}): number {
    return this.sim.call(FN.mmap, () => this.addVma(va, pages, opts.write ?? true));
  }

  private addVma(va: number, pages: number, write: boolean): number {
    if (va % PAGE !== 0 || !(pages > 0)) return -GUEST_ERRNO.EINVAL;
    const end = va + pages * PAGE;
    if (this.vmas.some((v) => va < v.end && v.start < end)) return -GUEST_ERRNO.EINVAL;
    this.vmas.push({ start: va, end, write });
    this.vmas.sort((a, b) => a.start - b.start);
    return 0;
  }

  private populate(va: number, write: boolean): number {
    const gpa = this.pages.allocPage();
    if (gpa < 0) return -1;
    this.writer.mapOne(va, gpa, PAGE, { write, user: true });
    return gpa;
  }

  /** munmap of [va, va + pages·4K): PTEs zapped, frames freed, secondary TLBs flushed. */
  unmap(va: number, pages: number): number {
    return this.sim.call(FN.munmap, () => {
      if (va % PAGE !== 0 || !(pages > 0)) return -GUEST_ERRNO.EINVAL;
      const end = va + pages * PAGE;
      let zapped = false;
      for (let a = va; a < end; a += PAGE) {
        const gpa = this.translate(a);
        if (gpa < 0) continue;
        this.writer.unmap(a, PAGE);
        this.pages.freePage(gpa);
        zapped = true;
      }
      this.trimVmas(va, end);
      if (zapped) this.flushTlbRange(va, end);
      return 0;
    });
  }

  private trimVmas(start: number, end: number): void {
    const out: GuestVma[] = [];
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) out.push(v);
      else {
        if (v.start < start) out.push({ start: v.start, end: start, write: v.write });
        if (v.end > end) out.push({ start: end, end: v.end, write: v.write });
      }
    }
    this.vmas.splice(0, this.vmas.length, ...out);
  }

  /** flush_tlb_mm_range: the CPU flush, then the secondary TLBs (the IOMMU, for SVA). */
  flushTlbRange(start: number, end: number): void {
    this.sim.call(FN.flush, () => {
      let s = start;
      let e = end;
      if ((end - start) / PAGE > TLB_SINGLE_PAGE_FLUSH_CEILING) {
        s = 0;
        e = FLUSH_ALL_END;
      }
      for (const n of this.notifiers) n(s, e);
    });
  }

  /**
   * handle_mm_fault for `va`: maps the page if a VMA allows the access. 0, or −EFAULT
   * (VM_FAULT_SIGSEGV: no VMA, or a write to a read-only VMA).
   */
  handleMmFault(va: number, write: boolean): number {
    return this.sim.call(FN.fault, () => {
      const page = Math.floor(va / PAGE) * PAGE;
      const vma = this.findVma(page);
      if (!vma || (write && !vma.write)) return -GUEST_ERRNO.EFAULT;
      if (this.translate(page) >= 0) return 0; // raced with another fault: already there
      return this.populate(page, vma.write) < 0 ? -GUEST_ERRNO.ENOMEM : 0;
    });
  }

  /** The GPA `va` maps to (CPU view), or −1. */
  translate(va: number): number {
    const page = Math.floor(va / PAGE) * PAGE;
    const slot = this.writer.leafSlot(page, 1, false);
    if (slot < 0) return -1;
    const mem = this.pages.mem;
    const lo = mem.readQword(slot);
    if ((lo & 1) === 0) return -1;
    return ((mem.hi & 0xfffff) >>> 0) * 4294967296 + ((lo & ~0xfff) >>> 0) + (va % PAGE);
  }
}
