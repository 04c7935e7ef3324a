// A small inventory shared by the unit tests.
export { InventoryError, InventoryIndex, hashToken, parseInventory, withHashedTokens } from '../../lambdas/core/inventory.ts';

export const EXAMPLE = `policy:
  xpuReboot:
    noticeSeconds: 120
    maxExtensionSeconds: 1800
    maxExtensions: 3
nodes:
  - id: node-a
    rack: r1
    zone: z1
    tenant: t1
    trusted: true
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: "bmc-token-node-a"
    agentToken: "agent-token-node-a"
    xpus:
      - id: dpu0
        redfishSystem: /redfish/v1/Systems/Bluefield
        persistentPower: false
      - id: dpu1
        persistentPower: false
  - id: node-b
    rack: r2
    zone: z1
    tenant: t2
    trusted: false
    bmcToken: "bmc-token-node-b"
    agentToken: "agent-token-node-b"
    policy:
      xpuReboot:
        noticeSeconds: 60
    xpus:
      - id: dpu0
        persistentPower: true
`;
