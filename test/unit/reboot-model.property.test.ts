// Model-based property tests of the reboot model (lambdas/core/model.ts): a pure simulator of one node
// (ingest rules, the xPU workflow's states, agents, the clock) drives the model's transitions through
// random interleavings of notices, crashes, downs and readies (duplicated, reordered, from clocks
// skewed by up to ±30 days), command results (success, failure, skipped, late, repeated), extension
// requests, time passing and restarts (a transition applied twice). Seeded: a failure prints the
// seed and the shrunk case; FC_SEED reproduces it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  awaitsLateReady,
  complete,
  CROSS_SOURCE_SLACK_MS,
  fail,
  failedRebootTakesReady,
  markForced,
  onHostReady,
  postponeIfMoved,
  proceed,
  proceedNotTaken,
  recordResult,
  registerWaiter,
  requestExtension,
  sameOutage,
  sourceOf,
  unannouncedReboot,
  xpuSignal,
  type Effect,
  type Step,
} from '../../lambdas/core/model.ts';
import {
  evaluateWait,
  isFinal,
  newHostReboot,
  newXpuReboot,
  noticeWindow,
  planCommands,
  summarize,
  undoneCommands,
  type PlannedCommand,
  type StoredReboot,
  type WaitFor,
} from '../../lambdas/core/reboot.ts';
import type { CommandResultStatus, NativeEvent, NodeDef } from '../../lambdas/core/types.ts';
import type { StoredCommand } from '../../lambdas/ports/index.ts';

const SEED = Number(process.env.FC_SEED ?? 20261206);
const DAY = 86_400_000;
const T0 = Date.parse('2030-01-01T00:00:00Z');

const NODE: NodeDef = {
  id: 'n1',
  rack: 'r1',
  zone: 'z1',
  tenant: 't1',
  trusted: true,
  xpus: [{ id: 'dpu0', persistentPower: false }],
  policy: {
    xpuReboot: {
      noticeSeconds: 300,
      maxExtensionSeconds: 600,
      maxExtensions: 2,
      recoverySeconds: 900,
      coredumpSeconds: 120,
      heartbeatSeconds: 60,
      commandSeconds: 120,
      afterReady: 'resume-workloads',
    },
    hostReboot: { denyWhile: ['xpu-rebooting'], returnSeconds: 1800, commandSeconds: 120, heartbeatSeconds: 60 },
  },
};
const XP = NODE.policy.xpuReboot;

type Kind = 'xpu.reboot.pending' | 'xpu.crashed' | 'xpu.down' | 'xpu.ready';

/** Where one reboot's workflow is: the ASL's callback states, with the time its Task times out. */
interface Flow {
  state: 'prepare' | 'crash' | 'down' | 'reboot' | 'recover' | 'resume' | 'ended';
  timeoutAt: number;
  late?: boolean;
}

interface Sent {
  id: string;
  rebootId: string;
  type: PlannedCommand['type'];
  args: string;
  at: number;
}

/** One node, one xPU, the coordinator's stores and workflows, agents and the clock: all in memory. */
class Sim {
  now = T0;
  reboots = new Map<string, StoredReboot>();
  flows = new Map<string, Flow>();
  claim: string | undefined;
  last: string | undefined;
  /** The last reboot that failed for want of its ready (the node's awaitingReady). */
  awaiting: string | undefined;
  commands = new Map<string, StoredCommand>();
  sent: Sent[] = [];
  /** Events accepted by the API, not yet taken from the queue. */
  queue: NativeEvent[] = [];
  delivered: NativeEvent[] = [];
  /** Keys of deferred signals sent to the queue again. */
  requeued = new Set<string>();
  /** Event key → the reboot it started (the ingest's key mapping). */
  startedBy = new Map<string, string>();
  seq = 0;
  /** Each source's clock offset (a BMC may be days off) and its own last event time. */
  skew: Record<string, number>;
  violations: string[] = [];

  constructor(bmcSkewDays: number, agentSkewSeconds: number) {
    this.skew = { bmc: bmcSkewDays * DAY, agent: agentSkewSeconds * 1000 };
  }

