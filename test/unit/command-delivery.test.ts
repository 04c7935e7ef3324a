// Claimed long polls (docs/command-delivery.md): the in-process signal's claim, and writeCommands under
// disorder (two polls of one agent, a poll gone between claim and hand-over, a write that throws, a replay).
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { writeCommands, type NewCommand } from '../../lambdas/handlers/command-delivery.ts';
import type { HandedCommands, RebootStore, StoredCommand } from '../../lambdas/ports/index.ts';
import { CLAIM_WAIT_MS, InProcessCommandSignal } from '../../local/command-signal.ts';

const NOW = new Date('2030-01-01T00:00:00.000Z');
/** fast-check prints the seed and the shrunk case on failure; FC_SEED reproduces it. */
const SEED = Number(process.env.FC_SEED ?? 20261206);

function command(id: string, agent = 'n1', order = 0): NewCommand {
  return {
    id,
    type: 'migrate-workloads',
    rebootId: 'r1',
    node: 'n1',
    xpu: null,
    args: {},
    deadline: '2030-01-01T00:05:00.000Z',
    agent,
    step: 'prepare',
    status: 'pending',
    noticePhase: true,
    createdAt: NOW.toISOString(),
    order,
  } as NewCommand;
}

/** putCommand / updateCommand / getCommand over a map, with the store's conditions; `gate` holds puts. */
function fakeStore() {
  const items = new Map<string, StoredCommand & { rev?: number }>();
  const key = (agent: string, id: string) => `${agent}/${id}`;
  let gate: Promise<void> | undefined;
  let failNext: Error | undefined;
  const failIds = new Set<string>();
  const puts: string[] = [];
  const store = {
    async putCommand(c: StoredCommand) {
      puts.push(c.id);
      if (failIds.has(c.id)) {
        await gate;
        throw new Error(`injected failure writing ${c.id}`);
      }
      if (failNext) {
        const err = failNext;
        failNext = undefined;
        throw err;
      }
      await gate;
      if (items.has(key(c.agent, c.id))) return false;
      items.set(key(c.agent, c.id), structuredClone(c));
      return true;
    },
    async getCommand(agent: string, id: string) {
      return structuredClone(items.get(key(agent, id)));
    },
    async updateCommand(agent: string, id: string, change: (c: StoredCommand) => StoredCommand | null) {
      const cur = items.get(key(agent, id));
      if (!cur) return undefined;
      const next = change(structuredClone(cur));
      if (!next) return { command: cur, changed: false };
      items.set(key(agent, id), { ...next, rev: (cur.rev ?? 0) + 1 });
      return { command: next, changed: true };
    },
  };
  return {
    store: store as unknown as RebootStore,
    items,
    puts,
    hold() {
      let open!: () => void;
      gate = new Promise((r) => {
        open = r;
      });
      return () => {
        gate = undefined;
        open();
      };
    },
    failNextPut(err: Error) {
      failNext = err;
    },
    failIds,
  };
}

const isHanded = (x: unknown): x is HandedCommands => typeof x === 'object' && x !== null && 'delivered' in x;
const settled = async <T>(p: Promise<T>) => {
  let out: { value: T } | undefined;
  p.then((value) => {
    out = { value };
  });
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return out;
};

afterEach(() => {
  vi.useRealTimers();
});

describe('InProcessCommandSignal.claim', () => {
  it('takes the newest parked poll out of reach of notify, and hands it commands', async () => {
    const signal = new InProcessCommandSignal();
    const older = signal.wait('a', 60_000);
    const newer = signal.wait('a', 60_000);
    const claim = signal.claim('a')!;
    expect(claim.live).toBe(true);
    signal.notify('a', [command('x')]);
    expect(await older).toEqual([expect.objectContaining({ id: 'x' })]); // the notify reached the other poll only
    expect(await settled(newer)).toBeUndefined();
    expect(claim.hand([command('c1')])).toBe(true);
    const got = await newer;
    expect(isHanded(got) && got.delivered.map((c) => c.id)).toEqual(['c1']);
    expect(claim.live).toBe(false);
    expect(claim.hand([command('c2')])).toBe(false);
    signal.closeAll();
  });

  it('never gives one poll to two claimers; none parked: nothing to claim', async () => {
    const signal = new InProcessCommandSignal();
    expect(signal.claim('a')).toBeUndefined();
    const poll = signal.wait('a', 60_000);
    const first = signal.claim('a');
    expect(first).toBeDefined();
    expect(signal.claim('a')).toBeUndefined();
    first!.release();
    expect(await poll).toBeUndefined(); // released: the poll looks for itself
  });

  it('a poll whose client goes away after the claim answers nothing and refuses the hand-over', async () => {
    const signal = new InProcessCommandSignal();
    const abort = new AbortController();
    const poll = signal.wait('a', 60_000, abort.signal);
    const claim = signal.claim('a')!;
    abort.abort();
    expect(await poll).toBeUndefined();
    expect(claim.live).toBe(false);
    expect(claim.hand([command('c1')])).toBe(false);
  });

  it('a claimed poll outlives its own timer while the claimer writes, and gives up after CLAIM_WAIT_MS', async () => {
    vi.useFakeTimers();
    const signal = new InProcessCommandSignal();
    const poll = signal.wait('a', 10);
    const claim = signal.claim('a')!;
    await vi.advanceTimersByTimeAsync(CLAIM_WAIT_MS - 1);
    expect(claim.live).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(await poll).toBeUndefined();
    expect(claim.live).toBe(false);
  });

  it('shutdown answers claimed polls too', async () => {
    const signal = new InProcessCommandSignal();
    const poll = signal.wait('a', 60_000);
    const claim = signal.claim('a')!;
    signal.closeAll();
    expect(await poll).toBeUndefined();
    expect(claim.hand([command('c1')])).toBe(false);
  });
});

