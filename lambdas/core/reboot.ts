// Pure reboot decisions: deadlines, extensions, command plans, and when a waiting workflow wakes.
import { commandId, legacyRebootId } from './ids.ts';
import { agentIdOf } from './inventory.ts';
import { actorOfEvent, originOf, type Origin } from './model.ts';
import { COORDINATOR } from './principal.ts';
import {
  FINAL_COMMAND_STATUSES,
  NOTICE_STATUSES,
  type Command,
  type CommandStatus,
  type CommandSummary,
  type Actor,
  type CommandType,
  type HistoryEntry,
  type NativeEvent,
  type NodeDef,
  type Reboot,
  type RebootStatus,
} from './types.ts';

/** What a workflow's callback Task waits for; stored on the reboot so that events can wake it. */
export type WaitFor = 'prepared' | 'commands-done' | 'xpu-down' | 'xpu-ready' | 'host-ready' | 'xpus-ready' | 'budget-slot';

export interface Waiter {
  token: string;
  step: string;
  waitFor: WaitFor;
  /** The deadline the workflow timed its wait on: a moved deadline (an extension) wakes it to re-time. */
  deadline: string | null;
  at: string;
  /** When the workflow entered the waiting state ($$.State.EnteredTime): orders registrations of one step. */
  enteredAt?: string;
}

/** Where each waiting step sits in its workflow; both workflows only ever move to a later (or the same) rank. */
const STEP_RANK: Record<string, number> = {
  budget: 0.5,
  prepare: 1,
  free: 1,
  crash: 2,
  down: 2.5,
  reboot: 3,
  xpus: 4,
  recover: 5,
  reprovision: 5,
  resume: 6,
};

/**
 * Is a waiter registration late, i.e. from a state the workflow has already left? A slow (or
 * retried) await Lambda can finish after its Task timed out and the next state registered: it must
 * not put its dead token back in place of the live one, or the next wake-up is lost.
 */
export function isLateRegistration(reboot: StoredReboot, reg: { token: string; step: string; enteredAt?: string }): boolean {
  // An ended reboot takes no waiter, except the late recovery of an xPU that came back after all.
  if (reboot.endedAt && !reboot.lateRecovery) return true;
  const w = reboot.waiter;
  if (!w || w.token === reg.token) return false;
  const [was, now] = [STEP_RANK[w.step] ?? 0, STEP_RANK[reg.step] ?? 0];
  if (was !== now) return was > now;
  return !!w.enteredAt && !!reg.enteredAt && Date.parse(w.enteredAt) > Date.parse(reg.enteredAt);
}

/** The reboot record as stored: the public Reboot plus what the workflow machinery needs. */
export interface StoredReboot extends Reboot {
  waiter?: Waiter | null;
  /** Set when the execution was started, so a replayed start does not start another. */
  executionName?: string;
  /** Host reboot: the claim was denied at start, with this reason. */
  decision?: 'allowed' | 'denied';
  /** Host reboot: xPUs that announced a reboot (or crashed) during it; the host reboot waits for their xpu.ready too. */
  joinedXpus?: string[];
  /** The event that started it: a source's own times order only that source's events (see model.ts predates). */
  origin?: Origin;
  /** The xpu.ready that ended the outage: a notice sent before it (by its source's clock) belongs to this reboot. */
  readyOrigin?: Origin;
  /** The xpu.down applied: its source's clock places that source's late signals on ours (model.ts sentWhileItRan). */
  downOrigin?: Origin;
  /**
   * Notices and crashes of other sources that joined this outage (one per source): like downOrigin, each
   * places its source's late signals on our clock (a BMC whose notice joined the agent's, retrying its ready).
   */
  joinedOrigins?: Origin[];
  /** Host reboot: the host.ready that said the host is back (a request after it is another reboot). */
  hostReadyOrigin?: Origin;
  /** Host reboot: the host.down applied; its source's clock places that source's late xPU signals (model.ts ofEndedHostReboot). */
  hostDownOrigin?: Origin;
  /** Why it failed: a reason code (`xpu-never-returned`, `restore-pcie-failed`, ...). */
  failure?: string;
  /** A failed reboot whose xPU came back after all: its host is being restored (restore-pcie, resume-workloads). */
  lateRecovery?: boolean;
  /**
   * Signals of the xPU's next outage that reached this reboot while it still held the xPU (model.ts
   * ofNextOutage), re-keyed; sent to the ingest again when it lets go of the xPU.
   */
  deferred?: NativeEvent[];
  /** Notices that joined before the xPU's ready, until that ready says whether they were of this outage. */
  outageNotices?: NativeEvent[];
  /** The deadline the xPU was last told with postpone-reboot. */
  postponedTo?: string;
  /** The xPU did not take the early go (proceed-reboot failed or was skipped); recorded once. */
  proceedRefused?: boolean;
}

