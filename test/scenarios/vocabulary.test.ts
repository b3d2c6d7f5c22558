/**
 * The vocabulary added for the grown suite: `bind … root` (a misbehaving guest's first-stage root),
 * a bind beyond the PASID width as a negative test, `dma … gpa` (a request without PASID),
 * `rebind … probe` (a DMA in the propagation window), `vm.viommu: false` (flow 1), `vm.pasid-bits`
 * (the vIOMMU's advertised width) and the smaller guest RAM minimum.
 */
import { describe, expect, it } from 'vitest';
import { formatIssue } from '../../scenarios/issues.ts';
import { loadScenarioText, scenarioOrThrow } from '../../scenarios/loader.ts';
import type { LoadResult } from '../../scenarios/types.ts';

const head = (vm = '{ memory: 64M, vcpus: 2 }', pasid = 'true') => `name: t
description: a test scenario
vm: ${vm}
devices:
  - { name: dsa0, type: vfio-pci, pasid: ${pasid}, ats: true, pri: false }
steps:
  - { op: assign, device: dsa0 }
  - { op: guest-map, process: p1, va: 0x7f0000000000, pages: 4, write: true }
`;
/** steps 1 and 2 are on lines 7 and 8; the first step given here is step 3, on line 9 */
const load = (steps: string, h = head()): LoadResult => loadScenarioText(h + steps, 't.yaml');
const errors = (r: LoadResult): string[] => (r.ok ? [] : r.errors.map(formatIssue));

describe('bind … root: a misbehaving guest’s first-stage root', () => {
  it('loads a root instead of a process, and counts the PASID as bound', () => {
    const s = scenarioOrThrow(
      load(`  - { op: bind, device: dsa0, pasid: 10, root: 0x100000000, expect: { tunnel: EINVAL, iommufd: ok, reason: v8 checks max_addr } }
  - { op: dma, device: dsa0, pasid: 10, va: 0x7f0000000000, len: 64, expect: fault }
  - { op: unbind, device: dsa0, pasid: 10, expect: { tunnel: EINVAL, iommufd: ok, reason: not bound on tunnel } }
`),
    );
    expect(s.flat[2]!.step).toEqual({ op: 'bind', device: 'dsa0', pasid: 10, root: 0x100000000 });
    expect(s.flat[2]!.expect).toMatchObject({ tunnel: { kind: 'errno', errno: 'EINVAL' }, iommufd: { kind: 'ok' } });
  });

  it('wants exactly one of process and root, and a 4K-aligned root', () => {
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 10, root: 0x100000000, process: p1 }\n'))).toEqual([
      't.yaml:9 steps.3 – a bind names either process (whose page table the guest binds) or root (a misbehaving guest’s first-stage root, a guest physical address), not both',
    ]);
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 10 }\n'))).toHaveLength(1);
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 10, root: 0x100000800 }\n'))).toEqual([
      't.yaml:9 steps.3.root – root 0x100000800 is not 4K-aligned (a first-stage table is a page)',
    ]);
  });
});

describe('a bind beyond the PASID width', () => {
  const narrow = head(undefined, '8');
  it('is a negative test: accepted only when both stacks expect an errno, and never applied', () => {
    const s = scenarioOrThrow(
      load(
        `  - { op: bind, device: dsa0, pasid: 300, process: p1, expect: EINVAL }
  - { op: bind, device: dsa0, pasid: 299, process: p1, expect: { tunnel: EINVAL, iommufd: ENODEV, reason: both refuse } }
`,
        narrow,
      ),
    );
    expect(s.flat[2]!.step).toMatchObject({ op: 'bind', pasid: 300 });
  });

  it('is refused otherwise, with the hint; a DMA or unbind beyond the width is always refused', () => {
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 300, process: p1, expect: { tunnel: EINVAL, iommufd: ok, reason: r } }\n', narrow))).toEqual([
      "t.yaml:9 steps.3.pasid – PASID 300 is beyond dsa0's 8-bit PASID width (max 255); a misbehaving guest’s bind beyond it must expect an errno on both stacks",
    ]);
    expect(errors(load('  - { op: dma, device: dsa0, pasid: 300, va: 0x7f0000000000, len: 64, expect: fault }\n', narrow))).toEqual([
      "t.yaml:9 steps.3.pasid – PASID 300 is beyond dsa0's 8-bit PASID width (max 255)",
    ]);
  });
});

