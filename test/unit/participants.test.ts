// The pure parts of the participant commands: what a host reboot's state means for the shutdown
// gate, and the agent's boot report against a fake server (first start, same boot, new boot, refusals).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportBoot } from '../../agent/boot-report.ts';
import { verdict } from '../../cli/commands/host-reboot.ts';
import type { RebootView } from '../../cli/commands/participant.ts';

const host = (over: Partial<RebootView>): RebootView => ({
  id: 'hr-1',
  kind: 'host',
  xpu: null,
  status: 'preparing',
  deadline: null,
  commands: {},
  ...over,
});
const free = (agent: string, status: string) => ({ type: 'free-host-context', agent, status });

describe('host-reboot verdict', () => {
  it('waits while a free-host-context is open, and answers 0 once all succeeded or were skipped', () => {
    expect(verdict(host({ status: 'notified' }))).toBeUndefined();
    expect(verdict(host({ commands: { a: free('n.dpu0', 'succeeded'), b: free('n.dpu1', 'running') } }))).toBeUndefined();
    expect(verdict(host({ commands: { a: free('n.dpu0', 'succeeded'), b: free('n.dpu1', 'skipped') } }))?.exit).toBe(0);
  });

  it('answers 3 for a denied or cancelled reboot, with the reason', () => {
    expect(verdict(host({ status: 'denied', denyReason: 'xpu-rebooting: dpu0' }))).toEqual({
      exit: 3,
      message: 'host reboot hr-1 denied: xpu-rebooting: dpu0',
      stream: 'err',
    });
    expect(verdict(host({ status: 'cancelled' }))?.exit).toBe(3);
  });

  it('answers 4 when every free-host-context ended but one did not succeed', () => {
    const v = verdict(host({ status: 'rebooting', commands: { a: free('n.dpu0', 'succeeded'), b: free('n.dpu1', 'timed-out') } }));
    expect(v).toMatchObject({ exit: 4, stream: 'err' });
    expect(v?.message).toContain('n.dpu1 timed-out');
  });

  it('answers 0 once past the free step when there was nothing to free', () => {
    expect(verdict(host({ status: 'rebooting' }))?.exit).toBe(0);
    expect(verdict(host({ status: 'preparing' }))).toBeUndefined();
  });
});

describe('boot report', () => {
  function setup() {
    const dir = mkdtempSync(join(tmpdir(), 'boot-report-'));
    const bootIdFile = join(dir, 'boot_id');
    const posted: Array<{ url: string; body: Record<string, unknown>; auth: string }> = [];
    let answer = 202;
    const fakeFetch = (async (url: URL, init: RequestInit) => {
      if (answer === 0) throw new Error('ECONNREFUSED');
      posted.push({
        url: String(url),
        body: JSON.parse(String(init.body)),
        auth: String((init.headers as Record<string, string>).authorization),
      });
      return new Response('{}', { status: answer });
    }) as unknown as typeof fetch;
    const run = (agent: string, boot: string) => {
      writeFileSync(bootIdFile, `${boot}\n`);
      return reportBoot({
        server: 'http://coord.example/api',
        agent,
        token: 'tok',
        stateDir: join(dir, 'state'),
        bootIdFile,
        log: () => {},
        fetch: fakeFetch,
        timeoutMs: 0,
      });
    };
    return {
      run,
      posted,
      setAnswer: (s: number) => {
        answer = s;
      },
      stored: () => readFileSync(join(dir, 'state', 'boot-id'), 'utf8').trim(),
    };
  }

  it('says nothing at the first start nor in the same boot; a new boot posts xpu.ready from that xPU agent', async () => {
    const s = setup();
    expect(await s.run('node-a.dpu0', 'b1')).toEqual({ kind: 'first-start' });
    expect(await s.run('node-a.dpu0', 'b1')).toEqual({ kind: 'same-boot' });
    expect(s.posted).toEqual([]);
    expect(await s.run('node-a.dpu0', 'b2')).toEqual({ kind: 'reported', type: 'xpu.ready', eventId: 'boot-node-a.dpu0-b2' });
    expect(s.posted).toEqual([
      {
        url: 'http://coord.example/api/v1/events',
        auth: 'Bearer tok',
        body: {
          id: 'boot-node-a.dpu0-b2',
          type: 'xpu.ready',
          node: 'node-a',
          xpu: 'dpu0',
          data: { bootId: 'b2', previousBootId: 'b1', reportedBy: 'agent' },
        },
      },
    ]);
    expect(s.stored()).toBe('b2');
  });

  it('posts host.ready for the host agent, and keeps the old id until the server took the report', async () => {
    const s = setup();
    await s.run('node-a', 'h1');
    s.setAnswer(0);
    expect((await s.run('node-a', 'h2')).kind).toBe('failed');
    expect(s.stored()).toBe('h1');
    s.setAnswer(403);
    expect((await s.run('node-a', 'h2')).kind).toBe('failed');
    expect(s.stored()).toBe('h1');
    s.setAnswer(202);
    expect(await s.run('node-a', 'h2')).toEqual({ kind: 'reported', type: 'host.ready', eventId: 'boot-node-a-h2' });
    expect(s.posted.at(-1)?.body).toMatchObject({ type: 'host.ready', node: 'node-a' });
    expect(s.posted.at(-1)?.body).not.toHaveProperty('xpu');
    expect(s.stored()).toBe('h2');
  });
});
