import type { HostMachine } from '../models/machine/host.ts';
import { iommufd_stack_init } from '../models/vfio/device_cdev.ts';
import { tunnel_init } from '../models/vfio/vfio.ts';
import { vdpa_register_device } from '../models/vhost/vdpa.ts';
import { vhost_vdpa_probe, type VhostVdpa } from '../models/vhost/vhost_vdpa.ts';
import { vhost_vdpa_iommufd_probe } from '../models/vhost/vhost_vdpa_iommufd.ts';
import { vhost_vdpa_tunnel } from '../models/vhost/vhost_vdpa_tunnel.ts';
import { iommufdBackend } from '../models/vmm/backend-iommufd.ts';
import { tunnelBackend } from '../models/vmm/backend-tunnel.ts';
import type { DeviceSpec as VmmDeviceSpec } from '../models/vmm/backend.ts';
import type { BootedDevice, StackPlatform } from './platform.ts';
import type { StackName } from './results.ts';

/**
 * The built-in designs, by stack: each wires its module inits and its VMM backend onto the shared
 * platform, as boot would. A vDPA device is a PCI function on the vDPA bus with one virtqueue group
 * per declared group, handed to vhost-vdpa with the design's extension (both are projections).
 */
export function builtinPlatforms(): Partial<Record<StackName, StackPlatform>> {
  return { tunnel: tunnelPlatform(), iommufd: iommufdPlatform() };
}

/** The vhost-vdpa devices a platform instance created, by scenario device name. */
type VhostByName = Map<string, VhostVdpa>;

function registerVdpa(m: HostMachine, b: BootedDevice, probe: (vdpa: ReturnType<typeof vdpa_register_device>) => VhostVdpa, vhosts: VhostByName): void {
  const groups = b.scenario.vqGroups.length ? b.scenario.vqGroups.map((g) => g.vqs.length) : [2];
  // ASID n is backed by PASID n in both projections: every PASID the device can carry is an ASID
  const nas = Math.max(groups.length, 2 ** Math.min(b.scenario.pasidBits, 8));
  const vdpa = vdpa_register_device({ name: b.scenario.name, dma_dev: b.host.dev, groups, nas });
  vhosts.set(b.scenario.name, probe(vdpa));
}

function specOf(b: BootedDevice, paths: VmmDeviceSpec['paths']): VmmDeviceSpec {
  return { name: b.scenario.name, kind: b.scenario.type, hostRid: b.host.dev.rid, sysfsName: b.host.dev.bdf, paths };
}

function tunnelPlatform(): StackPlatform {
  const vhosts: VhostByName = new Map();
  return {
    name: 'tunnel',
    init(m, devices) {
      vhosts.clear();
      tunnel_init(m, devices.filter((d) => d.scenario.type === 'vfio-pci').map((d) => d.host.dev));
      for (const d of devices) {
        if (d.scenario.type === 'vdpa') registerVdpa(m, d, (vdpa) => vhost_vdpa_probe(m.k, m.core, vdpa, vhost_vdpa_tunnel(m.k, m.core), true), vhosts);
      }
    },
    spec(_m, b) {
      return b.scenario.type === 'vdpa' ? specOf(b, { vhostVdpa: vhosts.get(b.scenario.name)!.path }) : specOf(b, { group: `/dev/vfio/${b.groupId}` });
    },
    backend: (init) => tunnelBackend(init),
  };
}

function iommufdPlatform(): StackPlatform {
  const vhosts: VhostByName = new Map();
  const cdevs = new Map<string, string>();
  const pri = new Map<string, boolean>();
  /** (device, PASID) → the vq group a bind named: the intents do not carry it */
  const vqGroupOf = new Map<string, number>();
  return {
    name: 'iommufd',
    init(m, devices, sc) {
      vhosts.clear();
      cdevs.clear();
      pri.clear();
      vqGroupOf.clear();
      for (const fs of sc.flat) {
        const st = fs.step;
        if (st.op !== 'bind' || st.vqGroup === undefined) continue;
        const dev = sc.devices.find((d) => d.name === st.device);
        const g = dev?.vqGroups.findIndex((x) => x.name === st.vqGroup) ?? -1;
        if (g >= 0) vqGroupOf.set(`${st.device}/${st.pasid}`, g);
      }
      const pci = devices.filter((d) => d.scenario.type === 'vfio-pci');
      const { vdevs } = iommufd_stack_init(m, pci.map((d) => d.host.dev));
      vdevs.forEach((v, i) => cdevs.set(pci[i]!.scenario.name, `/dev/vfio/devices/vfio${v.index}`));
      for (const d of devices) {
        pri.set(d.scenario.name, d.scenario.pri);
        if (d.scenario.type === 'vdpa') registerVdpa(m, d, (vdpa) => vhost_vdpa_iommufd_probe(m.k, m.core, vdpa), vhosts);
      }
    },
    spec(_m, b) {
      return b.scenario.type === 'vdpa' ? specOf(b, { vhostVdpa: vhosts.get(b.scenario.name)!.path }) : specOf(b, { cdev: cdevs.get(b.scenario.name)! });
    },
    backend: iommufdBackend({
      pri: (name) => pri.get(name) ?? false,
      vdpaGroupOfPasid: (device, pasid) => vqGroupOf.get(`${device}/${pasid}`) ?? 0,
    }),
  };
}