export interface WakeOutcome {
  signal: string;
  /**
   * Set on the outcomes the workflow branches on with a Catch rather than a Choice (one billed state
   * transition fewer on every reboot): the waiting Task is failed with this literal error name.
   */
  error?: string;
  /** The wait was the reboot's last (ResumeWorkloads): whoever wakes it ends the reboot first. */
  end?: boolean;
  [key: string]: unknown;
}

export function isFinal(status: CommandStatus): boolean {
  return FINAL_COMMAND_STATUSES.includes(status);
}

const STATUS_RANK: Record<RebootStatus, number> = {
  queued: -1,
  notified: 0,
  preparing: 1,
  extended: 2,
  rebooting: 3,
  recovering: 4,
  completed: 9,
  denied: 9,
  failed: 9,
  cancelled: 9,
};

/** Status only moves forward: a replayed step must not take a reboot back to an earlier phase. */
export function advanceStatus(current: RebootStatus, next: RebootStatus): RebootStatus {
  return STATUS_RANK[next] > STATUS_RANK[current] ? next : current;
}

export function isEnded(status: RebootStatus): boolean {
  return STATUS_RANK[status] === 9;
}

export function isNoticePhase(status: RebootStatus): boolean {
  return NOTICE_STATUSES.includes(status);
}

/**
 * The id older releases gave the reboot an event started (derived from the event key alone, so it
 * repeats across coordinators). New reboots get ULIDs (`newRebootId` in ids.ts, mapped from the event key).
 */
export const rebootIdFor = legacyRebootId;

export function history(at: Date | string, phase: string, detail: string, by: Actor = COORDINATOR): HistoryEntry {
  return { at: typeof at === 'string' ? at : at.toISOString(), phase, detail, by };
}

function secondsBetween(a: string | Date, b: string | Date): number {
  return (new Date(b).getTime() - new Date(a).getTime()) / 1000;
}

/**
 * Notice starts when the coordinator received the event (contract 7.1: notice, deadlines and timeouts
 * are dated by the coordinator's own clock; a source's own times only order that source's events).
 * A BMC clock a minute behind must not shorten the notice by a minute, nor one ahead lengthen it.
 * Queue retries do not move this: the receipt is the API's, before the queue.
 */
export function noticeTime(ev: NativeEvent): Date {
  return new Date(Date.parse(ev.receivedAt));
}

/** A number of seconds written as text (a Redfish MessageArg, a native event's `"120"`): digits, maybe a fraction, maybe spaced. */
export const SECONDS_TEXT = /^\s*\d+(\.\d+)?\s*$/;

/**
 * Deadline = notice time + the event's noticeSeconds when given, capped at the policy's. A given 0
 * is a reboot without notice (the xPU's watchdog fires at once): its deadline is its notice time,
 * not the policy's, or the host would prepare for minutes the xPU does not wait.
 */
export function noticeSecondsFor(node: NodeDef, ev: NativeEvent): number {
  const policy = node.policy.xpuReboot.noticeSeconds;
  const given = ev.data?.noticeSeconds;
  const asked = typeof given === 'number' ? given : typeof given === 'string' && SECONDS_TEXT.test(given) ? Number(given) : Number.NaN;
  if (Number.isFinite(asked) && asked >= 0) return Math.min(Math.floor(asked), policy);
  return policy;
}

