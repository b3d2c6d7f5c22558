/**
 * Span declarations for the guest kernel. The guest is a Linux guest; its functions carry the
 * Linux names and files they stand for (layer `guest`), at the version the host models follow.
 */
import { kfn, type KFn } from '../../sim/tracer.ts';

export const GUEST_LINUX = 'v6.15';

/** A guest-kernel function: `file` is the Linux source file it stands for. */
export function guestFn(name: string, sig: string, file: string): KFn {
  return kfn({ name, layer: 'guest', sig, prov: { kind: 'merged', source: `${file} @ ${GUEST_LINUX} (guest kernel)` } });
}

/** Linux errnos the guest returns (the guest imports no host kernel module). */
export const GUEST_ERRNO = Object.freeze({ ENOMEM: 12, EFAULT: 14, EBUSY: 16, ENODEV: 19, EINVAL: 22, ENOSPC: 28 });
