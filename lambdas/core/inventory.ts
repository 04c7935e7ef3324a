// Parses and validates the inventory (NODES_FILE): nodes, their xPUs, tokens and policy.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import type { Principal } from './principal.ts';
import { BUDGET_DOMAINS, DENY_CONDITIONS, type Inventory, type NodeDef, type OperatorDef, type Policy } from './types.ts';
import { checkTimeZone, minutesOf, WEEKDAYS } from './windows.ts';

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
const hhmm = z.string().refine((s) => {
  try {
    minutesOf(s);
    return true;
  } catch {
    return false;
  }
}, 'a time HH:MM (24 h)');
const WindowSchema = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1),
  start: hhmm,
  end: hhmm,
  tz: z.string().refine((tz) => {
    try {
      checkTimeZone(tz);
      return true;
    } catch {
      return false;
    }
  }, 'an IANA time zone, e.g. Europe/Berlin'),
});
const BudgetSchema = z.strictObject({
  per: z.enum(BUDGET_DOMAINS),
  maxUnavailable: z.number().int().min(0).max(100_000),
});
const PolicyOverrideSchema = z.strictObject({
  xpuReboot: XpuPolicySchema.partial().optional(),
  hostReboot: HostPolicySchema.partial().optional(),
  windows: z.array(WindowSchema).optional(),
  // A list replaces the inherited one whole: a node's budgets are read as one set.
  budgets: z
    .array(BudgetSchema)
    .refine((bs) => new Set(bs.map((b) => b.per)).size === bs.length, 'one budget per domain (rack, zone, tenant, fleet)')
    .optional(),
});

// Any non-empty token is accepted (an inventory written for a test or a lab must start); the stack warns of
// short ones at start (weakTokens), since a bearer token is only as strong as it is long.
const token = z.string().min(1);

/** Below this many characters a plain token is named at start as easy to guess (`sha256:` hashes are not judged). */
export const WEAK_TOKEN_CHARS = 16;

/** The inventory's token fields, by where they stand (withHashedTokens and weakTokens go through the same ones). */
const NODE_TOKENS = ['bmcToken', 'agentToken', 'bmcTokenNext', 'agentTokenNext'] as const;
const XPU_TOKENS = ['agentToken', 'agentTokenNext'] as const;
const OPERATOR_TOKENS = ['token', 'tokenNext'] as const;

/** Where the inventory has a plain token shorter than WEAK_TOKEN_CHARS: `node-a bmcToken`, `node-a.dpu0 agentToken`, `operator ops token`. */
export function weakTokens(inv: Inventory): string[] {
  const weak = (t: string | undefined) => t !== undefined && !t.startsWith('sha256:') && t.length < WEAK_TOKEN_CHARS;
  const out: string[] = [];
  for (const n of inv.nodes) {
    for (const k of NODE_TOKENS) if (weak(n[k])) out.push(`${n.id} ${k}`);
    for (const x of n.xpus) for (const k of XPU_TOKENS) if (weak(x[k])) out.push(`${n.id}.${x.id} ${k}`);
  }
  for (const o of inv.operators ?? []) for (const k of OPERATOR_TOKENS) if (weak(o[k])) out.push(`operator ${o.name} ${k}`);
  return out;
}

const XpuSchema = z.strictObject({
  id,
  redfishSystem: z.string().startsWith('/redfish/').optional(),
  persistentPower: z.boolean().default(false),
  agentToken: token.optional(),
  agentTokenNext: token.optional(),
});

const NodeSchema = z.strictObject({
  id,
  rack: z.string().optional(),
  zone: z.string().optional(),
  tenant: z.string().optional(),
  trusted: z.boolean().default(false),
  redfishSystem: z.string().startsWith('/redfish/').optional(),
  bmcToken: token.optional(),
  agentToken: token.optional(),
  bmcTokenNext: token.optional(),
  agentTokenNext: token.optional(),
  xpus: z.array(XpuSchema).default([]),
  policy: PolicyOverrideSchema.optional(),
});

const OperatorSchema = z.strictObject({
  name: id,
  token,
  tokenNext: token.optional(),
});

const InventorySchema = z.strictObject({
  policy: PolicyOverrideSchema.optional(),
  operators: z.array(OperatorSchema).optional(),
  nodes: z.array(NodeSchema),
});

type PolicyOverride = z.infer<typeof PolicyOverrideSchema>;

