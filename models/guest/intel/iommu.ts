/**
 * The guest's intel-iommu driver in scalable mode, over its vIOMMU (a VT-d with CM = 1): boot
 * (init_dmars: QI, root table, PRQ, translation), device probe (the PASID table and the
 * scalable-mode context entry), and the flushes caching mode requires. Everything it touches is
 * guest RAM and the vIOMMU's registers; every register access is an MMIO exit the VMM may trap.
 */
import type { Sim } from '../../../sim/sim.ts';
import { encodeCcInv, encodeDevTlbInv, encodeIotlbInv, encodePcInv, DEVTLB_ALL_ORDER } from '../../hw/vtd/inv-desc.ts';
import { REG, RTADDR_SMT } from '../../hw/vtd/regs.ts';
import { contextEntryAddressFor, writeContextEntryAt } from '../../hw/vtd/tables.ts';
import type { Vtd } from '../../hw/vtd/vtd.ts';
import type { VtdCaps } from '../../hw/vtd/caps.ts';
import { GUEST_ERRNO, guestFn } from '../fn.ts';
import type { GuestMemory } from '../memory.ts';
import type { GuestPageAllocator } from '../page_alloc.ts';
import { GuestQi } from './qi.ts';
import { intel_pasid_alloc_table, type PasidTable } from './pasid.ts';

/** A PCI function as the guest enumerates it (config space emulated by the VMM). */
export interface GuestPciDevice {
  readonly name: string;
  /** guest requester id, bus << 8 | devfn */
  readonly sid: number;
  /** PASID capability width (0: none) */
  readonly pasidBits: number;
  readonly ats: boolean;
  readonly pri: boolean;
}

/** struct device_domain_info, the parts this model uses. */
export interface DeviceDomainInfo {
  readonly dev: GuestPciDevice;
  readonly pasidTable: PasidTable | null;
  readonly atsEnabled: boolean;
  readonly priEnabled: boolean;
  /** PF source id for device-TLB descriptors (a PF: its own id) */
  readonly pfsid: number;
  /** ATS invalidate queue depth as Linux passes it (≥ QI_DEV_IOTLB_MAX_INVS reads as 0) */
  readonly atsQdep: number;
}

const DMA_GCMD_TE = 1 << 31;
const DMA_GCMD_SRTP = 1 << 30;

const SRC = 'drivers/iommu/intel/iommu.c';
const FN = {
  init: guestFn('init_dmars', 'static int __init init_dmars(void)', SRC),
  setRoot: guestFn('iommu_set_root_entry', 'static void iommu_set_root_entry(struct intel_iommu *iommu)', SRC),
  enableTranslation: guestFn('iommu_enable_translation', 'static void iommu_enable_translation(struct intel_iommu *iommu)', SRC),
  probe: guestFn('intel_iommu_probe_device', 'static struct iommu_device *intel_iommu_probe_device(struct device *dev)', SRC),
  ctxSetup: guestFn('device_pasid_table_setup', 'static int device_pasid_table_setup(struct device *dev, u8 bus, u8 devfn)', 'drivers/iommu/intel/pasid.c'),
};

export class GuestIntelIommu {
  readonly caps: VtdCaps;
  readonly qi: GuestQi;
  /** root table (GPA) */
  readonly rootTable: number;
  /** iommu->agaw: the widest SAGAW the caps allow up to 57 bits */
  readonly agaw: number;
  readonly devices = new Map<number, DeviceDomainInfo>();
  /** the gcmd shadow Linux keeps (iommu->gcmd) */
  private gcmd = 0;

  constructor(
    readonly sim: Sim,
    readonly mem: GuestMemory,
    readonly vtd: Vtd,
    readonly pages: GuestPageAllocator,
  ) {
    this.caps = vtd.readCaps();
    // MMIO reads of CAP/ECAP at map time (map_iommu): two exits
    vtd.mmio.read64(REG.CAP);
    vtd.mmio.read64(REG.ECAP);
    if (!this.caps.smts || !this.caps.qi) throw new Error('guest: the vIOMMU has no scalable mode or QI');
    let agaw = 3;
    while (agaw > 0 && ((this.caps.sagaw >>> agaw) & 1) === 0) agaw--;
    this.agaw = agaw;
    this.qi = new GuestQi(sim, mem, vtd, pages);
    const root = pages.allocPage();
    if (root < 0) throw new Error('guest: out of memory for the root table');
    this.rootTable = root;
  }

