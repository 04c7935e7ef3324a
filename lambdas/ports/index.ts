// The interfaces the handlers need from the outside world; adapters implement them with the AWS SDK.
import type { AcquireResult, BudgetSlot, Hold } from '../core/budgets.ts';
import type { ClockEstimate, ClockSample } from '../core/bmc-clock.ts';
import type { StoredReboot } from '../core/reboot.ts';
import type { Command, CommandStatus, CommandType, NativeEvent, RebootKind, RebootStatus } from '../core/types.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A command as stored, with its delivery state. */
export interface StoredCommand extends Command {
  agent: string;
  step: string;
  status: CommandStatus;
  noticePhase: boolean;
  createdAt: string;
  /** Last delivery to the agent, or last heartbeat from it: redelivery waits a while after either. */
  seenAt?: string;
  output?: string;
  finishedAt?: string;
  /** Changed since it was delivered (a moved deadline): hand it out again on the next poll. */
  redeliver?: boolean;
}

export interface NodeStateRecord {
  node: string;
  host?: string;
  /** xPU id → the reboot that holds it. */
  xpus: Record<string, string>;
  lastBmcEventAt?: string;
  /** xPU id → the last reboot that released its claim on it (late signals find their reboot). */
  lastXpuReboots?: Record<string, string>;
  /** xPU id → the last reboot of it that failed for want of its ready, and when it ended (model.ts awaitsLateReady). */
  awaitingReady?: Record<string, { rebootId: string; endedAt: string }>;
  /** The last host reboot that released the host (a request sent before its host.ready joins it: model.ts requestOfEndedHostReboot). */
  lastHostReboot?: string;
  /** The tenant the node's xPUs are provisioned for (docs/reboot-model.md); unset: the inventory's. */
  provisionedTenant?: string;
  /** xPU id → the event a claim was taken for beside its look-up, and when; gone once confirmed (docs/idempotency.md). */
  claimsAhead?: Record<string, { key: string; at: string }>;
  /** Source (model.ts sourceOf: a BMC's stamped records) → how its clock sits against ours (core/bmc-clock.ts). */
  clocks?: Record<string, ClockEstimate>;
}

/** Either way, `state` is the node's claims as they were right after the attempt (when the store can tell). */
export type ClaimResult = { ok: true; state?: NodeStateRecord } | { ok: false; state: NodeStateRecord };
/** A claim taken ahead: the node as it left it, or nothing (a failed one is taken again the plain way, if at all). */
export type ClaimAheadResult = { ok: true; state: NodeStateRecord } | { ok: false };

export interface ListQuery {
  node?: string;
  status?: RebootStatus;
  limit: number;
  cursor?: string;
}

/** A reboot not ended, as the sparse index of those lists it (no read of its item). */
export interface ActiveReboot {
  id: string;
  kind: RebootKind;
  status: RebootStatus;
}

export interface RebootStore extends BudgetStore, HoldStore {
  getReboot(id: string): Promise<StoredReboot | undefined>;
  /** false when a reboot with that id exists already. */
  createReboot(reboot: StoredReboot): Promise<boolean>;
  /**
   * Read-modify-write with optimistic concurrency. `change` returns the new record, or null for
   * "nothing to change"; it may run several times under contention, so it must be pure.
   * `known`: a copy the caller has just read; the first attempt writes against its version instead of
   * reading again (a stale copy costs the retry; a null change is decided on a fresh read).
   */
  updateReboot(
    id: string,
    change: (r: StoredReboot) => StoredReboot | null,
    known?: StoredReboot,
  ): Promise<{ reboot: StoredReboot; changed: boolean } | undefined>;
  listReboots(q: ListQuery): Promise<{ items: StoredReboot[]; next: string | null }>;
  /**
   * Every reboot not ended, read from an index of those alone (the reconciler). Null, or absent,
   * when the store has no such index: the caller lists by status instead.
   */
  activeReboots?(): Promise<ActiveReboot[] | null>;
  /** Reboots notified in [from, to), oldest first. */
  rebootsNotifiedBetween(from: Date, to: Date): Promise<StoredReboot[]>;