  at(ms = this.now) {
    return new Date(ms);
  }

  /** A source emits an event now (by its own clock); the queue delivers it later, in any order. */
  emit(type: Kind, source: 'bmc' | 'agent', data: Record<string, unknown> = {}) {
    const id = `e${++this.seq}`;
    this.queue.push({
      id,
      type,
      node: 'n1',
      xpu: 'dpu0',
      time: new Date(this.now + this.skew[source]).toISOString(),
      data,
      source: source === 'bmc' ? 'redfish' : 'native',
      dedupKey: id,
      receivedAt: new Date(this.now).toISOString(),
      by: source === 'bmc' ? 'bmc:n1' : 'agent:n1.dpu0',
    });
  }

  deliver(pick: number) {
    if (this.queue.length === 0) return;
    const [ev] = this.queue.splice(pick % this.queue.length, 1);
    this.ingest(ev);
    this.delivered.push(ev);
  }

  /** A queue redelivery of an event already applied (before its dedup mark was written). */
  redeliver(pick: number) {
    if (this.delivered.length === 0) return;
    this.ingest(this.delivered[pick % this.delivered.length]);
  }

  /** The ingest handler's rules (handlers/ingest.ts), on the pure model. */
  ingest(ev: NativeEvent) {
    // A notice or crash is looked up by its key first: the replay of one that started a reboot starts nothing new.
    if ((ev.type === 'xpu.reboot.pending' || ev.type === 'xpu.crashed') && this.startedBy.has(ev.dedupKey)) return;
    // The ready a failed reboot waited for, delivered behind later events (the node's awaitingReady).
    const failed = this.awaiting ? this.reboots.get(this.awaiting) : undefined;
    if (failed && failedRebootTakesReady(failed, ev)) {
      this.apply(failed.id, (r) => xpuSignal(r, ev));
      return;
    }
    if (this.claim) {
      this.apply(this.claim, (r) => xpuSignal(r, ev));
      return;
    }
    const last = this.last ? this.reboots.get(this.last) : undefined;
    if (last && sameOutage(last, ev)) {
      this.apply(last.id, (r) => xpuSignal(r, ev));
      return;
    }
    // A replay of the event that started a reboot starts nothing new (its key is mapped to that reboot).
    if (this.startedBy.has(ev.dedupKey)) return;
    const id = `xr-${++this.seq}`;
    this.startedBy.set(ev.dedupKey, id);
    if (ev.type === 'xpu.down' || ev.type === 'xpu.ready') {
      const r = unannouncedReboot(newXpuReboot(id, NODE, 'dpu0', ev, 'planned'), ev).reboot;
      this.start(r, 'reboot');
    } else {
      const r = newXpuReboot(id, NODE, 'dpu0', ev, ev.type === 'xpu.crashed' ? 'crash' : 'planned');
      this.start(r, r.mode === 'crash' ? 'crash' : 'prepare');
    }
  }

  start(r: StoredReboot, first: Flow['state']) {
    this.reboots.set(r.id, r);
    this.claim = r.id;
    this.enter(r.id, first);
  }

  /** Applies a transition like applyStep: write if changed, perform effects, wake the workflow. */
  apply(id: string, t: (r: StoredReboot) => Step | null, twice = false) {
    const before = this.reboots.get(id)!;
    const step = t(before);
    if (!step) return;
    // Transitions never change their input: the stored reboot is what a concurrent reader sees.
    if (step.reboot !== before && JSON.stringify(before) !== JSON.stringify(this.reboots.get(id)))
      this.violations.push('transition mutated its input');
    this.reboots.set(id, step.reboot);
    this.perform(id, step.effects);
    if (twice) {
      // A restart that replays the step: it must change nothing more.
      const again = t(this.reboots.get(id)!);
      if (again && again.reboot !== this.reboots.get(id) && again.reboot.history.length > step.reboot.history.length)
        this.violations.push(`replayed transition on ${id} added history: ${again.reboot.history.at(-1)?.phase}`);
    }
    this.settle(id);
  }