  get cachingMode(): boolean {
    return this.caps.cachingMode;
  }

  /** init_dmars for this unit: QI, root table, (PRQ by the caller), translation on. */
  init(enablePrq: () => void): void {
    this.sim.call(FN.init, () => {
      this.gcmd = this.qi.enable(this.gcmd);
      this.setRootEntry();
      if (this.caps.prs) enablePrq();
      this.sim.call(FN.enableTranslation, () => {
        this.gcmd |= DMA_GCMD_TE;
        this.vtd.mmio.write32(REG.GCMD, this.gcmd);
        this.vtd.mmio.read32(REG.GSTS);
      });
    });
  }

  /** iommu_set_root_entry: RTADDR | SMT, GCMD.SRTP, then global context/PASID/IOTLB flushes. */
  private setRootEntry(): void {
    this.sim.call(FN.setRoot, () => {
      const mmio = this.vtd.mmio;
      mmio.write64(REG.RTADDR, this.rootTable + RTADDR_SMT);
      mmio.write32(REG.GCMD, this.gcmd | DMA_GCMD_SRTP);
      mmio.read32(REG.GSTS);
      this.qi.submit([encodeCcInv({ g: 1 })]);
      this.qi.submit([encodePcInv({ g: 3 })]);
      this.qi.submit([encodeIotlbInv({ g: 1 })]);
    });
  }

  /**
   * intel_iommu_probe_device + device_pasid_table_setup: the PASID table, the scalable-mode
   * context entry (PASIDE, DTE with ATS, PRE with PRI, RID_PASID 0), and with CM = 1 the flushes
   * of a not-present → present change. The RID itself is left without a PASID-0 entry: this
   * guest uses its devices only through PASIDs (vSVA).
   */
  probeDevice(dev: GuestPciDevice): number {
    return this.sim.call(FN.probe, () => {
      if (this.devices.has(dev.sid)) return -GUEST_ERRNO.EBUSY;
      const pasidTable = dev.pasidBits > 0 ? intel_pasid_alloc_table(this, dev) : null;
      if (dev.pasidBits > 0 && pasidTable === null) return -GUEST_ERRNO.ENOMEM;
      const info: DeviceDomainInfo = {
        dev,
        pasidTable,
        atsEnabled: dev.ats && this.caps.dt,
        priEnabled: dev.pri && dev.ats && this.caps.prs,
        pfsid: dev.sid,
        atsQdep: 0,
      };
      this.devices.set(dev.sid, info);
      if (pasidTable) this.sim.call(FN.ctxSetup, () => this.contextSetup(info, pasidTable));
      return 0;
    });
  }

  private contextSetup(info: DeviceDomainInfo, table: PasidTable): void {
    const at = contextEntryAddressFor(this.mem, this.rootTable, info.dev.sid, () => {
      const p = this.pages.allocPage();
      if (p < 0) throw new Error('guest: out of memory for a context table');
      return p;
    });
    // context_entry_set_pasid_table
    writeContextEntryAt(this.mem, at, {
      present: true,
      fpd: false,
      dte: info.atsEnabled,
      paside: true,
      pre: info.priEnabled,
      pdts: table.pdts,
      pasidDirPtr: table.dir,
      ridPasid: 0,
    });
    if (!this.cachingMode) return;
    // not present → present under caching mode: hardware may have cached the not-present entry
    this.qi.submit([encodeCcInv({ g: 3, sid: info.dev.sid })]);
    this.qi.submit([encodePcInv({ g: 3 })]);
    this.qi.submit([encodeIotlbInv({ g: 1 })]);
    if (info.atsEnabled) this.qi.submit([encodeDevTlbInv({ sid: info.dev.sid, order: DEVTLB_ALL_ORDER, pfsid: info.pfsid, qdep: info.atsQdep })]);
  }

  deviceByName(name: string): DeviceDomainInfo | undefined {
    for (const d of this.devices.values()) if (d.dev.name === name) return d;
    return undefined;
  }
}
