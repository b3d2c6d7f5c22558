import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.ts';

const STACK_TRACE = /\bat .*\.(ts|js):\d+/;

describe('ioasid-sim list', () => {
  it('--json lists the built-in scenarios with their file, devices and expanded step count', () => {
    const r = cli('list', '--json');
    expect(r.code).toBe(0);
    const { scenarios } = JSON.parse(r.stdout) as { scenarios: { name: string; file: string; description: string; devices: string[]; steps: number }[] };
    expect(scenarios.map((s) => [s.name, s.file, s.devices, s.steps])).toEqual([
      ['iopf-round-trip', 'scenarios/suite/iopf-round-trip.yaml', ['acc0'], 8],
      ['two-devices-one-process', 'scenarios/suite/two-devices-one-process.yaml', ['dsa0', 'dsa1'], 29],
      ['vdpa-data-vq-pasid', 'scenarios/suite/vdpa-data-vq-pasid.yaml', ['nic0', 'vnet0'], 15],
      ['vsva-bind-dma', 'scenarios/suite/vsva-bind-dma.yaml', ['dsa0'], 12],
      ['vsva-unmap-invalidate', 'scenarios/suite/vsva-unmap-invalidate.yaml', ['dsa0'], 14],
    ]);
    for (const s of scenarios) expect(s.description).toMatch(/§\(b\) flow/);
  });

  it('prints a table within 80 columns: name, devices, steps, the description’s first line', () => {
    const r = cli('list');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^name\s+devices\s+steps\s+description$/);
    expect(lines).toHaveLength(6);
    expect(lines[4]).toMatch(/^vsva-bind-dma\s+dsa0\s+12\s+vSVA bind and DMA, nested walk\.$/);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
  });
});

describe('ioasid-sim validate', () => {
  it('exits 2 on a bad file, one line per issue on stderr, no stack trace', () => {
    const r = cli('validate', 'test/scenarios/bad/several-issues.yaml');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      "test/scenarios/bad/several-issues.yaml:5 devices.1.rid – unknown key 'rid' (expected one of: name, type, pasid, ats, pri, group, vq-groups)",
      'test/scenarios/bad/several-issues.yaml:8 steps.2.pages – must be ≥ 1, got 0',
      "test/scenarios/bad/several-issues.yaml:9 steps.3.len – bad size '64Q': expected bytes, or a number with a K, M or G suffix (e.g. 512M)",
    ]);
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });

  it('reports a sequence error and a missing file the same way', () => {
    const r = cli('validate', 'test/scenarios/bad/bind-twice.yaml', 'test/scenarios/bad/nope.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'test/scenarios/bad/bind-twice.yaml:10 step 4 – PASID 5 on dsa0 is already bound (step 3, line 9); rebind or unbind it first',
      'test/scenarios/bad/nope.yaml – cannot read the file (ENOENT)',
    ]);
  });

  it('accepts good files and built-in names, exit 0', () => {
    const r = cli('validate', 'vsva-bind-dma', 'scenarios/suite/iopf-round-trip.yaml');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'ok scenarios/suite/vsva-bind-dma.yaml: vsva-bind-dma, 12 steps\nok scenarios/suite/iopf-round-trip.yaml: iopf-round-trip, 8 steps\n',
    );
    expect(r.stderr).toBe('');
  });
});