describe('writeCommands', () => {
  it('a parked poll gets the commands stored already marked delivered to it, in order', async () => {
    const { store, items } = fakeStore();
    const signal = new InProcessCommandSignal();
    const poll = signal.wait('n1', 60_000);
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1', 'n1', 0), command('c2', 'n1', 1)], NOW);
    const got = await poll;
    expect(isHanded(got) && got.delivered.map((c) => c.id)).toEqual(['c1', 'c2']);
    for (const id of ['c1', 'c2']) {
      expect(items.get(`n1/${id}`)).toMatchObject({ status: 'delivered', seenAt: NOW.toISOString(), rev: 1 });
      expect(items.get(`n1/${id}`)?.redeliver).toBeUndefined();
    }
  });

  it('two parked polls of one agent: exactly one gets the commands, the other is not even woken', async () => {
    const { store } = fakeStore();
    const signal = new InProcessCommandSignal();
    const abort = new AbortController();
    const a = signal.wait('n1', 60_000, abort.signal);
    const b = signal.wait('n1', 60_000, abort.signal);
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1'), command('c2', 'n1', 1)], NOW);
    const answered = [await settled(a), await settled(b)].filter((x) => x !== undefined);
    expect(answered).toHaveLength(1);
    expect(isHanded(answered[0]!.value) && answered[0]!.value.delivered).toHaveLength(2);
    abort.abort();
    expect([await a, await b].filter((x) => x === undefined)).toHaveLength(1);
  });

  it('no poll parked: stored pending and the agent notified (a poll that parks meanwhile is woken)', async () => {
    const { store, items } = fakeStore();
    const signal = new InProcessCommandSignal();
    const notify = vi.spyOn(signal, 'notify');
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1')], NOW);
    expect(items.get('n1/c1')?.status).toBe('pending');
    expect(notify).toHaveBeenCalledWith('n1', [expect.objectContaining({ id: 'c1', status: 'pending' })]);
  });

  it('a poll gone between claim and hand-over: its commands are flagged for redelivery and the agent notified', async () => {
    const { store, items, hold } = fakeStore();
    const signal = new InProcessCommandSignal();
    const abort = new AbortController();
    const gone = signal.wait('n1', 60_000, abort.signal);
    const open = hold();
    const writing = writeCommands({ store, signal, logger: silentLogger }, [command('c1')], NOW);
    await settled(Promise.resolve());
    abort.abort(); // the client goes away while the command is being written as delivered to it
    expect(await gone).toBeUndefined();
    const next = signal.wait('n1', 60_000); // the agent's next poll parks meanwhile
    open();
    await writing;
    expect(items.get('n1/c1')).toMatchObject({ status: 'delivered', redeliver: true });
    // Woken without commands: it looks, and a flagged command is due (markDelivered's redeliver clause).
    expect(await next).toBeUndefined();
  });

  it('a write that throws releases the claim: the poll looks for itself, nothing was handed', async () => {
    const { store, failNextPut } = fakeStore();
    const signal = new InProcessCommandSignal();
    const poll = signal.wait('n1', 60_000);
    failNextPut(new Error('ProvisionedThroughputExceededException'));
    await expect(writeCommands({ store, signal, logger: silentLogger }, [command('c1')], NOW)).rejects.toThrow('Provisioned');
    expect(await poll).toBeUndefined();
    // The Task's retry writes them again: handed to the poll parked by then.
    const again = signal.wait('n1', 60_000);
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1')], NOW);
    const got = await again;
    expect(isHanded(got) && got.delivered.map((c) => c.id)).toEqual(['c1']);
  });

  it('one write of two fails: the other, written as delivered, is still handed over, then the failure thrown', async () => {
    const { store, items, failNextPut } = fakeStore();
    const signal = new InProcessCommandSignal();
    const poll = signal.wait('n1', 60_000);
    failNextPut(new Error('InternalServerError'));
    await expect(writeCommands({ store, signal, logger: silentLogger }, [command('c1'), command('c2', 'n1', 1)], NOW)).rejects.toThrow(
      'InternalServerError',
    );
    const got = await poll;
    expect(isHanded(got) && got.delivered.map((c) => c.id)).toEqual(['c2']);
    expect(items.has('n1/c1')).toBe(false);
    expect(items.get('n1/c2')?.redeliver).toBeUndefined();
  });

  it('a replayed step whose commands exist already hands nothing and releases the poll', async () => {
    const { store, items } = fakeStore();
    const signal = new InProcessCommandSignal();
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1')], NOW); // first run: pending, nobody parked
    const poll = signal.wait('n1', 60_000);
    await writeCommands({ store, signal, logger: silentLogger }, [command('c1')], new Date(NOW.getTime() + 1000));
    expect(await poll).toBeUndefined(); // released: its look finds c1 pending
    expect(items.get('n1/c1')?.status).toBe('pending');
  });
});