function mergePolicy(base: Policy, override: PolicyOverride | undefined): Policy {
  const windows = override?.windows ?? base.windows;
  const budgets = override?.budgets ?? base.budgets;
  return {
    xpuReboot: { ...base.xpuReboot, ...(override?.xpuReboot ?? {}) },
    hostReboot: { ...base.hostReboot, ...(override?.hostReboot ?? {}) },
    // A node's windows replace the defaults' (an empty list: no restriction).
    ...(windows ? { windows } : {}),
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

/** The value of a JSON text whose objects repeat no key (YAML refuses those); else undefined. */
function jsonFastPath(text: string): unknown {
  if (!/^\s*\{/.test(text)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return repeatsAKey(text) ? undefined : value;
}

/** Scans valid JSON: true when an object names a key twice (JSON.parse would keep the last silently). */
function repeatsAKey(text: string): boolean {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = text.slice(i + 1, j);
        if (top.has(key)) return true;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === '[') stack.push(null);
    else if (ch === '}' || ch === ']') stack.pop();
    else if (ch === ',') expectKey = stack[stack.length - 1] !== null;
  }
  return false;
}

/** Parses inventory text; `source` names the file in errors. JSON is accepted as YAML. */
export function parseInventory(text: string, source = 'inventory'): Inventory {
  const lines = new LineCounter();
  // A 10,000-node inventory takes seconds as a YAML document and milliseconds as JSON: plain JSON
  // (without repeated keys) goes the fast way; the document is built when a line must be named.
  const json = jsonFastPath(text);
  let built: ReturnType<typeof parseDocument> | undefined;
  const docOf = () => (built ??= parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false }));
  if (json === undefined && docOf().errors.length > 0) {
    const err = docOf().errors[0];
    const line = err.linePos?.[0]?.line;
    throw new InventoryError(`${source}${line ? `:${line}` : ''}: ${err.message.split('\n')[0]}`);
  }
  const parsed = InventorySchema.safeParse(json ?? docOf().toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    let path = issue.path;
    let what = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...issue.path, issue.keys[0]];
      what = `unknown key '${issue.keys[0]}'`;
    }
    const line = lineOf(docOf(), lines, path);
    const where = path.length ? ` at ${path.join('.')}` : '';
    throw new InventoryError(`${source}${line ? `:${line}` : ''}: ${what}${where}`);
  }
  const defaults = mergePolicy(DEFAULT_POLICY, parsed.data.policy);
  const seen = new Set<string>();
  const nodes: NodeDef[] = parsed.data.nodes.map((n, i) => {
    if (seen.has(n.id))
      throw new InventoryError(`${source}:${lineOf(docOf(), lines, ['nodes', i, 'id']) ?? '?'}: duplicate node id '${n.id}'`);
    seen.add(n.id);
    const xpuIds = new Set<string>();
    for (const x of n.xpus) {
      if (xpuIds.has(x.id)) throw new InventoryError(`${source}: node '${n.id}' lists xPU '${x.id}' twice`);
      xpuIds.add(x.id);
    }
    const { policy, ...rest } = n;
    return Object.freeze({ ...rest, xpus: n.xpus.map((x) => Object.freeze({ ...x })), policy: mergePolicy(defaults, policy) });
  });
  const operators = parsed.data.operators?.map((o) => Object.freeze({ ...o }));
  const names = new Set<string>();
  for (const o of operators ?? []) {
    if (names.has(o.name)) throw new InventoryError(`${source}: operator '${o.name}' is listed twice`);
    names.add(o.name);
  }
  const inventory: Inventory = {
    policy: defaults,
    nodes: Object.freeze(nodes) as NodeDef[],
    ...(operators ? { operators: Object.freeze(operators) as OperatorDef[] } : {}),
  };
  tokenOwners(inventory, source);
  return Object.freeze(inventory);
}

/** Where a token may appear in the inventory, with the principal it authenticates as. */
interface TokenSlot {
  /** `nodes[node-a].xpus[dpu0].agentToken`: for error messages. */
  where: string;
  /** Who the token speaks for: two slots of one owner may share a token (current and next). */
  owner: string;
  token: string;
  principal: Principal;
}

