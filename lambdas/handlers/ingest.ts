// Applies one native event from the ingest queue: starts, joins or signals reboots; drops with a reason.
import {
  decideHostReboot,
  history,
  isStale,
  newHostReboot,
  newXpuReboot,
  noticeWindow,
  type StoredReboot,
} from '../core/reboot.ts';
import type { NativeEvent, NodeDef } from '../core/types.ts';
import { changeReboot, type Deps } from './deps.ts';
import { tagRollout } from './rollout.ts';
import { rebootIdForEvent, rebootOfEvent } from './reboot-ids.ts';
import { admitHostReboot, admitNewXpuReboot, queuedWindowInput } from './fleet.ts';

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
  | { kind: 'dropped'; reason: string };

/** How long an event key is remembered: longer than any BMC or queue retries it. */
export const DEDUP_TTL_SECONDS = 7 * 24 * 3600;

export function xpuWorkflowInput(r: StoredReboot, node: NodeDef, now: Date) {
  const p = node.policy.xpuReboot;
  return {
    rebootId: r.id,
    node: r.node,
    xpu: r.xpu,
    mode: r.mode,
    window: { ...noticeWindow(r, now), ...queuedWindowInput(r, now) },
    limits: {
      heartbeatSeconds: p.heartbeatSeconds,
      recoverySeconds: p.recoverySeconds,
      coredumpSeconds: p.coredumpSeconds,
      commandSeconds: p.commandSeconds,
    },
  };
}

export function hostWorkflowInput(r: StoredReboot, node: NodeDef) {
  const p = node.policy.hostReboot;
  return {
    rebootId: r.id,
    node: r.node,
    decision: r.decision ?? 'allowed',
    limits: {
      heartbeatSeconds: p.heartbeatSeconds,
      returnSeconds: p.returnSeconds,
      recoverySeconds: node.policy.xpuReboot.recoverySeconds,
      commandSeconds: p.commandSeconds,
    },
  };
}

