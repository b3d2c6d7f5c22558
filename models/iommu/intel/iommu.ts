import { P, type Sim } from '../../../sim/index.ts';
import type { PhysicalMemory } from '../../hw/memory.ts';
import { decodeCaps, levelsForAgaw, type VtdCaps } from '../../hw/vtd/caps.ts';
import { PageTableWriter } from '../../hw/vtd/paging.ts';
import { REG, RTADDR_SMT } from '../../hw/vtd/regs.ts';
import type { Vtd } from '../../hw/vtd/vtd.ts';
import type { Device } from '../../kernel/device.ts';
import { EINVAL, ENODEV, ENOMEM, ENOSPC, EOPNOTSUPP, ERR_PTR, type ErrPtr } from '../../kernel/errno.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { SpinLock, spin_lock_irqsave, spin_unlock_irqrestore } from '../../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../../kernel/slab.ts';
import type { IommuCore } from '../iommu.ts';
import type { IommuDomain, IommuOps, IommuUserData } from '../types.ts';
import type { CacheTag } from './cache.ts';
import { dmar_enable_qi, type QInval } from './dmar.ts';
import type { QiDesc } from './qi-desc.ts';
import type { PasidTable } from './pasid.ts';

/**
 * The Intel VT-d driver's shared state (drivers/iommu/intel/iommu.c, v6.15): one `IntelIommu` per
 * DMAR unit, `DmarDomain` (struct dmar_domain) and `DeviceDomainInfo` (struct
 * device_domain_info). The domain operations live in domain-ops.ts, the PASID table in pasid.ts,
 * the cache tags in cache.ts, nesting in nested.ts, queued invalidation in dmar.ts.
 */

/** FLPT_DEFAULT_DID: the DID of pass-through and first-level defaults (iommu.h) */
export const FLPT_DEFAULT_DID = 1;
export const IDA_START_DID = 2;

export interface DomainIommuInfo {
  did: number;
  refcnt: number;
  alloc: KAlloc;
}

/** struct dmar_domain: one of the driver's domains */
export interface DmarDomain extends IommuDomain {
  /** first stage (PGTT = FS) rather than second stage */
  readonly use_first_level: boolean;
  readonly nested_parent: boolean;
  dirty_tracking: boolean;
  readonly force_snooping: boolean;
  /** the page-table root (HPA) and its writer; null for nested, blocked and identity domains */
  readonly pgd: number;
  readonly agaw: number;
  readonly writer: PageTableWriter | null;
  /**
   * the high-water mark of mapped IOVA: intel_iommu_map raises it to iova + size, intel_iommu_unmap
   * lowers it to iova only when it unmapped the top (max_addr == iova + size)
   */
  max_addr: number;
  /** page-table pages, freed with the domain */
  readonly tablePages: number[];
  /** DID per IOMMU unit (domain->iommu_array) */
  readonly iommu_array: Map<IntelIommu, DomainIommuInfo>;
  /** (device, pasid) attachments (domain->dev_pasids and the RID attachments) */
  readonly dev_pasids: { dev: Device; pasid: number; alloc: KAlloc | null }[];
  readonly cache_tags: CacheTag[];
  readonly cache_lock: SpinLock;
  /** qi_batch: up to 16 descriptors behind one wait */
  readonly qi_batch: QiDesc[];
  /** a nest parent's stage-1 children (s1_domains), under s1_lock */
  readonly s1_domains: DmarDomain[];
  readonly s1_lock: SpinLock;
  /** nested only: the parent and the guest's stage-1 configuration */
  readonly s2_domain: DmarDomain | null;
  readonly s1_cfg: { flags: number; pgtbl_addr: number; addr_width: number } | null;
  readonly iommu: IntelIommu;
}

/** struct device_domain_info */
export interface DeviceDomainInfo {
  readonly dev: Device;
  readonly iommu: IntelIommu;
  readonly bus: number;
  readonly devfn: number;
  readonly pasid_table: PasidTable;
  readonly ats_supported: boolean;
  ats_enabled: boolean;
  readonly ats_qdep: number;
  readonly pfsid: number;
  pri_supported: boolean;
  pri_enabled: boolean;
  readonly pasid_supported: boolean;
  /** the RID's domain */
  domain: DmarDomain | null;
}

export class IntelIommu {
  readonly caps: VtdCaps;
  readonly lock: SpinLock;
  readonly q_lock: SpinLock;
  readonly root: number;
  readonly qi: QInval;
  /** GCMD bits software has set (the kernel keeps iommu->gcmd) */
  gcmd = 0;
  private readonly didsInUse = new Set<number>();
  readonly ops: IommuOps;

