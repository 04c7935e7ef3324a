// Parses and validates the inventory (NODES_FILE): nodes, their xPUs, tokens and policy.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { BUDGET_DOMAINS, DENY_CONDITIONS, type Inventory, type NodeDef, type Policy } from './types.ts';

export class InventoryError extends Error {
  override readonly name = 'InventoryError';
}

export const DEFAULT_POLICY: Policy = Object.freeze({
  xpuReboot: Object.freeze({
    noticeSeconds: 300,
    maxExtensionSeconds: 1800,
    maxExtensions: 3,
    recoverySeconds: 900,
    coredumpSeconds: 600,
    heartbeatSeconds: 60,
    commandSeconds: 600,
    afterReady: 'resume-workloads' as const,
  }),
  hostReboot: Object.freeze({
    denyWhile: ['xpu-rebooting' as const],
    returnSeconds: 1800,
    commandSeconds: 600,
    heartbeatSeconds: 60,
  }),
});

const seconds = z.number().int().positive().max(2_000_000);
const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'letters, digits, - and _ only, up to 63 characters');

const XpuPolicySchema = z.strictObject({
  noticeSeconds: seconds,
  maxExtensionSeconds: z.number().int().min(0).max(2_000_000),
  maxExtensions: z.number().int().min(0).max(100),
  recoverySeconds: seconds,
  coredumpSeconds: seconds,
  heartbeatSeconds: z.number().int().min(5).max(3600),
  commandSeconds: seconds,
  afterReady: z.enum(['resume-workloads', 'reboot-host']),
});
const HostPolicySchema = z.strictObject({
  denyWhile: z.array(z.enum(DENY_CONDITIONS)),
  returnSeconds: seconds,
  commandSeconds: seconds,
  heartbeatSeconds: z.number().int().min(5).max(3600),
});
const BudgetSchema = z.strictObject({
  per: z.enum(BUDGET_DOMAINS),
  maxUnavailable: z.number().int().min(0).max(100_000),
});
const PolicyOverrideSchema = z.strictObject({
  xpuReboot: XpuPolicySchema.partial().optional(),
  hostReboot: HostPolicySchema.partial().optional(),
  // A list replaces the inherited one whole: a node's budgets are read as one set.
  budgets: z
    .array(BudgetSchema)
    .refine((bs) => new Set(bs.map((b) => b.per)).size === bs.length, 'one budget per domain (rack, zone, tenant, fleet)')
    .optional(),
});

const XpuSchema = z.strictObject({
  id,
  redfishSystem: z.string().startsWith('/redfish/').optional(),
  persistentPower: z.boolean().default(false),
});

const NodeSchema = z.strictObject({
  id,
  rack: z.string().optional(),
  zone: z.string().optional(),
  tenant: z.string().optional(),
  trusted: z.boolean().default(false),
  redfishSystem: z.string().startsWith('/redfish/').optional(),
  bmcToken: z.string().min(8).optional(),
  agentToken: z.string().min(8).optional(),
  xpus: z.array(XpuSchema).default([]),
  policy: PolicyOverrideSchema.optional(),
});

const InventorySchema = z.strictObject({
  policy: PolicyOverrideSchema.optional(),
  nodes: z.array(NodeSchema),
});

type PolicyOverride = z.infer<typeof PolicyOverrideSchema>;

function mergePolicy(base: Policy, override: PolicyOverride | undefined): Policy {
  const budgets = override?.budgets ?? base.budgets;
  return {
    xpuReboot: { ...base.xpuReboot, ...(override?.xpuReboot ?? {}) },
    hostReboot: { ...base.hostReboot, ...(override?.hostReboot ?? {}) },
    ...(budgets ? { budgets: budgets.map((b) => ({ ...b })) } : {}),
  };
}

/** Finds the line of a path inside the YAML document, so an error names where to look. */
function lineOf(doc: ReturnType<typeof parseDocument>, lines: LineCounter, path: PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let found: YamlNode | undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      if (!pair) break;
      found = (pair.key as YamlNode) ?? found;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      found = (node as YamlNode) ?? found;
    } else break;
  }
  const offset = found?.range?.[0] ?? (node as YamlNode | undefined)?.range?.[0];
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