export function newXpuReboot(id: string, node: NodeDef, xpu: string, ev: NativeEvent, mode: 'planned' | 'crash'): StoredReboot {
  const notifiedAt = noticeTime(ev);
  const noticeSeconds = mode === 'crash' ? 0 : noticeSecondsFor(node, ev);
  const deadline = new Date(notifiedAt.getTime() + noticeSeconds * 1000);
  const reason = typeof ev.data?.reason === 'string' ? ev.data.reason : undefined;
  const rec: StoredReboot = {
    id,
    kind: 'xpu',
    node: node.id,
    xpu,
    status: 'notified',
    mode,
    reason,
    rack: node.rack,
    zone: node.zone,
    tenant: node.tenant,
    notifiedAt: notifiedAt.toISOString(),
    deadline: deadline.toISOString(),
    noticeSeconds,
    policyNoticeSeconds: node.policy.xpuReboot.noticeSeconds,
    extensions: [],
    refusals: [],
    forced: false,
    outstanding: [],
    commands: {},
    history: [
      history(
        ev.receivedAt,
        mode === 'crash' ? 'crashed' : 'notified',
        mode === 'crash'
          ? `xPU ${xpu} crashed${reason ? `: ${reason}` : ''} (${ev.source} event ${ev.id})`
          : `xPU ${xpu} announced a reboot with ${noticeSeconds}s notice, deadline ${deadline.toISOString()}${reason ? `: ${reason}` : ''} (${ev.source} event ${ev.id})`,
        actorOfEvent(ev),
      ),
    ],
    version: 0,
    waiter: null,
    origin: originOf(ev),
  };
  if (mode === 'crash') rec.crashedAt = notifiedAt.toISOString();
  return rec;
}

/** How a host reboot request says the host reboots (`data.method`): shell, ipmi, perst, or other. */
export function hostRebootMode(ev: NativeEvent): StoredReboot['mode'] {
  const method = String(ev.data?.method ?? 'other');
  return (['shell', 'ipmi', 'perst'].includes(method) ? method : 'other') as StoredReboot['mode'];
}

/** The tenant a host.ready says the host is up for (`data.tenant`), if it names one. */
export function tenantOf(ev: NativeEvent): string | undefined {
  return typeof ev.data?.tenant === 'string' && ev.data.tenant ? ev.data.tenant : undefined;
}

export function newHostReboot(
  id: string,
  node: NodeDef,
  ev: NativeEvent,
  decision: { allowed: true } | { allowed: false; reason: string },
): StoredReboot {
  const mode = hostRebootMode(ev);
  const at = noticeTime(ev).toISOString();
  const rec: StoredReboot = {
    id,
    kind: 'host',
    node: node.id,
    xpu: null,
    status: decision.allowed ? 'notified' : 'denied',
    mode,
    reason: typeof ev.data?.reason === 'string' ? ev.data.reason : undefined,
    rack: node.rack,
    zone: node.zone,
    tenant: node.tenant,
    notifiedAt: at,
    deadline: null,
    noticeSeconds: 0,
    policyNoticeSeconds: 0,
    extensions: [],
    refusals: [],
    forced: false,
    outstanding: [],
    commands: {},
    xpuReadyAt: {},
    history: [history(ev.receivedAt, 'requested', `host reboot requested by ${mode} (${ev.source} event ${ev.id})`, actorOfEvent(ev))],
    version: 0,
    waiter: null,
    origin: originOf(ev),
    decision: decision.allowed ? 'allowed' : 'denied',
  };
  if (!decision.allowed) {
    rec.denyReason = decision.reason;
    rec.endedAt = ev.receivedAt;
    rec.history.push(history(ev.receivedAt, 'denied', decision.reason));
  }
  return rec;
}

/** What an active node looks like to the deny policy. */
export interface NodeClaims {
  host?: string;
  xpus: Record<string, string>;
  /** The running host reboot is re-provisioning its xPUs. */
  hostReprovisioning?: boolean;
  /**
   * The request came after the running host reboot's host.ready (model.ts afterHostBack): the host
   * is up again, so this is another reboot of it, not a second word on the one that ran.
   */
  afterHostBack?: boolean;
}

export type HostRebootDecision = { kind: 'join'; rebootId: string } | { kind: 'deny'; reason: string } | { kind: 'allow' };

export function decideHostReboot(node: NodeDef, claims: NodeClaims): HostRebootDecision {
  const deny = node.policy.hostReboot.denyWhile;
  const rebooting = Object.entries(claims.xpus);
  if (claims.host) {
    if (claims.hostReprovisioning && deny.includes('reprovisioning'))
      return { kind: 'deny', reason: `reprovisioning still running for host reboot ${claims.host}` };
    // Joined, it would pass at once (the running reboot's xPUs freed the host context before the
    // host went down) and the host would reboot again with nobody freeing it: refused instead.
    if (claims.afterHostBack)
      return {
        kind: 'deny',
        reason: `host-reboot-finishing: host reboot ${claims.host} is still finishing (the host is back; its xPUs are coming back or being re-provisioned): ask again once it has ended`,
      };
    return { kind: 'join', rebootId: claims.host };
  }
  if (rebooting.length > 0 && deny.includes('xpu-rebooting'))
    return {
      kind: 'deny',
      reason: `xpu-rebooting: ${rebooting.map(([x, r]) => `${x} (${r})`).join(', ')}`,
    };
  return { kind: 'allow' };
}