describe('writeCommands under random disorder (property)', () => {
  const scenario = fc.record({
    /** Parked polls per agent, and when each one's client goes away. */
    polls: fc.array(fc.record({ agent: fc.constantFrom('n1', 'n2'), abort: fc.constantFrom('never', 'before', 'during') }), {
      maxLength: 4,
    }),
    commands: fc.uniqueArray(fc.record({ id: fc.constantFrom('c1', 'c2', 'c3', 'c4'), agent: fc.constantFrom('n1', 'n2') }), {
      minLength: 1,
      maxLength: 4,
      selector: (c) => c.id,
    }),
    /** Ids whose write throws, and ids that exist already (a replayed step), pending or delivered. */
    failing: fc.subarray(['c1', 'c2', 'c3', 'c4']),
    existing: fc.subarray(['c1', 'c2', 'c3', 'c4']),
    existingDelivered: fc.boolean(),
  });

  it('no command goes to two polls, none is handed to a gone poll, none is left delivered to nobody', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const { store, items, hold, failIds } = fakeStore();
        const signal = new InProcessCommandSignal();
        for (const id of sc.failing) failIds.add(id);
        const cmds = sc.commands.map((c, i) => command(c.id, c.agent, i));
        const earlier = new Date(NOW.getTime() - 1000).toISOString();
        for (const c of cmds)
          if (sc.existing.includes(c.id))
            items.set(`${c.agent}/${c.id}`, sc.existingDelivered ? { ...c, status: 'delivered', seenAt: earlier, rev: 1 } : { ...c });
        const polls = sc.polls.map((p) => {
          const ctl = new AbortController();
          return { ...p, ctl, answer: signal.wait(p.agent, 60_000, ctl.signal) };
        });
        for (const p of polls) if (p.abort === 'before') p.ctl.abort();
        const open = hold();
        const writing = writeCommands({ store, signal, logger: silentLogger }, cmds, NOW).then(
          () => undefined,
          (err: Error) => err,
        );
        for (const p of polls) if (p.abort === 'during') p.ctl.abort();
        open();
        const err = await writing;
        // The failure of a write is thrown (for the Task to retry), after everything else was done.
        expect(err !== undefined).toBe(cmds.some((c) => sc.failing.includes(c.id)));
        signal.closeAll();
        const answers = await Promise.all(polls.map((p) => p.answer));
        const handedTo = new Map<string, number>();
        answers.forEach((a, i) => {
          if (!isHanded(a)) return;
          // Only a poll whose client was still there got commands, and only its own agent's.
          expect(polls[i].abort).toBe('never');
          for (const c of a.delivered) {
            expect(c.agent).toBe(polls[i].agent);
            expect(handedTo.has(c.id)).toBe(false);
            handedTo.set(c.id, i);
          }
        });
        for (const c of cmds) {
          const stored = items.get(`${c.agent}/${c.id}`);
          if (sc.existing.includes(c.id)) {
            expect(handedTo.has(c.id)).toBe(false); // a replay never hands what existed before
            continue;
          }
          if (sc.failing.includes(c.id)) {
            expect(stored).toBeUndefined();
            continue;
          }
          expect(stored).toBeDefined();
          if (stored!.status === 'pending') expect(handedTo.has(c.id)).toBe(false);
          // Delivered by this call: to exactly one poll that answered with it, or flagged for the next one.
          else expect(handedTo.has(c.id) !== (stored!.redeliver === true)).toBe(true);
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
});
