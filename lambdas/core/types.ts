// The domain's shared shapes: inventory, native events, reboots and agent commands.
import type { MaintenanceWindow } from './windows.ts';
import type { QueueRecord } from './budgets.ts';

export type RebootKind = 'xpu' | 'host';

export const REBOOT_STATUSES = [
  /** Held back by a disruption budget or a hold (docs/fleet-safety.md); goes on with the notice flow when a slot frees. */
  'queued',
  'notified',
  'preparing',
  'extended',
  'rebooting',
  'recovering',
  'completed',
  'denied',
  'failed',
  'cancelled',
] as const;
export type RebootStatus = (typeof REBOOT_STATUSES)[number];

/** Statuses in which a reboot still holds its node (the notice phase and after). */
export const ACTIVE_STATUSES: readonly RebootStatus[] = ['notified', 'preparing', 'extended', 'rebooting', 'recovering'];
/** The notice phase: the only phase in which extensions may be granted. */
export const NOTICE_STATUSES: readonly RebootStatus[] = ['notified', 'preparing', 'extended'];

export const DENY_CONDITIONS = ['xpu-rebooting', 'reprovisioning'] as const;
export type DenyCondition = (typeof DENY_CONDITIONS)[number];

export interface XpuRebootPolicy {
  noticeSeconds: number;
  maxExtensionSeconds: number;
  maxExtensions: number;
  /** How long after the reboot the xPU may take to report `xpu.ready` before the reboot is `failed`. */
  recoverySeconds: number;
  /** How long the watchdog is held for a core dump after a crash. */
  coredumpSeconds: number;
  /** Silence from the host agent longer than this during the notice phase is recorded as a silent host. */
  heartbeatSeconds: number;
  /** Timeout of commands outside the notice phase (restore-pcie, resume-workloads, ...). */
  commandSeconds: number;
  /** After the xPU is back: resume workloads, or reboot the host gracefully. */
  afterReady: 'resume-workloads' | 'reboot-host';
}

export interface HostRebootPolicy {
  denyWhile: DenyCondition[];
  /** How long the host may take from the request to `host.ready` before the reboot is `failed`. */
  returnSeconds: number;
  commandSeconds: number;
  heartbeatSeconds: number;
}

export interface Policy {
  xpuReboot: XpuRebootPolicy;
  hostReboot: HostRebootPolicy;
  /** Maintenance windows (docs/fleet-safety.md): rollouts start reboots of a node only inside one. None: always. */
  windows?: MaintenanceWindow[];
  /** Disruption budgets (docs/fleet-safety.md); absent or empty: no budget. */
  budgets?: Budget[];
}

export const BUDGET_DOMAINS = ['rack', 'zone', 'tenant', 'fleet'] as const;
export type BudgetDomain = (typeof BUDGET_DOMAINS)[number];

/** At most `maxUnavailable` nodes of one rack (zone, tenant, the fleet) unavailable at a time. */
export interface Budget {
  per: BudgetDomain;
  maxUnavailable: number;
}

export interface XpuDef {
  id: string;
  redfishSystem?: string;
  persistentPower: boolean;
  /** The xPU agent's own token (docs/identities.md); when set, the node's agentToken no longer acts as this xPU. */
  agentToken?: string;
  /** The next token during a rollover: accepted alongside `agentToken` until it replaces it. */
  agentTokenNext?: string;
}

export interface NodeDef {
  id: string;
  rack?: string;
  zone?: string;
  tenant?: string;
  trusted: boolean;
  redfishSystem?: string;
  bmcToken?: string;
  agentToken?: string;
  /** Rollover tokens, accepted alongside the current ones (rotation without downtime). */
  bmcTokenNext?: string;
  agentTokenNext?: string;
  xpus: XpuDef[];
  /** The node's effective policy: the inventory defaults with the node's overrides applied. */
  policy: Policy;
}

export interface Inventory {
  policy: Policy;
  nodes: NodeDef[];
  /** Stored inventories (AWS) carry the operator token's SHA-256 here; locally it comes from OPERATOR_TOKEN. */
  operatorTokenHash?: string;
  /** Named operator tokens: their changes are recorded as `operator:<name>`. */
  operators?: OperatorDef[];
}

export interface OperatorDef {
  name: string;
  token: string;
  tokenNext?: string;
}

export const NATIVE_EVENT_TYPES = [
  'xpu.reboot.pending',
  'xpu.down',
  'xpu.ready',
  'xpu.crashed',
  'host.reboot.requested',
  'host.down',
  'host.ready',
] as const;
export type NativeEventType = (typeof NATIVE_EVENT_TYPES)[number];

