// Inventory parsing: defaults, overrides, and errors that name the file, key and line.
import { describe, expect, it } from 'vitest';
import { InventoryError, InventoryIndex, hashToken, parseInventory, withHashedTokens, EXAMPLE } from './inventory-fixture.ts';

describe('inventory', () => {
  it('applies policy defaults and per-node overrides', () => {
    const inv = parseInventory(EXAMPLE, 'nodes.yaml');
    const a = inv.nodes.find((n) => n.id === 'node-a')!;
    const b = inv.nodes.find((n) => n.id === 'node-b')!;
    expect(a.policy.xpuReboot.noticeSeconds).toBe(120);
    expect(a.policy.xpuReboot.maxExtensions).toBe(3);
    expect(b.policy.xpuReboot.noticeSeconds).toBe(60);
    expect(b.policy.xpuReboot.maxExtensionSeconds).toBe(1800);
    expect(b.policy.hostReboot.denyWhile).toEqual(['xpu-rebooting']);
    expect(a.xpus[0].persistentPower).toBe(false);
    expect(b.trusted).toBe(false);
  });

  it('names the file, the unknown key and its line', () => {
    const text = EXAMPLE.replace('    rack: r1\n', '    rack: r1\n    colour: blue\n');
    expect(() => parseInventory(text, 'nodes.yaml')).toThrow(InventoryError);
    expect(() => parseInventory(text, 'nodes.yaml')).toThrow(/nodes\.yaml:\d+: unknown key 'colour'/);
    const line = text.split('\n').findIndex((l) => l.includes('colour')) + 1;
    expect(() => parseInventory(text, 'nodes.yaml')).toThrow(new RegExp(`nodes\\.yaml:${line}:`));
  });

  it('rejects an unknown policy key, a bad type, a duplicate node and a shared token', () => {
    expect(() => parseInventory(EXAMPLE.replace('noticeSeconds: 120', 'noticeSecs: 120'), 'f')).toThrow(/unknown key 'noticeSecs'/);
    expect(() => parseInventory(EXAMPLE.replace('trusted: true', 'trusted: "yes"'), 'f')).toThrow(/trusted/);
    expect(() => parseInventory(EXAMPLE.replace('id: node-b', 'id: node-a'), 'f')).toThrow(/duplicate node id/);
    expect(() => parseInventory(EXAMPLE.replace('agent-token-node-b', 'agent-token-node-a'), 'f')).toThrow(/also a token of node/);
    expect(() => parseInventory('nodes: [', 'f')).toThrow(InventoryError);
  });

  it('accepts JSON as YAML', () => {
    const inv = parseInventory(JSON.stringify({ nodes: [{ id: 'n1', xpus: [{ id: 'x' }] }] }), 'nodes.json');
    expect(inv.nodes[0].xpus[0].id).toBe('x');
  });

  it('finds nodes by token hash, also when the inventory stores only hashes', () => {
    const inv = parseInventory(EXAMPLE, 'f');
    for (const index of [new InventoryIndex(inv), new InventoryIndex(withHashedTokens(inv))]) {
      expect(index.nodeByAgentTokenHash(hashToken('agent-token-node-a'))?.id).toBe('node-a');
      expect(index.nodeByBmcTokenHash(hashToken('bmc-token-node-b'))?.id).toBe('node-b');
      expect(index.nodeByAgentTokenHash(hashToken('bmc-token-node-b'))).toBeUndefined();
    }
    expect(JSON.stringify(withHashedTokens(inv))).not.toContain('agent-token-node-a');
  });
});

