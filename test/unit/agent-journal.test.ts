// Unit tests of the agent's journal: replay after a crash, torn lines, compaction bounds, and the single-agent lock.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentLocked, Journal } from '../../agent/journal.ts';
import { createLogger } from '../../agent/log.ts';

const log = createLogger({ level: 'error', write: () => {} });
const open = (dir: string, extra: Partial<Parameters<typeof Journal.open>[1]> = {}) =>
  Journal.open(dir, { agent: 'node-a', maxEntries: 100, maxAgeMs: 30 * 86_400_000, log, ...extra });
const cmd = (id: string) => ({ id, type: 'protect-pcie', rebootId: 'rb-1', deadline: '2030-01-01T00:00:00.000Z' });

describe('agent journal', () => {
  it('after a restart, knows what was started, finished and delivered', () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    const j = open(dir);
    j.started(cmd('a'));
    j.finished('a', 'succeeded', 'ok');
    j.delivered('a');
    j.started(cmd('b'));
    j.finished('b', 'failed', 'exit 1');
    j.started(cmd('c')); // the agent dies while c's hook runs
    j.close();

    const again = open(dir);
    expect(again.get('a')).toMatchObject({ status: 'succeeded' });
    expect(again.get('a')?.deliveredAt).toBeTruthy();
    expect(again.undelivered().map((e) => e.id)).toEqual(['b']);
    expect(again.undelivered()[0].output).toBe('exit 1');
    expect(again.interrupted().map((e) => e.id)).toEqual(['c']);
    again.close();
  });

  it('ignores a line torn by a crash and keeps appending on a fresh line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    const j = open(dir);
    j.started(cmd('a'));
    j.close();
    appendFileSync(join(dir, 'journal.jsonl'), '{"t":"finished","id":"a","sta');
    const again = open(dir);
    expect(again.interrupted().map((e) => e.id)).toEqual(['a']);
    again.finished('a', 'failed', 'interrupted: agent restarted');
    again.close();
    expect(open(dir).get('a')).toMatchObject({ status: 'failed', output: 'interrupted: agent restarted' });
  });

  it('compacts delivered entries beyond the count and age bounds, never undelivered ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    let now = Date.parse('2030-01-01T00:00:00Z');
    const j = open(dir, { maxEntries: 100, maxAgeMs: 86_400_000, now: () => now });
    j.started(cmd('old'));
    j.finished('old', 'succeeded', 'x');
    j.delivered('old');
    now += 2 * 86_400_000;
    for (let i = 0; i < 150; i++) {
      j.finished(`n${i}`, 'succeeded', 'y'.repeat(100));
      j.delivered(`n${i}`);
    }
    j.finished('pending', 'failed', 'not yet sent');
    j.compact();
    j.close();

    const again = open(dir, { maxEntries: 100, maxAgeMs: 86_400_000, now: () => now });
    expect(again.get('old')).toBeUndefined(); // too old
    expect(again.get('n49')).toBeUndefined(); // beyond the newest 100
    expect(again.get('n50')?.deliveredAt).toBeTruthy();
    expect(again.get('pending')).toMatchObject({ status: 'failed', output: 'not yet sent' });
    expect(again.size).toBe(101);
    const lines = readFileSync(join(dir, 'journal.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBe(102); // header + 100 delivered (one line each) + 1 pending
    again.close();
  });

  it('refuses a second agent on the same state directory, and takes over a stale lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    // A live process that is not us holds the lock: pid 1, with its real identity.
    const init = readFileSync('/proc/1/stat', 'utf8');
    const startTime = init.slice(init.lastIndexOf(')') + 2).split(' ')[19];
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(join(dir, 'agent.lock'), JSON.stringify({ pid: 1, bootId, startTime }));
    expect(() => open(dir)).toThrow(AgentLocked);
    // Same pid, other boot: the holder is gone.
    writeFileSync(join(dir, 'agent.lock'), JSON.stringify({ pid: 1, bootId: 'another-boot', startTime }));
    const j = open(dir);
    j.close();
  });
});
