import type { Task } from '../models/kernel/process.ts';
import type { HostDevice, HostMachine } from '../models/machine/host.ts';
import type { BackendFactory, DeviceSpec as VmmDeviceSpec } from '../models/vmm/backend.ts';
import type { StackName } from './results.ts';
import type { DeviceSpec, LoadedScenario } from './types.ts';

/** A scenario device as booted on the host. */
export interface BootedDevice {
  readonly scenario: DeviceSpec;
  readonly host: HostDevice;
  /** the IOMMU group id it was probed into */
  readonly groupId: number;
}

/**
 * What one design adds to the shared platform: its module inits (char devices in the devfs,
 * devices bound to its drivers), how the VMM finds a device, and its VMM backend. The runner knows
 * designs only through this.
 */
export interface StackPlatform {
  readonly name: StackName;
  /** module init on the booted host, before any process runs; `scenario` tells what the VMM will ask */
  init(m: HostMachine, devices: readonly BootedDevice[], scenario: LoadedScenario): void;
  /** the device as the VMM is told about it (paths of its char devices) */
  spec(m: HostMachine, device: BootedDevice): VmmDeviceSpec;
  readonly backend: BackendFactory;
  /** the task a `close … from: other` step runs as, created on demand */
  otherTask?(m: HostMachine): Task;
}
