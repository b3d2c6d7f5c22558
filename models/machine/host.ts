import { Sim, type SimOptions, type SimThread } from '../../sim/index.ts';
import { PhysicalMemory } from '../hw/memory.ts';
import { PciDevice } from '../hw/pcie/device.ts';
import type { VtdCaps } from '../hw/vtd/caps.ts';
import { Vtd } from '../hw/vtd/vtd.ts';
import { Device } from '../kernel/device.ts';
import { Kernel } from '../kernel/kernel.ts';
import type { HostMemory } from '../kernel/page_alloc.ts';
import { Syscalls } from '../kernel/syscalls.ts';
import { IoPgfault } from '../iommu/io-pgfault.ts';
import { IommuCore } from '../iommu/iommu.ts';
import { intelIommuOps, intelProbe } from '../iommu/intel/domain-ops.ts';
import { IntelIommu, type DeviceDomainInfo } from '../iommu/intel/iommu.ts';
import { IntelPrq } from '../iommu/intel/prq.ts';

/**
 * The shared platform both stacks run on: host memory, one emulated VT-d, the kernel, the IOMMU
 * core with io-pgfault, and the Intel driver bound to the unit, with the page-request interrupt
 * wired to the driver's PRQ thread. Design-specific modules (VFIO, iommufd, …) are initialised on
 * top of this by their own init functions, as module init does.
 */
export interface HostOptions extends SimOptions {
  /** the host VT-d's capabilities; the default is a current server part in scalable mode (CM=0) */
  caps?: Partial<VtdCaps>;
  /** frames the kernel may allocate, from pfn 0x100 (default 1 Mi frames = 4 GiB) */
  frames?: number;
}

export interface HostDevice {
  readonly dev: Device;
  readonly pci: PciDevice;
  readonly info: DeviceDomainInfo;
}

export class HostMachine {
  readonly sim: Sim;
  readonly mem = new PhysicalMemory({ initialPages: 256 });
  readonly vtd: Vtd;
  readonly k: Kernel;
  readonly sys: Syscalls;
  readonly core: IommuCore;
  readonly iopf: IoPgfault;
  readonly iommu: IntelIommu;
  readonly prq: IntelPrq;
  /** the kernel thread that runs prq_event_thread */
  readonly prqThread: SimThread;
  readonly devices: HostDevice[] = [];

  constructor(opts: HostOptions = {}) {
    this.sim = new Sim(opts);
    this.vtd = new Vtd(this.mem, { name: 'dmar0', ...(opts.caps ? { caps: opts.caps } : {}) });
    this.vtd.sim = this.sim;
    const frames = { firstPfn: 0x100, nrFrames: opts.frames ?? 1 << 20 };
    this.mem.ownerWindow(frames.firstPfn, frames.nrFrames);
    this.k = new Kernel(this.sim, hostMemoryOf(this.mem), frames);
    this.sys = new Syscalls(this.k);
    this.core = new IommuCore(this.k);
    this.iopf = new IoPgfault(this.k, this.core);
    let prq: IntelPrq | null = null;
    this.iommu = new IntelIommu(this.k, this.core, this.vtd, this.mem, 'dmar0', (iommu) =>
      intelIommuOps(this.core, () => iommu, () => prq!),
    );
    this.prq = prq = new IntelPrq(this.iommu, this.core, this.iopf);
    this.prqThread = this.sim.sched.spawn('kernel/dmar0-prq');
    this.vtd.onInterrupt('page-request', () => this.prq.prq_event_thread(), this.prqThread);
  }

  /**
   * Adds a PCI function at `rid` (bus << 8 | devfn) and probes it into IOMMU group `groupId`
   * (functions behind one bridge without ACS share a group).
   */
  addPciDevice(name: string, rid: number, caps: { pasidBits?: number; ats?: boolean; pri?: boolean; isVirtfn?: boolean }, groupId = rid): HostDevice {
    const pci = new PciDevice(
      {
        rid,
        pasidBits: caps.pasidBits ?? 20,
        ats: caps.ats ?? false,
        pri: caps.pri ?? false,
        name,
        thread: this.sim.sched.spawn(`dev/${name}`),
      },
      this.vtd,
    );
    const dev = new Device(name, rid, { pasidBits: caps.pasidBits ?? 20, ats: caps.ats ?? false, pri: caps.pri ?? false, isVirtfn: caps.isVirtfn ?? false }, pci);
    const info = intelProbe(this.core, this.iommu, dev, groupId);
    const d = { dev, pci, info };
    this.devices.push(d);
    return d;
  }
}

/** The kernel's view of host memory, over the emulated machine's memory. */
function hostMemoryOf(mem: PhysicalMemory): HostMemory {
  return {
    read(pa, dst, off, len) {
      mem.readInto(pa, dst, off, len);
    },
    write(pa, src, off, len) {
      mem.writeFrom(pa, src, off, len);
    },
    setOwner(pfn, owner, index) {
      mem.setPageOwner(pfn, owner, index * 4096);
    },
    zeroPage(pfn) {
      mem.clearPage(pfn);
    },
  };
}