// --- extensions -------------------------------------------------------------------------------

export type ExtensionDecision =
  | { kind: 'granted'; granted: number; deadline: string }
  | { kind: 'refused'; status: 403 | 409; code: string; reason: string };

export function decideExtension(reboot: Reboot, node: NodeDef, requested: number, now: Date): ExtensionDecision {
  if (!node.trusted) return { kind: 'refused', status: 403, code: 'Forbidden', reason: `host ${node.id} is not trusted to extend reboots` };
  if (reboot.kind !== 'xpu' || !reboot.deadline)
    return { kind: 'refused', status: 409, code: 'NotExtendable', reason: 'only xPU reboots have a notice phase' };
  // A queued reboot has not reached its notice phase: its deadline is held by the queue, not extended.
  if (reboot.status === 'queued')
    return {
      kind: 'refused',
      status: 409,
      code: 'PastNoticePhase',
      reason: 'reboot is queued: extensions are granted once its notice phase begins',
    };
  if (!isNoticePhase(reboot.status))
    return { kind: 'refused', status: 409, code: 'PastNoticePhase', reason: `reboot is ${reboot.status}, past its notice phase` };
  if (now.getTime() >= Date.parse(reboot.deadline))
    return { kind: 'refused', status: 409, code: 'PastDeadline', reason: 'the deadline has passed' };
  const policy = node.policy.xpuReboot;
  if (reboot.extensions.length >= policy.maxExtensions)
    return { kind: 'refused', status: 409, code: 'MaxExtensions', reason: `${policy.maxExtensions} extensions were already granted` };
  const used = reboot.extensions.reduce((s, e) => s + e.granted, 0);
  const left = policy.maxExtensionSeconds - used;
  if (left <= 0)
    return {
      kind: 'refused',
      status: 409,
      code: 'NoExtensionSecondsLeft',
      reason: `all ${policy.maxExtensionSeconds}s of extension were granted`,
    };
  const granted = Math.min(requested, left);
  return { kind: 'granted', granted, deadline: new Date(Date.parse(reboot.deadline) + granted * 1000).toISOString() };
}

// --- commands -----------------------------------------------------------------------------------

export interface PlannedCommand {
  id: string;
  type: CommandType;
  agent: string;
  xpu: string | null;
  args: Record<string, unknown>;
  deadline: string;
  /** Notice-phase commands carry the reboot's deadline and move with extensions. */
  noticePhase: boolean;
}

/** Ids are per reboot, type and agent, so a replayed step re-plans the same commands, never new ones. */
export { commandId };

function plan(
  reboot: Reboot,
  type: CommandType,
  target: 'host' | string,
  args: Record<string, unknown>,
  deadline: string,
  noticePhase = false,
): PlannedCommand {
  const xpu = target === 'host' ? null : target;
  return {
    id: commandId(reboot.id, type, target === 'host' ? null : target),
    type,
    agent: agentIdOf(reboot.node, xpu),
    xpu: reboot.xpu ?? xpu,
    args,
    deadline,
    noticePhase,
  };
}

export interface PlanContext {
  node: NodeDef;
  now: Date;
  /** xPUs of the node with a reboot of their own in progress. */
  busyXpus: string[];
}

/** The xPU of an xPU reboot came back: its ready was applied. */
export function xpuIsBack(reboot: Reboot): boolean {
  return reboot.kind === 'xpu' && !!reboot.readyAt;
}

/**
 * Does the xPU still take an early go (proceed-reboot)? Not once the reboot ended or was forced (the
 * deadline decides then), nor once the xPU went down or came back: a go it took then would reboot it again.
 */
export function goesEarly(reboot: Reboot): boolean {
  return !reboot.endedAt && !reboot.forced && !reboot.downAt && !xpuIsBack(reboot);
}

