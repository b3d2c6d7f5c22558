/**
 * The DMA effects log: what device DMA did to memory after translation. Part of the canonical
 * digest (DESIGN principle 7), which names targets by owner label, never by host address.
 */
import { createHash } from 'node:crypto';

export interface DmaEffect {
  readonly sid: number;
  /** The PASID the request carried, or -1 for a request without PASID. */
  readonly pasid: number;
  /** Input (untranslated) address as issued by the device, hex. */
  readonly iova: string;
  /** Translated host physical address (not part of the digest). */
  readonly hpa: number;
  readonly length: number;
  readonly write: boolean;
  /** sha256 of the bytes written (or read), hex, first 16 chars. */
  readonly dataHash: string;
}

export class DmaEffectsLog {
  readonly effects: DmaEffect[] = [];

  record(sid: number, pasid: number, iova: string, hpa: number, write: boolean, data: Uint8Array): void {
    const dataHash = createHash('sha256').update(data).digest('hex').slice(0, 16);
    this.effects.push({ sid, pasid, iova, hpa, length: data.length, write, dataHash });
  }

  clear(): void {
    this.effects.length = 0;
  }
}
