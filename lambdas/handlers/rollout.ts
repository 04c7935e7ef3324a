// The Lambdas behind workflows/rollout.asl.json (tick, wait, fail) and the hook that wakes a rollout when its reboot ends.
import { z } from 'zod';
import { agentIdOf, type InventoryIndex } from '../core/inventory.ts';
import { isEnded, type StoredReboot } from '../core/reboot.ts';
import {
  isInFlight,
  isItemEnded,
  observeItem,
  rolloutCommandId,
  rolloutExecutionName,
  rolloutGenerationOf,
  rolloutTick,
  TICKS_PER_EXECUTION,
  type Observation,
  type Rollout,
  type RolloutItem,
  type RolloutItemState,
  type RolloutStatus,
  type StartGate,
  type TickNext,
} from '../core/rollout.ts';
import type { NativeEvent, NodeDef } from '../core/types.ts';
import { COORDINATOR } from '../core/principal.ts';
import { isWithinWindows, nextWindowOpening } from '../core/windows.ts';
import type { StoredCommand } from '../ports/index.ts';
import type { RolloutStore } from '../ports/rollouts.ts';
import type { Deps } from './deps.ts';
import { rolloutBudgetGate } from './fleet-seams.ts';
import { releasePlan } from './rollout-claims.ts';
import {
  RolloutAwaitInput as AwaitInput,
  RolloutFailInput as FailInput,
  RolloutTickInput as TickInput,
  rolloutWorkflowInput,
} from '../core/workflow-io.ts';

export class RolloutNotFound extends Error {
  override readonly name = 'RolloutNotFound';
}
export class InvalidRolloutInput extends Error {
  override readonly name = 'InvalidRolloutInput';
}

export interface RolloutDeps extends Deps {
  rollouts: RolloutStore;
}

/** A reboot record tagged with the rollout that asked for it (from the announce's `data.rolloutId`, or matched by the tick). */
export type RolloutTagged = StoredReboot & { rolloutId?: string };

/** Rollout Tasks share the two workflow functions with the reboot workflows; their `action` tells them apart. */
export function isRolloutTask(payload: unknown): boolean {
  const action = (payload as { action?: unknown } | null)?.action;
  return typeof action === 'string' && action.startsWith('rollout-');
}

/** The workflow function: rollout Tasks to the rollout handler, everything else to the reboot one. */
export function withRolloutTasks(reboot: (p: unknown) => Promise<unknown>, rollout: (p: unknown) => Promise<unknown>) {
  return (payload: unknown) => (isRolloutTask(payload) ? rollout(payload) : reboot(payload));
}

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const res = schema.safeParse(input);
  if (!res.success) throw new InvalidRolloutInput(z.prettifyError(res.error));
  return res.data;
}

/** The reboot-xpu command's deadline: the node's command timeout after it was sent. */
function commandDeadline(node: NodeDef | undefined, it: RolloutItem): string | undefined {
  if (!it.sentAt) return undefined;
  return new Date(Date.parse(it.sentAt) + (node?.policy.xpuReboot.commandSeconds ?? 600) * 1000).toISOString();
}

/** A reboot of this item's xPU that the rollout caused: tagged with it, or planned and received after the command went out. */
function matches(r: RolloutTagged, rollout: Rollout, it: RolloutItem): boolean {
  if (r.kind !== 'xpu' || r.xpu !== it.xpu) return false;
  if (r.rolloutId) return r.rolloutId === rollout.id;
  // Announced through a BMC: no rollout id travels with it. The coordinator's own receive time orders it.
  return r.mode === 'planned' && !!it.sentAt && (r.history[0]?.at ?? r.notifiedAt) >= it.sentAt;
}

