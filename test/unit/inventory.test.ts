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
