import type { CostTable } from './profile.ts';

const VTD_D = '../shared/reference/vtd-model.md §D';

/**
 * The default cost table. Every figure carries its source and a low/default/high range.
 * Figures marked `estimate` are engineering estimates, not measurements: the reports label them,
 * and the sensitivity analysis sweeps their ranges.
 */
export const DEFAULT_COSTS: CostTable = {
  syscall: {
    ns: { low: 50, default: 100, high: 600 },
    source: `${VTD_D}: null syscall, Cracauer 2018 (read 1 B of /dev/zero, 127 ns without PTI, 537 ns with PTI); high covers KPTI without PCID`,
    estimate: false,
  },
  ioctlDispatch: {
    ns: { low: 10, default: 30, high: 80 },
    source: `${VTD_D}: fdget, cmd switch and ops lookup over a bare syscall; below noise on the test machine`,
    estimate: true,
  },
  copyFromUser: {
    ns: { low: 10, default: 20, high: 50 },
    perByte: { low: 0.01, default: 0.03, high: 0.08 },
    source: `${VTD_D}: fixed cost estimated; per byte from memfd pwrite/pread slope 4 KB→256 KB (0.03 ns/B), Cracauer 8 KB (0.08 ns/B)`,
    estimate: true,
  },
  copyToUser: {
    ns: { low: 10, default: 20, high: 50 },
    perByte: { low: 0.01, default: 0.03, high: 0.08 },
    source: `${VTD_D}: as copy_from_user`,
    estimate: true,
  },
  getUser: {
    ns: { low: 2, default: 5, high: 20 },
    source: 'estimate: one stac/clac-bracketed load, no function call (arch/x86/lib/getuser.S)',
    estimate: true,
  },
  putUser: {
    ns: { low: 2, default: 5, high: 20 },
    source: 'estimate: one stac/clac-bracketed store (arch/x86/lib/putuser.S)',
    estimate: true,
  },
  mutex: {
    ns: { low: 5, default: 20, high: 40 },
    source: `${VTD_D}: kernel mutex lock+unlock uncontended (user pthread measured 3.5–3.9 ns)`,
    estimate: true,
  },
  spinlock: {
    ns: { low: 5, default: 15, high: 30 },
    source: `${VTD_D}: spin_lock_irqsave + restore`,
    estimate: true,
  },
  rwsem: {
    ns: { low: 5, default: 20, high: 50 },
    source: 'estimate: down/up uncontended, as a mutex (one atomic each way)',
    estimate: true,
  },
  kmalloc: {
    ns: { low: 10, default: 25, high: 60 },
    source: `${VTD_D}: half of kmalloc+kfree ≤512 B slab fast path (50 ns, 20–120)`,
    estimate: true,
  },
  kfree: {
    ns: { low: 10, default: 25, high: 60 },
    source: `${VTD_D}: half of kmalloc+kfree ≤512 B slab fast path (50 ns, 20–120)`,
    estimate: true,
  },
  xaLookup: {
    ns: { low: 10, default: 20, high: 50 },
    source: `${VTD_D}: xarray/idr lookup of an object id`,
    estimate: true,
  },
  pinPage: {
    ns: { low: 20, default: 60, high: 300 },
    source: 'estimate: pin_user_pages_fast per already-faulted 4 KiB page (GUP fast path, refcount atomic)',
    estimate: true,
  },
  mmioRead: {
    ns: { low: 100, default: 300, high: 1000 },
    source: 'estimate: uncached read of a root-complex-integrated register (non-posted round trip)',
    estimate: true,
  },
  mmioWrite: {
    ns: { low: 10, default: 30, high: 100 },
    source: 'estimate: posted uncached write',
    estimate: true,
  },
  qiSubmit: {
    ns: { low: 100, default: 150, high: 400 },
    source: `${VTD_D}: QI software submit, 150 + 10·k (lock, copy, MMIO tail write); this is the fixed part`,
    estimate: true,
  },
  qiDescriptor: {
    ns: { low: 5, default: 10, high: 30 },
    source: `${VTD_D}: QI software submit, the 10·k per-descriptor part`,
    estimate: true,
  },
  qiHwDescriptor: {
    ns: { low: 50, default: 150, high: 500 },
    source: `${VTD_D}: estimate of the per-descriptor share of a batch; the per-wait completion below carries the ~2,000-cycle round trip`,
    estimate: true,
  },
  qiHwCompletion: {
    ns: { low: 500, default: 1000, high: 3000 },
    source: `${VTD_D}: ~2,000 cycles per strict-mode IOTLB invalidation (Malka et al. FAST'15, Peleg et al. ATC'15)`,
    estimate: false,
  },
  devtlbInvalidation: {
    ns: { low: 1000, default: 3000, high: 20000 },
    source: `${VTD_D}: ATS invalidation round trip; the ATS spec allows up to ~1 min`,
    estimate: true,
  },
  dmaMemRef: {
    ns: { low: 15, default: 90, high: 120 },
    source: `${VTD_D}: one walk memory reference, DRAM 90 ns, LLC 15 ns; pcie-bench ~330 ns per 4-ref miss`,
    estimate: true,
  },
  vmExitKernel: {
    ns: { low: 400, default: 700, high: 1500 },
    source: `${VTD_D}: SplitX (Landau et al.), 2,000 cycles direct on Xeon X5570`,
    estimate: false,
  },
  vmExitUser: {
    ns: { low: 3000, default: 5000, high: 10000 },
    source: `${VTD_D}: exit to QEMU and back; inl_from_qemu ≈ 3.3× inl_from_kernel in kvm-unit-tests`,
    estimate: true,
  },
  irqInject: {
    ns: { low: 1000, default: 2000, high: 5000 },
    source: `${VTD_D}: interrupt injection via irqfd, vCPU running, no posted interrupts`,
    estimate: true,
  },
  eventfdWake: {
    ns: { low: 2000, default: 5000, high: 20000 },
    source: `${VTD_D}: eventfd signal to another thread waking (19.9 µs ping-pong measured nested)`,
    estimate: true,
  },
  contextSwitch: {
    ns: { low: 1000, default: 2000, high: 5000 },
    source: 'estimate: a switch between kernel threads on one CPU, including cache effects',
    estimate: true,
  },
};