  perform(id: string, effects: Effect[]) {
    for (const e of effects) {
      if (e.kind === 'release') {
        if (this.claim === id) this.claim = undefined;
        this.last = id;
        if (awaitsLateReady(this.reboots.get(id)!)) this.awaiting = id;
        // effects.ts: the release sends what was deferred to the ingest queue (marked or not).
        this.requeue(id);
      } else if (e.kind === 'defer') {
        // Still held: the release will send them (the store's mark); let go already: sent now.
        if (this.claim !== id) this.requeue(id);
      } else if (e.kind === 'send') this.put(id, e.step, e.commands);
      else if (e.kind === 'start-late-recovery') {
        const f = this.flows.get(id)!;
        if (f.state === 'ended' && !f.late) this.enter(id, 'recover', true);
      }
    }
  }

  /** Deferred signals go back on the queue, delivered later in any order (again: a repeated release). */
  requeue(id: string) {
    for (const ev of this.reboots.get(id)?.deferred ?? []) {
      this.requeued.add(ev.dedupKey);
      this.queue.push(ev);
    }
  }

  put(rebootId: string, step: string, planned: PlannedCommand[]) {
    for (const p of planned) {
      const args = JSON.stringify(p.args);
      const known = this.sent.find((s) => s.id === p.id);
      if (known) {
        // putCommand is conditional: the same id twice is the same command, never another one.
        if (known.args !== args && p.type !== 'migrate-workloads') this.violations.push(`command id ${p.id} reused for other args`);
        continue;
      }
      this.sent.push({ id: p.id, rebootId, type: p.type, args, at: this.sent.length });
      this.commands.set(p.id, {
        id: p.id,
        type: p.type,
        rebootId,
        node: 'n1',
        xpu: p.xpu,
        args: p.args,
        deadline: p.deadline,
        agent: p.agent,
        step,
        status: 'pending',
        noticePhase: p.noticePhase,
        createdAt: this.at().toISOString(),
      });
    }
  }

  /** A callback state: its commands written and recorded, the waiter registered. */
  enter(id: string, state: Flow['state'], late = false) {
    const r = this.reboots.get(id)!;
    const flow: Flow = { state, timeoutAt: Infinity, late: late || this.flows.get(id)?.late };
    this.flows.set(id, flow);
    if (state === 'ended') return;
    const waits: Record<string, [WaitFor, string | undefined, number]> = {
      prepare: ['prepared', 'preparing', Date.parse(r.deadline ?? this.at().toISOString())],
      crash: ['commands-done', 'rebooting', this.now + XP.coredumpSeconds * 1000],
      down: ['xpu-down', 'rebooting', Date.parse(r.deadline ?? this.at().toISOString())],
      reboot: ['xpu-ready', 'rebooting', this.now + XP.recoverySeconds * 1000],
      recover: ['commands-done', 'recovering', this.now + XP.commandSeconds * 1000],
      resume: ['commands-done', 'recovering', this.now + XP.commandSeconds * 1000],
    };
    const [waitFor, status, timeoutAt] = waits[state];
    flow.timeoutAt = Math.max(timeoutAt, this.now + 1000);
    const planned = planCommands(r, state, { node: NODE, now: this.at(), busyXpus: [] }).filter((p) => !r.commands[p.id]);
    this.put(id, state, planned);
    const summaries = planned.map((p) => summarize(p, state, this.at().toISOString()));
    const token = `${id}:${state}:${this.seq++}`;
    const step = registerWaiter(
      r,
      { token, step: state, waitFor, deadline: r.deadline, status: status as never, commands: summaries, story: state },
      this.at(),
    );
    this.reboots.set(id, step.reboot);
    this.perform(id, step.effects);
    if (state === 'prepare') {
      const p = postponeIfMoved(this.reboots.get(id)!, NODE, this.at());
      if (p) {
        this.reboots.set(id, p.reboot);
        this.perform(id, p.effects);
      }
    }
    this.settle(id);
  }

