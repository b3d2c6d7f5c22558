import { expect } from 'vitest';
import { REG } from '../../models/hw/vtd/regs.ts';
import { IS_ERR } from '../../models/kernel/errno.ts';
import { IOMMU_HWPT_DATA_VTD_S1, iommu_hwpt_vtd_s1 } from '../../models/kernel/uapi/index.ts';
import type { DmarDomain } from '../../models/iommu/intel/iommu.ts';
import type { IommuAttachHandle, IommuDomain } from '../../models/iommu/types.ts';
import type { HostMachine } from '../../models/machine/host.ts';
import { GuestRam, type GuestPageTable } from './guest.ts';
import { bootHost } from './host.ts';

export const NEST_PARENT = 1 << 0;
export const ALLOC_PASID = 1 << 3;
export const GUEST_VA = 0x7f00_0000_0000;

/**
 * A device owned by a kernel-bypass user, its RID on a nest-parent second stage that maps 16 MiB
 * of guest RAM, and a guest process's first-stage table mapping GUEST_VA… onto guest RAM.
 */
export function nestedRig(opts: Parameters<typeof bootHost>[0] & { ats?: boolean; pri?: boolean; ramBytes?: number } = {}) {
  const host = bootHost(opts);
  const { m } = host;
  const d = m.addPciDevice('dsa0', 0x0300, { pasidBits: 20, ats: opts.ats ?? false, pri: opts.pri ?? false });
  const group = m.core.iommu_group_get(d.dev)!;
  expect(m.core.iommu_device_claim_dma_owner(d.dev, 'test-owner')).toBe(0);
  const s2 = m.iommu.ops.domain_alloc_paging_flags(d.dev, NEST_PARENT | ALLOC_PASID, null);
  if (IS_ERR(s2)) throw new Error(`nest parent: ${s2.err}`);
  expect(m.core.iommu_attach_group(s2, group)).toBe(0);
  const ram = new GuestRam(m, opts.ramBytes ?? 16 << 20);
  ram.mapInto(m.core, s2);
  const pt = ram.firstStage(4);
  pt.map(GUEST_VA, 0x10_0000, 0x8000);
  return { ...host, d, group, s2: s2 as DmarDomain, ram, pt };
}

/** A nested domain for a guest table, allocated through the driver op with real user data. */
export function allocNested(r: ReturnType<typeof nestedRig>, pt: GuestPageTable, flags = 0, addrWidth = 48): IommuDomain {
  const udata = r.put(iommu_hwpt_vtd_s1, { flags, pgtbl_addr: pt.root, addr_width: addrWidth });
  const s1 = r.asTask(() => r.m.iommu.ops.domain_alloc_nested!(r.d.dev, r.s2, 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: udata, len: 24 }));
  if (IS_ERR(s1)) throw new Error(`nested alloc: ${s1.err}`);
  return s1;
}

export function handle(): IommuAttachHandle {
  return { domain: null, owner: 'test' };
}

/** Records the types of the descriptors software submits, one array per IQT write (submission). */
export function recordSubmissions(m: HostMachine) {
  const batches: number[][] = [];
  let tail = m.vtd.regs.get32(REG.IQT) >>> 5;
  const stop = m.vtd.mmio.observe(REG.IQT, (_o, v, phase) => {
    if (phase !== 'before') return;
    const next = (v >>> 5) % 256;
    const types: number[] = [];
    for (let i = tail; i !== next; i = (i + 1) % 256) types.push(m.mem.readU32(m.iommu.qi.base + i * 32) & 0xf);
    batches.push(types);
    tail = next;
  });
  return { batches, stop };
}
