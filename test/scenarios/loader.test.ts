import { describe, expect, it } from 'vitest';
import { formatIssue, ScenarioError } from '../../scenarios/issues.ts';
import { loadScenarioText, scenarioOrThrow } from '../../scenarios/loader.ts';
import type { LoadResult } from '../../scenarios/types.ts';
import { formatSize, parseAddress, parseSize } from '../../scenarios/units.ts';

const HEAD = `name: t
description: a test scenario
vm: { memory: 1G, vcpus: 4 }
devices:
  - { name: dsa0, type: vfio-pci, pasid: true, ats: true, pri: true }
steps:
  - { op: assign, device: dsa0 }
  - { op: guest-map, process: p1, va: 0x7f0000000000, pages: 16, write: true }
`;
/** lines of HEAD: steps 1 and 2 are on lines 7 and 8 */
const load = (steps: string, head = HEAD): LoadResult => loadScenarioText(head + steps, 't.yaml');
const errors = (r: LoadResult): string[] => (r.ok ? [] : r.errors.map(formatIssue));

describe('units', () => {
  it('reads sizes with binary K/M/G suffixes, addresses as numbers or quoted hex', () => {
    expect([parseSize('4K'), parseSize('512M'), parseSize('1G'), parseSize(64)]).toEqual([4096, 512 * 2 ** 20, 2 ** 30, 64]);
    expect([parseSize('4k'), parseSize('1.5M'), parseSize('-1'), parseSize('4 K')]).toEqual([undefined, undefined, undefined, undefined]);
    expect([parseAddress('0x7f0000000000'), parseAddress(4096), parseAddress('4096')]).toEqual([0x7f0000000000, 4096, undefined]);
    expect([formatSize(1), formatSize(16 * 2 ** 20), formatSize(4097)]).toEqual(['1 byte', '16M', '4097 bytes']);
  });
});

