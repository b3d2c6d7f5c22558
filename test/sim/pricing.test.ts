import { describe, expect, it } from 'vitest';
import {
  DEFAULT_COSTS,
  P,
  PRIMITIVES,
  ProfileError,
  Sim,
  parseProfile,
  priceByLayer,
  priceMany,
  priceRecording,
  pricesAt,
  pricesFrom,
  primitivesJson,
  type KFn,
} from '../../sim/index.ts';

const fnIoctl: KFn = { name: 'toy_ioctl', layer: 'toy', sig: 'long toy_ioctl(unsigned long arg)', prov: { kind: 'merged', source: 'test' } };
const fnCore: KFn = { name: 'toy_core', layer: 'core', sig: 'int toy_core(void)', prov: { kind: 'merged', source: 'test' } };

let runs = 0;
function record() {
  runs++;
  const sim = new Sim();
  const t = sim.sched.spawn('t');
  return sim.step(t, '1', 'toy', () => {
    sim.call(fnIoctl, () => {
      sim.charge(P.syscall);
      sim.charge(P.copyFromUser, 1, 48);
      sim.call(fnCore, () => {
        sim.charge(P.mutex, 2);
        sim.charge(P.qiHwCompletion);
      });
    });
  });
}

describe('record once, price many', () => {
  it('prices one recording under two profiles as a dot product', () => {
    const rec = record();
    const def = pricesAt(DEFAULT_COSTS, 'default');
    const high = pricesAt(DEFAULT_COSTS, 'high');
    const d = DEFAULT_COSTS;
    expect(priceRecording(rec, def)).toBeCloseTo(
      d.syscall.ns.default + d.copyFromUser.ns.default + 48 * d.copyFromUser.perByte!.default + 2 * d.mutex.ns.default + d.qiHwCompletion.ns.default,
      9,
    );
    expect(priceRecording(rec, high)).toBeCloseTo(
      d.syscall.ns.high + d.copyFromUser.ns.high + 48 * d.copyFromUser.perByte!.high + 2 * d.mutex.ns.high + d.qiHwCompletion.ns.high,
      9,
    );
    // the clock advanced at default prices equals the default pricing
    expect(rec.endNs - rec.startNs).toBeCloseTo(priceRecording(rec, def), 9);
    expect(priceByLayer(rec, def)).toEqual({
      toy: d.syscall.ns.default + d.copyFromUser.ns.default + 48 * d.copyFromUser.perByte!.default,
      core: 2 * d.mutex.ns.default + d.qiHwCompletion.ns.default,
    });
    expect(primitivesJson(rec)).toEqual({
      core: { mutex: { count: 2, bytes: 0 }, qiHwCompletion: { count: 1, bytes: 0 } },
      toy: { syscall: { count: 1, bytes: 0 }, copyFromUser: { count: 1, bytes: 48 } },
    });
  });

  it('sweeps a thousand profiles without re-running the simulation', () => {
    runs = 0;
    const recs = [record(), record()];
    expect(runs).toBe(2);
    const base = pricesAt(DEFAULT_COSTS, 'default');
    const pvs = Array.from({ length: 1000 }, (_, i) => pricesFrom(base, `qi${i}`, { qiHwCompletion: { ns: 500 + i } }));
    const table = priceMany(recs, pvs);
    expect(runs).toBe(2);
    expect(table).toHaveLength(1000);
    const baseNs = priceRecording(recs[0]!, base) - base.ns[P.qiHwCompletion]!;
    for (let i = 0; i < 1000; i++) {
      expect(table[i]![0]).toBeCloseTo(baseNs + 500 + i, 9);
      expect(table[i]![1]).toBe(table[i]![0]);
    }
  });
});

describe('cost profiles', () => {
  it('every default has a source and an ordered low/default/high range', () => {
    for (const k of PRIMITIVES) {
      const c = DEFAULT_COSTS[k];
      expect(c.source.length, k).toBeGreaterThan(10);
      expect(c.ns.low, k).toBeLessThanOrEqual(c.ns.default);
      expect(c.ns.default, k).toBeLessThanOrEqual(c.ns.high);
    }
  });

  it('accepts a partial profile and keeps the rest', () => {
    const { name, table } = parseProfile({ name: 'kpti', costs: { syscall: { ns: 537, source: 'Cracauer 2018 with PTI' } } });
    expect(name).toBe('kpti');
    expect(table.syscall.ns).toEqual({ low: 537, default: 537, high: 537 });
    expect(table.mutex).toBe(DEFAULT_COSTS.mutex);
  });

  it.each([
    [{ costs: { sycall: { ns: 1 } } }, /costs\.sycall – unknown primitive; expected one of syscall,/],
    [{ costs: { syscall: { ns: -1 } } }, /costs\.syscall\.ns – /],
    [{ costs: { syscall: { ns: { low: 5, default: 1, high: 9 } } } }, /costs\.syscall\.ns – expected low <= default <= high/],
    [{ costs: { mutex: { perByte: 0.1 } } }, /costs\.mutex\.perByte – mutex is not priced per byte/],
    [{ costs: { syscall: { ns: 1, bogus: 2 } } }, /costs\.syscall – Unrecognized key/],
    [{ cost: {} }, /profile: /],
  ])('rejects %j with a clear error', (json, msg) => {
    expect(() => parseProfile(json)).toThrow(ProfileError);
    expect(() => parseProfile(json)).toThrow(msg);
  });
});