/** A native event as it travels through the ingest queue, whatever its source. */
export interface NativeEvent {
  id: string;
  type: NativeEventType;
  node: string;
  xpu?: string;
  /** ISO 8601 time the event happened at its source (BMC or agent); the receive time when absent. */
  time: string;
  /** Set when the source gave no time of its own (a Redfish record without a timestamp): `time` is the receipt, our clock, not the source's. */
  timeIsReceipt?: true;
  data?: Record<string, unknown>;
  source: 'native' | 'redfish';
  /** Durable idempotency key: the same key twice starts nothing new. */
  dedupKey: string;
  /** When the API accepted it. */
  receivedAt: string;
  /** For redfish-sourced events: the MessageId that mapped to this type. */
  messageId?: string;
  /** Who posted it, from the token that was accepted (see Actor). */
  by?: Actor;
  /**
   * A BMC notice or crash placed on our clock through its BMC's learned clock (core/bmc-clock.ts).
   * Set by the ingest from the node state only, never taken from a request.
   */
  placed?: { sentBy: string; uncertaintyMs: number };
  /**
   * Its BMC's latest clock sample before it (core/bmc-clock.ts `ClockEstimate.latest`): shows a clock
   * set back since the reboot's own event a placement goes through. Set by the ingest only, like `placed`.
   */
  clockLatest?: { gapMs: number; at: number };
}

/**
 * Who caused a change (docs/reboot-model.md): `bmc:<node>`, `agent:<agentId>`, `operator` (or
 * `operator:<name>` where several operator tokens exist), or `coordinator` for its own timers.
 */
export type Actor = string;

export interface HistoryEntry {
  at: string;
  phase: string;
  detail: string;
  by?: Actor;
}

export interface Extension {
  at: string;
  requested: number;
  granted: number;
  reason: string;
  deadline: string;
  /** `<agentId> <Idempotency-Key>` of the request that was granted this, when it had one. */
  idempotencyKey?: string;
}

export interface ExtensionRefusal {
  at: string;
  requested: number;
  reason: string;
  /** The 409's error code, and the request's `<agentId> <Idempotency-Key>`: a repeat is answered the same. */
  code?: string;
  idempotencyKey?: string;
}

export const COMMAND_TYPES = [
  'migrate-workloads',
  'protect-pcie',
  'allow-coredump',
  'proceed-reboot',
  'restore-pcie',
  'resume-workloads',
  'reboot-host',
  'free-host-context',
  'reprovision',
  'deny-host-reboot',
  /** Release 2 (docs/reboot-model.md, 7.3). */
  'postpone-reboot',
  'cancel-reboot',
  'reboot-xpu',
] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

export const COMMAND_RESULT_STATUSES = ['succeeded', 'failed', 'running', 'skipped'] as const;
export type CommandResultStatus = (typeof COMMAND_RESULT_STATUSES)[number];
/** `timed-out`: the workflow stopped waiting for it (deadline or heartbeat). */
export type CommandStatus = 'pending' | 'delivered' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'timed-out';
export const FINAL_COMMAND_STATUSES: readonly CommandStatus[] = ['succeeded', 'failed', 'skipped', 'timed-out'];

/** A command as agents receive it (docs/api.md). */
export interface Command {
  id: string;
  type: CommandType;
  rebootId: string;
  node: string;
  xpu: string | null;
  args: Record<string, unknown>;
  deadline: string;
}

/** What a reboot remembers of each command it sent. */
export interface CommandSummary {
  id: string;
  type: CommandType;
  agent: string;
  step: string;
  status: CommandStatus;
  at: string;
  output?: string;
  /** The result an agent posted after the workflow had stopped waiting (status `timed-out`). */
  lateStatus?: CommandResultStatus;
}

export interface Reboot {
  id: string;
  kind: RebootKind;
  node: string;
  xpu: string | null;
  status: RebootStatus;
  /** xPU reboot: `planned` (announced) or `crash`. Host reboot: how it was requested. */
  /** `unannounced`: the xPU went down or came back without notice (docs/reboot-model.md). */
  mode: 'planned' | 'crash' | 'unannounced' | 'shell' | 'ipmi' | 'perst' | 'other';
  reason?: string;
  rack?: string;
  zone?: string;
  tenant?: string;
  /** When notice was given (the event time). */
  notifiedAt: string;
  /** xPU reboot: the time the watchdog fires; moves with extensions. Host reboot: null. */
  deadline: string | null;
  /** Notice the reboot was announced with, before any extension. */
  noticeSeconds: number;
  /** The policy's notice at the time of the reboot, for compliance. */
  policyNoticeSeconds: number;
  extensions: Extension[];
  /** The last refusals only (lambdas/core/bounds.ts); `refusalCount` counts every one. */
  refusals: ExtensionRefusal[];
  refusalCount?: number;
  /** Refusals (and the seconds they asked for) no longer stored: the item's size stays bounded. */
  refusalsDropped?: number;
  refusalSecondsDropped?: number;
  /** History entries no longer stored, from between the first and the last ones kept. */
  historyDropped?: number;
  forced: boolean;
  /** What was still outstanding when the reboot was forced. */
  outstanding: string[];
  commands: Record<string, CommandSummary>;
  /** Signals seen from events, as event times. */
  crashedAt?: string;
  downAt?: string;
  readyAt?: string;
  hostDownAt?: string;
  hostReadyAt?: string;
  /** Host reboot: xPUs seen ready again after the host reset, by xPU id. */
  xpuReadyAt?: Record<string, string>;
  /** Host reboot: tenant before and after. */
  nextTenant?: string;
  denyReason?: string;
  rebootingAt?: string;
  endedAt?: string;
  /** docs/fleet-safety.md: the wait of a reboot held back by a budget or a hold. */
  queue?: QueueRecord;
  /** The budgets (keys) this reboot makes its node unavailable in; given back when it ends. */
  budgetKeys?: string[];
  history: HistoryEntry[];
  version: number;
}
