// Secrets and server input (docs/edge-kit.md): with --token-file the token is in no argv or environ (agent, lean re-exec, hook);
// http:// only to loopback; unsafe server ids; `agent check` against a server, over mutual TLS.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { command, FakeServer } from '../fixtures/agent/fake-server.ts';
import {
  removeWorkspaces,
  startAgent,
  waitFor,
  workspace,
  writeHook,
  type RunningAgent,
  type Workspace,
} from '../fixtures/agent/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'tok-secret-0123456789';
const servers: FakeServer[] = [];
const agents: RunningAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) {
    if (a.child.exitCode === null) a.child.kill('SIGKILL');
    await a.exited;
  }
  for (const s of servers.splice(0)) await s.stop();
  removeWorkspaces();
});

async function fakeServer(): Promise<FakeServer> {
  const s = await new FakeServer({ tokens: { [TOKEN]: 'node-a' } }).start();
  servers.push(s);
  return s;
}

function tokenFile(ws: Workspace): string {
  const f = join(ws.dir, 'agent.token');
  writeFileSync(f, TOKEN + '\n', { mode: 0o600 });
  return f;
}

/** What /proc shows of a process: its command line and its (initial) environment. */
function procView(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8') + '\n' + readFileSync(`/proc/${pid}/environ`, 'utf8');
}

describe('the token stays out of argv and environ', () => {
  for (const how of ['--token-file', 'REBOOT_AGENT_TOKEN'] as const) {
    it(`${how}: not in /proc of the agent (after its lean re-exec) nor of a running hook; the hook gets a token file`, async () => {
      const ws = workspace();
      const server = await fakeServer();
      writeHook(
        ws,
        'migrate-workloads',
        'echo $$ > "$REC/hook.pid"\nprintf %s "${REBOOT_AGENT_TOKEN_FILE:-}" > "$REC/token-file"\nwhile [ ! -e "$REC/go" ]; do sleep 0.05; done\necho done',
      );
      const a = startAgent(
        ws,
        [
          '--server',
          server.url,
          '--agent',
          'node-a',
          '--hooks',
          ws.hooks,
          '--state',
          ws.state,
          '--wait',
          '1',
          ...(how === '--token-file' ? ['--token-file', tokenFile(ws)] : []),
        ],
        how === 'REBOOT_AGENT_TOKEN' ? { REBOOT_AGENT_TOKEN: TOKEN } : {},
      );
      agents.push(a);
      server.enqueue('node-a', command('c1', 'migrate-workloads'));
      const hookPid = Number(
        await waitFor(
          () => readFileSafe(join(ws.rec, 'hook.pid')).trim(),
          10_000,
          () => a.stderr(),
        ),
      );
      // The daemon re-executed itself (same pid): what /proc shows now is the lean process.
      expect(readFileSync(`/proc/${a.child.pid}/cmdline`, 'utf8')).toContain('daemon.ts');
      expect(procView(a.child.pid!)).not.toContain(TOKEN);
      expect(procView(hookPid)).not.toContain(TOKEN);
      const file = readFileSafe(join(ws.rec, 'token-file'));
      expect(file).not.toBe('');
      expect(readFileSync(file, 'utf8').trim()).toBe(TOKEN); // the opt-in: a hook that calls the API reads it
      writeFileSync(join(ws.rec, 'go'), '');
      await waitFor(() => server.finalResults('c1')[0]);
      expect(server.finalResults('c1')[0].status).toBe('succeeded');
    });
  }

  it('refuses http:// to a non-loopback host (exit 2) and says why', async () => {
    const ws = workspace();
    const a = startAgent(ws, [
      '--server',
      'http://reboots.example.com',
      '--agent',
      'node-a',
      '--hooks',
      ws.hooks,
      '--state',
      ws.state,
      '--token-file',
      tokenFile(ws),
    ]);
    agents.push(a);
    expect(await a.exited).toBe(2);
    expect(a.stderr()).toMatch(/server .*http:\/\/ is allowed only to a loopback address/);
  });
});