  /** Wakes the workflow if what it waits for holds (evaluateWait), or times its Task out. */
  settle(id: string) {
    const flow = this.flows.get(id);
    const r = this.reboots.get(id)!;
    if (!flow || flow.state === 'ended' || !r.waiter) return;
    const out = evaluateWait(r, NODE, this.at());
    if (out) return this.wake(id, flow, out as { signal: string; failed?: string[] });
    if (this.now >= flow.timeoutAt) this.timeout(id, flow);
  }

  wake(id: string, flow: Flow, out: { signal: string; failed?: string[] }) {
    const now = this.at();
    switch (flow.state) {
      case 'prepare':
        if (out.signal === 'prepared') {
          const planned = planCommands(this.reboots.get(id)!, 'proceed', { node: NODE, now, busyXpus: [] });
          this.put(id, 'proceed', planned);
          const s = proceed(
            this.reboots.get(id)!,
            planned.map((p) => summarize(p, 'proceed', now.toISOString())),
            now,
          );
          if (s) this.reboots.set(id, s.reboot);
          return this.enter(id, 'down');
        }
        if (out.signal === 'extended') return this.enter(id, 'prepare');
        if (out.signal === 'crashed') return this.enter(id, 'crash');
        if (out.signal === 'xpu-ready') return this.enter(id, 'recover');
        return;
      case 'crash':
        return this.enter(id, 'reboot');
      case 'down':
        if (out.signal === 'proceed-not-taken') {
          const s = proceedNotTaken(this.reboots.get(id)!, now);
          if (s) this.reboots.set(id, s.reboot);
          return this.enter(id, 'down');
        }
        return this.enter(id, 'reboot');
      case 'reboot':
        return this.enter(id, 'recover');
      case 'recover':
        if (out.failed?.length) return this.end(id, 'restore-pcie-failed');
        return this.enter(id, 'resume');
      case 'resume':
        return this.end(id);
    }
  }

  timeout(id: string, flow: Flow) {
    const r = this.reboots.get(id)!;
    switch (flow.state) {
      case 'prepare': {
        const undone = undoneCommands(r, ['prepare', 'crash']);
        const closed = this.close(id, ['prepare', 'crash']);
        const s = markForced(this.reboots.get(id)!, undone, closed, this.at());
        if (s) this.reboots.set(id, s.reboot);
        return this.enter(id, 'reboot');
      }
      case 'crash':
      case 'down':
        return this.enter(id, 'reboot');
      case 'reboot':
        return this.end(id, 'xpu-never-returned');
      case 'recover':
        return this.end(id, 'restore-pcie-failed');
      case 'resume':
        return this.end(id);
    }
    void r;
  }

  /** Commands the workflow stopped waiting for are timed out. */
  close(id: string, steps?: string[]): string[] {
    const closed: string[] = [];
    for (const c of this.commands.values())
      if (c.rebootId === id && (!steps || steps.includes(c.step)) && !isFinal(c.status)) {
        c.status = 'timed-out';
        closed.push(c.id);
      }
    return closed;
  }

  end(id: string, failure?: string) {
    const closed = this.close(id);
    const t = (r: StoredReboot) => (failure ? fail(r, failure, failure, closed, this.at()) : complete(r, closed, this.at()));
    const s = t(this.reboots.get(id)!);
    if (s) {
      this.reboots.set(id, s.reboot);
      this.perform(id, s.effects);
    }
    // The step replayed after a restart changes nothing.
    const again = t(this.reboots.get(id)!);
    if (again && again.reboot.history.length > this.reboots.get(id)!.history.length)
      this.violations.push(`replayed end of ${id} added history`);
    this.flows.set(id, { state: 'ended', timeoutAt: Infinity, late: false });
  }

  /** An agent answers one open command (or repeats an answer it gave). */
  answer(pick: number, status: Exclude<CommandResultStatus, 'running'>, repeat: boolean) {
    const all = [...this.commands.values()];
    const open = repeat ? all.filter((c) => isFinal(c.status)) : all.filter((c) => !isFinal(c.status));
    if (open.length === 0) return;
    const c = open[pick % open.length];
    if (!isFinal(c.status)) {
      c.status = status;
      c.finishedAt = this.at().toISOString();
    }
    // A repeat re-applies what the command record says (agent-results.ts): the reboot hears once.
    const before = this.reboots.get(c.rebootId)!;
    const next = recordResult(before, c, c.agent)?.reboot;
    if (next) {
      this.reboots.set(c.rebootId, next);
      this.settle(c.rebootId);
    }
  }