/** The commands a workflow step sends. Steps without commands return []. */
export function planCommands(reboot: StoredReboot, step: string, ctx: PlanContext): PlannedCommand[] {
  const { node, now } = ctx;
  const xp = node.policy.xpuReboot;
  const hp = node.policy.hostReboot;
  const later = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
  if (reboot.kind === 'xpu') {
    // Back already (the ready overtook a slow workflow): what is for before the outage is not sent any more.
    if (xpuIsBack(reboot) && (step === 'prepare' || step === 'crash' || step === 'proceed')) return [];
    switch (step) {
      case 'prepare': {
        const spare = node.xpus.find((x) => x.id !== reboot.xpu && !ctx.busyXpus.includes(x.id));
        const args = spare ? { target: 'other-xpu', xpu: spare.id } : { target: 'other-host' };
        return [
          plan(reboot, 'migrate-workloads', 'host', args, reboot.deadline!, true),
          plan(reboot, 'protect-pcie', 'host', {}, reboot.deadline!, true),
        ];
      }
      case 'crash':
        return [
          plan(reboot, 'protect-pcie', 'host', {}, later(xp.coredumpSeconds)),
          plan(reboot, 'allow-coredump', reboot.xpu!, { holdSeconds: xp.coredumpSeconds }, later(xp.coredumpSeconds)),
        ];
      case 'proceed':
        return [plan(reboot, 'proceed-reboot', reboot.xpu!, {}, later(xp.commandSeconds))];
      case 'recover':
        return [plan(reboot, 'restore-pcie', 'host', {}, later(xp.commandSeconds))];
      // Only after restore-pcie succeeded (a restore that did not succeed fails RestorePcie with RestorePcieNotSucceeded). Nothing was migrated
      // away from an unannounced reboot, so nothing resumes.
      case 'resume':
        if (reboot.mode === 'unannounced') return [];
        return [
          xp.afterReady === 'reboot-host'
            ? plan(reboot, 'reboot-host', 'host', { reason: `xPU ${reboot.xpu} reboot ${reboot.id} completed` }, later(xp.commandSeconds))
            : plan(reboot, 'resume-workloads', 'host', {}, later(xp.commandSeconds)),
        ];
      default:
        return [];
    }
  }
  switch (step) {
    case 'deny':
      return [plan(reboot, 'deny-host-reboot', 'host', { reason: reboot.denyReason ?? 'denied by policy' }, later(hp.commandSeconds))];
    case 'free':
      return node.xpus.map((x) =>
        plan(reboot, 'free-host-context', x.id, { persistentPower: x.persistentPower }, later(hp.commandSeconds)),
      );
    case 'reprovision': {
      if (!reboot.nextTenant || reboot.nextTenant === reboot.tenant) return [];
      return node.xpus.map((x) => plan(reboot, 'reprovision', x.id, { tenant: reboot.nextTenant }, later(hp.commandSeconds)));
    }
    default:
      return [];
  }
}

/** postpone-reboot for one move of the deadline: its id names that deadline, so a replay sends it once. */
export function planPostpone(reboot: Reboot, deadline: string, reason: string, node: NodeDef, now: Date): PlannedCommand {
  const p = plan(
    reboot,
    'postpone-reboot',
    reboot.xpu!,
    { deadline, reason },
    new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString(),
  );
  return { ...p, id: `${p.id}.${Math.floor(Date.parse(deadline) / 1000)}` };
}

export function toCommand(p: PlannedCommand, reboot: Reboot): Command {
  return { id: p.id, type: p.type, rebootId: reboot.id, node: reboot.node, xpu: p.xpu, args: p.args, deadline: p.deadline };
}

export function summarize(p: PlannedCommand, step: string, at: string): CommandSummary {
  return { id: p.id, type: p.type, agent: p.agent, step, status: 'pending', at };
}

// --- waking a waiting workflow --------------------------------------------------------------

function stepCommands(reboot: StoredReboot, step: string): CommandSummary[] {
  return Object.values(reboot.commands).filter((c) => c.step === step);
}

export function noticeWindow(reboot: Reboot, now: Date): { deadline: string; secondsToDeadline: number } {
  const deadline = reboot.deadline ?? now.toISOString();
  // AWS wants a positive integer timeout: a passed deadline still waits one second.
  return { deadline, secondsToDeadline: Math.max(1, Math.ceil(secondsBetween(now, deadline))) };
}

/**
 * Decides whether the reboot's current waiter is satisfied. Pure: called after every change to
 * the reboot (by whoever changed it) and when the waiter registers, so no wake-up is missed.
 */
