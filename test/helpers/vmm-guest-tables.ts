import { PageTableWriter } from '../../models/hw/vtd/paging.ts';
import type { Task } from '../../models/kernel/process.ts';
import type { HostMachine } from '../../models/machine/host.ts';

/**
 * Guest first-stage tables in guest RAM that a VMM task mapped at `hva` (GPA 0 there): table pages
 * come from the top of guest RAM downwards and are written through the VMM's frames, as a guest
 * kernel writes them. `firstStage()` starts a table; its `map` maps 4 KiB user-writable pages.
 */
export function vmmGuestTables(m: HostMachine, task: Task, hva: number, ramSize: number) {
  const gpaToHpa = (gpa: number): number => task.mm.translate(hva + gpa);
  let next = ramSize - 4096;
  const page = (): number => {
    const gpa = next;
    next -= 4096;
    return gpa;
  };
  const firstStage = () => {
    const root = page();
    const w = new PageTableWriter(m.mem, 'first', 4, root, page, gpaToHpa);
    return { root, map: (va: number, gpa: number, size: number) => w.map(va, gpa, size, 0x1000, { write: true, user: true }) };
  };
  return { gpaToHpa, firstStage };
}
