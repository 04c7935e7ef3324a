// Tenant budgets and tenant holds follow the tenant a node is provisioned for (contract 7.1, 7.3), not the inventory's: the pure parts.
import { describe, expect, it } from 'vitest';
import { asProvisioned, budgetSlotsOf, holdsOn, mayStartReboot, mayWaitOn, type Hold } from '../../lambdas/core/budgets.ts';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

const inv = parseInventory(`
policy:
  budgets: [{ per: rack, maxUnavailable: 2 }, { per: tenant, maxUnavailable: 1 }]
nodes:
  - { id: moved, rack: r1, tenant: t1, xpus: [{ id: dpu0 }] }
  - { id: other, rack: r1, tenant: t2, xpus: [{ id: dpu0 }] }
  - { id: bare, rack: r2, xpus: [{ id: dpu0 }] }
  - { id: racky, rack: r3, policy: { budgets: [{ per: rack, maxUnavailable: 1 }] }, xpus: [{ id: dpu0 }] }
`);
const [moved, other, bare, racky] = inv.nodes;
const NOW = new Date('2030-01-01T00:00:00.000Z');
const hold = (selector: Hold['selector'], id = 'h1'): Hold => ({
  id,
  selector,
  reason: 'audit',
  createdAt: NOW.toISOString(),
  by: 'operator',
});

describe('asProvisioned', () => {
  it('puts the node in the tenant it is provisioned for; its rack, zone and policy stay the inventory’s', () => {
    const placed = asProvisioned(moved, 't2');
    expect(placed).toMatchObject({ id: 'moved', rack: 'r1', tenant: 't2', policy: moved.policy });
    expect(moved.tenant).toBe('t1'); // the inventory's node is left alone
  });

  it('is the inventory’s node while the node was never re-provisioned (or for the same tenant)', () => {
    expect(asProvisioned(moved, undefined)).toBe(moved);
    expect(asProvisioned(moved, 't1')).toBe(moved);
  });

  it('gives a node without a tenant in the inventory the one it was provisioned for', () => {
    expect(budgetSlotsOf(bare).map((s) => s.key)).toEqual(['rack:r2']);
    expect(budgetSlotsOf(asProvisioned(bare, 't7')).map((s) => s.key)).toEqual(['rack:r2', 'tenant:t7']);
  });
});

describe('a node re-provisioned from t1 for t2', () => {
  const placed = asProvisioned(moved, 't2');

  it('counts in t2’s tenant budget, not t1’s', () => {
    expect(budgetSlotsOf(placed).map((s) => s.key)).toEqual(['rack:r1', 'tenant:t2']);
  });

  it('is matched by a hold on t2 and no longer by one on t1', () => {
    expect(holdsOn(placed, [hold({ tenant: 't2' })], NOW).map((h) => h.id)).toEqual(['h1']);
    expect(holdsOn(placed, [hold({ tenant: 't1' })], NOW)).toEqual([]);
    expect(mayStartReboot(placed, [hold({ tenant: 't2' })], new Map(), NOW)).toMatchObject({ kind: 'hold' });
    expect(mayStartReboot(placed, [hold({ tenant: 't1' })], new Map(), NOW)).toEqual({ kind: 'admit' });
  });

  it('fills t2’s budget for t2’s other nodes, and leaves t1’s free', () => {
    const usage = new Map([[budgetSlotsOf(placed).find((s) => s.per === 'tenant')!.key, ['moved']]]);
    expect(mayStartReboot(other, [], usage, NOW)).toMatchObject({ kind: 'budget', slot: { key: 'tenant:t2' }, holders: ['moved'] });
    const t1Node = asProvisioned(other, 't1');
    expect(mayStartReboot(t1Node, [], usage, NOW)).toEqual({ kind: 'admit' });
  });

  it('records the provisioned tenant on a reboot made from it, the tenant it counts under until it ends', () => {
    const ev: NativeEvent = {
      id: 'e',
      type: 'xpu.reboot.pending',
      node: 'moved',
      xpu: 'dpu0',
      time: NOW.toISOString(),
      source: 'native',
      dedupKey: 'k',
      receivedAt: NOW.toISOString(),
    };
    const r = newXpuReboot('xr-1', placed, 'dpu0', ev, 'planned');
    expect(r.tenant).toBe('t2');
    expect(budgetSlotsOf(asProvisioned(moved, r.tenant)).map((s) => s.key)).toContain('tenant:t2');
  });
});

describe('mayWaitOn (which queued reboots a freed slot may wake)', () => {
  it('a freed tenant slot may be any queued reboot’s of a node with a tenant budget, whatever its inventory tenant', () => {
    expect(mayWaitOn(moved, ['tenant:t2'])).toBe(true);
    expect(mayWaitOn(bare, ['tenant:t9'])).toBe(true);
    expect(mayWaitOn(racky, ['tenant:t2'])).toBe(false);
  });

  it('rack, zone and fleet slots wake only the nodes of that rack (zone, fleet)', () => {
    expect(mayWaitOn(moved, ['rack:r1'])).toBe(true);
    expect(mayWaitOn(moved, ['rack:r2'])).toBe(false);
    expect(mayWaitOn(racky, ['rack:r3'])).toBe(true);
    expect(mayWaitOn(racky, [])).toBe(false);
  });
});
