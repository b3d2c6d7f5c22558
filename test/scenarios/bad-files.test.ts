import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatIssue } from '../../scenarios/issues.ts';
import { loadScenarioFile } from '../../scenarios/loader.ts';

const dir = fileURLToPath(new URL('./bad/', import.meta.url));

/** each malformed fixture and exactly what the loader says about it */
const EXPECTED: Record<string, string[]> = {
  // the schema: types, ops, keys, sizes, numbers, names
  'wrong-type.yaml': ["bad/wrong-type.yaml:8 steps.2.pages – expected an integer, got 'many'"],
  'unknown-op.yaml': [
    "bad/unknown-op.yaml:8 steps.2.op – unknown op 'map' (expected one of: assign, guest-map, guest-unmap, bind, rebind, unbind, dma, unassign, close, repeat, parallel)",
  ],
  'missing-field.yaml': ["bad/missing-field.yaml:10 steps.4.len – missing key 'len'"],
  'unknown-key.yaml': [
    "bad/unknown-key.yaml:15 steps.4.lenght – unknown key 'lenght' (expected one of: op, device, pasid, va, gpa, len, write, expect)",
  ],
  'bad-size.yaml': ["bad/bad-size.yaml:3 vm.memory – bad size '512X': expected bytes, or a number with a K, M or G suffix (e.g. 512M)"],
  'negative-pages.yaml': ['bad/negative-pages.yaml:9 steps.3.pages – must be ≥ 1, got -4'],
  'dma-len-zero.yaml': ['bad/dma-len-zero.yaml:10 steps.4.len – must be at least 1 byte, got 0'],
  'big-address.yaml': ['bad/big-address.yaml:8 steps.2.va – 0x20000000000000 is beyond 2^53 − 1 and would not stay exact'],
  'bad-process-name.yaml': [
    "bad/bad-process-name.yaml:8 steps.2.process – bad process name 'qemu system': a letter or _, then letters, digits, _ . or -; at most 15 characters (TASK_COMM_LEN)",
  ],
  'per-stack-expect.yaml': ["bad/per-stack-expect.yaml:15 steps.4.expect.reason – missing key 'reason'"],
  'yaml-syntax.yaml': ['bad/yaml-syntax.yaml:10 – YAML: Sequence item without - indicator'],
  'several-issues.yaml': [
    "bad/several-issues.yaml:5 devices.1.rid – unknown key 'rid' (expected one of: name, type, pasid, ats, pri, group, vq-groups)",
    'bad/several-issues.yaml:8 steps.2.pages – must be ≥ 1, got 0',
    "bad/several-issues.yaml:9 steps.3.len – bad size '64Q': expected bytes, or a number with a K, M or G suffix (e.g. 512M)",
  ],

  // cross-references
  'unknown-device.yaml': ["bad/unknown-device.yaml:8 steps.2.device – unknown device 'dsa9' (declared: dsa0)"],
  'device-twice.yaml': ["bad/device-twice.yaml:6 devices.2.name – device 'dsa0' is declared twice (first at line 5)"],
  'pasid-width.yaml': ["bad/pasid-width.yaml:9 steps.3.pasid – PASID 40 is beyond dsa0's 5-bit PASID width (max 31); a misbehaving guest’s bind beyond it must expect an errno on both stacks"],
  'pri-without-ats.yaml': ['bad/pri-without-ats.yaml:5 devices.1.pri – pri: true needs ats: true (a page request follows a failed ATS translation)'],
  'iopf-without-pri.yaml': ['bad/iopf-without-pri.yaml:10 steps.4.expect – expect iopf needs a device with PRI (dsa0 has pri: false)'],
  'leak-on-bind.yaml': ['bad/leak-on-bind.yaml:13 steps.3.expect.tunnel – a leak outcome applies to unassign and close only, not bind'],
  'vq-group-missing.yaml': [
    'bad/vq-group-missing.yaml:14 steps.3.vq-group – a bind on vdpa device vnet0 must name the vq-group its PASID backs (one of: data, cvq)',
  ],
  'too-many-branches.yaml': ['bad/too-many-branches.yaml:9 steps.2.branches – 3 branches need 3 vCPUs; the VM has 2'],
  'unaligned-va.yaml': ['bad/unaligned-va.yaml:8 steps.2.va – va 0x7f0000000800 is not page-aligned (4K pages)'],

  // the order of steps
  'bind-before-assign.yaml': ['bad/bind-before-assign.yaml:8 step 2 – bind on dsa0 before it is assigned'],
  'dma-unassigned.yaml': ['bad/dma-unassigned.yaml:7 step 1 – dma on dsa0 before it is assigned'],
  'unbind-not-bound.yaml': ['bad/unbind-not-bound.yaml:9 step 3 – unbind of PASID 5 on dsa0, which is not bound'],
  'rebind-not-bound.yaml': ['bad/rebind-not-bound.yaml:9 step 3 – rebind of PASID 5 on dsa0, which is not bound'],
  'bind-twice.yaml': ['bad/bind-twice.yaml:10 step 4 – PASID 5 on dsa0 is already bound (step 3, line 9); rebind or unbind it first'],
  'unmap-not-mapped.yaml': ['bad/unmap-not-mapped.yaml:9 step 3 – guest-unmap of pages p1 has not mapped (0x7f0000002000–0x7f0000006000)'],
  'assign-twice.yaml': ['bad/assign-twice.yaml:8 step 2 – dsa0 is already assigned (step 1, line 7)'],
  'dma-after-unassign.yaml': ['bad/dma-after-unassign.yaml:11 step 5 – dma on dsa0 after its unassign (step 4, line 10)'],
  'step-after-close.yaml': ['bad/step-after-close.yaml:9 step 3 – nothing runs after the close (step 2, line 8)'],
  'close-order.yaml': ['bad/close-order.yaml:10 step 3 – the close order leaves dsa1 open (list iommu and every assigned device once)'],
  'parallel-branches.yaml': ['bad/parallel-branches.yaml:12 step 3.2.1 – unbind of PASID 5 on dsa0, which is not bound'],
  'repeat-bind.yaml': [
    'bad/repeat-bind.yaml:12 step 3.2.1 – PASID 5 on dsa0 is already bound (step 3.1.1, line 12); rebind or unbind it first',
  ],
};

describe('malformed scenario files', () => {
  it('has an expectation for every fixture and a fixture for every expectation', () => {
    expect(readdirSync(dir).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('%s: the right line, path and message', (name, lines) => {
    const r = loadScenarioFile(dir + name, `bad/${name}`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map(formatIssue)).toEqual(lines);
  });
});
