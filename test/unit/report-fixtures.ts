// Recorded reboots with hand-computed compliance answers, shared by the report's unit and browser tests.
import type { CommandSummary, Reboot } from '../../lambdas/core/types.ts';

export const DAY = '2024-05-01';
export const FROM = new Date('2024-05-01T00:00:00Z');
export const TO = new Date('2024-05-02T00:00:00Z');
export const GENERATED_AT = new Date('2024-05-02T06:00:00Z');

const PLACES: Record<string, { rack?: string; zone?: string; tenant?: string }> = {
  'node-a': { rack: 'r1', zone: 'z1', tenant: 't1' },
  'node-b': { rack: 'r1', zone: 'z1', tenant: 't2' },
  'node-c': { rack: 'r2', zone: 'z1', tenant: 't1' },
  'node-d': { rack: 'r2', zone: 'z2', tenant: 't2' },
  'node-e': { rack: 'r3', zone: 'z2', tenant: 't1' },
  'node-f': { rack: 'r3', zone: 'z2', tenant: 't2' },
  'node-g': { rack: 'r1', zone: 'z1', tenant: 't1' },
  'node-h': { rack: 'r4', zone: 'z3' },
};

/** `t('10:05')` is that time on the report's day; `t('+1 00:03')` the next day. */
export function t(hhmm: string): string {
  const next = hhmm.startsWith('+1 ');
  const clock = next ? hhmm.slice(3) : hhmm;
  const base = next ? '2024-05-02' : DAY;
  return new Date(`${base}T${clock.length === 5 ? `${clock}:00` : clock}Z`).toISOString();
}

export function addSeconds(iso: string, s: number): string {
  return new Date(Date.parse(iso) + s * 1000).toISOString();
}

export function cmd(
  id: string,
  type: CommandSummary['type'],
  status: CommandSummary['status'],
  at: string,
  agent = 'node-x',
): CommandSummary {
  return { id, type, agent, step: type, status, at };
}

/** An xPU reboot announced with the policy's 300 s notice that went as planned, overridable field by field. */
export function xpuReboot(id: string, node: string, notifiedAt: string, over: Partial<Reboot> = {}): Reboot {
  return {
    id,
    kind: 'xpu',
    node,
    xpu: 'dpu0',
    status: 'completed',
    mode: 'planned',
    reason: 'firmware update',
    ...PLACES[node],
    notifiedAt,
    deadline: addSeconds(notifiedAt, 300),
    noticeSeconds: 300,
    policyNoticeSeconds: 300,
    extensions: [],
    refusals: [],
    forced: false,
    outstanding: [],
    commands: {},
    history: [{ at: notifiedAt, phase: 'notified', detail: '' }],
    version: 1,
    ...over,
  };
}

export function hostReboot(id: string, node: string, notifiedAt: string, over: Partial<Reboot> = {}): Reboot {
  return {
    id,
    kind: 'host',
    node,
    xpu: null,
    status: 'completed',
    mode: 'shell',
    ...PLACES[node],
    notifiedAt,
    deadline: null,
    noticeSeconds: 0,
    policyNoticeSeconds: 0,
    extensions: [],
    refusals: [],
    forced: false,
    outstanding: [],
    commands: {},
    history: [{ at: notifiedAt, phase: 'requested', detail: '' }],
    version: 1,
    ...over,
  };
}

function ext(at: string, requested: number, granted: number, deadline: string) {
  return { at, requested, granted, reason: 'draining workloads', deadline };
}

