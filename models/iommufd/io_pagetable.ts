import { kfn, type KFn } from '../../sim/index.ts';
import { EADDRINUSE, EBUSY, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EOVERFLOW, EPERM, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { RwSem, down_read, down_write, mutex_lock, mutex_unlock, up_read, up_write } from '../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import type { Device } from '../kernel/device.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import { IOMMU_WRITE, type IommuDomain } from '../iommu/types.ts';
import type { IommufdCtx } from './iommufd_private.ts';
import {
  PAGE_SIZE,
  ULONG_MAX,
  iopt_alloc_user_pages,
  iopt_area_fill_domain,
  iopt_area_fill_domains,
  iopt_area_iova,
  iopt_area_last_iova,
  iopt_area_length,
  iopt_area_start_byte,
  iopt_area_unfill_domain,
  iopt_area_unfill_domains,
  iopt_area_unmap_domain,
  iopt_get_pages_ref,
  iopt_put_pages,
  type IoptPages,
} from './pages.ts';

/**
 * struct io_pagetable (drivers/iommu/iommufd/io_pagetable.c @ v6.15): the IOVA space of an IOAS.
 * Areas map slices of iopt_pages at an IOVA; reserved ranges (domain apertures, device regions) and
 * allowed ranges constrain where areas may go. The domains attached to the IOAS are listed here:
 * iopt_table_add_domain fills a new domain from the existing areas, and every later map and unmap
 * of an area also maps into and unmaps from every domain (through IommuCore.iommu_map/iommu_unmap).
 *
 * IOVAs are bigint (they reach ULONG_MAX); the interval trees are sorted arrays.
 */
const fn = (name: string, sig: string): KFn =>
  kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: 'drivers/iommu/iommufd/io_pagetable.c @ v6.15' } });

const FN = {
  alloc_iova: fn('iopt_alloc_iova', 'static int iopt_alloc_iova(struct io_pagetable *iopt, unsigned long *iova, unsigned long addr, unsigned long length)'),
  check_iova: fn('iopt_check_iova', 'static int iopt_check_iova(struct io_pagetable *iopt, unsigned long iova, unsigned long length)'),
  insert_area: fn('iopt_insert_area', 'static int iopt_insert_area(struct io_pagetable *iopt, struct iopt_area *area, struct iopt_pages *pages, unsigned long iova, unsigned long start_byte, unsigned long length, int iommu_prot)'),
  alloc_area_pages: fn('iopt_alloc_area_pages', 'static int iopt_alloc_area_pages(struct io_pagetable *iopt, struct list_head *pages_list, unsigned long length, unsigned long *dst_iova, int iommu_prot, unsigned int flags)'),
  abort_area: fn('iopt_abort_area', 'static void iopt_abort_area(struct iopt_area *area)'),
  free_pages_list: fn('iopt_free_pages_list', 'void iopt_free_pages_list(struct list_head *pages_list)'),
  fill_domains_pages: fn('iopt_fill_domains_pages', 'static int iopt_fill_domains_pages(struct list_head *pages_list)'),
  map_pages: fn('iopt_map_pages', 'int iopt_map_pages(struct io_pagetable *iopt, struct list_head *pages_list, unsigned long length, unsigned long *dst_iova, int iommu_prot, unsigned int flags)'),
  map_common: fn('iopt_map_common', 'static int iopt_map_common(struct iommufd_ctx *ictx, struct io_pagetable *iopt, struct iopt_pages *pages, unsigned long *iova, unsigned long length, unsigned long start_byte, int iommu_prot, unsigned int flags)'),
  map_user_pages: fn('iopt_map_user_pages', 'int iopt_map_user_pages(struct iommufd_ctx *ictx, struct io_pagetable *iopt, unsigned long *iova, void __user *uptr, unsigned long length, int iommu_prot, unsigned int flags)'),
  get_pages: fn('iopt_get_pages', 'int iopt_get_pages(struct io_pagetable *iopt, unsigned long iova, unsigned long length, struct list_head *pages_list)'),
  unmap_range: fn('iopt_unmap_iova_range', 'static int iopt_unmap_iova_range(struct io_pagetable *iopt, unsigned long start, unsigned long last, unsigned long *unmapped)'),
  unmap_iova: fn('iopt_unmap_iova', 'int iopt_unmap_iova(struct io_pagetable *iopt, unsigned long iova, unsigned long length, unsigned long *unmapped)'),
  unmap_all: fn('iopt_unmap_all', 'int iopt_unmap_all(struct io_pagetable *iopt, unsigned long *unmapped)'),
  set_allow: fn('iopt_set_allow_iova', 'int iopt_set_allow_iova(struct io_pagetable *iopt, struct rb_root_cached *allowed_iova)'),
  reserve: fn('iopt_reserve_iova', 'int iopt_reserve_iova(struct io_pagetable *iopt, unsigned long start, unsigned long last, void *owner)'),
  enforce_resv: fn('iopt_table_enforce_dev_resv_regions', 'int iopt_table_enforce_dev_resv_regions(struct io_pagetable *iopt, struct device *dev, phys_addr_t *sw_msi_start)'),
  remove_reserved: fn('iopt_remove_reserved_iova', 'void iopt_remove_reserved_iova(struct io_pagetable *iopt, void *owner)'),
  destroy_table: fn('iopt_destroy_table', 'void iopt_destroy_table(struct io_pagetable *iopt)'),
  unfill_domain: fn('iopt_unfill_domain', 'static void iopt_unfill_domain(struct io_pagetable *iopt, struct iommu_domain *domain)'),
  fill_domain: fn('iopt_fill_domain', 'static int iopt_fill_domain(struct io_pagetable *iopt, struct iommu_domain *domain)'),
  check_align: fn('iopt_check_iova_alignment', 'static int iopt_check_iova_alignment(struct io_pagetable *iopt, unsigned long new_iova_alignment)'),
  add_domain: fn('iopt_table_add_domain', 'int iopt_table_add_domain(struct io_pagetable *iopt, struct iommu_domain *domain)'),
  calc_align: fn('iopt_calculate_iova_alignment', 'static int iopt_calculate_iova_alignment(struct io_pagetable *iopt)'),
  remove_domain: fn('iopt_table_remove_domain', 'void iopt_table_remove_domain(struct io_pagetable *iopt, struct iommu_domain *domain)'),
  enable_large: fn('iopt_enable_large_pages', 'void iopt_enable_large_pages(struct io_pagetable *iopt)'),
  disable_large: fn('iopt_disable_large_pages', 'int iopt_disable_large_pages(struct io_pagetable *iopt)'),
};

