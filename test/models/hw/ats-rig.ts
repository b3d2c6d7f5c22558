/**
 * A host VT-d with a PCIe device doing SVA-style DMA: first-stage host tables per PASID, the
 * context entry's DTE/PRE as the driver sets them, a QI queue and a page request queue set up
 * through MMIO as linux intel_iommu_enable_prq does (PQH = PQT = 0, PQA = base | order).
 */
import { PciDevice, type PciDeviceOptions } from '../../../models/hw/pcie/device.ts';
import {
  PAGE_4K,
  PGTT,
  REG,
  contextEntryAddressFor,
  readContextEntryAt,
  writeContextEntryAt,
  type PageTableWriter,
} from '../../../models/hw/vtd/index.ts';
import { GUEST_RAM_HPA, Rig, type RigOptions } from './rig.ts';
import { QiDriver } from './qi-rig.ts';

export const DEV_RID = 0x0300; // 03:00.0
export const PRQ_BASE = 0x3100_0000;
export const QI_BASE = 0x3000_0000;
/** Data pages live in "guest0.ram" (a labelled host region here). */
export const DATA = GUEST_RAM_HPA + 0x40_0000;

export interface AtsRigOptions extends RigOptions {
  dte?: boolean;
  pre?: boolean;
  /** PQA.PQS: 2^pqs pages, 2^(pqs+7) descriptors. */
  pqs?: number;
  device?: Partial<PciDeviceOptions>;
  pasids?: number[];
}

export function atsRig(o: AtsRigOptions = {}) {
  const rig = new Rig(o);
  const v = rig.vtd;
  const mem = rig.mem;
  const dir = rig.attach(DEV_RID);
  const cePa = contextEntryAddressFor(mem, rig.root, DEV_RID);
  writeContextEntryAt(mem, cePa, { ...readContextEntryAt(mem, cePa), dte: o.dte ?? true, pre: o.pre ?? true });
  const tables = new Map<number, PageTableWriter>();
  for (const pasid of o.pasids ?? [0, 1, 2]) {
    const fs = rig.hostFirstStage(4);
    tables.set(pasid, fs);
    rig.setPasid(dir, pasid, { pgtt: PGTT.FS, did: 10 + pasid, flptr: fs.root });
  }
  const qi = new QiDriver(v, mem, QI_BASE);
  const pqs = o.pqs ?? 0;
  for (let i = 0; i < 1 << pqs; i++) mem.zeroPage(PRQ_BASE / 4096 + i);
  v.mmio.write64(REG.PQH, 0);
  v.mmio.write64(REG.PQT, 0);
  v.mmio.write64(REG.PQA, PRQ_BASE + pqs);
  const dev = new PciDevice({ rid: DEV_RID, ats: true, pri: true, ...o.device }, v);
  /** Map `pages` 4 KiB pages at `va` for `pasid` onto DATA + dataOff. */
  const map = (pasid: number, va: number, dataOff: number, pages = 1, write = true): void =>
    tables.get(pasid)!.map(va, DATA + dataOff, pages * 4096, PAGE_4K, { write });
  return { rig, v, mem, dir, dev, qi, tables, map };
}
