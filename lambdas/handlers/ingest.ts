// Applies one native event from the ingest queue: starts, joins or signals reboots; drops with a reason.
import {
  afterHostBack,
  awaitsItsRequest,
  hostIsDown,
  ofEndedHostReboot,
  KEEP_SIGNAL_MS,
  hostSignal,
  failedRebootTakesReady,
  joinHostReboot as joinHost,
  onHostRebootRequest,
  onNotice,
  onXpuCrashed,
  requestOfEndedHostReboot,
  sameOutage,
  sourceOf,
  tenantChangeOf,
  unannouncedHostReboot,
  unannouncedReboot,
  xpuSignal,
} from '../core/model.ts';
import { decideHostReboot, history, newHostReboot, newXpuReboot, type StoredReboot } from '../core/reboot.ts';
import type { NativeEvent, NodeDef } from '../core/types.ts';
import type { NodeStateRecord } from '../ports/index.ts';
import type { Deps } from './deps.ts';
import { applyStep } from './effects.ts';
import { tagRollout } from './rollout.ts';
import { lookUpStart, rebootIdForEvent, type StartOfEvent } from './reboot-ids.ts';
import { ClaimReleased, claimAhead, releaseIfDangling } from './claim-ahead.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import { asProvisioned, type Hold } from '../core/budgets.ts';
import { activeHolds, admitHostReboot, admitNewReboot } from './fleet.ts';
import { sharedRead } from './shared-read.ts';
import { clockSampleOf, latestOf, placeOnOurClock } from '../core/bmc-clock.ts';
import { hostWorkflowInput, xpuWorkflowInput } from '../core/workflow-io.ts';

/** A claim's reboot is not stored yet: thrown so the queue retries the event instead of losing it. */
export class HolderNotStored extends Error {
  override readonly name = 'HolderNotStored';
}

export type IngestOutcome =
  | { kind: 'duplicate' }
  | { kind: 'started'; rebootId: string }
  | { kind: 'joined'; rebootId: string }
  | { kind: 'denied'; rebootId: string }
  | { kind: 'applied'; rebootId: string }
  | { kind: 'kept'; reason: string }
  | { kind: 'dropped'; reason: string };

/** How long an event key is remembered: longer than any BMC or queue retries it. */
export const DEDUP_TTL_SECONDS = 7 * 24 * 3600;
/** How long a signal that found no reboot is kept for the reboot it belongs to (docs/reboot-model.md: at least 10 minutes). */
export const KEEP_SIGNAL_SECONDS = KEEP_SIGNAL_MS / 1000;

// The start inputs moved to core/workflow-io.ts (one home for what goes into each workflow).
export { hostWorkflowInput, xpuWorkflowInput } from '../core/workflow-io.ts';

