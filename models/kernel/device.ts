/**
 * struct device, reduced to what the IOMMU layers need: a name, the PCI requester ID and the PCI
 * capabilities that matter (PASID width, ATS, PRI). `hw` is the emulated function behind it.
 */
export interface PciCaps {
  /** PASID capability: supported PASID width in bits (0 = no PASID capability) */
  pasidBits: number;
  ats: boolean;
  pri: boolean;
  /** a VF cannot enable PRI on its own (iommufd_fault_iopf_enable refuses it) */
  isVirtfn: boolean;
}

export class Device {
  /** the driver bound to it ("vfio-pci", "vdpa", …), or null */
  driver: string | null = null;

  constructor(
    readonly name: string,
    /** requester ID: bus << 8 | devfn */
    readonly rid: number,
    readonly caps: PciCaps,
    /** the emulated function (models/hw) */
    readonly hw: unknown,
  ) {}

  get bus(): number {
    return this.rid >>> 8;
  }

  get devfn(): number {
    return this.rid & 0xff;
  }

  /** "0000:00:03.0" */
  get bdf(): string {
    const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
    return `0000:${hex(this.bus, 2)}:${hex(this.devfn >>> 3, 2)}.${this.devfn & 7}`;
  }
}
