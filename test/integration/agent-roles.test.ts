// Required hooks per role and dry runs (docs/edge-kit.md): a missing required hook fails, a dry run never succeeds.
import { afterEach, describe, expect, it } from 'vitest';
import { command, FakeServer } from '../fixtures/agent/fake-server.ts';
import { removeWorkspaces, startAgent, workspace, writeHook, type Workspace } from '../fixtures/agent/harness.ts';

const servers: FakeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  removeWorkspaces();
});

async function runOnce(ws: Workspace, agentId: string, cmds: ReturnType<typeof command>[], env: Record<string, string> = {}) {
  const server = await new FakeServer({ tokens: { 'tok-a': 'node-a' } }).start();
  servers.push(server);
  server.enqueue(agentId, ...cmds);
  const a = startAgent(ws, ['--once', '--server', server.url, '--agent', agentId, '--hooks', ws.hooks, '--state', ws.state], {
    REBOOT_AGENT_TOKEN: 'tok-a',
    ...env,
  });
  expect(await a.exited).toBe(0);
  // What the coordinator keeps: the first final result of each command (a repeat is a no-op there,
  // lambdas/handlers/agent-results.ts). The agent may re-send one when a poll hands the command out again
  // before its result landed (on a loaded machine); a re-send must repeat the status, never change it.
  const kept = new Map<string, ReturnType<FakeServer['finalResults']>[number]>();
  for (const r of server.finalResults()) {
    const first = kept.get(r.id);
    if (first) expect(r.status, `re-sent result of ${r.id}`).toBe(first.status);
    else kept.set(r.id, r);
  }
  return Object.fromEntries(kept);
}

describe('required hooks per role', () => {
  it('host agent: a missing or non-executable required hook is failed; other missing hooks stay skipped', async () => {
    const ws = workspace();
    writeHook(ws, 'migrate-workloads', 'echo moved');
    writeHook(ws, 'protect-pcie', 'echo masked', 0o644); // lost its +x
    // restore-pcie, resume-workloads, reboot-host, free-host-context: absent
    const r = await runOnce(ws, 'node-a', [
      command('m', 'migrate-workloads'),
      command('p', 'protect-pcie'),
      command('r', 'restore-pcie'),
      command('w', 'resume-workloads'),
      command('h', 'reboot-host'),
      command('f', 'free-host-context'), // an xPU's required hook is not required on the host
    ]);
    expect(r.m.status).toBe('succeeded');
    for (const id of ['p', 'r', 'w']) {
      expect(r[id].status).toBe('failed');
      expect(r[id].output).toMatch(/^required hook missing: /);
    }
    expect(r.p.output).toMatch(/not executable/);
    expect(r.h.status).toBe('skipped');
    expect(r.f.status).toBe('skipped');
  });

  it('xPU agent: free-host-context and reprovision are required; the new command types are accepted and run', async () => {
    const ws = workspace();
    writeHook(ws, 'postpone-reboot', 'jq -r .args.deadline 2>/dev/null || cat');
    writeHook(ws, 'reboot-xpu', 'echo announced');
    const deadline = new Date(Date.now() + 600_000).toISOString();
    const r = await runOnce(ws, 'node-a.dpu0', [
      command('fh', 'free-host-context', { xpu: 'dpu0' }),
      command('rp', 'reprovision', { xpu: 'dpu0', args: { tenant: 't2' } }),
      command('pr', 'proceed-reboot', { xpu: 'dpu0' }),
      command('pp', 'postpone-reboot', { xpu: 'dpu0', args: { deadline, reason: 'extension' } }),
      command('cr', 'cancel-reboot', { xpu: 'dpu0', args: { reason: 'operator' } }),
      command('rx', 'reboot-xpu', { xpu: 'dpu0', args: { reason: 'fw', noticeSeconds: 60, rolloutId: 'ro-1' } }),
      command('pc', 'protect-pcie', { xpu: 'dpu0' }), // a host's required hook is not required on the xPU
    ]);
    expect([r.fh.status, r.rp.status]).toEqual(['failed', 'failed']);
    expect(r.fh.output).toMatch(/^required hook missing: free-host-context/);
    expect(r.pr.status).toBe('skipped');
    expect(r.pp.status).toBe('succeeded');
    expect(r.pp.output).toContain(deadline.slice(0, 19));
    expect(r.cr.status).toBe('skipped');
    expect(r.rx).toMatchObject({ status: 'succeeded', output: 'announced\n' });
    expect(r.pc.status).toBe('skipped');
  });

  it('a dry run never reports succeeded: required hooks fail, others are skipped, failures stay failures', async () => {
    const ws = workspace();
    writeHook(ws, 'protect-pcie', 'echo "dry run: would remove 0000:3b:00.0"');
    writeHook(ws, 'reboot-host', 'echo "dry run: would reboot"');
    writeHook(ws, 'migrate-workloads', 'echo broken; exit 4');
    const r = await runOnce(ws, 'node-a', [command('p', 'protect-pcie'), command('h', 'reboot-host'), command('m', 'migrate-workloads')], {
      REBOOT_HOOK_DRY_RUN: '1',
    });
    expect(r.p.status).toBe('failed');
    expect(r.p.output).toMatch(/^dry run \(REBOOT_HOOK_DRY_RUN=1\): the hook exited 0, reported failed/);
    expect(r.p.output).toContain('would remove 0000:3b:00.0');
    expect(r.h.status).toBe('skipped');
    expect(r.h.output).toMatch(/^dry run .*reported skipped/);
    expect(r.m.status).toBe('failed');
    expect(r.m.output).toBe('hook exited with code 4\nbroken\n');
  });
});