export function createIngestHandler(deps: Deps) {
  /** Ingest calls begun so far: a shared read serves only calls that began before it started. */
  let begun = 0;
  const holds = sharedRead(
    () => begun,
    () => activeHolds(deps),
  );

  async function drop(ev: NativeEvent, reason: string): Promise<IngestOutcome> {
    deps.logger.warn('event dropped', { eventId: ev.id, type: ev.type, node: ev.node, reason });
    deps.metrics.count('EventsDropped');
    await deps.store.recordDropped(ev, reason);
    return { kind: 'dropped', reason };
  }

  /**
   * The reboot that holds a claim. Its record can lag its claim by a moment (its creator is between
   * the two writes, maybe in another ingest worker): wait for it rather than lose what joins it, and
   * leave the event to the queue's retry if it does not show up.
   */
  async function holderOf(rebootId: string, node: string): Promise<StoredReboot> {
    for (let attempt = 0; attempt < 40; attempt++) {
      const r = await deps.store.getReboot(rebootId);
      if (r) return r;
      // Or a claim given back since, or taken ahead by a delivery that died before giving it back
      // (released now): nothing to wait for, start over.
      if (attempt === 0 && (await releaseIfDangling(deps, node, rebootId)))
        throw new ClaimReleased(`claim of ${rebootId} on ${node} is gone or was never used: starting over`);
      await new Promise((res) => setTimeout(res, 25));
    }
    throw new HolderNotStored(`reboot ${rebootId} holds its claim but is not stored yet; the event will be retried`);
  }

  /**
   * An xPU announced a reboot (or crashed) while a host reboot that excludes xPU reboots holds its
   * node: the host reboot power-cycles or waits for it anyway, so it joins that one and waits for
   * its xpu.ready there, instead of racing it with a reboot of its own.
   */
  async function joinHostReboot(
    host: StoredReboot,
    ev: NativeEvent,
    node: NodeDef,
    mode: 'planned' | 'crash',
  ): Promise<IngestOutcome | undefined> {
    if (host.endedAt) return undefined; // ending: its claim is about to go, try again
    await applyStep(deps, host.id, (r) => joinHost(r, { ...ev, xpu: ev.xpu }, mode), node);
    return { kind: 'joined', rebootId: host.id };
  }

  /**
   * The last reboot of an xPU, when it ended already and the event belongs to it: a notice or
   * crash of the same outage as an unannounced reboot, or a late signal of any ended one.
   */
  async function endedRebootOf(state: NodeStateRecord, xpu: string, ev: NativeEvent): Promise<StoredReboot | undefined> {
    const id = state.lastXpuReboots?.[xpu];
    if (!id || state.xpus[xpu] === id) return undefined;
    const last = await deps.store.getReboot(id);
    return last && sameOutage(last, ev) ? last : undefined;
  }

  /**
   * The reboot of the xPU that failed for want of its ready, when `ev` is that ready (model.ts
   * failedRebootTakesReady). Read only for a ready received before that reboot ended: none in the
   * usual flow, where no reboot failed so.
   */
  async function failedRebootAwaiting(state: NodeStateRecord, xpu: string, ev: NativeEvent): Promise<StoredReboot | undefined> {
    const awaiting = state.awaitingReady?.[xpu];
    if (ev.type !== 'xpu.ready' || !awaiting || Date.parse(ev.receivedAt) >= Date.parse(awaiting.endedAt)) return undefined;
    const failed = await deps.store.getReboot(awaiting.rebootId);
    return failed && failedRebootTakesReady(failed, ev) ? failed : undefined;
  }

  /**
   * A replay of the event that started `existing` (its id maps to it): its workflow is made sure to
   * run (StartExecution of a running execution is idempotent), nothing more; ended, a duplicate.
   */
  async function replayOf(existing: StoredReboot, node: NodeDef): Promise<IngestOutcome> {
    if (existing.endedAt) return { kind: 'duplicate' };
    if (existing.kind === 'host') await deps.workflows.start('host-reboot', existing.id, hostWorkflowInput(existing, node));
    else await deps.workflows.start('xpu-reboot', existing.id, xpuWorkflowInput(existing, node, deps.clock.now()));
    return { kind: 'started', rebootId: existing.id };
  }

  async function startXpuReboot(
    ev: NativeEvent,
    node: NodeDef,
    xpu: string,
    mode: 'planned' | 'crash',
    start: StartId,
  ): Promise<IngestOutcome> {
    const { id } = start;
    const existing = await start.found;
    // A new planned reboot is checked against the holds after its claim: read them beside the claim
    // instead of after it (a hold placed in those few ms races the event either way).
    const holdsRead = !existing && mode === 'planned' ? start.holdsRead : undefined;
    if (existing) return replayOf(existing, node);
    const exclusive = node.policy.hostReboot.denyWhile.includes('xpu-rebooting');
    // Retried only when the claims changed between reading and writing them.
    for (let attempt = 0; attempt < 5; attempt++) {
      // The claim taken beside the look-up, once (on a retry of this loop, the claims changed since).
      const ahead = start.claim;
      start.claim = undefined;
      // (Failed, it is taken again the plain way: its holder may have given it back since.)
      const claim = ahead?.ok ? ahead : await deps.store.claimXpu(node.id, xpu, id);
      if (!claim.ok) {
        const holder = claim.state.xpus[xpu];
        if (!holder) continue; // released in between
        await holderOf(holder, node.id);
        const onOurs = placedOnOurClock(ev, claim.state);
        await applyStep(deps, holder, (r) => (mode === 'crash' ? onXpuCrashed(r, onOurs) : onNotice(r, onOurs)), node);
        return { kind: 'joined', rebootId: holder };
      }
      // The claim is ours. claimHost takes the host only while no xPU claim exists, so a host claim
      // seen now was taken before ours: that host reboot goes first, and this xPU reboot joins it
      // while the host is down. Once the host is back it runs again: a reboot of its own.
      const state = claim.state ?? (await deps.store.getNodeState(node.id));
      if (state.host && exclusive) {
        const host = await holderOf(state.host, node.id);
        if (hostIsDown(host)) {
          await deps.store.release(node.id, 'xpu', xpu, id, false);
          const joined = await joinHostReboot(host, ev, node, mode);
          if (joined) return joined;
          continue;
        }
      }
      // The notice (or crash) of an outage already recorded as an unannounced reboot, delivered after it.
      const onOurs = placedOnOurClock(ev, state);
      const before = await endedRebootOf(state, xpu, onOurs);
      if (before) {
        await deps.store.release(node.id, 'xpu', xpu, id, false);
        await applyStep(deps, before.id, (r) => xpuSignal(r, onOurs), node);
        return { kind: 'joined', rebootId: before.id };
      }
      // Rollouts: an announce made for a rollout carries its id; the reboot remembers it. Its tenant
      // (budget, holds) is the one the node is provisioned for, from the claim's state (docs/fleet-safety.md).
      const placed = asProvisioned(node, state.provisionedTenant);
      let reboot = await admitNewReboot(deps, node, tagRollout(newXpuReboot(id, placed, xpu, ev, mode), ev), holdsRead);
      if (state.host) reboot.history.push(history(ev.receivedAt, 'note', `host reboot ${state.host} of this node is in progress`));
      const created = await deps.store.createReboot(reboot);
      if (!created) reboot = (await deps.store.getReboot(id)) ?? reboot;
      // What was just written, handed to the first await (workflow-io.ts StartCopy): it reads neither again.
      const fresh = created ? { xpus: state.xpus } : undefined;
      await deps.workflows.start('xpu-reboot', id, xpuWorkflowInput(reboot, node, deps.clock.now(), fresh));
      deps.metrics.count('RebootsStarted', 1, { kind: 'xpu' });
      return { kind: 'started', rebootId: id };
    }
    throw new Error(`node ${node.id} claims kept changing while starting xPU reboot ${id}`);
  }

  async function startHostReboot(ev: NativeEvent, node: NodeDef): Promise<IngestOutcome> {
    const { id } = await rebootIdForEvent(deps, 'host', ev.dedupKey);
    const exclusive = node.policy.hostReboot.denyWhile.includes('xpu-rebooting');
    // Retry only if the claims changed under us between the decision and the claim.
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await deps.store.getReboot(id);
      if (existing) {
        await deps.workflows.start('host-reboot', id, hostWorkflowInput(existing, node));
        return existing.decision === 'denied' ? { kind: 'denied', rebootId: id } : { kind: 'started', rebootId: id };
      }
      const state = await deps.store.getNodeState(node.id);
      // An xPU claim taken ahead by a delivery that died would deny (or join) this request forever.
      if (await anyDangling(node.id, state)) continue;
      // The request of a host reboot that ended already (it was sent before that reboot's host.ready).
      const last = !state.host && state.lastHostReboot ? await deps.store.getReboot(state.lastHostReboot) : undefined;
      if (last && requestOfEndedHostReboot(last, ev)) {
        await applyStep(deps, last.id, (r) => onHostRebootRequest(r, ev), node);
        return { kind: 'joined', rebootId: last.id };
      }
      let hostReprovisioning = false;
      let afterBack = false;
      if (state.host && state.host !== id) {
        const running = await deps.store.getReboot(state.host);
        hostReprovisioning = running?.waiter?.step === 'reprovision';
        // An unannounced host reboot's own request, delivered after its host.ready, joins it.
        afterBack = !!running && !awaitsItsRequest(running, ev) && afterHostBack(running, ev);
      }
      let decision = decideHostReboot(node, {
        host: state.host === id ? undefined : state.host,
        xpus: state.xpus,
        hostReprovisioning,
        afterHostBack: afterBack,
      });
      let budgetKeys: string[] = [];
      let budgetDenial: string | undefined;
      if (decision.kind === 'join') {
        await holderOf(decision.rebootId, node.id);
        await applyStep(deps, decision.rebootId, (r) => onHostRebootRequest(r, ev), node);
        return { kind: 'joined', rebootId: decision.rebootId };
      }
      if (decision.kind === 'allow') {
        const claim = await deps.store.claimHost(node.id, id, exclusive);
        if (!claim.ok) continue;
        // docs/fleet-safety.md: beyond a budget, or on a held node, the request is denied.
        const budget = await admitHostReboot(deps, node, id, state.provisionedTenant);
        if (budget.kind === 'deny') {
          await deps.store.release(node.id, 'host', null, id);
          decision = { kind: 'deny', reason: budget.reason };
          budgetDenial = budget.detail;
        } else budgetKeys = budget.keys;
      }
      const reboot = newHostReboot(
        id,
        node,
        ev,
        decision.kind === 'allow' ? { allowed: true } : { allowed: false, reason: decision.reason },
      );
      // The tenant the xPUs are provisioned for is the node's state, not the inventory's (docs/reboot-model.md).
      reboot.tenant = state.provisionedTenant ?? node.tenant;
      if (budgetKeys.length) reboot.budgetKeys = budgetKeys;
      if (budgetDenial) reboot.history.push(history(ev.receivedAt, 'note', `denied: ${budgetDenial}`));
      await deps.store.createReboot(reboot);
      if (decision.kind === 'allow') await applyKept(reboot.id, node);
      await deps.workflows.start('host-reboot', id, hostWorkflowInput(reboot, node));
      deps.metrics.count(decision.kind === 'deny' ? 'HostRebootsDenied' : 'RebootsStarted', 1, { kind: 'host' });
      return decision.kind === 'deny' ? { kind: 'denied', rebootId: id } : { kind: 'started', rebootId: id };
    }
    throw new Error(`node ${node.id} claims kept changing while deciding host reboot ${id}`);
  }

  /** Whether a claim taken ahead on the node's xPUs was dangling (now released) or changed: read the node again. */
  async function anyDangling(node: string, state: NodeStateRecord): Promise<boolean> {
    const ahead = Object.keys(state.claimsAhead ?? {}).filter((x) => state.xpus[x]);
    const found = await Promise.all(ahead.map((x) => deps.store.getReboot(state.xpus[x])));
    for (const [i, x] of ahead.entries()) if (!found[i] && (await releaseIfDangling(deps, node, state.xpus[x]))) return true;
    return false;
  }

  /** Host signals that came before their host reboot: applied now that it exists (docs/reboot-model.md). */
  async function applyKept(rebootId: string, node: NodeDef) {
    const kept = (await deps.store.keptSignals(node.id)).filter((k) => k.type === 'host.down' || k.type === 'host.ready');
    for (const k of kept) {
      const res = await applyStep(deps, rebootId, (r) => hostSignal(r, k), node);
      if (res?.changed) await deps.store.forgetSignal(k);
    }
  }

  /**
   * A host.ready for another tenant with no host reboot in progress (model.ts tenantChangeOf): an
   * unannounced host reboot, recorded and run at once. It already happened, so nothing holds or
   * denies it; it counts in the node's budgets. Its request, should one arrive after, joins it.
   */
  async function startUnannouncedHost(ev: NativeEvent, node: NodeDef, tenant: string): Promise<IngestOutcome> {
    const { id, fresh } = await rebootIdForEvent(deps, 'host', ev.dedupKey);
    const existing = fresh ? undefined : await deps.store.getReboot(id);
    if (existing) return replayOf(existing, node);
    const claim = await deps.store.claimHost(node.id, id, false);
    if (!claim.ok) {
      // A host reboot began in between: the ready is its.
      const holder = claim.state.host;
      if (!holder) throw new ClaimReleased(`host claim of ${node.id} changed while starting ${id}: starting over`);
      await holderOf(holder, node.id);
      await applyStep(deps, holder, (r) => hostSignal(r, ev), node);
      return { kind: 'applied', rebootId: holder };
    }
    const state = claim.state ?? (await deps.store.getNodeState(node.id));
    const base = newHostReboot(id, asProvisioned(node, state.provisionedTenant), ev, { allowed: true });
    let reboot = await admitNewReboot(deps, node, unannouncedHostReboot(base, ev, node, tenant).reboot);
    if (!(await deps.store.createReboot(reboot))) reboot = (await deps.store.getReboot(id)) ?? reboot;
    await applyKept(reboot.id, node);
    await deps.workflows.start('host-reboot', id, hostWorkflowInput(reboot, node));
    deps.metrics.count('RebootsStarted', 1, { kind: 'host' });
    deps.metrics.count('UnannouncedReboots');
    return { kind: 'started', rebootId: id };
  }

  /**
   * A BMC's stamped notice or crash, placed on our clock through the estimate the node state keeps for
   * its BMC, with that BMC's latest sample beside it (core/bmc-clock.ts; model.ts placedBeforeReady
   * decides with them). Other events as they are.
   */
  function placedOnOurClock(ev: NativeEvent, state: NodeStateRecord): NativeEvent {
    const est = state.clocks?.[sourceOf(ev)];
    const placed = placeOnOurClock(est, ev);
    const clockLatest = clockSampleOf(ev) && latestOf(est);
    return placed || clockLatest ? { ...ev, ...(placed ? { placed } : {}), ...(clockLatest ? { clockLatest } : {}) } : ev;
  }

  /**
   * This event's clock sample for its BMC (stamped Redfish records only; native events write nothing).
   * Written after the event was applied, so its own (maybe late) delivery never places it; beside the
   * dedup mark, so it adds no wait. A lost sample leaves the estimate as it was: the next one comes.
   */
  async function noteClock(ev: NativeEvent): Promise<void> {
    const sample = clockSampleOf(ev);
    if (!sample) return;
    try {
      await deps.store.noteClock(ev.node, sourceOf(ev), sample);
    } catch (err) {
      deps.logger.warn('clock sample not kept', { eventId: ev.id, node: ev.node, error: String(err) });
    }
  }

  async function keep(ev: NativeEvent, why: string): Promise<IngestOutcome> {
    await deps.store.keepSignal(ev, KEEP_SIGNAL_SECONDS);
    deps.logger.info('signal kept for its reboot', { eventId: ev.id, type: ev.type, node: ev.node, why });
    return { kind: 'kept', reason: why };
  }

  /** xpu.down / xpu.ready: to the xPU's reboot, the host reboot, a reboot that ended, or an unannounced reboot of its own. */
  async function xpuDownOrReady(ev: NativeEvent, node: NodeDef, xpu: string): Promise<IngestOutcome> {
    const state = await deps.store.getNodeState(node.id);
    let outcome: IngestOutcome | undefined;
    // The ready a failed reboot waited for, delivered behind later events: that reboot's, whatever came since.
    const failed = await failedRebootAwaiting(state, xpu, ev);
    if (failed) {
      await applyStep(deps, failed.id, (r) => xpuSignal(r, ev), node);
      outcome = { kind: 'applied', rebootId: failed.id };
    }
    const own = state.xpus[xpu];
    if (own && !outcome) {
      await holderOf(own, node.id);
      await applyStep(deps, own, (r) => xpuSignal(r, ev), node);
      outcome = { kind: 'applied', rebootId: own };
    }
    if (state.host) {
      // A host reset also power-cycles xPUs without persistent power: the host reboot waits for them.
      // (Where the policy lets an xPU reboot run beside a host reboot, both hear of the xPU.)
      await holderOf(state.host, node.id);
      await applyStep(deps, state.host, (r) => hostSignal(r, ev), node);
      outcome ??= { kind: 'applied', rebootId: state.host };
    }
    if (outcome) return outcome;
    // A late signal of a reboot that ended: an xPU back after its reboot failed for want of it, or
    // a down/ready reordered behind the other one of an unannounced reboot.
    const ended = await endedRebootOf(state, xpu, ev);
    if (ended) {
      await applyStep(deps, ended.id, (r) => xpuSignal(r, ev), node);
      return { kind: 'applied', rebootId: ended.id };
    }
    // The xPU power-cycled with the host, its signal delivered after the host reboot ended: that reboot's.
    const host = state.lastHostReboot ? await deps.store.getReboot(state.lastHostReboot) : undefined;
    if (host && ofEndedHostReboot(host, ev)) {
      await applyStep(deps, host.id, (r) => hostSignal(r, ev), node);
      return { kind: 'applied', rebootId: host.id };
    }
    return startUnannounced(ev, node, xpu);
  }

  /** The xPU went down or came back without notice: a reboot of its own, recorded at once. */
  async function startUnannounced(ev: NativeEvent, node: NodeDef, xpu: string): Promise<IngestOutcome> {
    const { id, fresh } = await rebootIdForEvent(deps, 'xpu', ev.dedupKey);
    const existing = fresh ? undefined : await deps.store.getReboot(id);
    if (existing) return replayOf(existing, node);
    const claim = await deps.store.claimXpu(node.id, xpu, id);
    if (!claim.ok) {
      // A reboot of the xPU began in between: the signal is its.
      const holder = claim.state.xpus[xpu];
      if (holder) {
        await holderOf(holder, node.id);
        await applyStep(deps, holder, (r) => xpuSignal(r, ev), node);
        return { kind: 'applied', rebootId: holder };
      }
    }
    // docs/fleet-safety.md: never held, but it counts in the node's budgets (and says when it goes beyond),
    // its tenant's being the one the node is provisioned for.
    const state = claim.state ?? (await deps.store.getNodeState(node.id));
    const placed = asProvisioned(node, state.provisionedTenant);
    let reboot = await admitNewReboot(deps, node, unannouncedReboot(newXpuReboot(id, placed, xpu, ev, 'planned'), ev).reboot);
    if (!(await deps.store.createReboot(reboot))) reboot = (await deps.store.getReboot(id)) ?? reboot;
    await deps.workflows.start('xpu-reboot', id, xpuWorkflowInput(reboot, node, deps.clock.now()));
    deps.metrics.count('RebootsStarted', 1, { kind: 'xpu' });
    deps.metrics.count('UnannouncedReboots');
    return { kind: 'started', rebootId: id };
  }

  async function apply(ev: NativeEvent, start?: StartId, inventory?: InventoryIndex): Promise<IngestOutcome> {
    const index = inventory ?? (await deps.inventory({ nodes: [ev.node] }));
    const node = index.node(ev.node);
    if (!node) return drop(ev, `node ${ev.node} is not in the inventory`);
    const xpu = ev.xpu ?? (node.xpus.length === 1 ? node.xpus[0].id : undefined);
    if (ev.type.startsWith('xpu.') && (!xpu || !node.xpus.some((x) => x.id === xpu)))
      return drop(ev, `node ${node.id} has no xPU ${ev.xpu ?? '(none named)'}`);
    if (xpu && ev.type.startsWith('xpu.')) ev = { ...ev, xpu };

    switch (ev.type) {
      case 'xpu.reboot.pending':
        return startXpuReboot(ev, node, xpu!, 'planned', start!);
      case 'xpu.crashed':
        return startXpuReboot(ev, node, xpu!, 'crash', start!);
      case 'xpu.down':
      case 'xpu.ready':
        return xpuDownOrReady(ev, node, xpu!);
      case 'host.reboot.requested':
        return startHostReboot(ev, node);
      case 'host.down':
      case 'host.ready': {
        const state = await deps.store.getNodeState(node.id);
        if (!state.host) {
          const tenant = tenantChangeOf(ev, state.provisionedTenant ?? node.tenant);
          if (tenant) return startUnannouncedHost(ev, node, tenant);
          return keep(ev, `no host reboot of ${node.id} is in progress yet`);
        }
        await holderOf(state.host, node.id);
        await applyStep(deps, state.host, (r) => hostSignal(r, ev), node);
        return { kind: 'applied', rebootId: state.host };
      }
    }
  }

  return async function ingest(received: NativeEvent): Promise<IngestOutcome> {
    // A placement is the ingest's own reading of the node state, never a field that came with the event.
    const { placed: _placed, clockLatest: _clockLatest, ...ev } = received;
    const order = ++begun;
    let start: StartId | undefined;
    let index: InventoryIndex | undefined;
    if (ev.type === 'xpu.reboot.pending' || ev.type === 'xpu.crashed') {
      // The node first (as apply would): its xPU is claimed beside the look-up, and its holds read there.
      index = await deps.inventory({ nodes: [ev.node] });
      const node = index.node(ev.node);
      const xpu = ev.xpu ?? (node?.xpus.length === 1 ? node.xpus[0].id : undefined);
      const known = node && xpu && node.xpus.some((x) => x.id === xpu) ? { node: node.id, xpu } : undefined;
      const holdsRead = known && ev.type === 'xpu.reboot.pending' ? holds.read(order) : undefined;
      holdsRead?.catch(() => {});
      const look = await lookUpStart(deps, ev.dedupKey, known && claimAhead(deps, known.node, known.xpu, ev.dedupKey));
      if (look.seen) return duplicate();
      start = { ...look, holdsRead };
    } else if (await deps.store.isEventSeen(ev.dedupKey)) return duplicate();
    // Every step above is idempotent (the event key maps to its reboot id), so a crash before this
    // mark only means the event is applied again on redelivery, to the same effect.
    let outcome: IngestOutcome;
    for (let attempt = 0; ; attempt++) {
      try {
        outcome = await apply(ev, start, index);
        break;
      } catch (err) {
        // A dangling claim was released in the way: once more, now that it is gone.
        if (!(err instanceof ClaimReleased) || attempt >= 3) throw err;
      }
    }
    await Promise.all([deps.store.markEventSeen(ev.dedupKey, DEDUP_TTL_SECONDS), noteClock(ev)]);
    return outcome;
  };

  function duplicate(): IngestOutcome {
    deps.metrics.count('DuplicatesSuppressed');
    return { kind: 'duplicate' };
  }
}

/** The reboot a starting event goes with (`lookUpStart`), and the holds read beside its look-up. */
type StartId = StartOfEvent & { holdsRead?: Promise<Hold[]> };