export function createIngestHandler(deps: Deps) {
  async function drop(ev: NativeEvent, reason: string): Promise<IngestOutcome> {
    deps.logger.warn('event dropped', { eventId: ev.id, type: ev.type, node: ev.node, reason });
    deps.metrics.count('EventsDropped');
    await deps.store.recordDropped(ev, reason);
    return { kind: 'dropped', reason };
  }

  /** Adds a line to a reboot's history (joins, stale events) without waking anything; a redelivered event adds none. */
  async function note(rebootId: string, phase: string, detail: string, at: string) {
    await deps.store.updateReboot(rebootId, (r) => {
      if (r.history.some((e) => e.phase === phase && e.detail === detail)) return null;
      r.history.push(history(at, phase, detail));
      return r;
    });
  }

  /**
   * The reboot that holds a claim. Its record can lag its claim by a moment (its creator is between
   * the two writes, maybe in another ingest worker): wait for it rather than lose what joins it, and
   * leave the event to the queue's retry if it does not show up.
   */
  async function holderOf(rebootId: string): Promise<StoredReboot> {
    for (let attempt = 0; attempt < 40; attempt++) {
      const r = await deps.store.getReboot(rebootId);
      if (r) return r;
      await new Promise((res) => setTimeout(res, 25));
    }
    throw new HolderNotStored(`reboot ${rebootId} holds its claim but is not stored yet; the event will be retried`);
  }

  /**
   * An xPU announced a reboot (or crashed) while a host reboot that excludes xPU reboots holds its
   * node: the host reboot power-cycles or waits for it anyway, so it joins that one and waits for
   * its xpu.ready there, instead of racing it with a reboot of its own.
   */
  async function joinHostReboot(hostRebootId: string, ev: NativeEvent, node: NodeDef, xpu: string, mode: 'planned' | 'crash'): Promise<IngestOutcome | undefined> {
    const host = await holderOf(hostRebootId);
    if (host.endedAt) return undefined; // ending: its claim is about to go, try again
    const what = mode === 'crash' ? `crashed${ev.data?.reason ? ` (${ev.data.reason})` : ''}` : 'announced a reboot';
    const detail = `xPU ${xpu} ${what} during this host reboot: it reboots within it, and the host reboot waits for its xpu.ready (${ev.source} event ${ev.id})`;
    await changeReboot(deps, hostRebootId, (r) => {
      if (r.history.some((e) => e.detail === detail)) return null;
      r.joinedXpus = [...new Set([...(r.joinedXpus ?? []), xpu])];
      // Ready before this announcement does not count: wait for the xPU to come back from this reboot.
      if (r.xpuReadyAt?.[xpu]) delete r.xpuReadyAt[xpu];
      r.history.push(history(ev.receivedAt, mode === 'crash' ? 'xpu-crashed' : 'xpu-reboot-joined', detail));
      return r;
    }, node);
    return { kind: 'joined', rebootId: hostRebootId };
  }

  async function startXpuReboot(
    ev: NativeEvent,
    node: NodeDef,
    xpu: string,
    mode: 'planned' | 'crash',
    prefetched?: Promise<StoredReboot | undefined>,
  ): Promise<IngestOutcome> {
    const found = await prefetched;
    const { id, fresh } = found ? { id: found.id, fresh: false } : await rebootIdForEvent(deps, 'xpu', ev.dedupKey);
    const existing = found ?? (fresh ? undefined : await deps.store.getReboot(id));
    if (existing) {
      // A replay of the event that started this reboot: make sure its workflow runs, nothing more.
      if (existing.endedAt) return { kind: 'duplicate' };
      await deps.workflows.start('xpu-reboot', id, xpuWorkflowInput(existing, node, deps.clock.now()));
      return { kind: 'started', rebootId: id };
    }
    const exclusive = node.policy.hostReboot.denyWhile.includes('xpu-rebooting');
    // Retried only when the claims changed between reading and writing them.
    for (let attempt = 0; attempt < 5; attempt++) {
      const claim = await deps.store.claimXpu(node.id, xpu, id);
      if (!claim.ok) {
        const holder = claim.state.xpus[xpu];
        if (!holder) continue; // released in between
        const running = await holderOf(holder);
        if (mode === 'crash') {
          if (isStale(running, ev)) return drop(ev, `${ev.type} from ${ev.time} predates reboot ${holder} (notified ${running.notifiedAt})`);
          await changeReboot(deps, holder, (r) => {
            if (r.crashedAt) return null;
            r.crashedAt = ev.time;
            r.history.push(history(ev.receivedAt, 'crashed', `xPU crashed during the reboot${ev.data?.reason ? `: ${ev.data.reason}` : ''} (${ev.source} event ${ev.id})`));
            return r;
          }, node);
        } else {
          await note(holder, 'joined', `another reboot notice for ${xpu} joined this reboot (${ev.source} event ${ev.id})`, ev.receivedAt);
        }
        return { kind: 'joined', rebootId: holder };
      }
      // The claim is ours. claimHost takes the host only while no xPU claim exists, so a host claim
      // seen now was taken before ours: that host reboot goes first, and this xPU reboot joins it.
      const state = claim.state ?? (await deps.store.getNodeState(node.id));
      if (state.host && exclusive) {
        await deps.store.release(node.id, 'xpu', xpu, id);
        const joined = await joinHostReboot(state.host, ev, node, xpu, mode);
        if (joined) return joined;
        continue;
      }
      // Rollouts (issue 16): an announce made for a rollout carries its id; the reboot remembers it.
      let reboot = await admitNewXpuReboot(deps, node, tagRollout(newXpuReboot(id, node, xpu, ev, mode), ev));
      if (state.host) reboot.history.push(history(ev.receivedAt, 'note', `host reboot ${state.host} of this node is in progress`));
      if (!(await deps.store.createReboot(reboot))) reboot = (await deps.store.getReboot(id)) ?? reboot;
      await deps.workflows.start('xpu-reboot', id, xpuWorkflowInput(reboot, node, deps.clock.now()));
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
      let hostReprovisioning = false;
      if (state.host && state.host !== id) {
        const running = await deps.store.getReboot(state.host);
        hostReprovisioning = running?.waiter?.step === 'reprovision';
      }
      let decision = decideHostReboot(node, { host: state.host === id ? undefined : state.host, xpus: state.xpus, hostReprovisioning });
      let budgetKeys: string[] = [];
      let budgetDenial: string | undefined;
      if (decision.kind === 'join') {
        await holderOf(decision.rebootId);
        await note(decision.rebootId, 'joined', `another host reboot request joined this reboot (${ev.source} event ${ev.id})`, ev.receivedAt);
        return { kind: 'joined', rebootId: decision.rebootId };
      }
      if (decision.kind === 'allow') {
        const claim = await deps.store.claimHost(node.id, id, exclusive);
        if (!claim.ok) continue;
        // Contract 7.3: beyond a budget, or on a held node, the request is denied.
        const budget = await admitHostReboot(deps, node, id);
        if (budget.kind === 'deny') {
          await deps.store.release(node.id, 'host', null, id);
          decision = { kind: 'deny', reason: budget.reason };
          budgetDenial = budget.detail;
        } else budgetKeys = budget.keys;
      }
      const reboot = newHostReboot(id, node, ev, decision.kind === 'allow' ? { allowed: true } : { allowed: false, reason: decision.reason });
      if (budgetKeys.length) reboot.budgetKeys = budgetKeys;
      if (budgetDenial) reboot.history.push(history(ev.receivedAt, 'note', `denied: ${budgetDenial}`));
      await deps.store.createReboot(reboot);
      await deps.workflows.start('host-reboot', id, hostWorkflowInput(reboot, node));
      deps.metrics.count(decision.kind === 'deny' ? 'HostRebootsDenied' : 'RebootsStarted', 1, { kind: 'host' });
      return decision.kind === 'deny' ? { kind: 'denied', rebootId: id } : { kind: 'started', rebootId: id };
    }
    throw new Error(`node ${node.id} claims kept changing while deciding host reboot ${id}`);
  }

  /** Applies a signal to the reboot it concerns, unless the event predates that reboot. */
  async function signal(ev: NativeEvent, rebootId: string, node: NodeDef, apply: (r: StoredReboot) => StoredReboot | null) {
    const reboot = await deps.store.getReboot(rebootId);
    if (!reboot) return drop(ev, `reboot ${rebootId} held by node ${node.id} does not exist`);
    if (isStale(reboot, ev)) {
      await note(rebootId, 'stale-event', `${ev.type} from ${ev.time} predates this reboot (notified ${reboot.notifiedAt}): dropped (${ev.source} event ${ev.id})`, ev.receivedAt);
      return drop(ev, `${ev.type} from ${ev.time} predates reboot ${rebootId} (notified ${reboot.notifiedAt})`);
    }
    await changeReboot(deps, rebootId, apply, node);
    return { kind: 'applied', rebootId } as IngestOutcome;
  }

  async function apply(ev: NativeEvent, prefetched?: Promise<StoredReboot | undefined>): Promise<IngestOutcome> {
    const index = await deps.inventory({ nodes: [ev.node] });
    const node = index.node(ev.node);
    if (!node) return drop(ev, `node ${ev.node} is not in the inventory`);
    const xpu = ev.xpu ?? (node.xpus.length === 1 ? node.xpus[0].id : undefined);
    if (ev.type.startsWith('xpu.') && (!xpu || !node.xpus.some((x) => x.id === xpu)))
      return drop(ev, `node ${node.id} has no xPU ${ev.xpu ?? '(none named)'}`);

    switch (ev.type) {
      case 'xpu.reboot.pending':
        return startXpuReboot(ev, node, xpu!, 'planned', prefetched);
      case 'xpu.crashed':
        return startXpuReboot(ev, node, xpu!, 'crash', prefetched);
      case 'xpu.down':
      case 'xpu.ready': {
        const state = await deps.store.getNodeState(node.id);
        const ready = ev.type === 'xpu.ready';
        let outcome: IngestOutcome | undefined;
        if (state.xpus[xpu!]) {
          outcome = await signal(ev, state.xpus[xpu!], node, (r) => {
            if (ready) {
              if (r.readyAt) return null;
              r.readyAt = ev.time;
              // The contract: ready ends the outage whenever it arrives; a missing down is recorded, not awaited.
              if (!r.downAt) r.history.push(history(ev.receivedAt, 'note', 'xpu.down was never received'));
              r.history.push(history(ev.receivedAt, 'xpu-ready', `xPU ${xpu} is ready (${ev.source} event ${ev.id})`));
            } else {
              if (r.downAt) return null;
              r.downAt = ev.time;
              r.history.push(history(ev.receivedAt, 'xpu-down', `xPU ${xpu} went down (${ev.source} event ${ev.id})`));
            }
            return r;
          });
        }
        if (state.host) {
          // A host reset also power-cycles xPUs without persistent power: the host reboot waits for them.
          // (Where the policy lets an xPU reboot run beside a host reboot, both hear of the xPU.)
          const forHost = await signal(ev, state.host, node, (r) => {
            r.xpuReadyAt ??= {};
            if (r.history.some((e) => e.detail.endsWith(`(${ev.source} event ${ev.id})`))) return null;
            if (!ready || r.xpuReadyAt[xpu!]) {
              r.history.push(history(ev.receivedAt, ready ? 'note' : 'xpu-down', `xPU ${xpu} ${ready ? 'ready again' : 'went down'} (${ev.source} event ${ev.id})`));
              return r;
            }
            r.xpuReadyAt[xpu!] = ev.time;
            r.history.push(history(ev.receivedAt, 'xpu-ready', `xPU ${xpu} is ready after the host reset (${ev.source} event ${ev.id})`));
            return r;
          });
          outcome ??= forHost;
        }
        return outcome ?? drop(ev, `no reboot of ${node.id}/${xpu} is in progress`);
      }
      case 'host.reboot.requested':
        return startHostReboot(ev, node);
      case 'host.down':
      case 'host.ready': {
        const state = await deps.store.getNodeState(node.id);
        if (!state.host) return drop(ev, `no host reboot of ${node.id} is in progress`);
        const ready = ev.type === 'host.ready';
        return signal(ev, state.host, node, (r) => {
          if (ready) {
            if (r.hostReadyAt) return null;
            r.hostReadyAt = ev.time;
            const tenant = typeof ev.data?.tenant === 'string' && ev.data.tenant ? ev.data.tenant : undefined;
            if (tenant) r.nextTenant = tenant;
            if (!r.hostDownAt) r.history.push(history(ev.receivedAt, 'note', 'host.down was never received'));
            r.history.push(history(ev.receivedAt, 'host-ready', `host is up${tenant ? ` for tenant ${tenant}` : ''} (${ev.source} event ${ev.id})`));
          } else {
            if (r.hostDownAt) return null;
            r.hostDownAt = ev.time;
            r.history.push(history(ev.receivedAt, 'host-down', `host went down (${ev.source} event ${ev.id})`));
          }
          return r;
        });
      }
    }
  }

  return async function ingest(ev: NativeEvent): Promise<IngestOutcome> {
    // A start looks up the reboot its event would have started (a replay) anyway: read it
    // alongside the dedup key instead of after it, since both are on every start's path.
    const starts = ev.type === 'xpu.reboot.pending' || ev.type === 'xpu.crashed';
    const prefetched = starts ? rebootOfEvent(deps.store, ev.dedupKey) : undefined;
    prefetched?.catch(() => {});
    if (await deps.store.isEventSeen(ev.dedupKey)) {
      deps.metrics.count('DuplicatesSuppressed');
      return { kind: 'duplicate' };
    }
    // Every step above is idempotent (the event key maps to its reboot id), so a crash before this
    // mark only means the event is applied again on redelivery, to the same effect.
    const outcome = await apply(ev, prefetched);
    await deps.store.markEventSeen(ev.dedupKey, DEDUP_TTL_SECONDS);
    return outcome;
  };
}