  getNodeState(node: string): Promise<NodeStateRecord>;
  /** Many nodes' state in few reads (eventually consistent); a node never written comes back empty. */
  getNodeStates(nodes: string[]): Promise<Map<string, NodeStateRecord>>;
  /** Takes the xPU for a reboot unless another reboot holds it (holding it already is ok); confirms a claim taken ahead. */
  claimXpu(node: string, xpu: string, rebootId: string): Promise<ClaimResult>;
  /**
   * Takes the xPU ahead, for a reboot id just minted for event `key` and not yet known to be used: only
   * where no one holds it, recording `key` beside the claim (docs/idempotency.md, "the claim beside the look-up").
   */
  claimXpuAhead(node: string, xpu: string, rebootId: string, key: string, at: Date): Promise<ClaimAheadResult>;
  /** Gives back a claim taken ahead, only if it still names `rebootId` and `key` (no one confirmed it since). */
  releaseAhead(node: string, xpu: string, rebootId: string, key: string): Promise<boolean>;
  /** Takes the host; with `exclusive`, only while no xPU of the node is rebooting. */
  claimHost(node: string, rebootId: string, exclusive: boolean): Promise<ClaimResult>;
  /**
   * Lets go of a claim. `remember` (default true): the xPU's last reboot becomes this one; false for a
   * claim taken and given back unused. `awaitsReadySince`: it failed for want of its ready, ended then;
   * kept on the node until another such failure replaces it. True when this released a claim
   * markDeferred had marked.
   */
  release(
    node: string,
    kind: 'xpu' | 'host',
    xpu: string | null,
    rebootId: string,
    remember?: boolean,
    awaitsReadySince?: string,
  ): Promise<boolean>;
  /**
   * Marks the xPU's claim: its holder `rebootId` keeps signals for the next reboot (model.ts
   * `defer`). False when the holder let go of the xPU already (then nothing will send them).
   */
  markDeferred(node: string, xpu: string, rebootId: string): Promise<boolean>;
  touchBmc(node: string, at: string): Promise<void>;
  /**
   * Keeps a source's clock sample on the node item: as its smallest iff it supersedes the stored one
   * (core/bmc-clock.ts `supersedes`), as its latest iff received no earlier (`isLater`), each decided
   * by its write's condition, the two writes side by side: no read. True when kept as the smallest.
   */
  noteClock(node: string, source: string, sample: ClockSample): Promise<boolean>;
  setProvisionedTenant(node: string, tenant: string): Promise<void>;

  /** A signal that found no reboot yet, kept for `ttlSeconds` to be applied when its reboot appears. */
  keepSignal(ev: NativeEvent, ttlSeconds: number): Promise<void>;
  /** The node's kept signals, oldest received first. */
  keptSignals(node: string): Promise<NativeEvent[]>;
  forgetSignal(ev: NativeEvent): Promise<void>;

  /** false when the command exists already (a replayed step). */
  putCommand(cmd: StoredCommand): Promise<boolean>;
  getCommand(agent: string, id: string): Promise<StoredCommand | undefined>;
  /** Unfinished commands of an agent, oldest first. */
  openCommands(agent: string): Promise<StoredCommand[]>;
  updateCommand(
    agent: string,
    id: string,
    change: (c: StoredCommand) => StoredCommand | null,
  ): Promise<{ command: StoredCommand; changed: boolean } | undefined>;
  /**
   * Marks a command handed to its agent, if it is still due (pending, or silent since
   * `redeliverBefore`); undefined when another poll or a result got there first.
   */
  markDelivered(cmd: StoredCommand, at: string, redeliverBefore: string): Promise<StoredCommand | undefined>;
  /** Moves the deadline of a reboot's open notice-phase commands later (after an extension); never earlier. */
  moveNoticeDeadline(reboot: StoredReboot, deadline: string): Promise<void>;

  /** Remembers a key for `ttlSeconds` (events handled side by side may share one write). */
  markEventSeen(key: string, ttlSeconds: number): Promise<void>;
  isEventSeen(key: string): Promise<boolean>;
  /** Events that could not be applied, kept with the reason for operators. */
  recordDropped(ev: NativeEvent, reason: string): Promise<void>;
  listDropped(limit: number): Promise<Array<{ at: string; reason: string; event: NativeEvent }>>;

