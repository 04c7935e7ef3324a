// The mapping as data: shipped defaults consistent with the XpuReboot registry, operator files, and clear errors.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadMapping, MappingFileInvalid, mappedRegistryPrefixes, parseMapping, rulesFor } from '../../lambdas/core/redfish/mapping.ts';
import { nodeA, nodeHpe } from '../fixtures/redfish/inventory.ts';
import { fixture, translateText } from '../fixtures/redfish/load.ts';

const registry = JSON.parse(readFileSync(new URL('../../registries/XpuReboot.1.0.0.json', import.meta.url), 'utf8'));
const operatorFile = new URL('../fixtures/redfish/operator-mapping.yaml', import.meta.url).pathname;
const badFile = new URL('../fixtures/redfish/bad-mapping.yaml', import.meta.url).pathname;

describe('the XpuReboot registry', () => {
  it('is a Redfish MessageRegistry for prefix XpuReboot 1.0.0', () => {
    expect(registry).toMatchObject({
      '@odata.type': expect.stringMatching(/^#MessageRegistry\.v1_\d+_\d+\.MessageRegistry$/),
      Id: 'XpuReboot.1.0.0',
      RegistryPrefix: 'XpuReboot',
      RegistryVersion: '1.0.0',
      Language: 'en',
      OwningEntity: expect.any(String),
    });
    expect(Object.keys(registry.Messages).sort()).toEqual(['Crashed', 'HostRebootRequested', 'Ready', 'RebootPending']);
    for (const [key, m] of Object.entries<Record<string, unknown>>(registry.Messages)) {
      const n = m.NumberOfArgs as number;
      expect(m, key).toMatchObject({ Description: expect.any(String), Message: expect.any(String), Resolution: expect.any(String) });
      expect(m.Severity, key).toBe(m.MessageSeverity);
      expect((m.Message as string).match(/%\d/g)?.length ?? 0, key).toBe(n);
      expect(((m.ParamTypes as string[] | undefined) ?? []).length, key).toBe(n);
    }
  });

  it('has every message mapped by the shipped defaults, with arg indexes inside NumberOfArgs and numbers where the mapping wants one', () => {
    const mapping = loadMapping(null);
    const expected: Record<string, string> = {
      RebootPending: 'xpu.reboot.pending',
      Crashed: 'xpu.crashed',
      Ready: 'xpu.ready',
      HostRebootRequested: 'host.reboot.requested',
    };
    for (const [key, m] of Object.entries<{ NumberOfArgs: number; ParamTypes?: string[] }>(registry.Messages)) {
      const rules = rulesFor(mapping, 'XpuReboot', key);
      expect(rules.length, key).toBeGreaterThan(0);
      const rule = rules[0];
      expect(Object.values(rule.types), key).toContain(expected[key]);
      for (const [field, index] of Object.entries(rule.args)) {
        expect(index, `${key}.${field}`).toBeLessThan(m.NumberOfArgs);
        if (field === 'noticeSeconds') expect(m.ParamTypes?.[index as number]).toBe('number');
      }
    }
  });
});

describe('loadMapping', () => {
  afterEach(() => {
    delete process.env.REDFISH_MAPPING_FILE;
  });

  it('ships rules for the power and reset messages of DMTF, OpenBMC and the common vendors, ignoring versions', () => {
    const mapping = loadMapping(null);
    for (const [reg, key] of [
      ['ResourceEvent', 'ResourcePoweredOff'],
      ['Platform', 'PlatformResetWatchdogTimer'],
      ['Power', 'ChassisPoweredOff'],
      ['OpenBMC', 'DCPowerOff'],
      ['Alert', 'SystemPowerOff'],
      ['iLOEvents', 'ServerPoweredOff'],
      ['CrayAlerts', 'ResourcePowerStateChanged'],
      [null, 'SYS1001'],
      ['idrac', 'SYS1001'],
    ] as const) {
      expect(rulesFor(mapping, reg, key).length, `${reg}.${key}`).toBeGreaterThan(0);
    }
    expect(mappedRegistryPrefixes(mapping)).toEqual(expect.arrayContaining(['XpuReboot', 'ResourceEvent', 'Platform', 'Power', 'OpenBMC']));
    expect(mappedRegistryPrefixes(mapping)).not.toContain('EventLog');
  });

  it('adds an operator MessageId without code change, and the operator rule wins over a shipped one', () => {
    const before = translateText(
      JSON.stringify({
        Events: [{ EventId: '1', MessageId: 'ContosoDpu.2.0.MaintenanceScheduled', MessageArgs: ['NIC firmware', '900'] }],
      }),
      nodeA,
    );
    expect(before.kind === 'ok' && before.ignored[0].code).toBe('UnmappedMessageId');

    const mapping = loadMapping(operatorFile);
    expect(mapping.files).toEqual([operatorFile, expect.stringMatching(/config\/redfish-mapping\.yaml$/)]);
    const after = translateText(
      JSON.stringify({
        Events: [{ EventId: '1', MessageId: 'ContosoDpu.2.0.MaintenanceScheduled', MessageArgs: ['NIC firmware', '900'] }],
      }),
      nodeA,
      { mapping },
    );
    expect(after.kind === 'ok' && after.accepted[0]).toMatchObject({
      type: 'xpu.reboot.pending',
      xpu: 'dpu0',
      data: { reason: 'NIC firmware', noticeSeconds: 900 },
    });

    const on = JSON.stringify({
      Events: [
        { EventId: 'u', MessageId: 'iLOEvents.2.1.ServerPoweredOn', MessageArgs: ['t7'], OriginOfCondition: '/redfish/v1/Systems/1' },
      ],
    });
    const onOut = translateText(on, nodeHpe, { mapping });
    expect(onOut.kind === 'ok' && onOut.accepted[0]).toMatchObject({ type: 'host.ready', data: { tenant: 't7' } });
    // The rest of the defaults still apply.
    const off = translateText(fixture('hpe-string-origin.json'), nodeHpe, { mapping });
    expect(off.kind === 'ok' && off.accepted[0].type).toBe('host.down');
  });

  it('reads REDFISH_MAPPING_FILE when no file is given', () => {
    process.env.REDFISH_MAPPING_FILE = operatorFile;
    expect(loadMapping().files[0]).toBe(operatorFile);
    expect(loadMapping(null).files).toHaveLength(1);
  });

  it('names the file and line of a bad mapping file', () => {
    expect(() => loadMapping(badFile)).toThrow(MappingFileInvalid);
    expect(() => loadMapping(badFile)).toThrow(new RegExp(`^${badFile}:8: unknown key 'mesage'`));
    expect(() => loadMapping('/nonexistent/mapping.yaml')).toThrow(/\/nonexistent\/mapping\.yaml: cannot read the Redfish mapping file/);
  });

  it('rejects invalid YAML, unknown types, xpu types on the host and rules with neither type nor ignore', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-map-'));
    const cases: Array<[string, RegExp]> = [
      ['rules: [ {registry: X, message: Y, type: xpu.down', /:\d+: not valid YAML/],
      ['rules:\n  - registry: X\n    message: Y\n    type: xpu.exploded\n', /:4: .*type/],
      ['rules:\n  - registry: X\n    message: Y\n    origin: host\n    type: xpu.down\n', /origin must be xpu/],
      ['rules:\n  - registry: X\n    message: Y\n', /exactly one of type or ignore/],
      ['rules:\n  - message: Y\n    type: host.down\n', /registry/],
      ['rules:\n  - registry: X.1.0\n    message: Y\n    type: host.down\n', /no dots/],
      ['rules:\n  - registry: X\n    message: Y\n    type: xpu.down\n    withoutOrigin: host\n', /withoutOrigin/],
      ['rules:\n  - registry: X\n    message: Y\n    type: host.down\n    data: { noticeSeconds: -1 }\n', /noticeSeconds/],
      [
        'rules:\n  - registry: [X, null]\n    message: Y\n    type: host.down\n  - registry: x\n    message: Y\n    ignore: z\n',
        /:5: this rule is never used: the rule at .*:2 matches x Y first/,
      ],
    ];
    for (const [i, [text, re]] of cases.entries()) {
      const file = join(dir, `m${i}.yaml`);
      writeFileSync(file, text);
      expect(() => loadMapping(file), text).toThrow(MappingFileInvalid);
      expect(() => loadMapping(file), text).toThrow(re);
      expect(() => loadMapping(file), text).toThrow(file);
    }
  });

  it('parses text directly for bundles that embed the mapping', () => {
    const rules = parseMapping('rules:\n  - registry: [A, null]\n    message: K\n    ignore: why\n', 'inline');
    expect(rules[0]).toMatchObject({ registries: ['A', null], message: 'K', ignore: 'why', source: 'inline:2' });
  });
});
