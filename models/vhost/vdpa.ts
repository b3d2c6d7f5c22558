import type { Device } from '../kernel/device.ts';

/**
 * The vDPA bus (drivers/vdpa/vdpa.c), reduced to what vhost-vdpa asks of a device: its virtqueues,
 * their groups, the address spaces (ASIDs) a group can be switched to, and the DMA device behind
 * it. Our devices use the platform IOMMU (no set_map/dma_map of their own), like a PCI vDPA
 * function whose DMA the host VT-d translates.
 */
export interface VdpaDevice {
  readonly name: string;
  /** the function whose requests the IOMMU translates (vdpa_get_dma_dev) */
  readonly dma_dev: Device;
  /** virtio device id (1 = net) */
  readonly device_id: number;
  readonly nvqs: number;
  /** virtqueue groups and address spaces; upstream vhost-vdpa takes only 1 and 1 for platform-IOMMU devices */
  readonly ngroups: number;
  readonly nas: number;
  /** vq index → group (ops->get_vq_group) */
  readonly vqGroup: readonly number[];
  /** group → ASID (ops->set_group_asid) */
  readonly groupAsid: number[];
  /** the vhost-vdpa char device index, once registered */
  minor: number;
}

export interface VdpaDeviceSpec {
  name: string;
  dma_dev: Device;
  device_id?: number;
  /** virtqueues per group, e.g. [2, 1]: two data queues in group 0, the control queue in group 1 */
  groups: readonly number[];
  nas?: number;
}

/** vdpa_alloc_device + _vdpa_register_device, reduced: the device on the bus. */
export function vdpa_register_device(spec: VdpaDeviceSpec): VdpaDevice {
  const vqGroup: number[] = [];
  spec.groups.forEach((n, g) => {
    for (let i = 0; i < n; i++) vqGroup.push(g);
  });
  if (!vqGroup.length) throw new Error(`vdpa ${spec.name}: no virtqueues`);
  return {
    name: spec.name,
    dma_dev: spec.dma_dev,
    device_id: spec.device_id ?? 1,
    nvqs: vqGroup.length,
    ngroups: spec.groups.length,
    nas: spec.nas ?? spec.groups.length,
    vqGroup,
    groupAsid: spec.groups.map(() => 0),
    minor: -1,
  };
}