  extend(seconds: number) {
    if (!this.claim) return;
    const { step } = requestExtension(this.reboots.get(this.claim)!, NODE, { seconds, reason: 'drain', by: 'agent:n1' }, this.at());
    if (step) {
      this.reboots.set(step.reboot.id, step.reboot);
      this.settle(step.reboot.id);
    }
  }

  advance(seconds: number) {
    this.now += seconds * 1000;
    for (const id of [...this.flows.keys()]) this.settle(id);
  }

  /** Everything still in the queue is delivered, agents answer, time passes: every reboot must end. */
  finish() {
    while (this.queue.length) this.deliver(0);
    for (let i = 0; i < 200 && [...this.flows.values()].some((f) => f.state !== 'ended'); i++) {
      for (const c of [...this.commands.values()].filter((x) => !isFinal(x.status))) this.answerCommand(c);
      this.advance(60);
    }
  }

  answerCommand(c: StoredCommand) {
    c.status = 'succeeded';
    const next = recordResult(this.reboots.get(c.rebootId)!, c, c.agent)?.reboot;
    if (next) {
      this.reboots.set(c.rebootId, next);
      this.settle(c.rebootId);
    }
  }
}

type Op =
  | { op: 'emit'; type: Kind; source: 'bmc' | 'agent' }
  | { op: 'deliver'; pick: number }
  | { op: 'redeliver'; pick: number }
  | { op: 'answer'; pick: number; status: 'succeeded' | 'failed' | 'skipped'; repeat: boolean }
  | { op: 'extend'; seconds: number }
  | { op: 'advance'; seconds: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('emit' as const),
      type: fc.constantFrom<Kind>('xpu.reboot.pending', 'xpu.crashed', 'xpu.down', 'xpu.ready', 'xpu.ready', 'xpu.down'),
      source: fc.constantFrom('bmc' as const, 'agent' as const),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('deliver' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('redeliver' as const), pick: fc.nat(20) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('answer' as const),
      pick: fc.nat(20),
      status: fc.constantFrom('succeeded' as const, 'succeeded' as const, 'failed' as const, 'skipped' as const),
      repeat: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extend' as const), seconds: fc.integer({ min: 1, max: 900 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('advance' as const), seconds: fc.constantFrom(1, 30, 61, 121, 300, 901) }) },
);

function run(ops: Op[], bmcSkewDays: number, agentSkewSeconds: number): Sim {
  const sim = new Sim(bmcSkewDays, agentSkewSeconds);
  for (const o of ops) {
    switch (o.op) {
      case 'emit':
        sim.emit(o.type, o.source, o.type === 'xpu.reboot.pending' ? { reason: 'fw' } : {});
        break;
      case 'deliver':
        sim.deliver(o.pick);
        break;
      case 'redeliver':
        sim.redeliver(o.pick);
        break;
      case 'answer':
        sim.answer(o.pick, o.status, o.repeat);
        break;
      case 'extend':
        sim.extend(o.seconds);
        break;
      case 'advance':
        sim.advance(o.seconds);
        break;
    }
  }
  sim.finish();
  return sim;
}

/** The reboot model's invariants, over one finished simulation. */
function check(sim: Sim): string[] {
  const bad = [...sim.violations];
  const all = [...sim.reboots.values()];
  for (const r of all) {
    // Every reboot ends (a late recovery too).
    if (!r.endedAt || r.lateRecovery) bad.push(`${r.id} did not end (${r.status})`);
    // protect-pcie succeeded (or was skipped) before proceed-reboot went out, unless forced.
    const sent = sim.sent.filter((s) => s.rebootId === r.id);
    const go = sent.find((s) => s.type === 'proceed-reboot');
    if (go && !r.forced) {
      const protect = Object.values(r.commands).find((c) => c.type === 'protect-pcie' && c.step === 'prepare');
      if (!protect || !['succeeded', 'skipped'].includes(protect.status)) bad.push(`${r.id}: proceed-reboot without protect-pcie done`);
    }
    // Nothing follows a failed restore-pcie.
    const restore = Object.values(r.commands).find((c) => c.type === 'restore-pcie');
    if (
      restore &&
      restore.status !== 'succeeded' &&
      restore.status !== 'skipped' &&
      sent.some((s) => s.type === 'resume-workloads' || s.type === 'reboot-host')
    )
      bad.push(`${r.id}: resume after restore-pcie ${restore.status}`);
    if (r.status === 'completed' && restore && restore.status !== 'succeeded' && restore.status !== 'skipped')
      bad.push(`${r.id}: completed after restore-pcie ${restore.status}`);
    // A ready sent while the reboot ran is never judged stale: the reboot does not fail for want of it.
    // (Its source's clock says it came after the reboot began; times of two sources are never compared.)
    const inRun = (ev: NativeEvent) =>
      ev.type === 'xpu.ready' &&
      r.origin &&
      sourceOf(ev) === r.origin.source &&
      ev.time > r.origin.time &&
      (!r.endedAt || ev.receivedAt < r.endedAt);
    if (r.kind === 'xpu' && !r.readyAt && sim.delivered.some(inRun))
      bad.push(`${r.id}: a ready it was sent was not applied (${r.status} ${r.failure ?? ''})`);
    // Every history entry says who.
    if (r.history.some((e) => !e.by)) bad.push(`${r.id}: history entry without by`);
    // Deadlines are on the coordinator's clock, whatever the BMC's says.
    if (r.deadline && Math.abs(Date.parse(r.deadline) - T0) > (30 * DAY) / 10)
      bad.push(`${r.id}: deadline ${r.deadline} off the coordinator clock`);
  }
  // A signal kept for the xPU's next reboot is sent to the ingest again, and lands there: in the
  // history of a reboot other than the one that kept it.
  for (const r of all)
    for (const d of r.deferred ?? []) {
      if (!sim.requeued.has(d.dedupKey)) bad.push(`${d.id} (${d.type}) deferred by ${r.id} was never sent again`);
      const ref = `event ${d.id})`;
      if (!all.some((o) => o.id !== r.id && o.history.some((e) => e.phase !== 'deferred' && e.detail.endsWith(ref))))
        bad.push(`${d.id} (${d.type}) deferred by ${r.id} reached no later reboot`);
    }
  // A notice sent after the ready of a reboot's outage never joins that reboot: it is the next one's.
  for (const r of all)
    for (const e of r.history.filter((h) => h.phase === 'joined')) {
      const ev = sim.delivered.find((d) => e.detail.endsWith(`event ${d.id})`));
      if (!ev || !r.readyOrigin) continue;
      // Joined before the ready was applied, then moved on to the next reboot when it was.
      if (r.history.some((h) => h.phase === 'deferred' && h.detail.endsWith(`event ${ev.id})`))) continue;
      // An unannounced reboot takes a notice sent no later than its first signal as its own (from
      // another source: received up to CROSS_SOURCE_SLACK_MS after it), whatever the ready says.
      const o = r.origin!;
      const ofOrigin =
        sourceOf(ev) === o.source ? ev.time <= o.time : Date.parse(ev.receivedAt) <= Date.parse(o.receivedAt) + CROSS_SOURCE_SLACK_MS;
      if (r.mode === 'unannounced' && ofOrigin) continue;
      // (At the same instant the order is unknown: either is right.)
      const after = sourceOf(ev) === r.readyOrigin.source ? ev.time > r.readyOrigin.time : ev.receivedAt > r.readyOrigin.receivedAt;
      if (after) bad.push(`${ev.id}: a notice sent after ${r.id}'s ready joined it`);
    }
  // No accepted signal is lost: each delivered event is in some reboot's history.
  for (const ev of sim.delivered)
    if (!all.some((r) => r.history.some((e) => e.detail.endsWith(`event ${ev.id})`)))) bad.push(`event ${ev.id} (${ev.type}) lost`);
  // Claims are released at the end.
  if (sim.claim) bad.push(`claim still held by ${sim.claim}`);
  // No command id repeats (checked as commands are put) and each is unique.
  if (new Set(sim.sent.map((s) => s.id)).size !== sim.sent.length) bad.push('a command id was sent twice');
  return bad;
}

describe('the reboot model under disorder (pure, model-based)', () => {
  it('keeps every invariant through random interleavings (4,000 cases)', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: -30, max: 30 }),
        fc.integer({ min: -120, max: 120 }),
        (ops, bmcSkew, agentSkew) => {
          const sim = run(ops, bmcSkew, agentSkew);
          const bad = check(sim);
          if (bad.length) throw new Error(bad.join('; '));
        },
      ),
      { seed: SEED, numRuns: 4000, verbose: 1, endOnFailure: false },
    );
  });

  it('a reboot announced and ended by a BMC 10 days behind completes (the fixed case)', () => {
    const sim = run(
      [
        { op: 'emit', type: 'xpu.reboot.pending', source: 'bmc' },
        { op: 'deliver', pick: 0 },
        { op: 'answer', pick: 0, status: 'succeeded', repeat: false },
        { op: 'answer', pick: 0, status: 'succeeded', repeat: false },
        { op: 'advance', seconds: 30 },
        { op: 'emit', type: 'xpu.ready', source: 'bmc' },
        { op: 'deliver', pick: 0 },
      ],
      -10,
      0,
    );
    expect(check(sim)).toEqual([]);
    expect([...sim.reboots.values()].map((r) => r.status)).toEqual(['completed']);
  });

  it('a ready delivered before its own notice (same source) makes one reboot', () => {
    const sim = run(
      [
        { op: 'emit', type: 'xpu.reboot.pending', source: 'bmc' },
        { op: 'advance', seconds: 30 },
        { op: 'emit', type: 'xpu.ready', source: 'bmc' },
        { op: 'deliver', pick: 1 },
        { op: 'deliver', pick: 0 },
      ],
      25,
      0,
    );
    expect(check(sim)).toEqual([]);
    expect(sim.reboots.size).toBe(1);
  });
});