  constructor(
    readonly k: Kernel,
    readonly core: IommuCore,
    readonly vtd: Vtd,
    readonly mem: PhysicalMemory,
    readonly name: string,
    makeOps: (iommu: IntelIommu) => IommuOps,
  ) {
    this.lock = new SpinLock(k, `${name}:iommu->lock`);
    this.q_lock = new SpinLock(k, `${name}:qi->q_lock`);
    this.caps = decodeCaps(vtd.regs.get64(REG.CAP), vtd.regs.get64(REG.ECAP));
    // init_dmars: root table, queued invalidation, then translation
    this.root = this.allocBootPage('root-table');
    const ring = this.allocBootPage('qi-ring', 2);
    const status = this.allocBootPage('qi-status');
    this.qi = dmar_enable_qi(this, ring, status);
    this.writeq(REG.RTADDR, BigInt(this.root) | BigInt(RTADDR_SMT));
    this.writel(REG.GCMD, this.gcmd | (1 << 30)); // SRTP
    this.gcmd |= 1 << 31; // TE
    this.writel(REG.GCMD, this.gcmd);
    this.ops = makeOps(this);
  }

  get sim(): Sim {
    return this.k.sim;
  }

  // ---- MMIO (dmar_readl/dmar_writel): through the unit's MMIO interface, which charges ----

  readl(off: number): number {
    return this.vtd.mmio.read32(off);
  }

  writel(off: number, v: number): void {
    this.vtd.mmio.write32(off, v);
  }

  writeq(off: number, v: bigint): void {
    this.vtd.mmio.write64(off, v);
  }

  // ---- memory for tables ----

  /** Boot-time structures (root table, queue): allocated once, never freed. */
  private allocBootPage(what: string, n = 1): number {
    let first = -1;
    for (let i = 0; i < n; i++) {
      const pfn = this.k.pages.allocPage(`host.${this.name}.${what}`, i);
      if (pfn < 0) throw new Error(`${this.name}: out of memory for ${what}`);
      if (first < 0) first = pfn;
      else if (pfn !== first + i) return this.allocContiguous(what, n);
    }
    return first * 4096;
  }

  /** The seeded allocator hands out scattered frames; a multi-page boot structure takes a fresh run. */
  private allocContiguous(what: string, n: number): number {
    const base = this.k.pages.allocContiguous(`host.${this.name}.${what}`, n);
    if (base < 0) throw new Error(`${this.name}: no ${n} contiguous frames for ${what}`);
    return base * 4096;
  }

  /**
   * A zeroed 4 KiB page for IOMMU tables (iommu_alloc_pages_node): passes fail-nth and the leak
   * tracker; returns its physical address or −1.
   */
  allocTablePage(what: string): number {
    if (this.sim.allocHook(`iommu_alloc_pages(${what})`)) return -1;
    const pfn = this.k.pages.allocPage(`host.${this.name}.${what}`, 0);
    if (pfn < 0) return -1;
    this.tableHandles.set(pfn, this.sim.leaks.track('iommu-page', `${this.name} ${what}`));
    return pfn * 4096;
  }

  /** leak-tracker handles of the table pages in use, by pfn */
  private readonly tableHandles = new Map<number, number>();

  freeTablePage(pa: number): void {
    const pfn = pa / 4096;
    const h = this.tableHandles.get(pfn);
    if (h === undefined) return this.sim.oops(`${this.name}: freeing table page 0x${pa.toString(16)} that is not in use`);
    this.tableHandles.delete(pfn);
    this.sim.leaks.release('iommu-page', h);
    this.sim.charge(P.kfree);
    this.k.pages.freePage(pfn);
  }

  // ---- domain IDs (domain_attach_iommu / domain_detach_iommu) ----

  /** The lowest free DID ≥ IDA_START_DID, under iommu->lock; −ENOSPC when exhausted. */
  allocDid(): number {
    const max = 1 << (4 + 2 * this.caps.nd);
    for (let d = IDA_START_DID; d < max; d++) {
      if (!this.didsInUse.has(d)) {
        this.didsInUse.add(d);
        return d;
      }
    }
    return -ENOSPC;
  }

  freeDid(did: number): void {
    this.didsInUse.delete(did);
  }
}

// ---- domain IDs on a domain ----------------------------------------------------------------

/** domain_attach_iommu: a DID for `domain` on `iommu`, refcounted per attachment. */
export function domain_attach_iommu(domain: DmarDomain, iommu: IntelIommu): number {
  const cur = domain.iommu_array.get(iommu);
  if (cur) {
    cur.refcnt++;
    return 0;
  }
  const alloc = kzalloc(iommu.k, 'iommu_domain_info');
  if (!alloc) return -ENOMEM;
  spin_lock_irqsave(iommu.lock);
  const did = iommu.allocDid();
  spin_unlock_irqrestore(iommu.lock);
  if (did < 0) {
    kfree(iommu.k, alloc);
    return did;
  }
  domain.iommu_array.set(iommu, { did, refcnt: 1, alloc });
  return 0;
}

