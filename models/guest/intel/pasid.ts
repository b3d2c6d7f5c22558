/**
 * The guest's PASID tables and first-stage PASID entries (drivers/iommu/intel/pasid.c), with the
 * invalidations caching mode and the spec's table (vtd-model §B.2) require after each change.
 * Each qi_* call here is its own qi_submit_sync (one descriptor plus a wait), as in Linux.
 */
import {
  DEVTLB_ALL_ORDER,
  encodeDevPiotlbInv,
  encodeDevTlbInv,
  encodePcInv,
  encodePiotlbInv,
  encodeWait,
} from '../../hw/vtd/inv-desc.ts';
import {
  emptyPasidEntry,
  PASID_PDE_SHIFT,
  PGTT,
  pasidEntryAddressFor,
  readPasidEntryAt,
  writePasidEntryAt,
  type PasidEntry,
} from '../../hw/vtd/tables.ts';
import { GUEST_ERRNO, guestFn } from '../fn.ts';
import type { DeviceDomainInfo, GuestIntelIommu, GuestPciDevice } from './iommu.ts';

/** FLPT_DEFAULT_DID: the domain id every SVA binding uses (domain_get_id_for_dev) */
export const FLPT_DEFAULT_DID = 1;
/** PASID_FLAG_FL5LP */
export const PASID_FLAG_FL5LP = 1 << 1;
const IOMMU_NO_PASID = 0;

export interface PasidTable {
  /** the PASID directory (GPA, contiguous) */
  readonly dir: number;
  /** context PDTS: the directory has 2^(PDTS + 7) entries */
  readonly pdts: number;
  readonly maxPasid: number;
}

const SRC = 'drivers/iommu/intel/pasid.c';
const FN = {
  alloc: guestFn('intel_pasid_alloc_table', 'int intel_pasid_alloc_table(struct device *dev)', SRC),
  setupFl: guestFn('intel_pasid_setup_first_level', 'int intel_pasid_setup_first_level(struct intel_iommu *iommu, struct device *dev, phys_addr_t fsptptr, u32 pasid, u16 did, int flags)', SRC),
  replaceFl: guestFn('intel_pasid_replace_first_level', 'int intel_pasid_replace_first_level(struct intel_iommu *iommu, struct device *dev, phys_addr_t fsptptr, u32 pasid, u16 did, u16 old_did, int flags)', SRC),
  tearDown: guestFn('intel_pasid_tear_down_entry', 'void intel_pasid_tear_down_entry(struct intel_iommu *iommu, struct device *dev, u32 pasid, bool fault_ignore)', SRC),
  flushCaches: guestFn('pasid_flush_caches', 'static void pasid_flush_caches(struct intel_iommu *iommu, struct pasid_entry *pte, u32 pasid, u16 did)', SRC),
  flushPresent: guestFn('intel_pasid_flush_present', 'static void intel_pasid_flush_present(struct intel_iommu *iommu, struct device *dev, u32 pasid, u16 did, struct pasid_entry *pte)', SRC),
  drain: guestFn('intel_iommu_drain_pasid_prq', 'void intel_iommu_drain_pasid_prq(struct device *dev, u32 pasid)', 'drivers/iommu/intel/prq.c'),
};

/**
 * intel_pasid_alloc_table: a directory sized for the device's PASID width (get_order(max_pasid /
 * 8) pages, contiguous); PDTS from the table's max_pasid (context_get_sm_pds).
 */
export function intel_pasid_alloc_table(iommu: GuestIntelIommu, dev: GuestPciDevice): PasidTable | null {
  return iommu.sim.call(FN.alloc, () => {
    const maxPasid = Math.min(2 ** dev.pasidBits, 2 ** (iommu.caps.pss + 1));
    const size = maxPasid >> (PASID_PDE_SHIFT - 3);
    let order = 0;
    while (4096 * 2 ** order < size) order++;
    const dir = iommu.pages.allocContiguous(2 ** order);
    if (dir < 0) return null;
    const tableMax = 2 ** (order + 12 + 3);
    const maxPde = tableMax >> PASID_PDE_SHIFT;
    const pds = Math.log2(maxPde);
    return { dir, pdts: pds < 7 ? 0 : pds - 7, maxPasid: tableMax };
  });
}

/** intel_pasid_get_entry: the entry's GPA, allocating the leaf table lazily; −1 without a table. */
export function pasidEntryGpa(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number, alloc: boolean): number {
  const t = info.pasidTable;
  if (!t || pasid >= t.maxPasid) return -1;
  return pasidEntryAddressFor(iommu.mem, t.dir, pasid, alloc ? () => {
    const p = iommu.pages.allocPage();
    if (p < 0) throw new Error('guest: out of memory for a PASID table');
    return p;
  } : undefined);
}

/** pasid_pte_config_first_level: the entry Linux writes for a first-stage (SVA) binding. */
function firstLevelEntry(iommu: GuestIntelIommu, fsptptr: number, did: number, flags: number): PasidEntry {
  return {
    ...emptyPasidEntry(),
    flptr: fsptptr,
    flpm: flags & PASID_FLAG_FL5LP ? 1 : 0,
    did,
    aw: iommu.agaw,
    pwsnp: iommu.caps.smpwc,
    pgtt: PGTT.FS,
    present: true,
  };
}