describe('tenants (pure)', () => {
  it('the provisioned tenant is the last host.ready’s, through any sequence of host reboots (1,000 cases)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('t1', 't2', 't9', ''), { minLength: 1, maxLength: 12 }), (tenants) => {
        let provisioned = NODE.tenant!;
        let lastNamed = provisioned;
        tenants.forEach((tenant, i) => {
          const at = new Date(T0 + i * 60_000).toISOString();
          const req: NativeEvent = {
            id: `h${i}`,
            type: 'host.reboot.requested',
            node: 'n1',
            time: at,
            source: 'native',
            dedupKey: `h${i}`,
            receivedAt: at,
            data: { method: 'shell' },
          };
          let r = newHostReboot(`hr-${i}`, NODE, req, { allowed: true });
          r.tenant = provisioned;
          const ready: NativeEvent = { ...req, id: `r${i}`, type: 'host.ready', dedupKey: `r${i}`, data: tenant ? { tenant } : {} };
          r = onHostReady(r, ready)!.reboot;
          const reg = registerWaiter(
            r,
            { token: 't', step: 'reprovision', waitFor: 'commands-done', deadline: null, commands: [], story: '' },
            new Date(at),
          );
          const cmds = planCommands(reg.reboot, 'reprovision', { node: NODE, now: new Date(at), busyXpus: [] });
          for (const e of reg.effects) if (e.kind === 'provision') provisioned = e.tenant;
          if (tenant) {
            // A different tenant gets reprovision with it; the same one gets none.
            expect(cmds.map((c) => c.args.tenant)).toEqual(tenant === lastNamed ? [] : [tenant]);
            lastNamed = tenant;
          }
          expect(provisioned).toBe(lastNamed);
        });
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});

void noticeWindow;
