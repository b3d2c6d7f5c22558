/**
 * One VM as the VMM builds it: guest RAM mmapped in the VMM task (its frames are host frames the
 * host allocator scattered, labelled `<region>` page by page), the guest-physical view of it, the
 * backend, the intel-iommu front end with its vIOMMU, and the booted guest kernel with the
 * assigned devices enumerated. Assignment itself is a scenario step (`frontend.assign`).
 */
import type { Sim } from '../../sim/sim.ts';
import type { PhysicalMemory } from '../hw/memory.ts';
import type { VtdCaps } from '../hw/vtd/caps.ts';
import { IS_ERR } from '../kernel/errno.ts';
import type { Task } from '../kernel/process.ts';
import type { Syscalls } from '../kernel/syscalls.ts';
import { GuestKernel, type GuestOptions } from '../guest/kernel.ts';
import { GuestMemory } from '../guest/memory.ts';
import { DEFAULT_BACKEND_OPTIONS, type BackendFactory, type BackendOptions, type DeviceSpec, type GuestRamMapping, type VmmBackend } from './backend.ts';
import { IntelIommuFrontend } from './frontend.ts';

/** A host device given to the VM, and how the guest sees it. */
export interface VmDevice {
  readonly spec: DeviceSpec;
  /** guest bus << 8 | devfn */
  readonly guestSid: number;
  /** what the guest's config space shows (the host device's capabilities) */
  readonly pasidBits: number;
  readonly ats: boolean;
  readonly pri: boolean;
}

export interface VmOptions {
  readonly sim: Sim;
  /** host physical memory (guest RAM's bytes live there) */
  readonly hostMem: PhysicalMemory;
  readonly sys: Syscalls;
  /** the VMM process's main task */
  readonly task: Task;
  readonly ramBytes: number;
  /** owner label of guest RAM frames (the digest names guest pages by it); default guest0.ram */
  readonly region?: string;
  readonly devices: readonly VmDevice[];
  readonly backend: BackendFactory;
  readonly options?: BackendOptions;
  readonly viommuCaps?: Partial<VtdCaps>;
  readonly guest?: Pick<GuestOptions, 'flushMode' | 'la57' | 'rng'>;
}

export interface Vm {
  readonly ram: GuestMemory;
  readonly ramMapping: GuestRamMapping;
  readonly backend: VmmBackend;
  readonly frontend: IntelIommuFrontend;
  readonly guest: GuestKernel;
}

export function createVm(o: VmOptions): Vm {
  if (o.ramBytes % 4096 !== 0 || o.ramBytes <= 0) throw new RangeError('guest RAM must be a positive multiple of 4 KiB');
  // guest RAM is hugepage-backed when its size allows, as a VMM configures it for assigned devices
  const hva = o.task.mm.mmap(o.ramBytes, o.region ?? 'guest0.ram', { huge: o.ramBytes % (2 << 20) === 0 });
  if (IS_ERR(hva)) throw new Error(`mmap of guest RAM failed: ${hva.err}`);
  const vma = o.task.mm.findVma(hva)!;
  const ram = new GuestMemory(o.hostMem, vma.pfns);
  const ramMapping: GuestRamMapping = { gpa: 0, size: o.ramBytes, hva };
  const backend = o.backend({
    sim: o.sim,
    sys: o.sys,
    task: o.task,
    guestRam: ramMapping,
    devices: o.devices.map((d) => d.spec),
    options: o.options ?? DEFAULT_BACKEND_OPTIONS,
  });
  const frontend = new IntelIommuFrontend({
    sim: o.sim,
    mem: ram,
    backend,
    devices: o.devices.map((d) => ({ name: d.spec.name, guestSid: d.guestSid })),
    ...(o.viommuCaps ? { caps: o.viommuCaps } : {}),
  });
  const guest = new GuestKernel({ sim: o.sim, mem: ram, viommu: frontend.viommu, ...o.guest });
  for (const d of o.devices) {
    const r = guest.addDevice({ name: d.spec.name, sid: d.guestSid, pasidBits: d.pasidBits, ats: d.ats, pri: d.pri });
    if (r) throw new Error(`guest probe of ${d.spec.name} failed: ${r}`);
  }
  return { ram, ramMapping, backend, frontend, guest };
}
