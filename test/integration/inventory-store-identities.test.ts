// Contract 7.2 identities in the AWS inventory (items per node and per token hash): xPU tokens,
// rollover (...Next) tokens and named operators are found by the authorizer and the API's index.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushInventory } from '../../cli/commands/inventory.ts';
import { CachedInventory, DynamoInventory } from '../../lambdas/adapters/dynamo-inventory.ts';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { authenticate } from '../../lambdas/handlers/auth.ts';
import { createAuthorizer } from '../../lambdas/handlers/authorizer.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const OPERATOR = 'operator-token-store-ids';
const INVENTORY = `
operators:
  - { name: alice, token: op-alice-token, tokenNext: op-alice-next }
nodes:
  - id: node-a
    bmcToken: bmc-a-token
    bmcTokenNext: bmc-a-next
    agentToken: host-a-token
    agentTokenNext: host-a-next
    xpus:
      - { id: dpu0, agentToken: dpu0-a-token, agentTokenNext: dpu0-a-next }
  - id: node-b
    bmcToken: same-b-token
    agentToken: same-b-token
    xpus: [{ id: dpu0 }]
`;

let dynamo: LocalDynamo;

beforeAll(async () => {
  const dir = tempDir('inventory-store-ids');
  dynamo = await startLocalDynamo({ dataDir: join(dir, 'dynamodb') });
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  await pushInventory({ table: dynamo.table, nodesFile: join(dir, 'nodes.yaml'), operatorToken: OPERATOR, endpoint: dynamo.url });
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

describe('identities in the stored inventory', () => {
  const inv = () => new CachedInventory(new DynamoInventory(dynamo.client, dynamo.table), 60_000);

  it('finds every token, current and next, as the principal it names', async () => {
    const who = async (token: string) => authenticate(token, await inv().index({ tokenHash: hashToken(token) }));
    expect(await who('op-alice-token')).toEqual({ kind: 'operator', name: 'alice' });
    expect(await who('op-alice-next')).toEqual({ kind: 'operator', name: 'alice' });
    expect(await who(OPERATOR)).toEqual({ kind: 'operator' });
    expect(await who('bmc-a-next')).toEqual({ kind: 'bmc', node: 'node-a' });
    expect(await who('host-a-next')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a' });
    expect(await who('dpu0-a-token')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a.dpu0' });
    expect(await who('dpu0-a-next')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a.dpu0' });
    // Release 1: a node's bmcToken may equal its agentToken; stored once, the BMC meaning wins.
    expect(await who('same-b-token')).toEqual({ kind: 'bmc', node: 'node-b' });
    expect(await who('nobody-token')).toBeUndefined();
    // A named operator reads every node.
    const index = await inv().index({ tokenHash: hashToken('op-alice-next') });
    expect(index.inventory.nodes.map((n) => n.id).sort()).toEqual(['node-a', 'node-b']);
    expect(JSON.stringify(index.inventory)).not.toContain('op-alice');
  });

  it('passes the agent a token is limited to in the authorizer context', async () => {
    const authorize = createAuthorizer({ inventory: (h) => inv().index(h), logger: silentLogger });
    await expect(authorize({ headers: { authorization: 'Bearer dpu0-a-next' } })).resolves.toEqual({
      isAuthorized: true,
      context: { principal: 'agent', node: 'node-a', agent: 'node-a.dpu0' },
    });
    await expect(authorize({ headers: { authorization: 'Bearer op-alice-token' } })).resolves.toMatchObject({
      isAuthorized: true,
      context: { principal: 'operator' },
    });
  });
});