export function createRolloutTasks(deps: RolloutDeps, opts: { ticksPerExecution?: number } = {}) {
  const budget = rolloutBudgetGate(deps);
  const ticksPerExecution = opts.ticksPerExecution ?? TICKS_PER_EXECUTION;

  /** Starts the execution of a rollout's generation (again: by name, so a repeat starts nothing new). */
  async function continueAs(r: Rollout, generation: number): Promise<void> {
    await deps.workflows.start('rollout', rolloutExecutionName(r.id, generation), rolloutWorkflowInput(r.id));
  }

  async function load(id: string): Promise<Rollout> {
    const r = await deps.rollouts.getRollout(id);
    if (!r) throw new RolloutNotFound(`rollout ${id} does not exist`);
    return r;
  }

  /** What became of an in-flight item: its reboot, or its command's fate. Withdraws an undelivered command of a cancelled rollout. */
  async function observe(r: Rollout, it: RolloutItem): Promise<Observation> {
    const agent = agentIdOf(it.node, it.xpu);
    let reboot: RolloutTagged | undefined;
    let cmd: StoredCommand | undefined;
    if (it.rebootId) reboot = await deps.store.getReboot(it.rebootId);
    else {
      // The reboot that holds the xPU's claim first (one read); the node's recent reboots when no claim
      // shows it (ended already, or held back without a claim). Also while reboot-xpu has no result: an
      // xPU that announced and went down at once may never report it, and its ended reboot is the answer.
      const holder = (await deps.store.getNodeState(it.node)).xpus[it.xpu];
      const held = holder ? ((await deps.store.getReboot(holder)) as RolloutTagged | undefined) : undefined;
      if (held && matches(held, r, it)) reboot = held;
      else if (it.commandId) cmd = await deps.store.getCommand(agent, it.commandId);
      if (!reboot && cmd) {
        const recent = await deps.store.listReboots({ node: it.node, limit: 20 });
        reboot = (recent.items as RolloutTagged[]).find((x) => matches(x, r, it));
      }
      // Tag it, so that its end wakes this rollout even when the announce came through a BMC.
      if (reboot && !reboot.rolloutId && !reboot.endedAt)
        await deps.store.updateReboot(reboot.id, (x: RolloutTagged) => (x.rolloutId ? null : Object.assign(x, { rolloutId: r.id })));
    }
    if (reboot) return { reboot: { id: reboot.id, status: reboot.status, endedAt: reboot.endedAt } };
    if (!it.commandId) return {};
    cmd ??= await deps.store.getCommand(agent, it.commandId);
    if (r.status === 'cancelled' && cmd?.status === 'pending') {
      const res = await deps.store.updateCommand(agent, it.commandId, (c) =>
        c.status === 'pending'
          ? { ...c, status: 'timed-out', finishedAt: deps.clock.now().toISOString(), output: 'withdrawn: the rollout was cancelled' }
          : null,
      );
      if (res?.changed) return { commandStatus: 'withdrawn' };
      cmd = res?.command;
    }
    return { commandStatus: cmd?.status };
  }

  /** Windows first (pure), then budgets (the store). */
  async function gate(node: NodeDef | undefined, index: InventoryIndex, now: Date, starting: readonly string[]): Promise<StartGate> {
    if (!node) return { ok: false, why: 'the node is no longer in the inventory' };
    const windows = node.policy.windows;
    if (!isWithinWindows(windows, now)) {
      const opens = nextWindowOpening(windows, now);
      return { ok: false, why: 'outside its maintenance window', ...(opens ? { retryAt: opens.toISOString() } : {}) };
    }
    return budget(node, index, starting);
  }

  /**
   * xPUs of this rollout's pending items that another rollout still has in flight: a cancelled (or
   * paused) rollout's reboots run to their end, and a rollout started over the same xPUs meanwhile took
   * over their claims. The list only says which rollouts to read (its index may lag); each is then read
   * consistently. An ended rollout (endedAt) has nothing in flight, and a cancelled one's in-flight set
   * only shrinks, so what this finds is never less than what still runs.
   */
  async function othersInFlight(r: Rollout): Promise<Map<string, { rolloutId: string; status: RolloutStatus; state: RolloutItemState }>> {
    const found = new Map<string, { rolloutId: string; status: RolloutStatus; state: RolloutItemState }>();
    const key = (it: { node: string; xpu: string }) => `${it.node}/${it.xpu}`;
    const wanted = new Set(r.items.filter((it) => it.state === 'pending').map(key));
    if (wanted.size === 0) return found;
    const candidates = (await deps.rollouts.listRollouts(100)).filter(
      (o) => o.id !== r.id && o.status !== 'completed' && !o.endedAt && o.items.some((it) => wanted.has(key(it))),
    );
    for (const c of candidates) {
      const o = await deps.rollouts.getRollout(c.id);
      if (!o || o.endedAt) continue;
      for (const it of o.items)
        if (isInFlight(it) && wanted.has(key(it))) found.set(key(it), { rolloutId: o.id, status: o.status, state: it.state });
    }
    return found;
  }

  /** The reboot under way on this xPU (from any source), if any: a reboot-xpu now would only join it. */
  async function rebootUnderWay(it: RolloutItem): Promise<StoredReboot | undefined> {
    const holder = (await deps.store.getNodeState(it.node)).xpus[it.xpu];
    if (!holder) return undefined;
    const reboot = await deps.store.getReboot(holder);
    return reboot && !isEnded(reboot.status) ? reboot : undefined;
  }

  /**
   * Items of `before` that this tick ended: the rollout now holding their xPU's claim (one started while
   * this one, cancelled, still had them in flight) waits for them; wake it rather than leave it to its
   * fallback look.
   */
  async function wakeWaiters(before: Rollout, after: Rollout): Promise<void> {
    for (const [i, it] of after.items.entries()) {
      if (!isItemEnded(it) || !before.items[i] || !isInFlight(before.items[i])) continue;
      try {
        const claim = await deps.rollouts.getXpuClaim(it.node, it.xpu);
        if (!claim || claim.rolloutId === after.id) continue;
        const waiting = await deps.rollouts.getRollout(claim.rolloutId);
        if (waiting?.waiter) await deps.workflows.wake(waiting.waiter.token, { signal: 'xpu-free', node: it.node, xpu: it.xpu });
      } catch (err) {
        deps.logger.warn('could not wake the rollout waiting for an xPU', {
          rolloutId: after.id,
          xpu: `${it.node}/${it.xpu}`,
          error: String(err),
        });
      }
    }
  }

  /** Writes the reboot-xpu command of an item (idempotent: its id derives from rollout and position). */
  async function send(r: Rollout, i: number, node: NodeDef | undefined) {
    const it = r.items[i];
    const agent = agentIdOf(it.node, it.xpu);
    const noticeSeconds = r.noticeSeconds ?? node?.policy.xpuReboot.noticeSeconds ?? 300;
    const cmd: StoredCommand = {
      id: it.commandId ?? rolloutCommandId(r.id, i),
      type: 'reboot-xpu',
      // Agents see the rollout's id where a reboot's would be: no reboot exists before the xPU announces.
      rebootId: r.id,
      node: it.node,
      xpu: it.xpu,
      args: { reason: r.reason, noticeSeconds, rolloutId: r.id },
      deadline: commandDeadline(node, it) ?? deps.clock.now().toISOString(),
      agent,
      step: 'rollout',
      status: 'pending',
      noticePhase: false,
      createdAt: it.sentAt ?? deps.clock.now().toISOString(),
    };
    // With the command: in AWS its wake-up then waits until a fetch would find it (adapters/iot-wake.ts).
    if (await deps.store.putCommand(cmd)) deps.signal.notify(agent, [cmd]);
  }

  async function tick(payload: unknown): Promise<{ next: TickNext | 'continued'; waitSeconds: number; inFlight: number }> {
    const p = parse(TickInput, payload);
    const r = await load(p.rolloutId);
    // Which execution ticks; undefined for a caller that does not say (it is never handed over).
    const generation = p.execution ? rolloutGenerationOf(r.id, p.execution) : undefined;
    const continued = async (to: Rollout) => {
      // A replaced execution (a late retry of its last tick) only makes sure its successor runs, and ends.
      await continueAs(to, to.generation ?? 1);
      return { next: 'continued' as const, waitSeconds: 0, inFlight: to.items.filter(isInFlight).length };
    };
    if (generation !== undefined && generation < (r.generation ?? 1)) return continued(r);
    const index = await deps.inventory();
    const now = deps.clock.now();
    const obs = new Map<number, Observation>();
    const deadlines = new Map<number, string>();
    for (const [i, it] of r.items.entries()) {
      if (!isInFlight(it)) continue;
      const d = commandDeadline(index.node(it.node), it);
      if (d) deadlines.set(i, d);
      obs.set(i, await observe(r, it));
    }
    // Gates of the first pending items, as many as could start; the tick stops at the first shut one.
    const gates = new Map<number, StartGate>();
    // Pending items whose xPU still reboots for another rollout or on its own: they wait, and take a slot.
    const busy = new Map<number, string>();
    if (r.status === 'running') {
      let look = r.maxUnavailable;
      // Nodes told to reboot whose reboot has not shown up yet, and those this tick starts: they take budget slots soon.
      // (An item whose reboot showed up is counted by the budget items themselves, or has ended.)
      const starting = r.items.filter((it, i) => it.state === 'sent' && !obs.get(i)?.reboot).map((it) => it.node);
      const others = await othersInFlight(r);
      for (const [i, it] of r.items.entries()) {
        const other = it.state === 'pending' ? others.get(`${it.node}/${it.xpu}`) : undefined;
        if (!other) continue;
        busy.set(
          i,
          other.state === 'sent'
            ? `rollout ${other.rolloutId} (${other.status}) asked it to reboot; waiting for that reboot to end`
            : `its reboot for rollout ${other.rolloutId} (${other.status}) is still under way; waiting for it to end`,
        );
        // Asked by the other rollout, not announced yet: its node takes a budget slot soon.
        if (other.state === 'sent') starting.push(it.node);
      }
      for (const [i, it] of r.items.entries()) {
        if (look <= 0) break;
        if (it.state !== 'pending') continue;
        if (busy.has(i)) {
          look--;
          continue;
        }
        const running = await rebootUnderWay(it);
        if (running) {
          busy.set(i, `reboot ${running.id} (${running.status}) is still under way; waiting for it to end`);
          look--;
          continue;
        }
        const g = await gate(index.node(it.node), index, now, starting);
        gates.set(i, g);
        look--;
        if (!g.ok) break;
        starting.push(it.node);
      }
    }
    let result: ReturnType<typeof rolloutTick> | undefined;
    let superseded = false;
    let handOver = false;
    const res = await deps.rollouts.updateRollout(r.id, (cur) => {
      superseded = generation !== undefined && generation < (cur.generation ?? 1);
      if (superseded) return null;
      result = rolloutTick(cur, obs, gates, deadlines, now, busy);
      for (const i of result.started) result.rollout.items[i].commandId = rolloutCommandId(cur.id, i);
      // The token that woke this tick is spent.
      result.rollout.waiter = null;
      // Counted per execution; the one that has ticked its share hands over instead of waiting again.
      handOver = false;
      if (generation !== undefined) {
        const ticks = (cur.generation ?? 1) === generation ? (cur.ticks ?? 0) + 1 : 1;
        const goesOn = result.next === 'wait-reboots' || result.next === 'wait-window';
        handOver = goesOn && ticks >= ticksPerExecution;
        Object.assign(result.rollout, handOver ? { generation: generation + 1, ticks: 0 } : { generation, ticks });
      }
      return result.rollout;
    });
    if (res && superseded) return continued(res.rollout);
    if (!res || !result) throw new RolloutNotFound(`rollout ${r.id} disappeared`);
    const stored = res.rollout;
    // Every item still waiting for its reboot gets its command (again: a crash may have come between the two writes).
    await Promise.all(stored.items.map((it, i) => (it.state === 'sent' ? send(stored, i, index.node(it.node)) : undefined)));
    if (result.started.length)
      deps.logger.info('rollout started reboots', {
        rolloutId: r.id,
        xpus: result.started.map((i) => `${stored.items[i].node}/${stored.items[i].xpu}`),
      });
    await wakeWaiters(r, stored);
    // Ended with nothing in flight: its xPUs are free for other rollouts (a claim left here is superseded anyway).
    if (result.next === 'completed' || result.next === 'cancelled' || result.next === 'paused')
      await releasePlan(deps.rollouts, stored.items, stored.id).catch((err) =>
        deps.logger.warn('rollout claims not released', { rolloutId: r.id, error: String(err) }),
      );
    if (handOver) {
      deps.logger.info('rollout handed to its next execution', { rolloutId: r.id, generation: stored.generation });
      return continued(stored);
    }
    return { next: result.next, waitSeconds: result.waitSeconds, inFlight: stored.items.filter(isInFlight).length };
  }

  /**
   * The workflow parks its token. Registering second, it looks once more at what it waits for:
   * a reboot that ended, or a cancel, between the tick and now wakes it at once (no lost wake-up).
   */
  async function register(payload: unknown): Promise<{ registered: boolean }> {
    const p = parse(AwaitInput, payload);
    const at = deps.clock.now().toISOString();
    let late = false;
    const res = await deps.rollouts.updateRollout(p.rolloutId, (r) => {
      // A slow registration from a wait the workflow has already left must not replace the live token.
      late = !!(r.waiter?.enteredAt && p.enteredAt && Date.parse(r.waiter.enteredAt) > Date.parse(p.enteredAt));
      return late ? null : { ...r, waiter: { token: p.taskToken, at, ...(p.enteredAt ? { enteredAt: p.enteredAt } : {}) } };
    });
    if (!res) throw new RolloutNotFound(`rollout ${p.rolloutId} does not exist`);
    if (late) return { registered: false };
    const r = res.rollout;
    let due = r.status === 'cancelled';
    if (!due) {
      const index = await deps.inventory();
      const now = deps.clock.now();
      for (const it of r.items.filter(isInFlight)) {
        const o = await observe({ ...r, status: 'running' }, it);
        if (isItemEnded(observeItem(it, o, now, commandDeadline(index.node(it.node), it)))) {
          due = true;
          break;
        }
      }
    }
    if (due) await deps.workflows.wake(p.taskToken, { signal: 'look-again' });
    return { registered: true };
  }

  async function fail(payload: unknown): Promise<{ ok: true }> {
    const p = parse(FailInput, payload);
    const at = deps.clock.now().toISOString();
    const e = p.error as { Error?: string; Cause?: string } | undefined;
    await deps.rollouts.updateRollout(p.rolloutId, (r) =>
      r.status === 'completed' || r.status === 'cancelled'
        ? null
        : {
            ...r,
            status: 'paused',
            waiter: null,
            endedAt: r.endedAt ?? at,
            history: [
              ...r.history,
              {
                at,
                phase: 'workflow-error',
                detail: `the rollout workflow gave up${e?.Error ? `: ${e.Error}${e.Cause ? ` (${String(e.Cause).slice(0, 300)})` : ''}` : ''}`,
                by: COORDINATOR,
              },
            ],
          },
    );
    deps.metrics.count('RolloutFailed');
    return { ok: true };
  }

  return async (payload: unknown): Promise<unknown> => {
    const action = (payload as { action?: string }).action;
    if (action === 'rollout-tick') return tick(payload);
    if (action === 'rollout-await') return register(payload);
    if (action === 'rollout-fail') return fail(payload);
    throw new InvalidRolloutInput(`unknown rollout action ${JSON.stringify(action)}`);
  };
}

/** A new reboot from an announce with `data.rolloutId` (the reboot-xpu hook passes it on) belongs to that rollout. */
export function tagRollout(reboot: StoredReboot, ev: NativeEvent): StoredReboot {
  const id = ev.data?.rolloutId;
  return reboot.mode === 'planned' && typeof id === 'string' && id ? ({ ...reboot, rolloutId: id } as RolloutTagged) : reboot;
}

/**
 * Called where a reboot ends (the workflow step that completes or fails it): wakes the rollout
 * that waits for it, so the next xPU starts at once. Best effort: the rollout also looks again on its own.
 */
export async function wakeRolloutOf(deps: Deps & { rollouts?: RolloutStore }, reboot: StoredReboot | undefined): Promise<void> {
  const id = (reboot as RolloutTagged | undefined)?.rolloutId;
  if (!id || !deps.rollouts) return;
  try {
    const r = await deps.rollouts.getRollout(id);
    if (r?.waiter) await deps.workflows.wake(r.waiter.token, { signal: 'reboot-ended', rebootId: reboot!.id });
  } catch (err) {
    deps.logger.warn('could not wake the rollout of a reboot', { rolloutId: id, rebootId: reboot!.id, error: String(err) });
  }
}