function tokenSlots(inv: Inventory): TokenSlot[] {
  const slots: TokenSlot[] = [];
  const add = (where: string, owner: string, token: string | undefined, principal: Principal) => {
    if (token) slots.push({ where, owner, token, principal });
  };
  for (const o of inv.operators ?? []) {
    const who: Principal = { kind: 'operator', name: o.name };
    add(`operators[${o.name}].token`, `operator:${o.name}`, o.token, who);
    add(`operators[${o.name}].tokenNext`, `operator:${o.name}`, o.tokenNext, who);
  }
  for (const n of inv.nodes) {
    const bmc: Principal = { kind: 'bmc', node: n.id };
    add(`nodes[${n.id}].bmcToken`, `node:${n.id}`, n.bmcToken, bmc);
    add(`nodes[${n.id}].bmcTokenNext`, `node:${n.id}`, n.bmcTokenNext, bmc);
    // With xPU tokens the node's agentToken is the host agent's alone; without, it is shared by all.
    const host: Principal = n.xpus.some((x) => x.agentToken) ? { kind: 'agent', node: n.id, agent: n.id } : { kind: 'agent', node: n.id };
    add(`nodes[${n.id}].agentToken`, `node:${n.id}`, n.agentToken, host);
    add(`nodes[${n.id}].agentTokenNext`, `node:${n.id}`, n.agentTokenNext, host);
    for (const x of n.xpus) {
      const agent = agentIdOf(n.id, x.id);
      const xpu: Principal = { kind: 'agent', node: n.id, agent };
      add(`nodes[${n.id}].xpus[${x.id}].agentToken`, `agent:${agent}`, x.agentToken, xpu);
      add(`nodes[${n.id}].xpus[${x.id}].agentTokenNext`, `agent:${agent}`, x.agentTokenNext, xpu);
    }
  }
  return slots;
}

/**
 * Every token hash with the principal it names. A token shared by two owners would let one act as
 * the other: refuse to start rather than guess. (A node's bmcToken may equal its agentToken, as
 * before; the BMC meaning wins.)
 */
function tokenOwners(inv: Inventory, source: string): Map<string, TokenSlot> {
  const owners = new Map<string, TokenSlot>();
  for (const slot of tokenSlots(inv)) {
    const h = tokenHash(slot.token);
    const first = owners.get(h);
    if (!first) {
      owners.set(h, slot);
      continue;
    }
    if (first.owner === slot.owner) continue;
    const [kind, name] = first.owner.split(/:(.*)/);
    throw new InventoryError(
      `${source}: ${slot.where} is also a token of ${kind} '${name}' (${first.where}); every agent, BMC and operator needs its own token`,
    );
  }
  return owners;
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
  // Absent keys stay absent: a stored inventory has exactly the keys of the file it came from.
  const hashed = <T extends object>(o: T, keys: readonly (keyof T)[]): T => {
    const out = { ...o };
    for (const k of keys) if (out[k] !== undefined) (out as Record<keyof T, unknown>)[k] = h(out[k] as string);
    return out;
  };
  return {
    ...inv,
    nodes: inv.nodes.map((n) => ({
      ...hashed(n, NODE_TOKENS),
      xpus: n.xpus.map((x) => hashed(x, XPU_TOKENS)),
    })),
    ...(inv.operators ? { operators: inv.operators.map((o) => hashed(o, OPERATOR_TOKENS)) } : {}),
  };
}

/** Lookups the API and handlers need, built once per inventory. */
export class InventoryIndex {
  /** The inventory with its tokens hashed: the tokens themselves are not kept in memory. */
  readonly inventory: Inventory;
  readonly #nodes = new Map<string, NodeDef>();
  readonly #principals = new Map<string, Principal>();

  constructor(inventory: Inventory) {
    this.inventory = withHashedTokens(inventory);
    for (const n of this.inventory.nodes) this.#nodes.set(n.id, n);
    for (const [h, slot] of tokenOwners(this.inventory, 'inventory')) this.#principals.set(h, slot.principal);
  }

  node(id: string): NodeDef | undefined {
    return this.#nodes.get(id);
  }

  /** Who a token (by its SHA-256) speaks for: an operator of the inventory, a BMC, or an agent. */
  principalByTokenHash(hash: string): Principal | undefined {
    return this.#principals.get(hash);
  }

  nodeByBmcTokenHash(hash: string): NodeDef | undefined {
    const who = this.#principals.get(hash);
    return who?.kind === 'bmc' ? this.#nodes.get(who.node) : undefined;
  }

  nodeByAgentTokenHash(hash: string): NodeDef | undefined {
    const who = this.#principals.get(hash);
    return who?.kind === 'agent' ? this.#nodes.get(who.node) : undefined;
  }

  /** True when the xPU has its own agent token: then only that token acts as its agent. */
  xpuHasOwnToken(node: string, xpu: string): boolean {
    return this.#nodes.get(node)?.xpus.find((x) => x.id === xpu)?.agentToken !== undefined;
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