export function domain_detach_iommu(domain: DmarDomain, iommu: IntelIommu): void {
  const cur = domain.iommu_array.get(iommu);
  if (!cur) return iommu.sim.oops(`domain_detach_iommu: ${domain.label} has no DID on ${iommu.name}`);
  if (--cur.refcnt > 0) return;
  spin_lock_irqsave(iommu.lock);
  iommu.freeDid(cur.did);
  spin_unlock_irqrestore(iommu.lock);
  domain.iommu_array.delete(iommu);
  kfree(iommu.k, cur.alloc);
}

export function domain_id_iommu(domain: DmarDomain, iommu: IntelIommu): number {
  const d = domain.iommu_array.get(iommu);
  return d ? d.did : -1;
}

// ---- domain allocation ------------------------------------------------------------------------

/** AGAW for a guest address width: 48 bits → 2 (4-level), 57 → 3 (5-level), 39 → 1. */
export function width_to_agaw(width: number): number {
  return Math.ceil((width - 30) / 9);
}

export interface PagingDomainSpec {
  iommu: IntelIommu;
  ops: IommuDomain['ops'];
  first_stage: boolean;
  nested_parent: boolean;
  dirty_tracking: boolean;
  label: string;
}

/**
 * paging_domain_alloc: a dmar_domain with an empty page-table root at the widest AGAW the unit
 * supports below 5 levels for first stage unless FL5LP, as the driver picks it.
 */
export function paging_domain_alloc(s: PagingDomainSpec): DmarDomain | ErrPtr {
  const { iommu } = s;
  const alloc = kzalloc(iommu.k, 'dmar_domain');
  if (!alloc) return ERR_PTR(-ENOMEM);
  const caps = iommu.caps;
  // second stage: the widest supported AGAW not above MGAW; first stage: 4 levels, 5 with FL5LP
  let agaw = 2;
  if (s.first_stage) agaw = caps.fl5lp ? 3 : 2;
  else for (let a = 3; a >= 1; a--) if (caps.sagaw & (1 << a) && 30 + 9 * a <= caps.mgaw) { agaw = a; break; }
  const levels = levelsForAgaw(agaw);
  const pgd = iommu.allocTablePage('pgd');
  if (pgd < 0) {
    kfree(iommu.k, alloc);
    return ERR_PTR(-ENOMEM);
  }
  const tablePages = [pgd];
  const writer = new PageTableWriter(iommu.mem, s.first_stage ? 'first' : 'second', levels, pgd, () => {
    const pa = iommu.allocTablePage('pgtable');
    if (pa < 0) throw new TableAllocFailure();
    tablePages.push(pa);
    return pa;
  });
  const width = 30 + 9 * agaw;
  const pgsizes = 0x1000 | 0x200000 | (s.first_stage ? (caps.fl1gp ? 0x40000000 : 0) : caps.sllps & 2 ? 0x40000000 : 0);
  const d: DmarDomain = {
    type: 'paging',
    ops: s.ops,
    owner: iommu.ops,
    pgsize_bitmap: pgsizes,
    geometry: { aperture_start: 0, aperture_end: 2 ** Math.min(width, 52) - 1 },
    iopf_handler: null,
    alloc,
    label: s.label,
    use_first_level: s.first_stage,
    nested_parent: s.nested_parent,
    dirty_tracking: s.dirty_tracking,
    force_snooping: false,
    pgd,
    agaw,
    writer,
    max_addr: 0,
    tablePages,
    iommu_array: new Map(),
    dev_pasids: [],
    cache_tags: [],
    cache_lock: new SpinLock(iommu.k, `${s.label}:cache_lock`),
    qi_batch: [],
    s1_domains: [],
    s1_lock: new SpinLock(iommu.k, `${s.label}:s1_lock`),
    s2_domain: null,
    s1_cfg: null,
    iommu,
  };
  return d;
}

/** Thrown by the page-table writer's allocator so that map_pages can unwind with −ENOMEM. */
export class TableAllocFailure extends Error {
  override name = 'TableAllocFailure';
}

/** The user data a driver op receives must be of the type the ioctl set. */
export function checkUserDataType(ud: IommuUserData | null, type: number): number {
  if (!ud) return -EINVAL;
  return ud.type === type ? 0 : -EOPNOTSUPP;
}

export function info_of(core: IommuCore, dev: Device): DeviceDomainInfo | null {
  return (core.dev_iommu(dev)?.priv as DeviceDomainInfo | undefined) ?? null;
}

export function must_info(core: IommuCore, dev: Device): DeviceDomainInfo {
  const i = info_of(core, dev);
  if (!i) throw new Error(`${dev.name}: not probed by the Intel driver (${-ENODEV})`);
  return i;
}

