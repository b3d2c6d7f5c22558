import type { BackendOptions, DeviceSpec } from '../../../models/vmm/backend.ts';
import { createVm, type VmDevice } from '../../../models/vmm/vm.ts';
import type { GuestFlushMode } from '../../../models/guest/intel/cache.ts';
import { bootHost } from '../../helpers/host.ts';
import { FakeBackend } from './fake-backend.ts';

export const GUEST_SID = 0x0010; // 00:02.0 in the guest
export const VA = 0x7f00_0000_0000;

export function spec(name: string): DeviceSpec {
  return { name, kind: 'vfio-pci', hostRid: 0x0300, paths: { group: '/dev/vfio/3', cdev: '/dev/vfio/devices/vfio0' } };
}

/** A host (for memory, the VMM task and the engine), one VM with a fake backend, the guest booted. */
export function vmRig(o: { ats?: boolean; pri?: boolean; options?: BackendOptions; flushMode?: GuestFlushMode; devices?: VmDevice[]; seed?: number } = {}) {
  const host = bootHost({ seed: o.seed ?? 1 });
  let fake: FakeBackend | null = null;
  const devices: VmDevice[] = o.devices ?? [{ spec: spec('dsa0'), guestSid: GUEST_SID, pasidBits: 20, ats: o.ats ?? false, pri: o.pri ?? false }];
  const vm = createVm({
    sim: host.m.sim,
    hostMem: host.m.mem,
    sys: host.m.sys,
    task: host.task,
    ramBytes: 64 << 20,
    devices,
    backend: (init) => (fake = new FakeBackend({ devices: init.devices, options: init.options })),
    ...(o.options ? { options: o.options } : {}),
    ...(o.flushMode ? { guest: { flushMode: o.flushMode } } : {}),
  });
  return { ...host, ...vm, fake: fake! as FakeBackend, sim: host.m.sim };
}
