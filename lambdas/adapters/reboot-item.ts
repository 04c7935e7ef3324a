// How a reboot is laid out in its table item (issue 19): the few attributes conditions and index
// queries read stay plain; the rest (history, commands, origins...) is one compressed binary.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { StoredReboot } from '../core/reboot.ts';

/**
 * A reboot changes ~15 times and every change rewrites the whole item, billed per started KB
 * (an xPU reboot's JSON is ~3.4 KB when it ends: 4 WRU a write). Deflated with the dictionary
 * below it is ~0.4 KB, so the item (keys, index keys, id, status, version, body) stays under 1 KB:
 * one WRU a write. `status` stays plain for the listings' filter and the index projections,
 * `version` for the conditional write, `id` for the index queries.
 */
export const REBOOT_LAYOUT = 1;

/**
 * Layout 1's preset dictionary: the attribute names and fixed texts every reboot carries (the
 * model's phases, command types and history wording). Never edit it: items written with it are
 * read with it. A better dictionary is a new layout number, with this one kept for reading.
 */
const DICTIONARY_1 = Buffer.from(
  [
    '"kind":"xpu","node":"',
    '"kind":"host","node":"',
    '"xpu":"',
    '"mode":"planned","reason":"',
    '"mode":"crash"',
    '"mode":"unannounced"',
    '"tenant":"',
    '"notifiedAt":"',
    '"deadline":"',
    '"noticeSeconds":',
    '"policyNoticeSeconds":',
    '"extensions":[],"refusals":[],"forced":false,"outstanding":[],"commands":{',
    '"type":"free-host-context","agent":"',
    '"type":"migrate-workloads","agent":"',
    '"type":"protect-pcie","agent":"',
    '"type":"allow-coredump","agent":"',
    '"type":"postpone-reboot","agent":"',
    '"type":"proceed-reboot","agent":"',
    '"type":"restore-pcie","agent":"',
    '"type":"reboot-host","agent":"',
    '"type":"resume-workloads","agent":"',
    '"step":"prepare","status":"succeeded","at":"',
    '"step":"proceed","status":"',
    '"step":"recover","status":"',
    '"step":"resume","status":"',
    '"history":[{"at":"',
    '","phase":"notified","detail":"xPU ',
    ' announced a reboot with ',
    's notice, deadline ',
    '(native event ',
    '"by":"operator"},{"at":"',
    '","phase":"preparing","detail":"asked the host to migrate workloads and protect PCIe","by":"coordinator"}',
    '"phase":"command-succeeded","detail":"migrate-workloads on ',
    ' succeeded","by":"agent:',
    '"phase":"rebooting","detail":"the host is prepared: told the xPU to reboot now, ahead of its deadline","by":"coordinator"}',
    '"phase":"xpu-down","detail":"xPU ',
    ' went down (native event ',
    '"phase":"xpu-ready","detail":"xPU ',
    ' is ready (native event ',
    '"phase":"recovering","detail":"restoring PCIe on the host","by":"coordinator"}',
    '"phase":"completed","detail":"the reboot is complete","by":"coordinator"}],',
    '"waiter":{"token":"',
    '","step":"',
    '","waitFor":"',
    '"enteredAt":"',
    '"origin":{"source":"',
    '","time":"',
    '","receivedAt":"',
    '"rebootingAt":"',
    '"downAt":"',
    '"readyAt":"',
    '"readyOrigin":{"source":"',
    '"endedAt":"',
    '.000Z"',
    '"status":"pending","at":"',
    '"status":"delivered","at":"',
    '"status":"running","at":"',
    '-workloads',
    '"by":"coordinator"}',
  ].join(''),
);

/** The attributes of a reboot's item besides its keys: what stays plain, and the body. */
export function packReboot(r: StoredReboot): Record<string, unknown> {
  // Placeholders keep the three plain attributes' places, so a read gives the keys in their order.
  const json = JSON.stringify({ ...r, id: 0, status: 0, version: 0 });
  const body = deflateRawSync(Buffer.from(json), { level: 9, dictionary: DICTIONARY_1 });
  return { id: r.id, status: r.status, version: r.version, layout: REBOOT_LAYOUT, body };
}

/** The reboot an item holds (its keys stripped), in either layout: items written before issue 19 are plain. */
export function unpackReboot(item: Record<string, unknown>): StoredReboot {
  if (item.layout === undefined) return item as unknown as StoredReboot;
  if (item.layout !== REBOOT_LAYOUT) throw new Error(`reboot ${String(item.id)} has layout ${String(item.layout)}, unknown to this code`);
  const raw = item.body as Uint8Array;
  const json = inflateRawSync(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), { dictionary: DICTIONARY_1 }).toString('utf8');
  return { ...JSON.parse(json), id: item.id, status: item.status, version: item.version } as StoredReboot;
}