describe('server-supplied ids', () => {
  it('reports a command with an unsafe reboot, xPU or tenant id failed without running it, and ignores an unsafe command id', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'reprovision', 'echo ran >> "$REC/ran"');
    writeHook(ws, 'free-host-context', 'echo ran >> "$REC/ran"');
    server.enqueue(
      'node-a.dpu0',
      command('bad-reboot', 'free-host-context', { rebootId: '../../etc/cron.d/x', xpu: 'dpu0' }),
      command('bad-xpu', 'free-host-context', { xpu: '-rf' }),
      command('bad-tenant', 'reprovision', { xpu: 'dpu0', args: { tenant: 't1\n--all' } }),
      command('../escape', 'reprovision', { xpu: 'dpu0', args: { tenant: 't2' } }),
      command('good', 'reprovision', { xpu: 'dpu0', args: { tenant: 't2' } }),
    );
    const a = startAgent(ws, [
      '--once',
      '--server',
      server.url,
      '--agent',
      'node-a.dpu0',
      '--hooks',
      ws.hooks,
      '--state',
      ws.state,
      '--token-file',
      tokenFile(ws),
    ]);
    agents.push(a);
    expect(await a.exited).toBe(0);
    const r = Object.fromEntries(server.finalResults().map((x) => [x.id, x]));
    expect(Object.keys(r).sort()).toEqual(['bad-reboot', 'bad-tenant', 'bad-xpu', 'good']);
    expect(r['bad-reboot'].output).toMatch(/^unsafe rebootId "..\/..\/etc\/cron.d\/x" from the server/);
    expect(r['bad-xpu'].output).toMatch(/^unsafe xpu "-rf"/);
    expect(r['bad-tenant'].output).toMatch(/^unsafe args.tenant/);
    expect([r['bad-reboot'].status, r['bad-xpu'].status, r['bad-tenant'].status, r.good.status]).toEqual([
      'failed',
      'failed',
      'failed',
      'succeeded',
    ]);
    expect(readFileSafe(join(ws.rec, 'ran'))).toBe('ran\n'); // only the good one ran
  });
});

describe('bounded queue', () => {
  it('takes at most 256 commands from a flood; the rest stay with the server for later', async () => {
    const ws = workspace();
    const server = await fakeServer();
    server.enqueue('node-a', ...Array.from({ length: 300 }, (_, i) => command(`f${i}`, 'reboot-host'))); // no hook: skipped at once
    const a = startAgent(ws, [
      '--once',
      '--server',
      server.url,
      '--agent',
      'node-a',
      '--hooks',
      ws.hooks,
      '--state',
      ws.state,
      '--token-file',
      tokenFile(ws),
    ]);
    agents.push(a);
    expect(await a.exited).toBe(0);
    expect(server.finalResults()).toHaveLength(256);
    expect(server.queues.get('node-a')!.map((c) => c.id)).toEqual(Array.from({ length: 44 }, (_, i) => `f${256 + i}`));
    expect(a.logs.some((l) => /command queue or result backlog full/.test(l.msg))).toBe(true);
  });
});