export function intel_pasid_setup_first_level(iommu: GuestIntelIommu, info: DeviceDomainInfo, fsptptr: number, pasid: number, did: number, flags: number): number {
  return iommu.sim.call(FN.setupFl, () => {
    if (!iommu.caps.flts) return -GUEST_ERRNO.EINVAL;
    if (flags & PASID_FLAG_FL5LP && !iommu.caps.fl5lp) return -GUEST_ERRNO.EINVAL;
    const at = pasidEntryGpa(iommu, info, pasid, true);
    if (at < 0) return -GUEST_ERRNO.ENODEV;
    if (readPasidEntryAt(iommu.mem, at).present) return -GUEST_ERRNO.EBUSY;
    writePasidEntryAt(iommu.mem, at, firstLevelEntry(iommu, fsptptr, did, flags));
    pasid_flush_caches(iommu, pasid, did);
    return 0;
  });
}

/** A present → present change: the new entry in one store, then the spec's flushes (old DID). */
export function intel_pasid_replace_first_level(
  iommu: GuestIntelIommu,
  info: DeviceDomainInfo,
  fsptptr: number,
  pasid: number,
  did: number,
  oldDid: number,
  flags: number,
): number {
  return iommu.sim.call(FN.replaceFl, () => {
    if (!iommu.caps.flts) return -GUEST_ERRNO.EINVAL;
    const at = pasidEntryGpa(iommu, info, pasid, false);
    if (at < 0) return -GUEST_ERRNO.ENODEV;
    if (!readPasidEntryAt(iommu.mem, at).present) return -GUEST_ERRNO.EINVAL;
    writePasidEntryAt(iommu.mem, at, firstLevelEntry(iommu, fsptptr, did, flags));
    intel_pasid_flush_present(iommu, info, pasid, oldDid);
    intel_iommu_drain_pasid_prq(iommu, info, pasid, oldDid);
    return 0;
  });
}

/**
 * intel_pasid_tear_down_entry: clear the entry (keeping FPD with fault_ignore), then PASID-cache,
 * P_IOTLB (first-stage) and device-TLB flushes, then drain the page requests of the PASID.
 */
export function intel_pasid_tear_down_entry(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number, faultIgnore: boolean): void {
  iommu.sim.call(FN.tearDown, () => {
    const at = pasidEntryGpa(iommu, info, pasid, false);
    if (at < 0) return;
    const old = readPasidEntryAt(iommu.mem, at);
    if (!old.present) return;
    writePasidEntryAt(iommu.mem, at, { ...emptyPasidEntry(), fpd: faultIgnore });
    iommu.qi.submit([pcInvWithPasid(old.did, pasid)]);
    iommu.qi.submit([encodePiotlbInv({ g: 2, did: old.did, pasid })]);
    devtlb_invalidation_with_pasid(iommu, info, pasid);
    if (!faultIgnore) intel_iommu_drain_pasid_prq(iommu, info, pasid, old.did);
  });
}

/** pasid_cache_invalidation_with_pasid: PASID-selective within the domain (granularity 1). */
function pcInvWithPasid(did: number, pasid: number): Int32Array {
  return encodePcInv({ g: 1, did, pasid });
}

/** pasid_flush_caches: with CM = 1, PASID-cache then P_IOTLB (all of the PASID). */
function pasid_flush_caches(iommu: GuestIntelIommu, pasid: number, did: number): void {
  iommu.sim.call(FN.flushCaches, () => {
    if (!iommu.cachingMode) return; // iommu_flush_write_buffer: no queue traffic
    iommu.qi.submit([pcInvWithPasid(did, pasid)]);
    iommu.qi.submit([encodePiotlbInv({ g: 2, did, pasid })]);
  });
}

/** VT-d spec table 28 order after changing a present entry. */
function intel_pasid_flush_present(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number, did: number): void {
  iommu.sim.call(FN.flushPresent, () => {
    iommu.qi.submit([pcInvWithPasid(did, pasid)]);
    iommu.qi.submit([encodePiotlbInv({ g: 2, did, pasid })]);
    devtlb_invalidation_with_pasid(iommu, info, pasid);
  });
}

/** devtlb_invalidation_with_pasid: the whole device-TLB of the PASID (S = 1, all-ones address). */
function devtlb_invalidation_with_pasid(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number): void {
  if (!info.atsEnabled) return;
  const sid = info.dev.sid;
  const common = { sid, order: DEVTLB_ALL_ORDER, pfsid: info.pfsid, qdep: info.atsQdep };
  iommu.qi.submit([pasid === IOMMU_NO_PASID ? encodeDevTlbInv(common) : encodeDevPiotlbInv({ ...common, pasid })]);
}

/**
 * intel_iommu_drain_pasid_prq (VT-d spec 7.10): a fenced wait, P_IOTLB and PASID device-TLB
 * flushes, and a wait with PD = 1 so page requests in flight land before the PASID is reused.
 * Only with PRI enabled. (Linux first waits in software for queued requests of the PASID; in this
 * model the guest handles every request inside its interrupt, so none is queued.)
 */
export function intel_iommu_drain_pasid_prq(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number, did: number): void {
  if (!info.priEnabled) return;
  iommu.sim.call(FN.drain, () => {
    const fence = encodeWait({ sw: false, fence: true, statusData: 2 });
    const piotlb = encodePiotlbInv({ g: 2, did, pasid });
    const devtlb = encodeDevPiotlbInv({ sid: info.dev.sid, pasid, pfsid: info.pfsid, qdep: info.atsQdep });
    iommu.qi.submit([fence, piotlb, devtlb], { drain: true });
  });
}

/** The guest's current entry for (device, pasid), or null (tests and the rebind path). */
export function readGuestPasidEntry(iommu: GuestIntelIommu, info: DeviceDomainInfo, pasid: number): PasidEntry | null {
  const at = pasidEntryGpa(iommu, info, pasid, false);
  return at < 0 ? null : readPasidEntryAt(iommu.mem, at);
}

