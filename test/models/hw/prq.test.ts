import { describe, expect, it } from 'vitest';
import { FR, PRG_RESP, PRS, REG, encodePageGroupResponse } from '../../../models/hw/vtd/index.ts';
import { PciDevice, type DmaRequest } from '../../../models/hw/pcie/device.ts';
import { Sim } from '../../../sim/sim.ts';
import { DATA, DEV_RID, PRQ_BASE, atsRig } from './ats-rig.ts';
import { QI_DONE } from './qi-rig.ts';

const VA = 0x7f00_1000;
const bytes = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);

/** The software side of prq_event_thread: clear PPR, read head..tail, advance PQH. */
function drainPrq(v: ReturnType<typeof atsRig>['v']) {
  v.mmio.write32(REG.PRS, PRS.PPR);
  const tail = Number(v.mmio.read64(REG.PQT));
  let head = Number(v.mmio.read64(REG.PQH));
  const out = [];
  while (head !== tail) {
    out.push(v.prq.read(head >>> 5));
    head = (head + 32) % (v.prq.size * 32);
  }
  v.mmio.write64(REG.PQH, tail);
  return out;
}

describe('page requests (PRI) and page group responses', () => {
  it('round trip with a success response: request queued, interrupt, response via QI, the access retried and done', () => {
    const { v, dev, qi, map, mem } = atsRig();
    const irqs: string[] = [];
    v.onInterrupt('page-request', (k) => irqs.push(k));
    v.mmio.write32(REG.PECTL, 0);
    const req = dev.dmaWrite(1, VA + 0x10, bytes);
    expect(req.status).toBe('pending');
    let completed: DmaRequest | null = null;
    req.onComplete = (r) => (completed = r);
    expect(v.mmio.read32(REG.PRS) & PRS.PPR).toBe(PRS.PPR);
    expect(irqs).toEqual(['page-request']);
    expect(v.faultRecords).toEqual([]); // recoverable: no primary fault
    const [pr] = drainPrq(v);
    expect(pr).toEqual({ rid: DEV_RID, pasid: 1, addr: VA, read: false, write: true, exec: false, privileged: false, lpig: true, prgi: 0 });
    expect(mem.readU64Big(PRQ_BASE) & 0xffn).toBe(1n); // descriptor type 1
    // the fault handler maps the page, then answers
    map(1, VA, 0x3000);
    expect(qi.submit([encodePageGroupResponse({ rid: pr!.rid, pasid: pr!.pasid, prgi: pr!.prgi, code: PRG_RESP.SUCCESS })]).status).toBe(QI_DONE);
    expect(req.status).toBe('ok');
    expect(completed).toBe(req);
    expect(req.pageRequests).toBe(1);
    expect(mem.readBytes(DATA + 0x3010, 4)).toEqual(bytes);
    expect(v.effects.effects.at(-1)).toMatchObject({ sid: DEV_RID, pasid: 1, iova: `0x${(VA + 0x10).toString(16)}`, write: true });
    expect(dev.outstandingPageRequests).toBe(0);
  });

  for (const [code, why] of [
    [PRG_RESP.FAILURE, 'page request answered Response Failure'],
    [PRG_RESP.INVALID, 'page request answered Invalid Request'],
  ] as const) {
    it(`a ${code === PRG_RESP.FAILURE ? 'failure' : 'invalid'} response ends the DMA with an error; nothing is written`, () => {
      const { v, dev, qi, mem } = atsRig();
      const req = dev.dmaWrite(2, VA, bytes);
      expect(req.status).toBe('pending');
      const [pr] = drainPrq(v);
      qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 2, prgi: pr!.prgi, code })]);
      expect(req.status).toBe('error');
      expect(req.error).toBe(why);
      expect(mem.readBytes(DATA, 4)).toEqual(new Uint8Array(4));
      expect(v.effects.effects).toEqual([]);
    });
  }

  it('a response for another PASID or an unknown PRG index is ignored', () => {
    const { v, dev, qi } = atsRig();
    const req = dev.dmaRead(1, VA, 8);
    const [pr] = drainPrq(v);
    qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 2, prgi: pr!.prgi, code: 0 })]);
    qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 1, prgi: 77, code: 0 })]);
    expect(dev.strayResponses).toBe(2);
    expect(req.status).toBe('pending');
  });

  it('a read that is still not present after a success response asks again', () => {
    const { v, dev, qi, map } = atsRig();
    const req = dev.dmaRead(1, VA, 8);
    const [first] = drainPrq(v);
    qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 1, prgi: first!.prgi, code: 0 })]);
    expect(req.status).toBe('pending');
    const [second] = drainPrq(v);
    expect(second!.prgi).not.toBe(first!.prgi);
    map(1, VA, 0);
    qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 1, prgi: second!.prgi, code: 0 })]);
    expect(req.status).toBe('ok');
    expect(req.pageRequests).toBe(2);
  });

  it('with the context PRE clear the page request is refused: fault 0x47', () => {
    const { v, dev } = atsRig({ pre: false });
    const req = dev.dmaRead(1, VA, 8);
    expect(req.status).toBe('fault');
    expect(req.reason).toBe(FR.CONTEXT_PRE_CLEAR);
    expect(v.frcd.read(0).reason).toBe(FR.CONTEXT_PRE_CLEAR);
  });

  it('overflow: a full queue sets PRO and raises the event; requests get the automatic response until retries run out', () => {
    const { v, dev } = atsRig({ pqs: 0 }); // 128 slots: 127 usable
    const irqs: string[] = [];
    v.onInterrupt('page-request', (k) => irqs.push(k));
    v.mmio.write32(REG.PECTL, 0);
    const reqs = [];
    for (let i = 0; i < 127; i++) reqs.push(dev.dmaRead(1, VA + i * 0x1000, 4));
    expect(reqs.every((r) => r.status === 'pending')).toBe(true);
    expect(v.prq.queued).toBe(127);
    expect(v.mmio.read32(REG.PRS)).toBe(PRS.PPR);
    expect(irqs).toHaveLength(1);
    const over = dev.dmaRead(1, VA + 0x20_0000, 4);
    expect(over.status).toBe('error');
    expect(over.error).toMatch(/retries exhausted/);
    expect(over.pageRequests).toBe(dev.maxPriRetries);
    expect(v.mmio.read32(REG.PRS)).toBe(PRS.PPR | PRS.PRO);
    expect(v.prq.overflows).toBe(dev.maxPriRetries);
    expect(irqs).toHaveLength(1); // PPR was pending: no new event
    // software drains, then clears PRO (linux prq_event_thread): requests are queued again
    expect(drainPrq(v)).toHaveLength(127);
    v.mmio.write32(REG.PRS, PRS.PRO);
    expect(v.mmio.read32(REG.PRS)).toBe(0);
    expect(dev.dmaRead(1, VA + 0x30_0000, 4).status).toBe('pending');
    expect(irqs).toHaveLength(2);
  });

  it('on the virtual clock: the retried access runs on the device thread at the response completion', () => {
    const { v, dev, qi, map } = atsRig();
    const sim = new Sim({ trace: false });
    v.sim = sim;
    const cpu = sim.sched.spawn('prq-thread');
    const devThread = sim.sched.spawn('device');
    dev.detach(); // the same endpoint again, now with its own thread
    const d = new PciDevice({ rid: DEV_RID, ats: true, pri: true, thread: devThread }, v);
    let req: DmaRequest | null = null;
    sim.sched.post(devThread, () => (req = d.dmaWrite(1, VA, bytes)));
    sim.sched.post(cpu, () => {
      const [pr] = drainPrq(v);
      map(1, VA, 0);
      qi.submit([encodePageGroupResponse({ rid: DEV_RID, pasid: 1, prgi: pr!.prgi, code: 0 })]);
    }, 1000);
    sim.sched.run();
    expect(req!.status).toBe('ok');
    expect(devThread.clock).toBeGreaterThanOrEqual(cpu.clock);
    expect(sim.recorder.unattributed.counters.get('prqEntries')).toBe(1);
  });
});
