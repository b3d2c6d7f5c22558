import { IS_ERR } from '../../../models/kernel/errno.ts';
import { HostMachine } from '../../../models/machine/host.ts';
import { tunnel_init } from '../../../models/vfio/vfio.ts';
import { vdpa_register_device } from '../../../models/vhost/vdpa.ts';
import { vhost_vdpa_probe } from '../../../models/vhost/vhost_vdpa.ts';
import { vhost_vdpa_tunnel } from '../../../models/vhost/vhost_vdpa_tunnel.ts';
import { DEFAULT_BACKEND_OPTIONS, type BackendOptions, type DeviceSpec } from '../../../models/vmm/backend.ts';
import { TunnelBackend, type TunnelBackendOptions } from '../../../models/vmm/backend-tunnel.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

export const GUEST_VA = 0x7f00_0000_0000;
export const DATA_GPA = 0x10_0000;
export const FLAGS48 = { addrWidth: 48, sre: false, wpe: false, eafe: false } as const;

/**
 * A host with design A's modules, one VFIO device (dsa0, group 3) and optionally a vDPA device
 * over its own PCI function, the VMM process with guest RAM mmapped, and backend A over it. The
 * guest's first-stage tables are written into guest RAM through the VMM's mapping, as
 * test/models/vfio/tunnel-rig.ts does.
 */
export function backendRig(o: { pri?: boolean; vdpa?: boolean; options?: BackendOptions; extra?: TunnelBackendOptions; ramSize?: number } = {}) {
  const m = new HostMachine({ frames: 1 << 16 });
  const dsa = m.addPciDevice('dsa0', 0x0300, { pasidBits: 20, ats: o.pri ?? false, pri: o.pri ?? false }, 3);
  tunnel_init(m);
  const specs: DeviceSpec[] = [{ name: 'dsa0', kind: 'vfio-pci', hostRid: 0x0300, sysfsName: dsa.dev.bdf, paths: { group: '/dev/vfio/3' } }];
  let pf: ReturnType<HostMachine['addPciDevice']> | null = null;
  if (o.vdpa) {
    pf = m.addPciDevice('vdpa-pf', 0x0700, { pasidBits: 20 });
    const v = vhost_vdpa_probe(m.k, m.core, vdpa_register_device({ name: 'vdpa0', dma_dev: pf.dev, groups: [2] }), vhost_vdpa_tunnel(m.k, m.core));
    specs.push({ name: 'vdpa0', kind: 'vdpa', hostRid: 0x0700, paths: { vhostVdpa: v.path } });
  }
  const task = m.k.createProcess('qemu');
  const ramSize = o.ramSize ?? 4 << 20;
  const ram = task.mm.mmap(ramSize, 'guest0.ram');
  if (IS_ERR(ram)) throw new Error('mmap');
  const backend = new TunnelBackend(
    { sim: m.sim, sys: m.sys, task, guestRam: { gpa: 0, size: ramSize, hva: ram }, devices: specs, options: o.options ?? DEFAULT_BACKEND_OPTIONS },
    o.extra ?? {},
  );
  const { firstStage } = vmmGuestTables(m, task, ram, ramSize);
  const readGuest = (gpa: number, len: number) => {
    const b = new Uint8Array(len);
    task.mm.access(ram + gpa, b, 0, len, false);
    return b;
  };
  return { m, dsa, pf, task, ram, backend, firstStage, readGuest };
}