const PAGE = BigInt(PAGE_SIZE);

/** IOPT_ALLOC_IOVA: choose the IOVA (IOAS_MAP without FIXED_IOVA) */
export const IOPT_ALLOC_IOVA = 1 << 0;

/** An inclusive interval_tree_node [start, last]. */
export interface IoptNode {
  start: bigint;
  last: bigint;
}

/** struct iopt_area */
export interface IoptArea {
  readonly k: Kernel;
  readonly alloc: KAlloc;
  readonly node: IoptNode;
  /** [first, last] page index in the iopt_pages */
  readonly pages_node: { start: number; last: number };
  page_offset: number;
  iommu_prot: number;
  /** set once inserted in the area tree */
  iopt: IoPagetable | null;
  /** NULL while the area is being created or destroyed */
  pages: IoptPages | null;
  /** the domain whose page table holds this area's PFNs */
  storage_domain: IommuDomain | null;
}

/** struct iopt_allowed */
export interface IoptAllowed {
  readonly alloc: KAlloc;
  readonly node: IoptNode;
}

/** struct iopt_reserved: owner is the domain or device that reserved it (NULL for the selftest's) */
export interface IoptReserved {
  readonly alloc: KAlloc;
  readonly node: IoptNode;
  readonly owner: unknown;
}

export interface IoPagetable {
  readonly k: Kernel;
  readonly core: IommuCore;
  readonly iova_rwsem: RwSem;
  readonly domains_rwsem: RwSem;
  area_itree: IoptArea[];
  allowed_itree: IoptAllowed[];
  reserved_itree: IoptReserved[];
  /** the domains xarray, kept dense: next_domain_id is its length */
  readonly domains: IommuDomain[];
  iova_alignment: bigint;
  disable_large_pages: boolean;
}

/** struct iopt_pages_list: one slice of pages to place, and the area made for it */
export interface IoptPagesList {
  pages: IoptPages | null;
  area: IoptArea | null;
  start_byte: number;
  length: bigint;
  /** null for the one iopt_map_common keeps on its stack */
  readonly alloc: KAlloc | null;
}

// ---- interval trees ---------------------------------------------------------------------------

const overlaps = (n: IoptNode, start: bigint, last: bigint): boolean => n.start <= last && n.last >= start;

/** interval_tree_iter_first: the lowest-starting node intersecting [start, last] */
function iter_first<T extends { node: IoptNode }>(tree: readonly T[], start: bigint, last: bigint): T | undefined {
  return tree.find((x) => overlaps(x.node, start, last));
}

function itree_insert<T extends { node: IoptNode }>(tree: T[], x: T): void {
  const i = tree.findIndex((y) => y.node.start > x.node.start);
  tree.splice(i < 0 ? tree.length : i, 0, x);
}

function itree_remove<T>(tree: T[], x: T): void {
  const i = tree.indexOf(x);
  if (i >= 0) tree.splice(i, 1);
}

export interface Span {
  is_hole: boolean;
  start: bigint;
  last: bigint;
}