describe('rebootctl agent check against a server', () => {
  it('exit 0 with a valid token; non-zero naming the problem for a wrong token, an unreachable server, a readable token file', async () => {
    const ws = workspace();
    const server = await fakeServer();
    for (const t of ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads']) writeHook(ws, t, 'true');
    const good = await check(['--agent', 'node-a', '--hooks', ws.hooks, '--server', server.url, '--token-file', tokenFile(ws)]);
    expect(good.stderr).toBe('');
    expect(good.status).toBe(0);
    expect(good.stdout).toContain('accepts the token of agent node-a');
    expect(server.polls.at(-1)).toMatchObject({ agent: 'node-a', wait: 0 });

    const wrong = join(ws.dir, 'wrong.token');
    writeFileSync(wrong, 'nope\n', { mode: 0o600 });
    const bad = await check(['--agent', 'node-a', '--hooks', ws.hooks, '--server', server.url, '--token-file', wrong]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/problem: the server .* does not accept the token \(401\)/);

    const other = await check(['--agent', 'node-b', '--hooks', ws.hooks, '--server', server.url, '--token-file', tokenFile(ws)]);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/refuses agent node-b with this token \(403\)/);

    const port = server.port;
    await server.stop();
    const offline = await check([
      '--agent',
      'node-a',
      '--hooks',
      ws.hooks,
      '--server',
      `http://127.0.0.1:${port}`,
      '--token-file',
      tokenFile(ws),
    ]);
    expect(offline.status).toBe(1);
    expect(offline.stderr).toMatch(/problem: the server .* is unreachable/);
    const tolerated = await check([
      '--agent',
      'node-a',
      '--hooks',
      ws.hooks,
      '--server',
      `http://127.0.0.1:${port}`,
      '--token-file',
      tokenFile(ws),
      '--allow-offline',
    ]);
    expect(tolerated.status).toBe(0);
    expect(tolerated.stderr).toMatch(/warning: the server .* is unreachable/);

    const loose = tokenFile(ws);
    execFileSync('chmod', ['0644', loose]);
    const readable = await check(['--agent', 'node-a', '--hooks', ws.hooks, '--token-file', loose]);
    expect(readable.status).toBe(1);
    expect(readable.stderr).toMatch(/token file .* readable or writable by group or others \(mode 0644\)/);
  });

  it('speaks mutual TLS with --ca-file, --client-cert and --client-key', async () => {
    const ws = workspace();
    for (const t of ['free-host-context', 'reprovision']) writeHook(ws, t, 'true');
    const pki = (name: string) => join(ws.dir, name);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      pki('ca.key'),
      '-out',
      pki('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=test-ca',
    );
    for (const who of ['server', 'client']) {
      ssl(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        pki(`${who}.key`),
        '-out',
        pki(`${who}.csr`),
        '-subj',
        `/CN=${who === 'server' ? 'localhost' : 'node-a.dpu0'}`,
      );
      writeFileSync(pki(`${who}.ext`), who === 'server' ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
      ssl(
        'x509',
        '-req',
        '-in',
        pki(`${who}.csr`),
        '-CA',
        pki('ca.pem'),
        '-CAkey',
        pki('ca.key'),
        '-CAcreateserial',
        '-out',
        pki(`${who}.pem`),
        '-days',
        '2',
        '-extfile',
        pki(`${who}.ext`),
      );
    }
    const seen: string[] = [];
    const https = createServer(
      {
        key: readFileSync(pki('server.key')),
        cert: readFileSync(pki('server.pem')),
        ca: readFileSync(pki('ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        seen.push(`${req.headers.authorization} ${req.url}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      },
    );
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    try {
      const url = `https://localhost:${(https.address() as AddressInfo).port}`;
      const tls = ['--ca-file', pki('ca.pem'), '--client-cert', pki('client.pem'), '--client-key', pki('client.key')];
      const ok = await check(['--agent', 'node-a.dpu0', '--hooks', ws.hooks, '--server', url, '--token-file', tokenFile(ws), ...tls]);
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      expect(seen).toEqual([`Bearer ${TOKEN} /v1/agents/node-a.dpu0/commands?wait=0`]);
      const noCert = await check([
        '--agent',
        'node-a.dpu0',
        '--hooks',
        ws.hooks,
        '--server',
        url,
        '--token-file',
        tokenFile(ws),
        '--ca-file',
        pki('ca.pem'),
      ]);
      expect(noCert.status).toBe(1);
      const noCa = await check([
        '--agent',
        'node-a.dpu0',
        '--hooks',
        ws.hooks,
        '--server',
        url,
        '--token-file',
        tokenFile(ws),
        '--client-cert',
        pki('client.pem'),
        '--client-key',
        pki('client.key'),
      ]);
      expect(noCa.status).toBe(1);
      expect(noCa.stderr).toMatch(/unreachable \(.*(self.signed|certificate)/i);
      expect(seen).toHaveLength(1);
    } finally {
      https.closeAllConnections();
      await new Promise((r) => https.close(r));
    }
  });
});

/** Asynchronous: the fake servers run in this process, which spawnSync would block. */
function check(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveP) => {
    const child = spawn(process.execPath, [join(ROOT, 'cli/rebootctl.js'), 'agent', 'check', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (status) => resolveP({ status, stdout, stderr }));
  });
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