describe('inventory identities (docs/identities.md)', () => {
  const WITH_IDS = `
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
      - { id: dpu1 }
  - id: node-b
    agentToken: shared-b-token
    xpus: [{ id: dpu0 }]
`;

  it('names who each token speaks for, current and next, also from a stored (hashed) inventory', () => {
    const inv = parseInventory(WITH_IDS, 'f');
    for (const index of [new InventoryIndex(inv), new InventoryIndex(withHashedTokens(inv))]) {
      const who = (t: string) => index.principalByTokenHash(hashToken(t));
      expect(who('op-alice-token')).toEqual({ kind: 'operator', name: 'alice' });
      expect(who('op-alice-next')).toEqual({ kind: 'operator', name: 'alice' });
      expect(who('bmc-a-next')).toEqual({ kind: 'bmc', node: 'node-a' });
      expect(who('host-a-next')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a' });
      expect(who('dpu0-a-token')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a.dpu0' });
      expect(who('dpu0-a-next')).toEqual({ kind: 'agent', node: 'node-a', agent: 'node-a.dpu0' });
      // The shared form of release 1: the node's token speaks for all its agents.
      expect(who('shared-b-token')).toEqual({ kind: 'agent', node: 'node-b' });
      expect(who('nobody-token')).toBeUndefined();
      expect(index.xpuHasOwnToken('node-a', 'dpu0')).toBe(true);
      expect(index.xpuHasOwnToken('node-a', 'dpu1')).toBe(false);
    }
  });

  it('keeps no token in memory nor in what it stores', () => {
    const inv = parseInventory(WITH_IDS, 'f');
    const secrets = [
      'op-alice-token',
      'op-alice-next',
      'bmc-a-token',
      'bmc-a-next',
      'host-a-token',
      'host-a-next',
      'dpu0-a-token',
      'dpu0-a-next',
      'shared-b-token',
    ];
    for (const text of [JSON.stringify(withHashedTokens(inv)), JSON.stringify(new InventoryIndex(inv).inventory)])
      for (const s of secrets) expect(text).not.toContain(s);
    const stored = withHashedTokens(inv);
    expect(stored.nodes[0].xpus[0].agentTokenNext).toBe(`sha256:${hashToken('dpu0-a-next')}`);
    expect(stored.operators?.[0].tokenNext).toBe(`sha256:${hashToken('op-alice-next')}`);
    expect('agentToken' in stored.nodes[0].xpus[1]).toBe(false);
  });

  it('refuses a token shared by two owners, a twice-listed operator and unknown keys', () => {
    expect(() => parseInventory(WITH_IDS.replace('dpu0-a-next', 'host-a-token'), 'f')).toThrow(
      /xpus\[dpu0\]\.agentTokenNext is also a token of node 'node-a'/,
    );
    expect(() => parseInventory(WITH_IDS.replace('op-alice-next', 'bmc-a-next'), 'f')).toThrow(/also a token of operator 'alice'/);
    expect(() => parseInventory(WITH_IDS.replace('shared-b-token', 'dpu0-a-token'), 'f')).toThrow(/also a token of agent 'node-a.dpu0'/);
    expect(() =>
      parseInventory(
        WITH_IDS.replace('tokenNext: op-alice-next }', 'tokenNext: op-alice-next }\n  - { name: alice, token: op-alice-other }'),
        'f',
      ),
    ).toThrow(/operator 'alice' is listed twice/);
    expect(() => parseInventory(WITH_IDS.replace('agentTokenNext: dpu0-a-next', 'agentTokenNew: dpu0-a-next'), 'f')).toThrow(
      /unknown key 'agentTokenNew'/,
    );
    expect(() => parseInventory(WITH_IDS.replace('tokenNext: op-alice-next', 'role: admin'), 'f')).toThrow(/unknown key 'role'/);
    // The current and the next token of one owner may be the same (a rollover not yet begun).
    expect(() => parseInventory(WITH_IDS.replace('host-a-next', 'host-a-token'), 'f')).not.toThrow();
  });
});

describe('short tokens', () => {
  const inv = parseInventory(
    `
operators: [{ name: ops, token: op }]
nodes:
  - id: n1
    bmcToken: bmc1
    agentToken: a-long-random-agent-token-1
    xpus: [{ id: dpu0, agentToken: x1 }]
  - id: n2
    bmcToken: "sha256:${'ab'.repeat(32)}"
`,
    'short.yaml',
  );

  it('are accepted (an inventory written for a lab starts), and kept hashed like any other', () => {
    expect(new InventoryIndex(inv).node('n1')?.bmcToken).toBe(`sha256:${hashToken('bmc1')}`);
  });

  it('are named for the warning at start; a hash and a long token are not', async () => {
    const { weakTokens } = await import('../../lambdas/core/inventory.ts');
    expect(weakTokens(inv)).toEqual(['n1 bmcToken', 'n1.dpu0 agentToken', 'operator ops token']);
  });
});