export function evaluateWait(reboot: StoredReboot, node: NodeDef | undefined, now: Date): WakeOutcome | null {
  const w = reboot.waiter;
  if (!w) return null;
  switch (w.waitFor) {
    case 'budget-slot': {
      // docs/fleet-safety.md: a queued reboot waits for a budget slot (or a hold's end), an operator, or its xPU.
      if (reboot.status === 'cancelled') return { signal: 'cancelled' };
      if (reboot.forced) return { signal: 'forced', ...noticeWindow(reboot, now) };
      if (reboot.status !== 'queued') return { signal: 'admitted', ...noticeWindow(reboot, now) };
      if (reboot.crashedAt || reboot.downAt || reboot.readyAt) return { signal: 'outage' };
      return null;
    }
    case 'prepared': {
      // docs/fleet-safety.md: an operator withdrew or hurried the reboot.
      if (reboot.status === 'cancelled') return { signal: 'cancelled' };
      if (reboot.forced && !reboot.crashedAt) return { signal: 'forced', ...noticeWindow(reboot, now) };
      if (reboot.crashedAt && reboot.mode !== 'crash') return { signal: 'crashed', ...noticeWindow(reboot, now) };
      if (reboot.readyAt) return { signal: 'xpu-ready', ...noticeWindow(reboot, now) };
      const cmds = stepCommands(reboot, w.step);
      if (cmds.length > 0 && cmds.every((c) => c.status === 'succeeded' || c.status === 'skipped'))
        return { signal: 'prepared', ...noticeWindow(reboot, now) };
      if (reboot.deadline !== w.deadline) return { signal: 'extended', ...noticeWindow(reboot, now) };
      return null;
    }
    case 'commands-done': {
      // After a crash, xpu.ready ends the core-dump hold at once: the xPU is back.
      if (w.step === 'crash' && reboot.readyAt) return { signal: 'xpu-ready' };
      const cmds = stepCommands(reboot, w.step);
      if (!cmds.every((c) => isFinal(c.status))) return null;
      const failed = cmds.filter((c) => c.status !== 'succeeded' && c.status !== 'skipped').map((c) => c.type);
      // A restore-pcie that did not succeed is followed by nothing (RestorePcie's Catch: RecordRestoreFailed).
      if (w.step === 'recover' && failed.length > 0) return { signal: 'done', failed, error: 'RestorePcieNotSucceeded' };
      // The xPU workflow's last wait: its waker completes the reboot (ResumeWorkloads has no CompleteReboot after it).
      if (w.step === 'resume' && reboot.kind === 'xpu') return { signal: 'done', failed, end: true };
      return { signal: 'done', failed };
    }
    case 'xpu-down': {
      if (reboot.readyAt) return { signal: 'xpu-ready' };
      if (reboot.downAt) return { signal: 'xpu-down' };
      // The early go was not taken: the watchdog decides (once noted, the wait runs to the deadline).
      const go = Object.values(reboot.commands).find((c) => c.type === 'proceed-reboot');
      if (go && isFinal(go.status) && go.status !== 'succeeded' && !reboot.proceedRefused)
        return { signal: 'proceed-not-taken', error: 'ProceedNotTaken' };
      return null;
    }
    case 'xpu-ready':
      return reboot.readyAt ? { signal: 'xpu-ready' } : null;
    case 'host-ready':
      return reboot.hostReadyAt ? { signal: 'host-ready', tenant: reboot.nextTenant ?? reboot.tenant ?? null } : null;
    case 'xpus-ready': {
      const waiting = (node?.xpus ?? [])
        .filter((x) => (!x.persistentPower || reboot.joinedXpus?.includes(x.id)) && !reboot.xpuReadyAt?.[x.id])
        .map((x) => x.id);
      return waiting.length === 0 ? { signal: 'xpus-ready' } : null;
    }
  }
}

/** Commands of a step still open when the workflow stopped waiting for them. */
export function outstandingCommands(reboot: StoredReboot, steps: string[]): CommandSummary[] {
  return Object.values(reboot.commands).filter((c) => steps.includes(c.step) && !isFinal(c.status));
}

/** What a forced reboot left undone: every command of those steps that did not succeed (or was skipped). */
export function undoneCommands(reboot: StoredReboot, steps: string[]): CommandSummary[] {
  return Object.values(reboot.commands).filter((c) => steps.includes(c.step) && c.status !== 'succeeded' && c.status !== 'skipped');
}
