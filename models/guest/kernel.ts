/**
 * The guest kernel: its page allocator over guest RAM, its processes, and its intel-iommu driver
 * over the vIOMMU. It knows only guest memory and the vIOMMU instance (a VT-d model with CM = 1);
 * who emulates that vIOMMU (the VMM's front end, trapping its MMIO) is invisible from here.
 *
 * The runner drives it with the stack-neutral scenario steps: createProcess, map (guest-map),
 * unmap (guest-unmap), bind / rebind / unbind of a device PASID. Each returns 0 or −errno.
 */
import type { Rng } from '../../sim/rng.ts';
import type { Sim } from '../../sim/sim.ts';
import type { Vtd } from '../hw/vtd/vtd.ts';
import { GUEST_ERRNO } from './fn.ts';
import type { GuestFlushMode } from './intel/cache.ts';
import { GuestIntelIommu, type GuestPciDevice } from './intel/iommu.ts';
import { readGuestPasidEntry } from './intel/pasid.ts';
import { GuestPrq } from './intel/prq.ts';
import { GuestSva } from './intel/svm.ts';
import type { GuestMemory } from './memory.ts';
import { GuestProcess } from './mm.ts';
import { GuestPageAllocator } from './page_alloc.ts';
import type { PasidEntry } from '../hw/vtd/tables.ts';

export interface GuestOptions {
  readonly sim: Sim;
  readonly mem: GuestMemory;
  /** the guest-visible vIOMMU (its registers are all the guest touches of it) */
  readonly viommu: Vtd;
  /** guest frame placement; default: a fork of the sim's RNG */
  readonly rng?: Rng;
  /** how the driver turns a PTE change into invalidations (cache.ts); default 'range' (Linux) */
  readonly flushMode?: GuestFlushMode;
  /** 5-level paging for processes (LA57; PASID entries get FLPM = 1) */
  readonly la57?: boolean;
}

export class GuestKernel {
  readonly sim: Sim;
  readonly mem: GuestMemory;
  readonly pages: GuestPageAllocator;
  readonly iommu: GuestIntelIommu;
  readonly sva: GuestSva;
  readonly prq: GuestPrq;
  readonly processes = new Map<string, GuestProcess>();
  flushMode: GuestFlushMode;
  private readonly la57: boolean;
  private nextPid = 1000;

  /** Boots: the page allocator and the intel-iommu driver (init_dmars), through the vIOMMU's MMIO. */
  constructor(opts: GuestOptions) {
    this.sim = opts.sim;
    this.mem = opts.mem;
    this.flushMode = opts.flushMode ?? 'range';
    this.la57 = opts.la57 ?? false;
    this.pages = new GuestPageAllocator(opts.mem, opts.rng ?? opts.sim.rng.fork('guest-frames'));
    this.iommu = new GuestIntelIommu(opts.sim, opts.mem, opts.viommu, this.pages);
    this.sva = new GuestSva(this.iommu, () => this.flushMode, this.la57);
    this.prq = new GuestPrq(this.iommu, this.sva);
    this.iommu.init(() => this.prq.enable());
  }

  /** PCI enumeration of a device the VMM exposes: probes it into the IOMMU driver. */
  addDevice(dev: GuestPciDevice): number {
    return this.iommu.probeDevice(dev);
  }

  createProcess(comm: string): GuestProcess {
    if (this.processes.has(comm)) throw new Error(`guest: process ${comm} exists`);
    const p = new GuestProcess(this.sim, this.nextPid++, comm, this.pages, this.la57 ? 5 : 4);
    this.processes.set(comm, p);
    return p;
  }

  process(comm: string): GuestProcess {
    const p = this.processes.get(comm);
    if (!p) throw new Error(`guest: no process ${comm}`);
    return p;
  }

  private info(device: string) {
    return this.iommu.deviceByName(device);
  }

  /** bind: the process's page table on the device PASID (iommu_sva_bind_device). */
  bind(device: string, pasid: number, proc: GuestProcess): number {
    const info = this.info(device);
    return info ? this.sva.bind(info, pasid, proc) : -GUEST_ERRNO.ENODEV;
  }

  /** rebind: another process's page table on a bound PASID (iommu_replace_device_pasid). */
  rebind(device: string, pasid: number, proc: GuestProcess): number {
    const info = this.info(device);
    return info ? this.sva.replace(info, pasid, proc) : -GUEST_ERRNO.ENODEV;
  }

  unbind(device: string, pasid: number): number {
    const info = this.info(device);
    return info ? this.sva.unbind(info, pasid) : -GUEST_ERRNO.ENODEV;
  }

  /** The guest's PASID entry for (device, pasid) as it sits in guest RAM (tests, digests). */
  pasidEntry(device: string, pasid: number): PasidEntry | null {
    const info = this.info(device);
    return info ? readGuestPasidEntry(this.iommu, info, pasid) : null;
  }
}