/** interval_tree_for_each_span over the union of `nodes`, within [first, last]. */
export function interval_tree_spans(nodes: readonly IoptNode[], first: bigint, last: bigint): Span[] {
  const used = nodes
    .filter((n) => overlaps(n, first, last))
    .map((n) => ({ start: n.start < first ? first : n.start, last: n.last > last ? last : n.last }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Span[] = [];
  let cur = first;
  for (const u of used) {
    const prev = out[out.length - 1];
    if (prev && !prev.is_hole && u.start <= prev.last + 1n) {
      if (u.last > prev.last) prev.last = u.last;
    } else {
      if (u.start > cur) out.push({ is_hole: true, start: cur, last: u.start - 1n });
      out.push({ is_hole: false, start: u.start, last: u.last });
    }
    cur = out[out.length - 1]!.last + 1n;
  }
  if (cur <= last && (out.length === 0 || out[out.length - 1]!.last < last)) out.push({ is_hole: true, start: cur, last });
  return out;
}

function roundup_pow_of_two(x: bigint): bigint {
  let p = 1n;
  while (p < x) p <<= 1n;
  return p;
}

/** 1 << __ffs64(x): the lowest set bit */
const lowest_bit = (x: bigint): bigint => x & -x;

// ---- table --------------------------------------------------------------------------------------

/** iopt_init_table: software tables start with no alignment constraint over the whole size_t space. */
export function iopt_init_table(k: Kernel, core: IommuCore, name: string): IoPagetable {
  return {
    k,
    core,
    iova_rwsem: new RwSem(k, `${name}->iopt.iova_rwsem`),
    domains_rwsem: new RwSem(k, `${name}->iopt.domains_rwsem`),
    area_itree: [],
    allowed_itree: [],
    reserved_itree: [],
    domains: [],
    iova_alignment: 1n,
    disable_large_pages: false,
  };
}

export function iopt_destroy_table(iopt: IoPagetable): void {
  iopt.k.sim.call(FN.destroy_table, () => {
    // CONFIG_IOMMUFD_TEST: the selftest's IOMMU_TEST_OP_ADD_RESERVED ranges have no owner
    iopt_remove_reserved_iova(iopt, null);
    for (const a of iopt.allowed_itree) kfree(iopt.k, a.alloc);
    iopt.allowed_itree = [];
    if (iopt.reserved_itree.length || iopt.domains.length || iopt.area_itree.length) {
      iopt.k.sim.oops('iopt_destroy_table: reserved ranges, domains or areas left');
    }
  });
}

/**
 * __alloc_iova_check_range: can [start, last] hold `length` once start is aligned up (keeping the
 * page offset)? As in the fix "iommufd: Prevent ALIGN() overflow" (Cc stable, in 6.15.y): an
 * align that overflows fails instead of wrapping to 0.
 */
function __alloc_iova_check_range(start: bigint, last: bigint, length: bigint, iova_alignment: bigint, page_offset: bigint): bigint | null {
  const up = start + iova_alignment - 1n;
  if (up > ULONG_MAX) return null;
  const aligned_start = (up & ~(iova_alignment - 1n)) | page_offset;
  if (aligned_start >= last || last - aligned_start < length - 1n) return null;
  return aligned_start;
}

/**
 * iopt_alloc_iova: the lowest IOVA in an allowed range (or anywhere above PAGE_SIZE) that no area
 * or reserved range uses, aligned to the smaller of the length rounded up to a power of two and
 * the alignment already in `addr` (so huge pages stay possible). Never returns 0.
 */
function iopt_alloc_iova(iopt: IoPagetable, addr: bigint, length: bigint): bigint | number {
  return iopt.k.sim.call(FN.alloc_iova, () => {
    const page_offset = addr % PAGE;
    // protect roundup_pow_of_two from overflow
    if (length === 0n || length >= ULONG_MAX / 2n) return -EOVERFLOW;
    let iova_alignment = roundup_pow_of_two(length);
    if (addr) {
      const a = lowest_bit(addr);
      if (a < iova_alignment) iova_alignment = a;
    }
    if (iova_alignment < iopt.iova_alignment) return -EINVAL;
    const allowed: Span[] = iopt.allowed_itree.length
      ? interval_tree_spans(iopt.allowed_itree.map((a) => a.node), PAGE, ULONG_MAX - PAGE)
      : [{ is_hole: false, start: PAGE, last: ULONG_MAX - PAGE }];
    for (const span of allowed) {
      if (span.is_hole) continue; // __alloc_iova_check_used
      const start_used = __alloc_iova_check_range(span.start, span.last, length, iova_alignment, page_offset);
      if (start_used === null) continue;
      const used = [...iopt.reserved_itree.map((r) => r.node), ...iopt.area_itree.map((a) => a.node)];
      for (const hole of interval_tree_spans(used, start_used, span.last)) {
        if (!hole.is_hole) continue; // __alloc_iova_check_hole
        const start_hole = __alloc_iova_check_range(hole.start, hole.last, length, iova_alignment, page_offset);
        if (start_hole !== null) return start_hole;
      }
    }
    return -ENOSPC;
  });
}

function iopt_check_iova(iopt: IoPagetable, iova: bigint, length: bigint): number {
  return iopt.k.sim.call(FN.check_iova, () => {
    if (iova & (iopt.iova_alignment - 1n)) return -EINVAL;
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return -EOVERFLOW;
    // no reserved IOVA intersects the range
    if (iter_first(iopt.reserved_itree, iova, last)) return -EINVAL;
    // nothing is already mapped there
    if (iter_first(iopt.area_itree, iova, last)) return -EEXIST;
    return 0;
  });
}

/** The area takes the slice [start_byte, start_byte + length) of the pages, inserted with pages NULL. */
function iopt_insert_area(iopt: IoPagetable, area: IoptArea, pages: IoptPages, iova: bigint, start_byte: number, length: bigint, iommu_prot: number): number {
  return iopt.k.sim.call(FN.insert_area, () => {
    if (iommu_prot & IOMMU_WRITE && !pages.writable) return -EPERM;
    area.iommu_prot = iommu_prot;
    area.page_offset = start_byte % PAGE_SIZE;
    if (BigInt(area.page_offset) & (iopt.iova_alignment - 1n)) return -EINVAL;
    area.node.start = iova;
    area.node.last = iova + length - 1n;
    if (area.node.last > ULONG_MAX) return -EOVERFLOW;
    area.pages_node.start = Math.floor(start_byte / PAGE_SIZE);
    area.pages_node.last = Number((BigInt(start_byte) + length - 1n) / PAGE);
    if (area.pages_node.last >= pages.npages) return -EOVERFLOW;
    area.iopt = iopt;
    itree_insert(iopt.area_itree, area);
    return 0;
  });
}

function new_area(k: Kernel): IoptArea | null {
  const alloc = kzalloc(k, 'struct iopt_area');
  if (!alloc) return null;
  return {
    k,
    alloc,
    node: { start: 0n, last: 0n },
    pages_node: { start: 0, last: 0 },
    page_offset: 0,
    iommu_prot: 0,
    iopt: null,
    pages: null,
    storage_domain: null,
  };
}

/** Allocates the areas and reserves their IOVA (fixed, or chosen by iopt_alloc_iova). */
function iopt_alloc_area_pages(iopt: IoPagetable, pages_list: IoptPagesList[], length: bigint, dst_iova: { iova: bigint }, iommu_prot: number, flags: number): number {
  return iopt.k.sim.call(FN.alloc_area_pages, () => {
    for (const elm of pages_list) {
      elm.area = new_area(iopt.k);
      if (!elm.area) return -ENOMEM;
    }
    down_write(iopt.iova_rwsem);
    let rc = 0;
    if (length & (iopt.iova_alignment - 1n) || !length) {
      rc = -EINVAL;
    } else if (flags & IOPT_ALLOC_IOVA) {
      // the first entry's address guesses the ideal IOVA alignment
      const first = pages_list[0]!;
      const r = iopt_alloc_iova(iopt, BigInt(first.pages!.uptr) + BigInt(first.start_byte), length);
      if (typeof r === 'number') rc = r;
      else dst_iova.iova = r;
    } else {
      rc = iopt_check_iova(iopt, dst_iova.iova, length);
    }
    if (!rc) {
      let iova = dst_iova.iova;
      for (const elm of pages_list) {
        rc = iopt_insert_area(iopt, elm.area!, elm.pages!, iova, elm.start_byte, elm.length, iommu_prot);
        if (rc) break;
        iova += elm.length;
      }
    }
    up_write(iopt.iova_rwsem);
    return rc;
  });
}

function iopt_abort_area(area: IoptArea): void {
  const iopt = area.iopt;
  if (iopt) {
    iopt.k.sim.call(FN.abort_area, () => {
      down_write(iopt.iova_rwsem);
      itree_remove(iopt.area_itree, area);
      up_write(iopt.iova_rwsem);
    });
  }
  kfree(area.k, area.alloc);
}

export function iopt_free_pages_list(k: Kernel, pages_list: IoptPagesList[]): void {
  k.sim.call(FN.free_pages_list, () => {
    for (const elm of pages_list) {
      if (elm.area) iopt_abort_area(elm.area);
      if (elm.pages) iopt_put_pages(elm.pages);
      kfree(k, elm.alloc);
    }
    pages_list.length = 0;
  });
}

function iopt_fill_domains_pages(k: Kernel, pages_list: IoptPagesList[]): number {
  return k.sim.call(FN.fill_domains_pages, () => {
    for (let i = 0; i < pages_list.length; i++) {
      const elm = pages_list[i]!;
      const rc = iopt_area_fill_domains(elm.area!, elm.pages!);
      if (rc) {
        for (const undo of pages_list.slice(0, i)) iopt_area_unfill_domains(undo.area!, undo.pages!);
        return rc;
      }
    }
    return 0;
  });
}

/**
 * iopt_map_pages: places the slices at one IOVA range and loads them into every domain. On
 * success the areas own the pages references (the list entries are emptied).
 */
export function iopt_map_pages(iopt: IoPagetable, pages_list: IoptPagesList[], length: bigint, dst_iova: { iova: bigint }, iommu_prot: number, flags: number): number {
  return iopt.k.sim.call(FN.map_pages, () => {
    let rc = iopt_alloc_area_pages(iopt, pages_list, length, dst_iova, iommu_prot, flags);
    if (rc) return rc;
    down_read(iopt.domains_rwsem);
    rc = iopt_fill_domains_pages(iopt.k, pages_list);
    if (!rc) {
      // area->pages is set inside domains_rwsem so a domain added later gets filled
      down_write(iopt.iova_rwsem);
      for (const elm of pages_list) {
        elm.area!.pages = elm.pages;
        elm.pages = null;
        elm.area = null;
      }
      up_write(iopt.iova_rwsem);
    }
    up_read(iopt.domains_rwsem);
    return rc;
  });
}

function iopt_map_common(ictx: IommufdCtx, iopt: IoPagetable, pages: IoptPages, iova: { iova: bigint }, length: bigint, start_byte: number, iommu_prot: number, flags: number): number {
  return iopt.k.sim.call(FN.map_common, () => {
    if (ictx.account_mode === 'MM' && pages.account_mode === 'USER') pages.account_mode = 'MM';
    const elm: IoptPagesList = { pages, area: null, start_byte, length, alloc: null };
    const rc = iopt_map_pages(iopt, [elm], length, iova, iommu_prot, flags);
    if (rc) {
      if (elm.area) iopt_abort_area(elm.area);
      if (elm.pages) iopt_put_pages(elm.pages);
    }
    return rc;
  });
}

/**
 * iopt_map_user_pages: maps [uptr, uptr + length) at `iova` (or at an IOVA it picks with
 * IOPT_ALLOC_IOVA, returned in iova.iova). Pages are pinned only if a domain exists.
 */
export function iopt_map_user_pages(ictx: IommufdCtx, iopt: IoPagetable, iova: { iova: bigint }, uptr: bigint, length: bigint, iommu_prot: number, flags: number): number {
  return iopt.k.sim.call(FN.map_user_pages, () => {
    const pages = iopt_alloc_user_pages(iopt.k, uptr, length, (iommu_prot & IOMMU_WRITE) !== 0);
    if (IS_ERR(pages)) return PTR_ERR(pages);
    return iopt_map_common(ictx, iopt, pages, iova, length, Number(uptr % PAGE), iommu_prot, flags);
  });
}

/**
 * iopt_get_pages: references the pages behind [iova, iova + length), which must be covered by
 * contiguous areas (else ENOENT). IOAS_COPY maps them elsewhere, sharing pages and pins.
 */
export function iopt_get_pages(iopt: IoPagetable, iova: bigint, length: bigint, pages_list: IoptPagesList[]): number {
  return iopt.k.sim.call(FN.get_pages, () => {
    if (!length) return -EINVAL;
    const last_iova = iova + length - 1n;
    if (last_iova > ULONG_MAX) return -EOVERFLOW;
    down_read(iopt.iova_rwsem);
    let rc = 0;
    // iopt_for_each_contig_area
    let area = iter_first(iopt.area_itree, iova, iova);
    if (area && !area.pages) area = undefined;
    let cur_iova = iova;
    let done = false;
    while (area) {
      const last = last_iova < iopt_area_last_iova(area) ? last_iova : iopt_area_last_iova(area);
      const alloc = kzalloc(iopt.k, 'struct iopt_pages_list');
      if (!alloc) {
        rc = -ENOMEM;
        break;
      }
      iopt_get_pages_ref(area.pages!);
      pages_list.push({ pages: area.pages, area: null, start_byte: iopt_area_start_byte(area, cur_iova), length: last - cur_iova + 1n, alloc });
      if (last_iova <= iopt_area_last_iova(area)) {
        done = true;
        break;
      }
      cur_iova = iopt_area_last_iova(area) + 1n;
      const next = iter_first(iopt.area_itree, cur_iova, last_iova);
      area = next && next.node.start === cur_iova && next.pages ? next : undefined;
    }
    if (!rc && !done) rc = -ENOENT;
    up_read(iopt.iova_rwsem);
    if (rc) iopt_free_pages_list(iopt.k, pages_list);
    return rc;
  });
}

/**
 * iopt_unmap_iova_range: removes every area inside [start, last]; an area that sticks out of the
 * range stops it with ENOENT (areas are never split), as does finding none.
 */
function iopt_unmap_iova_range(iopt: IoPagetable, start: bigint, last: bigint, unmapped: { bytes: bigint } | null): number {
  return iopt.k.sim.call(FN.unmap_range, () => {
    let unmapped_bytes = 0n;
    let rc = 0;
    down_read(iopt.domains_rwsem);
    down_write(iopt.iova_rwsem);
    let area: IoptArea | undefined;
    while ((area = iter_first(iopt.area_itree, start, last))) {
      const area_first = iopt_area_iova(area);
      const area_last = iopt_area_last_iova(area);
      // userspace should not race map/unmap of the same area
      if (!area.pages) {
        rc = -EBUSY;
        break;
      }
      if (area_first < start || area_last > last) {
        rc = -ENOENT;
        break;
      }
      const pages = area.pages;
      area.pages = null;
      up_write(iopt.iova_rwsem);
      iopt_area_unfill_domains(area, pages);
      iopt_abort_area(area);
      iopt_put_pages(pages);
      unmapped_bytes += area_last - area_first + 1n;
      down_write(iopt.iova_rwsem);
    }
    // the loop ran out of areas: ENOENT if there were none at all
    if (!rc && !unmapped_bytes) rc = -ENOENT;
    up_write(iopt.iova_rwsem);
    up_read(iopt.domains_rwsem);
    if (unmapped) unmapped.bytes = unmapped_bytes;
    return rc;
  });
}

/** iopt_unmap_iova: the range must be a superset of whole areas. */
export function iopt_unmap_iova(iopt: IoPagetable, iova: bigint, length: bigint, unmapped: { bytes: bigint } | null): number {
  return iopt.k.sim.call(FN.unmap_iova, () => {
    if (!length) return -EINVAL;
    const iova_last = iova + length - 1n;
    if (iova_last > ULONG_MAX) return -EOVERFLOW;
    return iopt_unmap_iova_range(iopt, iova, iova_last, unmapped);
  });
}

/** iopt_unmap_all: succeeds on an empty table. */
export function iopt_unmap_all(iopt: IoPagetable, unmapped: { bytes: bigint } | null): number {
  return iopt.k.sim.call(FN.unmap_all, () => {
    const rc = iopt_unmap_iova_range(iopt, 0n, ULONG_MAX, unmapped);
    return rc === -ENOENT ? 0 : rc;
  });
}

/**
 * iopt_set_allow_iova: swaps in the new allowed tree unless a reserved range intersects it.
 * `allowed` holds the tree to free afterwards, whichever it is (the caller always frees it).
 */
export function iopt_set_allow_iova(iopt: IoPagetable, allowed: { tree: IoptAllowed[] }): number {
  return iopt.k.sim.call(FN.set_allow, () => {
    down_write(iopt.iova_rwsem);
    [allowed.tree, iopt.allowed_itree] = [iopt.allowed_itree, allowed.tree];
    for (const a of iopt.allowed_itree) {
      if (iter_first(iopt.reserved_itree, a.node.start, a.node.last)) {
        [allowed.tree, iopt.allowed_itree] = [iopt.allowed_itree, allowed.tree];
        up_write(iopt.iova_rwsem);
        return -EADDRINUSE;
      }
    }
    up_write(iopt.iova_rwsem);
    return 0;
  });
}

/** iopt_reserve_iova (iova_rwsem held for write): EADDRINUSE over an area or an allowed range. */
export function iopt_reserve_iova(iopt: IoPagetable, start: bigint, last: bigint, owner: unknown): number {
  return iopt.k.sim.call(FN.reserve, () => {
    if (iter_first(iopt.area_itree, start, last) || iter_first(iopt.allowed_itree, start, last)) return -EADDRINUSE;
    const alloc = kzalloc(iopt.k, 'struct iopt_reserved');
    if (!alloc) return -ENOMEM;
    itree_insert(iopt.reserved_itree, { alloc, node: { start, last }, owner });
    return 0;
  });
}

function __iopt_remove_reserved_iova(iopt: IoPagetable, owner: unknown): void {
  for (const r of iopt.reserved_itree.filter((x) => x.owner === owner)) {
    itree_remove(iopt.reserved_itree, r);
    kfree(iopt.k, r.alloc);
  }
}

export function iopt_remove_reserved_iova(iopt: IoPagetable, owner: unknown): void {
  iopt.k.sim.call(FN.remove_reserved, () => {
    down_write(iopt.iova_rwsem);
    __iopt_remove_reserved_iova(iopt, owner);
    up_write(iopt.iova_rwsem);
  });
}

/** enum iommu_resv_type, the kinds iommufd looks at */
export type IommuResvType = 'DIRECT' | 'DIRECT_RELAXABLE' | 'RESERVED' | 'MSI' | 'SW_MSI';

/** struct iommu_resv_region */
export interface IommuResvRegion {
  readonly start: bigint;
  readonly length: bigint;
  readonly type: IommuResvType;
}

/** x86's interrupt address window (IOAPIC_RANGE_START..END in the Intel driver) */
export const X86_MSI_WINDOW: IommuResvRegion = { start: 0xfee0_0000n, length: 0x10_0000n, type: 'MSI' };

/**
 * iommu_get_resv_regions (drivers/iommu/iommu.c): ops->get_resv_regions. The shared IommuOps has
 * no get_resv_regions yet; until it does, a driver without one is taken to report what every
 * x86 IOMMU driver reports, the interrupt window as a hardware MSI region (intel_iommu_get_resv_
 * regions adds IOAPIC_RANGE_START..END as IOMMU_RESV_MSI; RMRRs are not modelled).
 */
export function iommu_get_resv_regions(core: IommuCore, dev: Device): IommuResvRegion[] {
  return core.iommu_get_resv_regions(dev).map((r) => ({ start: BigInt(r.start), length: BigInt(r.length), type: r.type }));
}

/**
 * iopt_table_enforce_dev_resv_regions: the device's reserved regions become reserved IOVA owned by
 * the device (EADDRINUSE over an existing area). A software MSI window is returned through
 * sw_msi_start. The fail-nth hook here is iommufd_should_fail (free unless it fires), which fails
 * with EINVAL.
 */
export function iopt_table_enforce_dev_resv_regions(iopt: IoPagetable, core: IommuCore, dev: Device, sw_msi_start: { start: bigint | null } | null): number {
  return iopt.k.sim.call(FN.enforce_resv, () => {
    if (iopt.k.sim.injectHook('iommufd_should_fail(resv_regions)')) return -EINVAL;
    down_write(iopt.iova_rwsem);
    let num_hw_msi = 0;
    let num_sw_msi = 0;
    let rc = 0;
    for (const resv of iommu_get_resv_regions(core, dev)) {
      if (resv.type === 'DIRECT_RELAXABLE') continue;
      if (sw_msi_start && resv.type === 'MSI') num_hw_msi++;
      if (sw_msi_start && resv.type === 'SW_MSI') {
        sw_msi_start.start = resv.start;
        num_sw_msi++;
      }
      rc = iopt_reserve_iova(iopt, resv.start, resv.start + resv.length - 1n, dev);
      if (rc) break;
    }
    // drivers must offer sane combinations of regions (WARN_ON)
    if (!rc && ((num_sw_msi && num_hw_msi) || num_sw_msi > 1)) rc = -EINVAL;
    if (rc) __iopt_remove_reserved_iova(iopt, dev);
    up_write(iopt.iova_rwsem);
    return rc;
  });
}

// ---- domains --------------------------------------------------------------------------------------

/**
 * iopt_unfill_domain: unmaps every area from a domain already removed from iopt->domains. If
 * another domain remains it takes over as storage and nothing is unpinned; the last one unpins.
 */
function iopt_unfill_domain(iopt: IoPagetable, domain: IommuDomain): void {
  iopt.k.sim.call(FN.unfill_domain, () => {
    const storage_domain = iopt.domains[0];
    for (const area of iopt.area_itree) {
      const pages = area.pages;
      if (!pages) continue;
      mutex_lock(pages.mutex);
      if (storage_domain) {
        if (area.storage_domain === domain) area.storage_domain = storage_domain;
        mutex_unlock(pages.mutex);
        iopt_area_unmap_domain(area, domain);
        continue;
      }
      pages.domains_itree.delete(area);
      area.storage_domain = null;
      iopt_area_unfill_domain(area, pages, domain);
      mutex_unlock(pages.mutex);
    }
  });
}

/** iopt_fill_domain: maps every area into a new domain; on failure the domain is left empty. */
function iopt_fill_domain(iopt: IoPagetable, domain: IommuDomain): number {
  return iopt.k.sim.call(FN.fill_domain, () => {
    const first_domain = iopt.domains.length === 0;
    for (let i = 0; i < iopt.area_itree.length; i++) {
      const area = iopt.area_itree[i]!;
      const pages = area.pages;
      if (!pages) continue;
      mutex_lock(pages.mutex);
      const rc = iopt_area_fill_domain(area, domain);
      if (rc) {
        mutex_unlock(pages.mutex);
        for (const undo of iopt.area_itree.slice(0, i)) {
          const p = undo.pages;
          if (!p) continue;
          mutex_lock(p.mutex);
          if (first_domain) {
            p.domains_itree.delete(undo);
            undo.storage_domain = null;
          }
          iopt_area_unfill_domain(undo, p, domain);
          mutex_unlock(p.mutex);
        }
        return rc;
      }
      if (!area.storage_domain) {
        area.storage_domain = domain;
        pages.domains_itree.add(area);
      }
      mutex_unlock(pages.mutex);
    }
    return 0;
  });
}

/** All existing areas conform to a larger alignment? */
function iopt_check_iova_alignment(iopt: IoPagetable, new_iova_alignment: bigint): number {
  return iopt.k.sim.call(FN.check_align, () => {
    const mask = new_iova_alignment - 1n;
    for (const area of iopt.area_itree) {
      if (iopt_area_iova(area) & mask || iopt_area_length(area) & mask || BigInt(area.page_offset) & mask) return -EADDRINUSE;
    }
    return 0;
  });
}

/**
 * iopt_table_add_domain: attaches a domain to the IOAS's table. The domain's smallest page size
 * raises iova_alignment (at most PAGE_SIZE), what lies outside its aperture becomes reserved, and
 * every existing area is mapped into it. On failure nothing changed.
 */
export function iopt_table_add_domain(iopt: IoPagetable, domain: IommuDomain): number {
  return iopt.k.sim.call(FN.add_domain, () => {
    down_write(iopt.domains_rwsem);
    down_write(iopt.iova_rwsem);
    const rc = add_domain_locked(iopt, domain);
    up_write(iopt.iova_rwsem);
    up_write(iopt.domains_rwsem);
    return rc;
  });
}

function add_domain_locked(iopt: IoPagetable, domain: IommuDomain): number {
  if (iopt.domains.includes(domain)) return -EEXIST;
  const pg = BigInt(domain.pgsize_bitmap);
  const new_iova_alignment = lowest_bit(pg) > iopt.iova_alignment ? lowest_bit(pg) : iopt.iova_alignment;
  if (new_iova_alignment > PAGE) return -EINVAL;
  if (new_iova_alignment !== iopt.iova_alignment) {
    const rc = iopt_check_iova_alignment(iopt, new_iova_alignment);
    if (rc) return rc;
  }
  // no area may exist outside the domain's aperture
  const { aperture_start, aperture_end } = domain.geometry;
  let rc = 0;
  if (aperture_start !== 0) rc = iopt_reserve_iova(iopt, 0n, BigInt(aperture_start) - 1n, domain);
  if (!rc && BigInt(aperture_end) < ULONG_MAX) rc = iopt_reserve_iova(iopt, BigInt(aperture_end) + 1n, ULONG_MAX, domain);
  // xa_reserve(&iopt->domains, next_domain_id)
  if (!rc && iopt.k.sim.allocHook('xa_reserve(iopt->domains)')) rc = -ENOMEM;
  if (!rc) rc = iopt_fill_domain(iopt, domain);
  if (rc) {
    __iopt_remove_reserved_iova(iopt, domain);
    return rc;
  }
  iopt.iova_alignment = new_iova_alignment;
  iopt.domains.push(domain);
  return 0;
}

/** iopt_calculate_iova_alignment: the largest of PAGE_SIZE (huge pages off) and every domain's. */
function iopt_calculate_iova_alignment(iopt: IoPagetable): number {
  return iopt.k.sim.call(FN.calc_align, () => {
    let new_iova_alignment = iopt.disable_large_pages ? PAGE : 1n;
    for (const d of iopt.domains) {
      const a = lowest_bit(BigInt(d.pgsize_bitmap));
      if (a > new_iova_alignment) new_iova_alignment = a;
    }
    if (new_iova_alignment > iopt.iova_alignment) {
      const rc = iopt_check_iova_alignment(iopt, new_iova_alignment);
      if (rc) return rc;
    }
    iopt.iova_alignment = new_iova_alignment;
    return 0;
  });
}

/**
 * iopt_table_remove_domain: unmaps every area from the domain (unpinning with the last domain),
 * drops its reserved ranges and recomputes the alignment.
 */
export function iopt_table_remove_domain(iopt: IoPagetable, domain: IommuDomain): void {
  iopt.k.sim.call(FN.remove_domain, () => {
    down_write(iopt.domains_rwsem);
    down_write(iopt.iova_rwsem);
    const index = iopt.domains.indexOf(domain);
    if (index < 0) {
      iopt.k.sim.oops(`iopt_table_remove_domain: ${domain.label} is not in the table`);
    }
    // keep the xarray dense: the tail entry moves into the hole
    const tail = iopt.domains.pop()!;
    if (index !== iopt.domains.length) iopt.domains[index] = tail;
    iopt_unfill_domain(iopt, domain);
    __iopt_remove_reserved_iova(iopt, domain);
    if (iopt_calculate_iova_alignment(iopt)) iopt.k.sim.oops('iopt_table_remove_domain: alignment cannot shrink');
    up_write(iopt.iova_rwsem);
    up_write(iopt.domains_rwsem);
  });
}

export function iopt_enable_large_pages(iopt: IoPagetable): void {
  iopt.k.sim.call(FN.enable_large, () => {
    down_write(iopt.domains_rwsem);
    down_write(iopt.iova_rwsem);
    iopt.disable_large_pages = false;
    if (iopt_calculate_iova_alignment(iopt)) iopt.k.sim.oops('iopt_enable_large_pages: alignment cannot shrink');
    up_write(iopt.iova_rwsem);
    up_write(iopt.domains_rwsem);
  });
}

/** iopt_disable_large_pages: not once domains hold mappings; EADDRINUSE if an area is unaligned. */
export function iopt_disable_large_pages(iopt: IoPagetable): number {
  return iopt.k.sim.call(FN.disable_large, () => {
    down_write(iopt.domains_rwsem);
    down_write(iopt.iova_rwsem);
    let rc = 0;
    if (!iopt.disable_large_pages) {
      if (iopt.domains.length && iopt.area_itree.length) {
        rc = -EINVAL;
      } else {
        iopt.disable_large_pages = true;
        rc = iopt_calculate_iova_alignment(iopt);
        if (rc) iopt.disable_large_pages = false;
      }
    }
    up_write(iopt.iova_rwsem);
    up_write(iopt.domains_rwsem);
    return rc;
  });
}