/** The known-answer day: every case of the issue, with the answers computed by hand in report.test.ts. */
export function recordedDay(): Reboot[] {
  return [
    // Notified exactly at `from`: inside. Forced at its deadline.
    xpuReboot('x-at-from', 'node-e', t('00:00'), {
      forced: true,
      outstanding: ['migrate-workloads'],
      rebootingAt: t('00:05'),
      readyAt: t('00:06'),
      endedAt: t('00:07'),
    }),
    // The host was ready early: proceed-reboot at 10:03.
    xpuReboot('x-ok', 'node-a', t('10:00'), { rebootingAt: t('10:03'), readyAt: t('10:05:30'), endedAt: t('10:06') }),
    // The xPU denies the host reboot asked for during its own reboot.
    hostReboot('h-denied', 'node-a', t('10:02'), {
      status: 'denied',
      denyReason: 'xpu-rebooting: dpu0 reboot x-ok in progress',
      endedAt: t('10:02'),
    }),
    xpuReboot('x-forced', 'node-b', t('11:00'), {
      forced: true,
      outstanding: ['migrate-workloads'],
      rebootingAt: t('11:05'),
      readyAt: t('11:08'),
      endedAt: t('11:09'),
      commands: { c1: cmd('c1', 'migrate-workloads', 'timed-out', t('11:05'), 'node-b') },
    }),
    // A host reboot that went ahead (IPMI, out of band) while x-forced held the node.
    hostReboot('h-violating', 'node-b', t('11:06'), {
      mode: 'ipmi',
      hostDownAt: t('11:06:10'),
      hostReadyAt: t('11:10:10'),
      endedAt: t('11:11'),
    }),
    // Extended twice, the second trimmed to the 1800 s cap: exactly at the cap is compliant.
    xpuReboot('x-ext2', 'node-c', t('12:00'), {
      extensions: [ext(t('12:01'), 600, 600, t('12:15')), ext(t('12:10'), 1500, 1200, t('12:35'))],
      deadline: t('12:35'),
      status: 'completed',
      rebootingAt: t('12:30'),
      readyAt: t('12:34'),
      endedAt: t('12:35'),
    }),
    xpuReboot('x-refused', 'node-d', t('13:00'), {
      extensions: [ext(t('13:01'), 300, 300, t('13:10'))],
      refusals: [{ at: t('13:06'), requested: 600, reason: 'past the notice phase' }],
      deadline: t('13:10'),
      rebootingAt: t('13:10'),
      readyAt: t('13:12'),
      endedAt: t('13:13'),
    }),
    xpuReboot('x-crash', 'node-e', t('14:00'), {
      xpu: 'dpu1',
      mode: 'crash',
      noticeSeconds: 0,
      deadline: t('14:02'),
      crashedAt: t('14:00'),
      rebootingAt: t('14:02'),
      readyAt: t('14:07'),
      endedAt: t('14:08'),
      commands: { c2: cmd('c2', 'allow-coredump', 'failed', t('14:01'), 'node-e.dpu1') },
    }),
    xpuReboot('x-short', 'node-f', t('15:00'), {
      noticeSeconds: 120,
      deadline: t('15:02'),
      rebootingAt: t('15:02'),
      readyAt: t('15:03'),
      endedAt: t('15:04'),
    }),
    xpuReboot('x-overcap', 'node-g', t('16:00'), {
      extensions: [1, 2, 3, 4].map((i) => ext(t(`16:0${i}`), 500, 500, addSeconds(t('16:05'), 500 * i))),
      deadline: addSeconds(t('16:05'), 2000),
      rebootingAt: t('16:40'),
      readyAt: t('16:45'),
      endedAt: t('16:46'),
    }),
    xpuReboot('x-failed', 'node-h', t('17:00'), { status: 'failed', rebootingAt: t('17:05'), endedAt: t('17:20') }),
    // Cut by the window's end: still recovering when the report is generated.
    xpuReboot('x-cut-end', 'node-a', t('23:58'), { status: 'recovering', deadline: t('+1 00:03'), rebootingAt: t('+1 00:01') }),
    // Cut by the window's end, finished after it.
    xpuReboot('x-cut-end-done', 'node-c', t('23:50'), { rebootingAt: t('23:55'), readyAt: t('+1 00:01'), endedAt: t('+1 00:01:30') }),
    // Cut by the window's start: notified the day before, so not in this report...
    xpuReboot('x-cut-start', 'node-d', '2024-04-30T23:58:00.000Z', {
      deadline: t('00:03'),
      rebootingAt: t('00:03'),
      readyAt: t('00:04'),
      endedAt: t('00:05'),
    }),
    // ...but a host reboot that went ahead while it was active still is a finding.
    hostReboot('h-across', 'node-d', t('00:01'), { hostDownAt: t('00:01:30'), hostReadyAt: t('00:04:30'), endedAt: t('00:05') }),
    // Notified exactly at `to`: outside.
    xpuReboot('x-at-to', 'node-f', t('+1 00:00'), { status: 'notified' }),
  ];
}

/** A strict RFC 4180 reader, written here so the test does not trust the writer's own idea of CSV. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i++;
        if (i < text.length && text[i] !== ',' && text[i] !== '\r') throw new Error(`junk after closing quote at ${i}`);
      } else {
        field += c;
        i++;
      }
    } else if (c === '"') {
      if (field !== '') throw new Error(`quote inside an unquoted field at ${i}`);
      quoted = true;
      i++;
    } else if (c === ',') {
      record.push(field);
      field = '';
      i++;
    } else if (c === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i += 2;
    } else if (c === '\n' || c === '\r') {
      throw new Error(`bare line break at ${i}`);
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || record.length) {
    record.push(field);
    records.push(record);
  }
  return records;
}