  /** The reboot an event key started (docs/reboot-model.md: ids are ULIDs, so a replay must look its reboot up). */
  rebootIdOfEvent(key: string): Promise<string | undefined>;
  /**
   * What a starting event is checked against, in one read (every start needs all three): whether its
   * key was seen (`isEventSeen`), the reboot id it maps to (`rebootIdOfEvent`) and the reboot stored
   * under `legacyRebootId` (`getReboot`).
   */
  lookUpEvent(key: string, legacyRebootId: string): Promise<{ seen: boolean; rebootId?: string; legacy?: StoredReboot }>;
  /**
   * Maps an event key to `rebootId` unless it maps to a reboot already (a conditional put); returns
   * the id the key maps to after the call, ours or the one a first delivery wrote.
   */
  mapEventToReboot(key: string, rebootId: string, ttlSeconds: number): Promise<string>;
  /**
   * `mapEventToReboot` without the read-back: true when the key now maps to `rebootId`, false when it
   * mapped to a reboot already (the put wrote nothing; the caller reads or has read that mapping).
   */
  tryMapEventToReboot(key: string, rebootId: string, ttlSeconds: number): Promise<boolean>;
  /** The answer stored for an idempotency key, if it has not expired. */
  getIdempotentAnswer(key: string): Promise<IdempotentAnswer | undefined>;
  /** Stores the answer unless one is stored (first wins); returns `answer` itself when it was stored, else the first. */
  putIdempotentAnswer(key: string, answer: IdempotentAnswer, ttlSeconds: number): Promise<IdempotentAnswer>;
}

/** What a request with an `Idempotency-Key` was answered, kept to answer its repeats the same. */
export interface IdempotentAnswer {
  status: number;
  body: unknown;
  at: string;
}

/** What a caller is about to look up in the inventory, so a stored inventory reads only those items. */
export interface InventoryHint {
  /** SHA-256 (hex) of the caller's token: its owner's node (every node for the operator). */
  tokenHash?: string;
  nodes?: readonly string[];
}

export interface EventQueue {
  /** Resolves only once every event is durably stored by the queue. */
  send(events: NativeEvent[]): Promise<void>;
}

/** Why the ingest path last failed on a queue message (kept so the DLQ listing can say why a message is there). */
export interface IngestFailure {
  /** The event's dedupKey, or `message:<queue message id>` when the body is not a native event. */
  key: string;
  messageId: string;
  reason: string;
  /** ApproximateReceiveCount of the failed receive. */
  receiveCount: number;
  at: string;
}

export interface IngestFailureLog {
  record(f: IngestFailure): Promise<void>;
  get(keys: string[]): Promise<Map<string, IngestFailure>>;
}

/** A message parked in the ingest DLQ. */
export interface DeadLetter {
  messageId: string;
  /** What the body says about the event, or null when the body is not a native event. */
  event: { id: string | null; node: string | null; type: string | null; xpu: string | null; dedupKey: string | null } | null;
  /** Receives in the ingest queue before it was parked (from the failure record; else SQS's own count). */
  receiveCount: number;
  /** The last failure the ingest path recorded, or null when none was recorded. */
  reason: string | null;
  failedAt: string | null;
  /** When the message was first queued. */
  sentAt: string | null;
}

export interface RedriveResult {
  /** Message ids moved back to the ingest queue. */
  redriven: string[];
  /** Requested ids not found in the DLQ (already redriven, expired, or never there); none when `more`. */
  notFound: string[];
  /** Stopped at `stopAt` before the walk was over: messages (or requested ids) may be left; ask again. */
  more?: boolean;
}

/** The ingest queue's dead-letter queue: peek at its messages and move them back. */
export interface DeadLetterQueue {
  list(limit: number): Promise<DeadLetter[]>;
  /**
   * Moves the named messages (all, without ids) back to the ingest queue; past `stopAt` (epoch ms) it
   * moves no further message (at least one per call, so repeated calls always get through).
   */
  redrive(ids?: readonly string[], opts?: { stopAt?: number }): Promise<RedriveResult>;
}

export type { WorkflowKind } from '../core/workflow-io.ts';
import type { WorkflowKind } from '../core/workflow-io.ts';

export interface Workflows {
  /** Idempotent on `name`: starting an execution that exists already is not an error. */
  start(kind: WorkflowKind, name: string, input: unknown): Promise<void>;
  /** Wakes a callback Task; a token that is no longer waiting is ignored (false). */
  wake(token: string, output: unknown): Promise<boolean>;
  /**
   * Fails a callback Task with a literal error name that its Catch routes on (a branch without a
   * Choice state, hence without a billed transition); a token no longer waiting is ignored (false).
   */
  fail(token: string, error: string, cause: string): Promise<boolean>;
  heartbeat(token: string): Promise<boolean>;
  /** Where an execution is: RUNNING, how it ended, or NOT_FOUND (never started, or gone). */
  describe(kind: WorkflowKind, name: string): Promise<WorkflowExecutionState>;
}