describe('dma … gpa: a request without PASID', () => {
  it('loads with pasid null and the guest physical address as va', () => {
    const s = scenarioOrThrow(load('  - { op: dma, device: dsa0, gpa: 0x200000, len: 1536, write: true, expect: ok }\n'));
    expect(s.flat[2]!.step).toEqual({ op: 'dma', device: 'dsa0', pasid: null, va: 0x200000, len: 1536, write: true });
  });

  it('takes either pasid and va or gpa', () => {
    expect(errors(load('  - { op: dma, device: dsa0, gpa: 0x200000, pasid: 5, len: 64, expect: ok }\n'))).toEqual([
      't.yaml:9 steps.3 – a dma names either pasid and va (a PASID request to a process address) or gpa (a request without PASID), not both',
    ]);
    expect(errors(load('  - { op: dma, device: dsa0, pasid: 5, len: 64, expect: ok }\n'))).toEqual([
      't.yaml:9 steps.3 – a dma names pasid and va (a PASID request to a process address), or gpa (a request without PASID); missing va',
    ]);
  });
});

describe('rebind … probe: a DMA in the propagation window', () => {
  it('loads the probe, and the step expects a DMA outcome', () => {
    const s = scenarioOrThrow(
      load(`  - { op: guest-map, process: p2, va: 0x7f0000000000, pages: 4 }
  - { op: bind, device: dsa0, pasid: 5, process: p1 }
  - op: rebind
    device: dsa0
    pasid: 5
    process: p2
    probe: { va: 0x7f0000001000, len: 64 }
    expect: { tunnel: fault, iommufd: ok, reason: unbind + bind leaves a window }
`),
    );
    expect(s.flat[4]!.step).toEqual({ op: 'rebind', device: 'dsa0', pasid: 5, process: 'p2', probe: { va: 0x7f0000001000, len: 64, write: false } });
    expect(s.flat[4]!.expect).toMatchObject({ tunnel: { kind: 'fault' }, iommufd: { kind: 'ok' } });
  });

  it('refuses an errno on a probed rebind, and unknown probe keys', () => {
    const base = `  - { op: bind, device: dsa0, pasid: 5, process: p1 }
`;
    expect(errors(load(`${base}  - { op: rebind, device: dsa0, pasid: 5, process: p1, probe: { va: 0x7f0000001000, len: 64 }, expect: EINVAL }\n`))).toEqual([
      "t.yaml:10 steps.4.expect – 'EINVAL' is not a DMA outcome (expected ok, fault, iopf)",
    ]);
    expect(errors(load(`${base}  - { op: rebind, device: dsa0, pasid: 5, process: p1, probe: { va: 0x7f0000001000, len: 64, pasid: 3 } }\n`))).toEqual([
      "t.yaml:10 steps.4.probe.pasid – unknown key 'pasid' (expected one of: va, len, write)",
    ]);
  });
});

describe('vm: viommu, pasid-bits, memory', () => {
  it('viommu: false loads a VM whose devices only DMA to guest physical addresses', () => {
    const s = scenarioOrThrow(load('  - { op: dma, device: dsa0, gpa: 0x200000, len: 64, expect: ok }\n', head('{ memory: 64M, vcpus: 2, viommu: false }')));
    expect(s.vm).toEqual({ memoryBytes: 64 * 2 ** 20, vcpus: 2, viommu: false });
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 5, process: p1 }\n', head('{ memory: 64M, vcpus: 2, viommu: false }')))).toEqual([
      't.yaml:9 steps.3.pasid – the VM has no vIOMMU (viommu: false): the guest has no PASID table, so nothing binds and a DMA names gpa',
    ]);
  });

  it('pasid-bits is the vIOMMU’s advertised width: binds and DMAs beyond it are refused like a device’s', () => {
    const s = scenarioOrThrow(load('  - { op: bind, device: dsa0, pasid: 255, process: p1 }\n', head('{ memory: 4M, vcpus: 2, pasid-bits: 8 }')));
    expect(s.vm).toEqual({ memoryBytes: 4 * 2 ** 20, vcpus: 2, pasidBits: 8 });
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 256, process: p1 }\n', head('{ memory: 4M, vcpus: 2, pasid-bits: 8 }')))).toEqual([
      "t.yaml:9 steps.3.pasid – PASID 256 is beyond the vIOMMU's 8-bit PASID width (vm pasid-bits; max 255); a misbehaving guest’s bind beyond it must expect an errno on both stacks",
    ]);
  });

  it('guest RAM may be as small as 4M', () => {
    expect(errors(load('', head('{ memory: 2M, vcpus: 2 }')))).toEqual(["t.yaml:3 vm.memory – must be at least 4M, got '2M'"]);
  });
});
