// Generates a fleet inventory (NODES_FILE) of N hosts with 2 xPUs each, for scale tests and the push measurement.
// `node scripts/gen-inventory.ts 10000 > fleet.json` (JSON is accepted as YAML).
import { writeFileSync } from 'node:fs';

/** Node ids `n00000`, `n00001`, ...; tokens derive from the id (test fleets only: never for real nodes). */
export const fleetNodeId = (i: number) => `n${String(i).padStart(5, '0')}`;
export const fleetAgentToken = (id: string) => `agent-token-${id}`;
export const fleetBmcToken = (id: string) => `bmc-token-${id}`;

export function fleetInventory(count: number, xpusPerNode = 2) {
  return {
    nodes: Array.from({ length: count }, (_, i) => {
      const id = fleetNodeId(i);
      return {
        id,
        rack: `r${Math.floor(i / 40)}`,
        zone: `z${i % 4}`,
        tenant: 't1',
        trusted: true,
        redfishSystem: '/redfish/v1/Systems/host',
        bmcToken: fleetBmcToken(id),
        agentToken: fleetAgentToken(id),
        xpus: Array.from({ length: xpusPerNode }, (_, x) => ({ id: `dpu${x}`, redfishSystem: `/redfish/v1/Systems/dpu${x}` })),
      };
    }),
  };
}

export function writeFleetInventory(file: string, count: number, xpusPerNode = 2): void {
  writeFileSync(file, JSON.stringify(fleetInventory(count, xpusPerNode)));
}

if (import.meta.main) {
  const count = Number(process.argv[2] ?? 10_000);
  process.stdout.write(JSON.stringify(fleetInventory(count), null, 1) + '\n');
}