export interface WorkflowExecutionState {
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'PENDING_REDRIVE' | 'NOT_FOUND';
  error?: string;
  cause?: string;
}

/** Lets a long poll return as soon as a command is written, instead of polling the table. */
export interface CommandSignal {
  /**
   * `commands`: what the caller just wrote for this agent, when it has them at hand. A signal that shares
   * memory with the long polls (local) hands them over, so the woken poll need not read them back.
   */
  notify(agent: string, commands?: StoredCommand[]): void;
  /**
   * Resolves when notified (with the commands the notifier passed, if any and in-process), when a claim
   * hands it commands (`HandedCommands`), or after `ms`.
   */
  wait(agent: string, ms: number, signal?: AbortSignal): Promise<StoredCommand[] | HandedCommands | undefined>;
  /**
   * Takes one of the agent's parked long polls for the caller alone (docs/command-delivery.md): the caller
   * writes its commands already marked delivered to that poll, then hands them over, and the poll answers
   * without a write or a read of its own. Only a signal sharing memory with the polls (local) has it; none
   * parked: undefined, and the caller writes the commands pending and notifies.
   */
  claim?(agent: string): PollClaim | undefined;
}

/** Commands stored already marked delivered to the one poll that claimed them: it answers with them as they are. */
export interface HandedCommands {
  delivered: StoredCommand[];
}

/** A parked long poll taken by `CommandSignal.claim`: no notify reaches it until it is handed, released or gone. */
export interface PollClaim {
  /** false once the poll is gone (its client went away, shutdown) or gave up waiting for the claimer. */
  readonly live: boolean;
  /** Answers the poll with commands stored as delivered to it; false (nobody got them) when it was no longer live. */
  hand(commands: StoredCommand[]): boolean;
  /** Gives the poll back unanswered: it looks for commands itself, as if woken. */
  release(): void;
}

export interface Metrics {
  count(name: string, value?: number, dimensions?: Record<string, string>): void;
}

export const noMetrics: Metrics = { count: () => {} };

export type { CommandType };

/** A reboot held back by a budget or a hold, as the queue lists it (oldest first). */
export interface QueuedEntry {
  rebootId: string;
  node: string;
  queuedAt: string;
}

/**
 * Disruption budgets (docs/fleet-safety.md): one counter item per budget (domain and value) with the nodes
 * unavailable in it. Taken by conditional writes, never read-then-write, so concurrent notices in
 * one rack cannot overshoot; without transactions (dynalite has none) a node's budgets are taken
 * one after the other and given back when one is full.
 */
export interface BudgetStore {
  /**
   * Takes a slot of each budget for the node on behalf of a reboot (a node with a reboot in flight
   * already costs no second slot). `force` takes them even when full: crashes, unannounced reboots
   * and the queue's cap are never held, but count. Idempotent by reboot id.
   */
  acquireBudgets(slots: readonly BudgetSlot[], node: string, rebootId: string, opts: { force: boolean }): Promise<AcquireResult>;
  /** Gives back a reboot's slots; the node stays unavailable while another reboot of it holds them. Idempotent. */
  releaseBudgets(keys: readonly string[], node: string, rebootId: string): Promise<void>;
  /** Who is unavailable in each budget that has an item (all of them without `keys`). */
  budgetUsage(keys?: readonly string[]): Promise<Map<string, string[]>>;
  enqueueReboot(entry: QueuedEntry): Promise<void>;
  dequeueReboot(entry: QueuedEntry): Promise<void>;
  /** Queued reboots, oldest first. */
  queuedReboots(): Promise<QueuedEntry[]>;
}

/** Operator holds (docs/fleet-safety.md). */
export interface HoldStore {
  putHold(hold: Hold): Promise<void>;
  /** Every stored hold, expired ones included (the caller knows the time). */
  listHolds(): Promise<Hold[]>;
  /** The deleted hold, or undefined when there was none. */
  deleteHold(id: string): Promise<Hold | undefined>;
}