/** Parses inventory text; `source` names the file in errors. JSON is accepted as YAML. */
export function parseInventory(text: string, source = 'inventory'): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = err.linePos?.[0]?.line;
    throw new InventoryError(`${source}${line ? `:${line}` : ''}: ${err.message.split('\n')[0]}`);
  }
  const parsed = InventorySchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    let path = issue.path;
    let what = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...issue.path, issue.keys[0]];
      what = `unknown key '${issue.keys[0]}'`;
    }
    const line = lineOf(doc, lines, path);
    const where = path.length ? ` at ${path.join('.')}` : '';
    throw new InventoryError(`${source}${line ? `:${line}` : ''}: ${what}${where}`);
  }
  const defaults = mergePolicy(DEFAULT_POLICY, parsed.data.policy);
  const seen = new Set<string>();
  const tokens = new Map<string, string>();
  const nodes: NodeDef[] = parsed.data.nodes.map((n, i) => {
    if (seen.has(n.id)) throw new InventoryError(`${source}:${lineOf(doc, lines, ['nodes', i, 'id']) ?? '?'}: duplicate node id '${n.id}'`);
    seen.add(n.id);
    const xpuIds = new Set<string>();
    for (const x of n.xpus) {
      if (xpuIds.has(x.id)) throw new InventoryError(`${source}: node '${n.id}' lists xPU '${x.id}' twice`);
      xpuIds.add(x.id);
    }
    for (const [kind, token] of [['bmcToken', n.bmcToken], ['agentToken', n.agentToken]] as const) {
      if (!token) continue;
      const owner = tokens.get(token);
      // A shared token would let one node act as another: refuse to start rather than guess.
      if (owner && owner !== n.id) throw new InventoryError(`${source}: ${kind} of node '${n.id}' is also a token of node '${owner}'`);
      tokens.set(token, n.id);
    }
    const { policy, ...rest } = n;
    return Object.freeze({ ...rest, xpus: n.xpus.map((x) => Object.freeze({ ...x })), policy: mergePolicy(defaults, policy) });
  });
  return Object.freeze({ policy: defaults, nodes: Object.freeze(nodes) as NodeDef[] });
}

export function loadInventoryFile(path: string): Inventory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InventoryError(`${path}: cannot read the inventory (${(err as Error).message})`);
  }
  return parseInventory(text, path);
}

/**
 * SHA-256 of a token, hex. A token written as `sha256:<hex>` in the inventory is taken as its hash,
 * so an inventory can be stored (AWS) or shipped without the tokens themselves.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function tokenHash(token: string): string {
  return token.startsWith('sha256:') ? token.slice(7).toLowerCase() : hashToken(token);
}

/** The inventory with every token replaced by `sha256:<hex>`: what may be stored or shipped. */
export function withHashedTokens(inv: Inventory): Inventory {
  const h = (t?: string) => (t === undefined ? undefined : `sha256:${tokenHash(t)}`);
  return { policy: inv.policy, nodes: inv.nodes.map((n) => ({ ...n, bmcToken: h(n.bmcToken), agentToken: h(n.agentToken) })) };
}

/** Lookups the API and handlers need, built once per inventory. */
export class InventoryIndex {
  readonly inventory: Inventory;
  readonly #nodes = new Map<string, NodeDef>();
  readonly #bmcTokens = new Map<string, string>();
  readonly #agentTokens = new Map<string, string>();

  constructor(inventory: Inventory) {
    this.inventory = inventory;
    for (const n of inventory.nodes) {
      this.#nodes.set(n.id, n);
      if (n.bmcToken) this.#bmcTokens.set(tokenHash(n.bmcToken), n.id);
      if (n.agentToken) this.#agentTokens.set(tokenHash(n.agentToken), n.id);
    }
  }

  node(id: string): NodeDef | undefined {
    return this.#nodes.get(id);
  }

  nodeByBmcTokenHash(hash: string): NodeDef | undefined {
    const id = this.#bmcTokens.get(hash);
    return id ? this.#nodes.get(id) : undefined;
  }

  nodeByAgentTokenHash(hash: string): NodeDef | undefined {
    const id = this.#agentTokens.get(hash);
    return id ? this.#nodes.get(id) : undefined;
  }
}

/** `node-a` is the host agent, `node-a.dpu0` the agent of xPU dpu0. */
export function parseAgentId(agentId: string): { node: string; xpu: string | null } {
  const dot = agentId.indexOf('.');
  return dot < 0 ? { node: agentId, xpu: null } : { node: agentId.slice(0, dot), xpu: agentId.slice(dot + 1) };
}

export function agentIdOf(node: string, xpu: string | null): string {
  return xpu ? `${node}.${xpu}` : node;
}