describe('loading', () => {
  it('keeps big hex addresses exact, reads quoted hex and suffixed lengths, fills defaults', () => {
    const s = scenarioOrThrow(
      load(`  - { op: bind, device: dsa0, pasid: 0xfffff, process: p1 }
  - { op: dma, device: dsa0, pasid: 0xfffff, va: 0x7f000000ffff, len: 2K, expect: ok }
  - { op: dma, device: dsa0, pasid: 0xfffff, va: "0x7f0000001000", len: 1, expect: ok }
  - { op: close }
`),
    );
    expect(s.flat[2]!.step).toMatchObject({ pasid: 0xfffff });
    expect(s.flat[3]!.step).toEqual({ op: 'dma', device: 'dsa0', pasid: 0xfffff, va: 0x7f000000ffff, len: 2048, write: false });
    expect(s.flat[4]!.step).toMatchObject({ va: 0x7f0000001000, len: 1 });
    expect(s.flat[5]!.step).toEqual({ op: 'close', from: 'vmm' });
    expect(s.flat[0]!.expect).toEqual({ tunnel: { kind: 'ok' }, iommufd: { kind: 'ok' } });
    expect(s.vm).toEqual({ memoryBytes: 2 ** 30, vcpus: 4 });
  });

  it('keeps the tree for display, with * for the iteration of a repeat body', () => {
    const s = scenarioOrThrow(
      load(`  - op: repeat
    times: 2
    steps:
      - { op: bind, device: dsa0, pasid: 5, process: p1 }
      - op: repeat
        times: 3
        steps:
          - { op: dma, device: dsa0, pasid: 5, va: 0x7f0000000000, len: 64, expect: ok }
      - { op: unbind, device: dsa0, pasid: 5 }
`),
    );
    const rep = s.tree[2]!;
    expect(rep).toMatchObject({ kind: 'repeat', path: '3', line: 9, times: 2 });
    if (rep.kind !== 'repeat') return;
    expect(rep.body.map((n) => [n.kind, n.path, n.line])).toEqual([
      ['leaf', '3.*.1', 12],
      ['repeat', '3.*.2', 13],
      ['leaf', '3.*.3', 17],
    ]);
    expect(s.flat.map((f) => f.path)).toEqual([
      '1', '2',
      '3.1.1', '3.1.2.1.1', '3.1.2.2.1', '3.1.2.3.1', '3.1.3',
      '3.2.1', '3.2.2.1.1', '3.2.2.2.1', '3.2.2.3.1', '3.2.3',
    ]);
  });

  it('expands parallel branches onto their own vCPUs, and a parallel block inside a repeat per iteration', () => {
    const s = scenarioOrThrow(
      load(`  - { op: bind, device: dsa0, pasid: 5, process: p1 }
  - op: repeat
    times: 2
    steps:
      - op: parallel
        branches:
          - - { op: dma, device: dsa0, pasid: 5, va: 0x7f0000000000, len: 64, expect: ok }
          - - { op: dma, device: dsa0, pasid: 5, va: 0x7f0000001000, len: 64, expect: ok }
            - { op: dma, device: dsa0, pasid: 5, va: 0x7f0000002000, len: 64, expect: ok }
`),
    );
    const par = s.flat.filter((f) => f.parallel);
    expect(par.map((f) => [f.path, f.vcpu, f.parallel!.block, f.parallel!.branch])).toEqual([
      ['4.1.1.1.1', 0, '4.1.1', 1],
      ['4.1.1.2.1', 1, '4.1.1', 2],
      ['4.1.1.2.2', 1, '4.1.1', 2],
      ['4.2.1.1.1', 0, '4.2.1', 1],
      ['4.2.1.2.1', 1, '4.2.1', 2],
      ['4.2.1.2.2', 1, '4.2.1', 2],
    ]);
    expect(par.map((f) => f.line)).toEqual([15, 16, 17, 15, 16, 17]);
  });

  it('applies every branch of a parallel block to the state after it', () => {
    const r = load(`  - op: parallel
    branches:
      - - { op: bind, device: dsa0, pasid: 5, process: p1 }
      - - { op: bind, device: dsa0, pasid: 6, process: p1 }
  - { op: unbind, device: dsa0, pasid: 5 }
  - { op: unbind, device: dsa0, pasid: 6 }
  - { op: unbind, device: dsa0, pasid: 6 }
`);
    expect(errors(r)).toEqual(['t.yaml:15 step 6 – unbind of PASID 6 on dsa0, which is not bound']);
  });

  it('does not sequence-check a step expected to fail with an errno on both stacks (a negative test)', () => {
    const r = load(`  - { op: bind, device: dsa0, pasid: 5, process: p1 }
  - { op: bind, device: dsa0, pasid: 5, process: p1, expect: EBUSY }
  - { op: unbind, device: dsa0, pasid: 5 }
  - { op: unbind, device: dsa0, pasid: 5, expect: { tunnel: EINVAL, iommufd: ENOENT, reason: each design names it its own way } }
`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.scenario.flat[3]!.expect).toEqual({ tunnel: { kind: 'errno', errno: 'EBUSY' }, iommufd: { kind: 'errno', errno: 'EBUSY' } });
  });

  it('names the stack when a sequence error follows from a step expected to fail on one stack only', () => {
    const r = load(`  - op: bind
    device: dsa0
    pasid: 5
    process: p1
    expect: { tunnel: EINVAL, iommufd: ok, reason: v8 refuses this root }
  - { op: unbind, device: dsa0, pasid: 5 }
`);
    expect(errors(r)).toEqual(['t.yaml:14 step 4 – unbind of PASID 5 on dsa0, which is not bound (on tunnel only)']);
  });

  it('warns, without refusing, when a bind names a process that mapped nothing', () => {
    const r = load(`  - { op: bind, device: dsa0, pasid: 5, process: p2 }
  - { op: rebind, device: dsa0, pasid: 5, process: p3 }
`);
    expect(r.ok).toBe(true);
    expect(r.warnings.map(formatIssue)).toEqual([
      't.yaml:9 step 3 – process p2 has mapped nothing before this bind (a typo?)',
      't.yaml:10 step 4 – process p3 has mapped nothing before this rebind (a typo?)',
    ]);
  });

  it('reports every schema issue of a file at once, each at its own line', () => {
    const r = loadScenarioText(
      `name: Bad Name
vm: { memory: 512M, vcpus: 0, disk: 1G }
devices:
  - { name: dsa0, type: pci, pasid: 32, ats: yes, pri: false }
steps: []
`,
      'b.yaml',
    );
    expect(errors(r)).toEqual([
      "b.yaml:1 name – bad scenario name 'Bad Name': a lowercase letter, then lowercase letters, digits, - or _",
      "b.yaml:1 description – missing key 'description'",
      'b.yaml:2 vm.vcpus – must be ≥ 1, got 0',
      "b.yaml:2 vm.disk – unknown key 'disk' (expected one of: memory, vcpus, viommu, pasid-bits)",
      "b.yaml:4 devices.1.type – expected one of vfio-pci, vdpa, got 'pci'",
      'b.yaml:4 devices.1.pasid – expected true, false or a PASID width in bits (1–20), got 32',
      "b.yaml:4 devices.1.ats – expected true or false, got 'yes'",
      'b.yaml:5 steps – a step list needs at least one step',
    ]);
  });

  it('refuses PASID 0, a step that is not a mapping, a nested parallel block and a runaway repeat', () => {
    expect(errors(load('  - { op: bind, device: dsa0, pasid: 0, process: p1 }\n'))).toEqual([
      't.yaml:9 steps.3.pasid – PASID 0 is the RID’s own (IOMMU_NO_PASID): bind PASID 1 or above',
    ]);
    expect(errors(load('  - assign\n'))).toEqual(["t.yaml:9 steps.3 – expected a step ({ op: …, … }), got 'assign'"]);
    expect(
      errors(
        load(`  - op: parallel
    branches:
      - - op: parallel
          branches: [[{ op: unbind, device: dsa0, pasid: 1 }], [{ op: unbind, device: dsa0, pasid: 2 }]]
      - - { op: unbind, device: dsa0, pasid: 3 }
`),
      ),
    ).toEqual(['t.yaml:11 steps.3.branches.1.1.op – a parallel block inside a parallel branch is not supported (each branch is one vCPU)']);
    expect(
      errors(
        load(`  - op: repeat
    times: 1000
    steps:
      - op: repeat
        times: 1000
        steps: [{ op: dma, device: dsa0, pasid: 1, va: 0x7f0000000000, len: 64, expect: ok }]
`),
      ),
    ).toEqual(['t.yaml:6 steps – the steps expand to 1000002 steps; at most 100000']);
  });

  it('checks outcomes per op: DMA outcomes on DMAs, errno names elsewhere', () => {
    expect(
      errors(
        load(`  - { op: bind, device: dsa0, pasid: 5, process: p1, expect: fault }
  - { op: dma, device: dsa0, pasid: 5, va: 0x7f0000000000, len: 64, expect: EINVAL }
  - { op: unbind, device: dsa0, pasid: 5, expect: EWHATEVER }
`),
      ),
    ).toEqual([
      "t.yaml:9 steps.3.expect – 'fault' is a DMA outcome; bind expects ok or an errno name such as EINVAL",
      "t.yaml:10 steps.4.expect – 'EINVAL' is not a DMA outcome (expected ok, fault, iopf)",
      "t.yaml:11 steps.5.expect – unknown outcome 'EWHATEVER' (expected ok or an errno name such as EINVAL)",
    ]);
  });

  it('accepts a leak expectation on teardown, shaped like the leak tracker’s snapshot', () => {
    const s = scenarioOrThrow(
      load(`  - { op: bind, device: dsa0, pasid: 5, process: p1 }
  - op: close
    order: [iommu, dsa0]
    from: kworker
    expect: { tunnel: { leak: { pasid-entry: 1 } }, iommufd: ok, reason: v8 unbinds the gpasids of current->mm only }
`),
    );
    expect(s.flat[3]!.step).toEqual({ op: 'close', order: ['iommu', 'dsa0'], from: 'kworker' });
    expect(s.flat[3]!.expect.tunnel).toEqual({ kind: 'leak', leaks: { 'pasid-entry': 1 } });
  });

  it('throws a ScenarioError only when a failed load is unwrapped', () => {
    const r = load('  - { op: unbind, device: dsa0, pasid: 5 }\n');
    expect(() => scenarioOrThrow(r)).toThrow(ScenarioError);
    expect(() => scenarioOrThrow(r)).toThrow(/t\.yaml:9 step 3 – unbind of PASID 5 on dsa0, which is not bound/);
  });
});
